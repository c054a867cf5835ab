"""The score step: dirty leads only, full rescore on a model change, history and events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.pipeline import score as scorer
from core.records import ActivityRecord, LeadRecord
from core.store import store as queries
from core.store import summary
from core.store.bulk import run_together
from core.store.store import Store
from scoring.model import ScoringModel, parse_models
from tests.conftest import PG_URL, need_service, reset_postgres

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def model(quote_points: int = 50) -> list[ScoringModel]:
    return parse_models(
        {
            "models": [
                {
                    "name": "default",
                    "fit": {
                        "rules": [
                            {
                                "name": "Director",
                                "field": "job_title",
                                "matches": "(?i)director",
                                "points": 20,
                            },
                        ]
                    },
                    "engagement": {
                        "rules": [
                            {
                                "name": "Request a quote",
                                "event": "form_submitted",
                                "where": {"form": "request-quote"},
                                "points": quote_points,
                            },
                            {
                                "name": "Pricing page",
                                "event": "page_viewed",
                                "url": "*/pricing*",
                                "points": 25,
                                "limit": 3,
                            },
                        ]
                    },
                    "tiers": [{"name": "hot", "min": 70}, {"name": "cold"}],
                    "qualified": {"total": 70, "release_below": 60},
                }
            ]
        }
    )


def seed(store: Store, n: int = 3) -> None:
    leads = [
        LeadRecord(
            source="crm",
            external_id=str(i),
            email=f"p{i}@acme.com",
            job_title="Director of Sales" if i == 0 else "Analyst",
        )
        for i in range(n)
    ]
    store.save_page("crm", "leads", leads, None)


def quote(i: int, ext: str, at: datetime = NOW) -> ActivityRecord:
    return ActivityRecord(
        source="crm",
        external_id=ext,
        lead=str(i),
        type="form_submitted",
        occurred_at=at - timedelta(days=1),
        properties={"form": "request-quote"},
    )


def test_scores_dirty_leads_then_nothing(store: Store) -> None:
    seed(store)
    store.save_page("crm", "acts", [quote(0, "q0")], None)
    first = scorer.score(store, model(), now=NOW)
    assert (first.leads, first.full_models) == (3, ["default"])
    top = queries.ranked_leads(store, "default", 1)[0]
    assert (top["email"], top["total"], top["tier"], top["qualified"]) == (
        "p0@acme.com",
        70,
        "hot",
        True,
    )
    again = scorer.score(store, model(), now=NOW)
    assert (again.leads, again.changed) == (0, 0)
    with store.engine.connect() as conn:  # the pass that found nothing is on record too
        runs = conn.execute(sa.text("SELECT read, updated FROM sync_run WHERE kind = 'score'"))
        assert list(runs)[-2:] == [(3, 3), (0, 0)]


def test_only_touched_lead_is_rescored(store: Store) -> None:
    seed(store)
    scorer.score(store, model(), now=NOW)
    store.save_page("crm", "acts", [quote(2, "q2")], None)
    run = scorer.score(store, model(), now=NOW)
    assert (run.leads, run.changed) == (1, 1)
    assert queries.ranked_leads(store, "default", 1)[0]["email"] == "p2@acme.com"


@contextmanager
def statements(store: Store, trips: list[int] | None = None) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block (transaction control too), and
    in `trips` the round trips they took: one per statement, except that `run_together` sends
    its statements in one on PostgreSQL (and through the driver, which SQLAlchemy's events do
    not see)."""
    sent: list[str] = []
    trips = [] if trips is None else trips
    trips.append(0)

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)
        trips[0] += 1

    def begin(conn: Any) -> None:
        sent.append("BEGIN")

    def together(conn: Connection, batch: Any) -> Any:
        if store.dialect != "postgresql":
            return run_together(conn, batch)  # through conn.execute: recorded above
        sent.extend(str(query) for query, _ in batch)
        trips[0] += 1
        return run_together(conn, batch)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    sa.event.listen(store.engine, "begin", begin)
    patched = [(scorer, "run_together"), (summary, "run_together")]
    for module, name in patched:
        setattr(module, name, together)
    try:
        yield sent
    finally:
        for module, name in patched:
            setattr(module, name, run_together)
        sa.event.remove(store.engine, "before_cursor_execute", record)
        sa.event.remove(store.engine, "begin", begin)


def test_one_lead_after_one_activity_takes_the_same_few_statements_at_any_size(
    store: Store,
) -> None:
    """The incremental pass reads and writes one lead's rows: as many statements with 3 leads
    as with 300, in one transaction (the meta read goes on into it), and the stored score
    and the run record follow."""
    seed(store, 3)
    scorer.score(store, model(), now=NOW)
    store.save_page("crm", "acts", [quote(1, "q1")], None)
    trips: list[int] = []
    with statements(store, trips) as small:
        run = scorer.score(store, model(), now=NOW)
    assert (run.leads, run.changed) == (1, 1)
    more = [
        LeadRecord(source="crm", external_id=str(i), email=f"p{i}@acme.com") for i in range(3, 300)
    ]
    store.save_page("crm", "leads", more, None)
    scorer.score(store, model(), now=NOW)
    store.save_page("crm", "acts", [quote(2, "q2")], None)
    with statements(store) as large:
        run = scorer.score(store, model(), now=NOW)
    assert (run.leads, run.changed) == (1, 1)
    # BEGIN and 11 statements; on PostgreSQL the score's update goes with its history row,
    # and the report row's with the report's counters
    assert len(large) == len(small) <= (10 if store.dialect == "postgresql" else 12), large
    assert large.count("BEGIN") == 1
    # on PostgreSQL in 4 round trips (and the commit): the meta read with the claim; the
    # activities, scores, identities and outcomes; the score's update and the run record with
    # the report's read; the report's write
    assert trips[0] == (4 if store.dialect == "postgresql" else len(small) - 1), small
    totals = [r["total"] for r in queries.ranked_leads(store, "default", 3)]
    assert totals == [50, 50, 20]  # p1, p2: a quote each; p0: director
    with store.engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT read, updated FROM sync_run WHERE kind = 'score'"))
        assert list(runs)[-1] == (1, 1)
    # an activity no rule counts: the score stays, nothing of the report moves, 3 round trips
    about = ActivityRecord(
        source="crm", external_id="v1", lead="1", type="page_viewed", occurred_at=NOW,
        properties={"url": "https://acme.com/about"},
    )  # fmt: skip
    store.save_page("crm", "acts", [about], None)
    trips = []
    with statements(store, trips) as still:
        run = scorer.score(store, model(), now=NOW)
    assert (run.leads, run.changed) == (1, 0)
    assert trips[0] == (3 if store.dialect == "postgresql" else len(still) - 1), still
    with store.engine.connect() as conn:  # its run record went with the report's read
        runs = conn.execute(sa.text("SELECT read, updated FROM sync_run WHERE kind = 'score'"))
        assert list(runs)[-1] == (1, 0)


def test_two_passes_at_once_take_a_dirty_lead_once(store: Store) -> None:
    """A pass that finds a lead locked by another pass's claim waits, then skips it if that
    pass cleared its flag: the lead is scored by one of them."""
    seed(store, 2)
    scorer.score(store, model(), now=NOW)
    store.save_page("crm", "acts", [quote(1, "q1")], None)
    found: list[list[int]] = []
    with store.engine.connect() as first, store.engine.connect() as second:
        taken = scorer._take_dirty(first)  # claimed, not yet committed
        other = threading.Thread(target=lambda: found.append(scorer._take_dirty(second)))
        other.start()
        other.join(0.5)  # on PostgreSQL it waits for the row lock; SQLite's reader sees
        first.commit()  # the claim only once committed, so it may already be done
        other.join()
        second.commit()
    assert len(taken) == 1 and found == [[]]


def test_model_change_rescores_everyone(store: Store) -> None:
    seed(store)
    store.save_page("crm", "acts", [quote(1, "q1")], None)
    scorer.score(store, model(), now=NOW)
    run = scorer.score(store, model(quote_points=60), now=NOW)
    assert (run.leads, run.full_models) == (3, ["default"])
    assert queries.ranked_leads(store, "default", 1)[0]["total"] == 60


def test_history_records_changes_and_qualified_event(store: Store) -> None:
    seed(store, 1)
    scorer.score(store, model(), now=NOW)
    store.save_page("crm", "acts", [quote(0, "q0")], None)
    scorer.score(store, model(), now=NOW)
    lead = store.lead_by_email("p0@acme.com")
    assert lead is not None
    rows = queries.lead_history(store, lead["id"])
    assert [(r["total"], r["event"]) for r in rows] == [(20, None), (70, "qualified")]


def test_a_model_taken_out_of_the_file_loses_its_scores_and_a_new_one_gains_them(
    store: Store,
) -> None:
    seed(store)
    second = parse_models(
        {"models": [{"name": "partners", "fit": {"rules": [
            {"name": "Director", "field": "job_title", "matches": "(?i)director", "points": 5}
        ]}}]}
    )  # fmt: skip
    scorer.score(store, [*model(), *second], now=NOW)
    assert {r["model"] for r in queries.lead_scores(store, 1)} == {"default", "partners"}
    scorer.score(store, model(), now=NOW)  # partners removed from the model file
    assert {r["model"] for r in queries.lead_scores(store, 1)} == {"default"}
    scorer.score(store, [*model(), *second], now=NOW)  # and put back
    assert {r["model"] for r in queries.lead_scores(store, 1)} == {"default", "partners"}


def test_a_full_rescore_on_postgresql_leaves_no_dead_lead_or_score_rows() -> None:
    """Without autovacuum, the flags and scores a full rescore rewrites would stay behind as
    dead rows the next incremental pass reads past: the rescore vacuums them."""
    store = Store(reset_postgres(need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")))
    try:
        seed(store, 300)
        scorer.score(store, model(), full=True, now=NOW)
        with store.engine.connect() as conn:
            seen = dict(
                conn.execute(
                    sa.text(
                        "SELECT relname, last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
                        "FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                        "AND relname IN ('lead', 'score')"
                    )
                ).all()
            )
            dead = conn.execute(
                sa.text(
                    "SELECT n_dead_tup FROM pg_stat_user_tables "
                    "WHERE schemaname = current_schema() AND relname = 'lead'"
                )
            ).scalar_one()
        assert seen == {"lead": True, "score": True}
        assert dead == 0  # 300 dirty flags were cleared: 300 dead versions before the vacuum
    finally:
        store.close()


@contextmanager
def rescored_on_postgresql(leads: int) -> Iterator[Connection]:
    """A fresh PostgreSQL store of `leads` seeded leads after a full rescore: a connection."""
    store = Store(reset_postgres(need_service(PG_URL, "PostgreSQL", "LEADHUB_TEST_DATABASE_URL")))
    try:
        seed(store, leads)
        scorer.score(store, model(), full=True, now=NOW)
        with store.engine.connect() as conn:
            yield conn
    finally:
        store.close()


def test_a_full_rescore_on_postgresql_vacuums_the_tables_it_rewrites() -> None:
    """Without autovacuum the dead versions a full rescore leaves (every dirty flag cleared,
    every score and report row rewritten by a model change) would stay in the indexes the next
    incremental pass reads: the rescore vacuums those tables itself."""
    with rescored_on_postgresql(300) as conn:
        vacuumed = conn.execute(
            sa.text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL "
                "AND schemaname = current_schema() ORDER BY relname"
            )
        ).scalars()
        assert {"lead", "report_lead", "score"} <= set(vacuumed)


def _vacuums(conn: Connection) -> dict[str, int]:
    query = sa.text(
        "SELECT relname, vacuum_count FROM pg_stat_user_tables "
        "WHERE schemaname = current_schema() AND relname IN ('lead', 'score', 'report_lead')"
    )
    conn.commit()  # a fresh snapshot of the statistics
    return dict(conn.execute(query).all())


def test_full_rescores_that_rewrite_little_vacuum_once_their_rows_add_up() -> None:
    """The daily decay pass rewrites a few scores of a million: vacuuming every index of the
    lead, score and report tables for those would cost more than the pass. Full rescores keep
    count of the rows they rewrote; the one that brings it to a tenth of the leads vacuums."""
    with rescored_on_postgresql(300) as conn:
        before = _vacuums(conn)
        store = Store(conn.engine.url.render_as_string(hide_password=False))

        def rescore(dirty: int) -> dict[str, int]:
            """A full rescore after `dirty` leads were marked (their flags are rewritten):
            the tables vacuumed since the first rescore."""
            conn.execute(sa.text(f"UPDATE lead SET dirty = true WHERE id <= {dirty}"))
            conn.commit()
            scorer.score(store, model(), full=True, now=NOW)
            return {k: v - before[k] for k, v in _vacuums(conn).items() if v > before[k]}

        try:
            assert rescore(0) == {}  # nothing moved
            assert rescore(20) == {}  # 20 rows of 300 leads
            assert rescore(10) == {"lead": 1, "score": 1, "report_lead": 1}  # 30: a tenth
            assert rescore(20) == {"lead": 1, "score": 1, "report_lead": 1}  # counted anew
        finally:
            store.close()


def test_a_full_rescore_on_postgresql_takes_statistics_of_the_tables_it_fills() -> None:
    """Without autovacuum the planner would read the report's rows of a million leads with the
    plan made when the table was empty (a scan per chunk): a full rescore takes statistics of
    the tables it fills as they grow, so the planner's row counts are the tables' own."""
    with rescored_on_postgresql(1000) as conn:
        counted = conn.execute(
            sa.text(
                "SELECT relname, reltuples FROM pg_class WHERE relname IN "
                "('report_lead', 'score_history') "
                "AND relnamespace = to_regnamespace(current_schema()) ORDER BY relname"
            )
        ).all()
    assert counted == [("report_lead", 1000), ("score_history", 1000)]
