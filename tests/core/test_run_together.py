"""`run_together`: several statements in one round trip on PostgreSQL (psycopg's pipeline
mode), one after another elsewhere. Its rows must be the rows SQLAlchemy's own execution gives
for the same statements (the oracle), in the caller's transaction and in order (a read sees the
writes before it), and a failing statement must leave the connection usable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bench.rescore import MODEL_FILE
from core.pipeline import score as scorer
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store import summary
from core.store.bulk import any_key, run_together
from core.store.ingest import ACTIVITY, LEAD
from core.store.store import Store
from core.store.tables import SyncRun, table
from scoring.model import load_model_file

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


def _seed(store: Store) -> list[int]:
    page: list[Any] = []
    for i in range(3):
        email = f"p{i}@example.com"
        page.append(
            LeadRecord(source="crm", external_id=f"c{i}", email=email, company_size=50 + i * 200)
        )
        page += [
            ActivityRecord(
                source="crm",
                external_id=f"a{i}-{k}",
                lead=email,
                type="page_viewed" if k % 2 else "email_opened",
                occurred_at=NOW - timedelta(days=k, minutes=i),
                properties={"url": "https://example.com/pricing"} if k % 2 else {},
            )
            for k in range(4)
        ]
    page.append(
        OutcomeRecord(
            source="crm", external_id="o1", lead="p1@example.com", status="won", closed_at=NOW
        )
    )
    store.save_page("crm", "all", page, None)
    scorer.score(store, load_model_file(MODEL_FILE), now=NOW)
    with store.engine.connect() as conn:
        return [r.id for r in conn.execute(sa.select(LEAD.c.id).order_by(LEAD.c.id))]


def _reads(dialect: str, ids: list[int]) -> list[Any]:
    return [
        (scorer._activities_of(dialect, False), {"ids": ids}),
        (scorer._scores_of(dialect), {"ids": ids}),
        summary.identities_read(dialect, ids),
    ]


def test_the_rows_are_those_of_each_read_run_alone(store: Store) -> None:
    ids = _seed(store)
    reads = _reads(store.dialect, ids)
    with store.engine.connect() as conn:
        together = run_together(conn, reads)
        alone = [conn.execute(query, params).all() for query, params in reads]
    assert [len(rows) for rows in together] == [12, 3, 4]  # 3 identities and 1 outcome
    for got, want in zip(together, alone, strict=True):
        assert [tuple(r) for r in got] == [tuple(r) for r in want]
        # the same Python values and types: aware UTC datetimes, parsed JSON, floats
        assert [[type(v) for v in r] for r in got] == [[type(v) for v in r] for r in want]
        assert [dict(r._mapping) for r in got] == [dict(r._mapping) for r in want]
    score = together[1][0]
    assert score.computed_at == NOW and score.computed_at.tzinfo is not None
    assert isinstance(score.ledger, list) and score.ledger[0]["section"] in ("fit", "engagement")


def test_the_reads_see_the_callers_uncommitted_writes(store: Store) -> None:
    ids = _seed(store)
    reads = _reads(store.dialect, ids)
    with store.engine.connect() as conn:
        conn.execute(sa.text("DELETE FROM activity WHERE lead_id = :i"), {"i": ids[0]})
        assert {r.lead_id for r in run_together(conn, reads)[0]} == set(ids[1:])
        conn.rollback()
        assert {r.lead_id for r in run_together(conn, reads)[0]} == set(ids)


def test_a_failing_read_raises_and_the_connection_goes_on(store: Store) -> None:
    ids = _seed(store)
    missing = sa.table("no_such_table", sa.column("lead_id", sa.Integer))
    bad = sa.select(missing.c.lead_id).where(any_key(store.dialect, missing.c.lead_id, "ids"))
    with store.engine.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError, match="no_such_table"):
            run_together(conn, [*_reads(store.dialect, ids), (bad, {"ids": ids})])
        conn.rollback()
        assert len(run_together(conn, _reads(store.dialect, ids))[0]) == 12


def test_a_read_with_an_expanding_parameter_is_refused_on_postgresql(store: Store) -> None:
    ids = _seed(store)
    expanding = sa.select(LEAD.c.id).where(LEAD.c.id.in_(sa.bindparam("ids", expanding=True)))
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            with pytest.raises(ValueError, match="expanding"):
                run_together(conn, [(expanding, {"ids": ids})])
        else:  # elsewhere the reads run as `conn.execute` runs them
            assert [r.id for r in run_together(conn, [(expanding, {"ids": ids})])[0]] == ids


def test_writes_run_in_order_with_the_reads_and_return_no_rows(store: Store) -> None:
    ids = _seed(store)
    runs = table(SyncRun)
    record = {
        "kind": "score",
        "target": "together",
        "started_at": NOW,
        "finished_at": NOW,
        "status": "ok",
        "read": 1,
        "created": 0,
        "updated": 1,
        "unchanged": 0,
        "quarantined": 0,
        "error": None,
    }
    insert = runs.insert().values({k: sa.bindparam(k) for k in record})
    count = sa.select(sa.func.count()).select_from(runs).where(runs.c.target == "together")
    gone = sa.delete(ACTIVITY).where(any_key(store.dialect, ACTIVITY.c.lead_id, "ids"))
    with store.engine.connect() as conn:
        found = run_together(
            conn,
            [
                (insert, record),
                (count, {}),
                (insert, [{**record, "read": 2}, {**record, "read": 3}]),  # one over each
                (count, {}),
                (gone, {"ids": ids[:1]}),
                *_reads(store.dialect, ids),
            ],
        )
        conn.commit()
    assert [list(map(tuple, rows)) for rows in found[:5]] == [[], [(1,)], [], [(3,)], []]
    assert {r.lead_id for r in found[5]} == set(ids[1:])  # the delete went first
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(runs.c.read).where(runs.c.target == "together"))
        assert sorted(stored.scalars()) == [1, 2, 3]


def test_a_write_that_leaves_out_a_column_with_a_default_is_refused_on_postgresql(
    store: Store,
) -> None:
    """The driver would store NULL where SQLAlchemy's execution puts the column's default."""
    runs = table(SyncRun)
    partial = runs.insert().values(target=sa.bindparam("target"), started_at=sa.bindparam("at"))
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            with pytest.raises(ValueError, match="every column with a default"):
                run_together(conn, [(partial, {"target": "x", "at": NOW})])
        else:
            run_together(conn, [(partial, {"target": "x", "at": NOW})])
            row = conn.execute(sa.select(runs.c.kind, runs.c.read)).one()
            assert tuple(row) == ("pull", 0)


def test_a_failing_write_raises_sqlalchemys_error_class(store: Store) -> None:
    """Callers tell a conflict (retried) from other failures by SQLAlchemy's classes: a key
    taken twice is an IntegrityError here too, and the transaction goes back whole."""
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.String))
    insert = meta.insert().values(key=sa.bindparam("key"), value=sa.bindparam("value"))
    with store.engine.connect() as conn:
        with pytest.raises(sa.exc.IntegrityError):
            run_together(
                conn,
                [
                    (insert, {"key": "twice", "value": "1"}),
                    (insert, {"key": "twice", "value": "2"}),
                ],
            )
        conn.rollback()
        count = sa.select(sa.func.count()).select_from(meta).where(meta.c.key == "twice")
        assert conn.execute(count).scalar_one() == 0
