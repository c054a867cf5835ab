"""PostgreSQL: a statement run again on a connection is prepared there, and every run of it is
still planned for its own parameters (PostgreSQL's own counters in `pg_prepared_statements` are
the oracle); `LEADHUB_PREPARED_STATEMENTS=false` prepares nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.pipeline import score as scorer
from core.records import ActivityRecord, LeadRecord
from core.store.ingest import LEAD
from core.store.store import Store
from scoring.model import ScoringModel
from tests.conftest import PG_URL, need_service, reset_postgres

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PREPARED = sa.text(
    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE NOT from_sql"
)
MODEL = ScoringModel.model_validate(
    {
        "name": "default",
        "fit": {"rules": [{"name": "VP", "field": "job_title", "contains": "VP", "points": 20}]},
        "engagement": {"rules": [{"name": "Visit", "event": "page_viewed", "points": 5}]},
    }
)


@pytest.fixture
def pg_store() -> Iterator[Store]:
    store = Store(reset_postgres(need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")))
    yield store
    store.close()


def _fill(store: Store, leads: int) -> None:
    store.save_page(
        "crm",
        "leads",
        [
            LeadRecord(source="crm", external_id=str(i), email=f"l{i}@x.com", job_title="VP")
            for i in range(leads)
        ],
        None,
    )


def _lookups(store: Store, runs: int) -> list[sa.Row[tuple[str, int, int]]]:
    """Run one lead lookup `runs` times on one connection, each for another id; the prepared
    statements of that connection."""
    lookup = sa.select(LEAD.c.email).where(LEAD.c.id == sa.bindparam("id"))
    with store.engine.connect() as conn:
        for n in range(runs):
            conn.execute(lookup, {"id": n + 1}).all()
        return list(conn.execute(PREPARED))


def test_a_statement_run_again_is_prepared_and_planned_for_its_parameters(
    pg_store: Store,
) -> None:
    _fill(pg_store, 20)
    prepared = [row for row in _lookups(pg_store, 8) if "SELECT lead.email" in row.statement]
    # the first run is sent as it is; the second prepares it, and every run from there is
    # planned for its own id: past five runs PostgreSQL would otherwise settle on a generic plan
    assert [(row.generic_plans, row.custom_plans) for row in prepared] == [(0, 7)]


def test_prepared_statements_can_be_turned_off(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADHUB_PREPARED_STATEMENTS", "false")
    store = Store(pg_store.url)  # a pooler in transaction mode: nothing prepared
    try:
        _fill(store, 20)
        assert _lookups(store, 8) == []
    finally:
        store.close()


def test_the_one_lead_pass_runs_on_prepared_statements_never_on_a_generic_plan(
    pg_store: Store,
) -> None:
    _fill(pg_store, 30)
    scorer.score(pg_store, [MODEL], full=True, now=NOW)
    for n in range(24):
        page = ActivityRecord(
            source="crm",
            external_id=f"visit-{n}",
            lead=str(n),
            type="page_viewed",
            occurred_at=NOW + timedelta(minutes=n),
            properties={"url": "/pricing"},
        )
        pg_store.save_page("crm", "visits", [page], None)
        run = scorer.score(pg_store, [MODEL], now=NOW + timedelta(minutes=n))
        assert run.leads == 1
    # every connection the pool holds, at once: the prepared statements of all of them
    pool = pg_store.engine.pool
    held = pool.checkedin()  # type: ignore[attr-defined]
    with ExitStack() as stack:
        connections = [stack.enter_context(pg_store.engine.connect()) for _ in range(held)]
        prepared = [row for conn in connections for row in conn.execute(PREPARED)]
    statements = " ".join(row.statement for row in prepared)
    assert "UPDATE score SET" in statements  # the pass's write of the lead's score
    assert "INSERT INTO score_history" in statements
    assert sum(row.custom_plans for row in prepared) > len(prepared)  # run more than once
    assert all(row.generic_plans == 0 for row in prepared)
    with pg_store.engine.connect() as conn:
        scores = dict(
            conn.execute(sa.text("SELECT lead_id, engagement FROM score ORDER BY lead_id")).all()
        )
    # a visit each for the first 24 leads, five points each
    assert sorted(scores.values()) == [0.0] * 6 + [5.0] * 24
