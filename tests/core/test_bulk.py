"""Bulk writes store exactly what an INSERT or UPDATE statement through SQLAlchemy stores.

The oracle is SQLAlchemy's own statement path: the same rows written through it (a batch under
the bulk threshold takes it) and through the bulk path (COPY on PostgreSQL, the driver's
executemany on SQLite) must read back the same, down to the stored text of times and JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.bulk import COPY_FROM, Serialized, insert_rows, update_rows
from core.store.ingest import LEAD
from core.store.store import Store
from core.store.tables import Score, table

SCORE = table(Score)
NOW = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)
LEDGER = [{"section": "fit", "kind": "rule", "name": "VP \u00e9", "count": 1, "points": 12.5}]


def score_rows(lead_ids: list[int], model: str, shared: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "lead_id": lead_id,
            "model": model,
            "model_hash": "h",
            "fit": 12.5,
            "engagement": -3.25,
            "total": 9.25,
            "tier": None if i % 3 == 0 else "warm",
            "grade": "B2",
            "qualified": i % 2 == 0,
            "qualified_at": NOW - timedelta(days=i) if i % 2 == 0 else None,
            "reason": "VP é",
            "ledger": shared if i % 4 else [],
            "predictive": None,
            "predictive_reason": None,
            "computed_at": NOW,
        }
        for i, lead_id in enumerate(lead_ids)
    ]


def stored(store: Store, model: str) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (times and JSON as text), and as SQLAlchemy reads
    them back."""
    columns = [c for c in SCORE.c if c.name not in ("id", "model")]
    raw = [sa.cast(c, sa.Text) for c in columns]
    query = sa.select(*raw, *columns).where(SCORE.c.model == model).order_by(SCORE.c.lead_id)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def add_leads(conn: Connection, n: int) -> list[int]:
    """`n` bare leads; their ids, lowest first."""
    conn.execute(
        LEAD.insert(),
        [{"email": f"x{i}@y.com", "custom": {}, "created_at": NOW, "updated_at": NOW}
         for i in range(n)],
    )  # fmt: skip
    return [r.id for r in conn.execute(sa.select(LEAD.c.id).order_by(LEAD.c.id))]


def test_bulk_inserts_and_updates_store_what_statements_store(store: Store) -> None:
    n = COPY_FROM + 50
    with store.begin() as conn:
        ids = add_leads(conn, n)
    shared = Serialized(LEDGER)
    with store.begin() as conn:
        plain = score_rows(ids, "by_statement", LEDGER)
        for start in range(0, n, 50):  # under the threshold: SQLAlchemy's statements
            conn.execute(SCORE.insert(), plain[start : start + 50])
        insert_rows(conn, SCORE, score_rows(ids, "in_bulk", shared))
    assert stored(store, "in_bulk") == stored(store, "by_statement")

    with store.engine.connect() as conn:
        keys = dict(conn.execute(sa.select(SCORE.c.id, SCORE.c.model)).all())
    changed = {"total": 1.5, "tier": "hot", "qualified_at": NOW, "ledger": shared}
    with store.begin() as conn:
        for model, ledger in (("by_statement", LEDGER), ("in_bulk", shared)):
            rows = [{**changed, "ledger": ledger, "_id": i} for i, m in keys.items() if m == model]
            if model == "by_statement":
                for start in range(0, len(rows), 50):
                    update_rows(conn, SCORE, rows[start : start + 50])
            else:
                update_rows(conn, SCORE, rows)
    after = stored(store, "in_bulk")
    assert after == stored(store, "by_statement")
    with store.engine.connect() as conn:
        got = conn.execute(
            sa.select(SCORE.c.ledger, SCORE.c.qualified_at, SCORE.c.total).where(
                SCORE.c.model == "in_bulk"
            )
        ).all()
    assert {(tuple(map(str, r.ledger)), r.qualified_at, r.total) for r in got} == {
        (tuple(map(str, LEDGER)), NOW, 1.5)
    }


ODD_TEXT = ["NULL", "null", 'a"b', "a\\b", "{x,y}", "", " lead ", "é😀", "a,b", "(1,2)"]
ODD_FLOATS = [0.1 + 0.2, -0.0, 1e-7, 1e300, -3.25, 12345678.123456789, 2.0, 5e-324, 1 / 3, 100]
LEDGERS = [[{"name": 'q"\\é', "points": 0.1 + 0.2}], [], [{"a": None, "b": [1, 2.5, "x"]}]]
MINUS_5 = timezone(timedelta(hours=-5))


def score_values(i: int) -> dict[str, Any]:
    """A score row's values of every kind the scorer writes: booleans, aware times in any
    zone (or naive UTC) and NULL, floats, text that looks like NULL or array syntax, and the
    ledger as a plain list or as a `Serialized` one."""
    times = [
        None,
        NOW,
        NOW.astimezone(MINUS_5),
        datetime(2026, 1, 2, 3, 4, 5),
        NOW.replace(microsecond=0),
    ]
    return {
        "model_hash": f"h{i}",
        "fit": ODD_FLOATS[i % 10],
        "engagement": ODD_FLOATS[(i + 3) % 10],
        "total": ODD_FLOATS[(i + 7) % 10],
        "tier": None if i % 3 == 0 else ODD_TEXT[i % 10],
        "grade": ODD_TEXT[(i + 1) % 10],
        "qualified": i % 2 == 0,
        "qualified_at": times[i % 5],
        "reason": ODD_TEXT[(i + 2) % 10],
        "ledger": (Serialized if i % 2 else list)(LEDGERS[i % 3]),
        "predictive": None if i % 4 == 0 else ODD_FLOATS[i % 10],
        "predictive_reason": None if i % 5 == 0 else ODD_TEXT[(i + 4) % 10],
        "next_change_at": None if i % 2 else NOW + timedelta(days=i),
        "computed_at": NOW - timedelta(seconds=i),
    }


def test_updated_score_rows_read_back_as_inserted_ones(store: Store) -> None:
    """The same values through an INSERT statement and through a bulk update_rows (unnest on
    PostgreSQL, executemany on SQLite) of rows that held other values: the same stored text
    and the same values read back, column by column."""
    n = COPY_FROM + 10
    with store.begin() as conn:
        ids = add_leads(conn, n)
        conn.execute(
            SCORE.insert(),
            [
                {"lead_id": lead, "model": "inserted", **score_values(i)}
                for i, lead in enumerate(ids)
            ],
        )
        conn.execute(
            SCORE.insert(),
            [{"lead_id": lead, "model": "updated", **score_values(i + 1)}
             for i, lead in enumerate(ids)],
        )  # fmt: skip
        query = sa.select(SCORE.c.lead_id, SCORE.c.id).where(SCORE.c.model == "updated")
        keys = {r.lead_id: r.id for r in conn.execute(query)}
        update_rows(
            conn, SCORE, [{**score_values(i), "_id": keys[lead]} for i, lead in enumerate(ids)]
        )
    inserted, updated = stored(store, "inserted"), stored(store, "updated")
    assert len(updated) == n
    for want, got in zip(inserted, updated, strict=True):
        assert got == want
        assert [type(v) for v in got] == [type(v) for v in want]


def test_a_text_too_long_for_its_column_is_refused_in_bulk_as_by_a_statement(
    store: Store,
) -> None:
    """PostgreSQL refuses a model hash longer than its VARCHAR(64) in an UPDATE statement; a
    bulk update must refuse it too, not store it cut to 64 characters. (SQLite keeps either
    whole.)"""
    with store.begin() as conn:
        ids = add_leads(conn, COPY_FROM)
        insert_rows(conn, SCORE, score_rows(ids, "m", LEDGER))
        keys = list(conn.execute(sa.select(SCORE.c.id)).scalars())
    long = "x" * 70

    def outcome(batch: list[int]) -> Any:
        try:
            with store.begin() as conn:
                update_rows(conn, SCORE, [{"model_hash": long, "_id": i} for i in batch])
        except sa.exc.DBAPIError:
            return "refused"
        with store.engine.connect() as conn:
            query = sa.select(SCORE.c.model_hash).where(SCORE.c.id.in_(batch))
            return set(conn.execute(query).scalars())

    by_statement = outcome(keys[:5])
    assert outcome(keys) == by_statement
    assert by_statement == ("refused" if store.dialect == "postgresql" else {long})


def test_a_boolean_column_refuses_a_value_not_a_boolean_in_bulk_as_by_a_statement(
    store: Store,
) -> None:
    """A score's `qualified` given 2: SQLAlchemy's statement refuses it (it is neither True nor
    False); the bulk insert (COPY on PostgreSQL, executemany on SQLite) must refuse it too,
    not store it as true."""

    with store.begin() as conn:
        ids = add_leads(conn, COPY_FROM)
    driver_error = store.engine.dialect.loaded_dbapi.Error

    def outcome(n: int) -> Any:
        rows = score_rows(ids[:n], f"given {n}", LEDGER)
        rows[-1]["qualified"] = 2
        try:
            with store.begin() as conn:
                insert_rows(conn, SCORE, rows)
        except (sa.exc.SQLAlchemyError, driver_error, TypeError, ValueError):
            return "refused"
        return stored(store, f"given {n}")[-1]

    assert outcome(3) == "refused"  # under the bulk threshold: a statement
    assert outcome(COPY_FROM) == "refused"
