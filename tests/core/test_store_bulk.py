"""Pages large enough for the store's bulk paths (on PostgreSQL: COPY for new rows, one
`UPDATE … FROM unnest` for changed ones, one array parameter per lookup), checked against plain SQL
on SQLite and PostgreSQL: a page stored twice stores nothing twice, changes land exactly, dirty
marks and identity merges are those of a page of one record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from core.records import ActivityRecord, LeadRecord, describe_validation_error
from core.store import db, ingest
from core.store.bulk import COPY_FROM, insert_rows, one_of
from core.store.ingest import IDENTITY
from core.store.signatures import digest
from core.store.store import Store
from core.store.tables import SyncRun, table

N = COPY_FROM + 50  # records of each kind per page: past the point where the bulk paths start
DAY = datetime(2026, 10, 1, tzinfo=UTC)


def leads(source: str = "crm", n: int = N, **fields: Any) -> list[LeadRecord]:
    return [
        LeadRecord(source=source, external_id=f"{source}-{i}", email=f"p{i}@x.com", **fields)
        for i in range(n)
    ]


def activities(
    kind: str = "page_viewed", url: str = "/pricing", n: int = 2 * N, leads: int = N
) -> list[ActivityRecord]:
    """`n` activities a{i}, a{i} of lead crm-{i % leads}."""
    return [
        ActivityRecord(
            source="crm",
            external_id=f"a{i}",
            lead=f"crm-{i % leads}",
            type=kind,
            occurred_at=DAY + timedelta(hours=i),
            properties={"url": url} if kind == "page_viewed" else {},
        )
        for i in range(n)
    ]


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_a_large_page_stored_twice_stores_nothing_twice(store: Store) -> None:
    page = [*leads(job_title="CEO"), *activities()]
    first = store.save_page("crm", "all", page, {"n": 1})
    again = store.save_page("crm", "all", page, {"n": 1})
    assert (first.created, first.updated, first.unchanged) == (3 * N, 0, 0)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3 * N)
    assert rows(store, "SELECT count(*), count(DISTINCT email) FROM lead") == [(N, N)]
    assert rows(store, "SELECT count(*) FROM identity") == [(N,)]
    assert rows(store, "SELECT count(*), count(DISTINCT external_id) FROM activity") == [
        (2 * N, 2 * N)
    ]
    # each activity on the lead its record named: a{i} belongs to crm-{i % N}, email p{i % N}@x.com
    wrong = rows(
        store,
        "SELECT a.external_id, l.email FROM activity a JOIN lead l ON l.id = a.lead_id",
    )
    assert all(email == f"p{int(ext[1:]) % N}@x.com" for ext, email in wrong)
    # one signature for the one (type, properties) pair, and every activity signed with it
    assert rows(store, "SELECT digest FROM activity_signature") == [
        (digest("page_viewed", {"url": "/pricing"}),)
    ]
    assert rows(
        store,
        "SELECT count(*) FROM activity a JOIN activity_signature s ON s.id = a.signature_id "
        "WHERE s.type = a.type",
    ) == [(2 * N,)]


def test_one_record_twice_in_a_page_is_stored_once_the_last_one(store: Store) -> None:
    store.save_page("crm", "l", leads(), None)
    page = activities("email_opened")
    page += [a.model_copy(update={"type": "email_clicked"}) for a in page[:60]]
    counts = store.save_page("crm", "a", page, None)
    assert (counts.read, counts.created, counts.unchanged) == (2 * N + 60, 2 * N, 60)
    assert rows(store, "SELECT type, count(*) FROM activity GROUP BY type ORDER BY type") == [
        ("email_clicked", 60),
        ("email_opened", 2 * N - 60),
    ]


def test_changed_activities_are_updated_in_place_and_their_leads_alone_marked_dirty(
    store: Store,
) -> None:
    store.save_page("crm", "all", [*leads(), *activities()], None)
    ids_before = rows(store, "SELECT external_id, id FROM activity ORDER BY external_id")
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE lead SET dirty = false"))
    # the activities of leads crm-0 .. crm-(K-1) move to another URL: a{i} and a{i + N} for i < K
    # (2 K of them, enough for the bulk path); the rest of the page is as before
    k = COPY_FROM // 2 + 10
    page = activities()
    moved_to = activities(url="/demo")
    for i in [*range(k), *range(N, N + k)]:
        page[i] = moved_to[i]
    counts = store.save_page("crm", "a", page, None)
    assert (counts.created, counts.updated, counts.unchanged) == (0, 2 * k, 2 * N - 2 * k)
    assert rows(store, "SELECT external_id, id FROM activity ORDER BY external_id") == ids_before
    moved = rows(
        store,
        "SELECT a.external_id FROM activity a JOIN activity_signature s ON s.id = a.signature_id "
        f"WHERE s.digest = '{digest('page_viewed', {'url': '/demo'})}' ORDER BY a.id",
    )
    assert sorted(int(e[1:]) for (e,) in moved) == [*range(k), *range(N, N + k)]
    dirty = {e for (e,) in rows(store, "SELECT email FROM lead WHERE dirty")}
    assert dirty == {f"p{i}@x.com" for i in range(k)}


def test_changed_leads_get_every_field_exactly(store: Store) -> None:
    store.save_page("crm", "l", leads(job_title="CEO", company_size=10), None)
    stamp = datetime(2026, 11, 2, 9, 30, 15, 250_000, tzinfo=UTC)
    page = [
        LeadRecord(
            source="crm",
            external_id=f"crm-{i}",
            email=f"p{i}@x.com",
            first_name=f"Ann {i}" if i % 2 else None,
            job_title='VP Sales, "EMEA" {x}',
            company_size=None if i % 3 == 0 else i,
            annual_revenue=i + 0.5 if i % 2 else i,
            custom={"plan": "pro", "seats": i, "tags": ["a", "b"]} if i % 2 else {},
            updated_at=stamp,
        )
        for i in range(N)
    ]
    counts = store.save_page("crm", "l", page, None)
    assert (counts.created, counts.updated) == (0, N)
    got = {
        r[0]: r[1:]
        for r in rows(
            store,
            "SELECT email, first_name, job_title, company_size, annual_revenue, custom FROM lead",
        )
    }
    for i in range(N):
        custom = {"plan": "pro", "seats": i, "tags": ["a", "b"]} if i % 2 else {}
        first, title, size, revenue, stored_custom = got[f"p{i}@x.com"]
        assert (first, title, size) == (
            f"Ann {i}" if i % 2 else None,
            'VP Sales, "EMEA" {x}',
            None if i % 3 == 0 else i,
        )
        assert revenue == pytest.approx(i + 0.5 if i % 2 else i)
        assert (
            stored_custom if isinstance(stored_custom, dict) else json.loads(stored_custom)
        ) == (custom)
    stamps = {r[0] for r in rows(store, "SELECT record_updated_at FROM identity")}
    assert len(stamps) == 1
    only = stamps.pop()
    if isinstance(only, str):  # SQLite hands back text
        only = datetime.fromisoformat(only)
    assert only.replace(tzinfo=UTC) == stamp


def test_the_same_people_from_a_second_source_join_their_leads(store: Store) -> None:
    store.save_page("crm", "l", leads(company="Acme"), None)
    store.save_page("fb", "acts", activities("email_opened"), None)  # keys unknown to fb: new leads
    fb = [
        LeadRecord(source="fb", external_id=f"crm-{i}", email=f"P{i}@X.com ", first_name="Bo")
        for i in range(N)
    ]
    store.save_page("fb", "l", fb, None)
    assert rows(store, "SELECT count(*) FROM lead") == [(N,)]
    assert rows(
        store, "SELECT count(*) FROM lead WHERE company = 'Acme' AND first_name = 'Bo'"
    ) == [(N,)]
    per_lead = rows(store, "SELECT lead_id, count(*) FROM identity GROUP BY lead_id")
    assert len(per_lead) == N and {n for _, n in per_lead} == {2}
    # fb's activities, stored before fb's lead records, followed their leads into the merge
    assert rows(
        store,
        "SELECT count(*) FROM activity a JOIN identity i ON i.lead_id = a.lead_id "
        "AND i.system = 'crm'",
    ) == [(2 * N,)]


def test_a_page_that_fails_leaves_the_pages_before_it_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save_page("crm", "all", [*leads(), *activities()], {"n": 1})
    before = rows(store, "SELECT external_id, lead_id, type FROM activity ORDER BY external_id")
    real = ingest.insert_rows

    def failing(conn: Any, table: sa.Table, batch: list[dict[str, Any]]) -> None:
        if table.name == "activity":  # after the page's leads and identities were written
            raise sa.exc.OperationalError("INSERT INTO activity", {}, Exception("disk full"))
        real(conn, table, batch)

    monkeypatch.setattr(ingest, "insert_rows", failing)
    newcomer = LeadRecord(source="crm", external_id="crm-new", email="new@x.com")
    page = [newcomer, *activities("email_sent", n=3 * N)]
    with pytest.raises(sa.exc.OperationalError):
        store.save_page("crm", "all", page, {"n": 2})
    assert store.lead_by_email("new@x.com") is None
    assert rows(store, "SELECT external_id, lead_id, type FROM activity ORDER BY external_id") == (
        before
    )
    assert store.get_cursor("crm", "all") == {"n": 1}


def test_a_value_longer_than_its_column_is_a_record_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ActivityRecord(
            source="crm",
            external_id="a1",
            lead="crm-1",
            type="custom:" + "x" * 100,
            occurred_at=DAY,
        )
    assert describe_validation_error(caught.value).startswith("type:")
    with pytest.raises(ValidationError) as caught:
        ActivityRecord(
            source="crm", external_id="a1", lead="x" * 321, type="email_sent", occurred_at=DAY
        )
    assert describe_validation_error(caught.value).startswith("lead:")


def test_a_key_longer_than_its_column_matches_no_row_cut_to_that_length(store: Store) -> None:
    store.save_page("crm", "l", [LeadRecord(source="crm", external_id="k" * 255, email=None)], None)
    with store.begin() as conn:
        found = conn.execute(
            sa.select(IDENTITY.c.external_id).where(
                one_of(conn, IDENTITY.c.external_id, ["k" * 300])
            )
        ).all()
    assert found == []


def test_statistics_are_taken_once_a_table_has_doubled(store: Store) -> None:
    if store.dialect != "postgresql":
        with store.begin() as conn:
            assert db.analyze_grown(conn, ["activity"]) == []
        return
    # tables of some pages (smaller ones are read whole whatever the statistics say)
    store.save_page("crm", "all", [*leads(n=1000), *activities(n=2000, leads=1000)], None)
    # the page filled the tables, then their statistics were taken: the planner's row counts are
    # the tables' own
    counted = rows(
        store,
        "SELECT relname, reltuples FROM pg_class WHERE relname IN ('lead', 'activity') "
        "AND relnamespace = to_regnamespace(current_schema()) ORDER BY relname",
    )
    assert counted == [("activity", 2000), ("lead", 1000)]
    with store.begin() as conn:
        assert db.analyze_grown(conn, ["lead", "activity"]) == []  # nothing grew since


def test_statistics_of_a_table_past_two_gigabytes_are_judged_without_overflow(store: Store) -> None:
    """Pages times block size passes the 32-bit range at 2 GB (262,144 pages of 8 kB): the
    check must still answer (here: not grown, as the statistics claim 300,000 pages)."""
    store.save_page("crm", "all", leads(n=1000), None)
    if store.dialect != "postgresql":  # no statistics to judge
        with store.begin() as conn:
            assert db.analyze_grown(conn, ["lead"]) == []
        return
    with store.begin() as conn:
        conn.execute(
            sa.text("UPDATE pg_class SET relpages = 300000 WHERE oid = CAST('lead' AS regclass)")
        )
        assert db.analyze_grown(conn, ["lead"]) == []
        conn.rollback()


def test_a_bulk_insert_that_opens_the_transaction_is_committed_with_it(store: Store) -> None:
    """The bulk paths write through the driver's own cursor (COPY on PostgreSQL, executemany on
    SQLite); as a connection's first statement, theirs must be in the transaction the
    connection commits, not in one the driver began on its own and the pool rolls back."""
    run = table(SyncRun)
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    rows = [
        {"kind": "score", "target": f"t{i}", "started_at": at, "status": "ok"}
        | dict.fromkeys(("read", "created", "updated", "unchanged", "quarantined"), i)
        for i in range(COPY_FROM + 5)  # past the point where the bulk paths start
    ]
    with store.engine.connect() as conn:
        insert_rows(conn, run, rows)
        conn.commit()
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(run.c.target, run.c.started_at)).all()
    assert sorted(stored) == sorted((r["target"], at) for r in rows)
