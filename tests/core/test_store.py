"""The store on SQLite and PostgreSQL: idempotent upserts, identity resolution, resumable pulls."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base.contract import Cursor, Invalid, Page
from core.errors import SourceError
from core.pipeline.pull import pull_source
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store


def lead(source: str, ext: str, email: str | None, **fields: object) -> LeadRecord:
    return LeadRecord(source=source, external_id=ext, email=email, **fields)  # type: ignore[arg-type]


def activity(
    source: str, ext: str, lead_key: str, day: int, kind: str = "page_viewed"
) -> ActivityRecord:
    return ActivityRecord(
        source=source,
        external_id=ext,
        lead=lead_key,
        type=kind,
        occurred_at=datetime(2026, 10, day, tzinfo=UTC),
        properties={"url": "/pricing"},
    )


def test_same_page_twice_is_all_unchanged(store: Store) -> None:
    items = [lead("crm", "1", "a@x.com", job_title="CEO"), activity("crm", "a1", "1", 3)]
    first = store.save_page("crm", "all", items, {"n": 1})
    second = store.save_page("crm", "all", items, {"n": 1})
    assert (first.created, first.unchanged) == (2, 0)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    assert store.count("lead") == 1
    assert store.count("activity") == 1


def test_same_person_in_two_sources_is_one_lead(store: Store) -> None:
    store.save_page("fb", "leads", [lead("fb", "f1", "Ann@X.com ", first_name="Ann")], None)
    store.save_page("crm", "leads", [lead("crm", "c9", "ann@x.com", company="X Inc")], None)
    assert store.count("lead") == 1
    row = store.lead_by_email("ann@x.com")
    assert row is not None
    assert (row["first_name"], row["company"]) == ("Ann", "X Inc")
    systems = sorted(i["system"] for i in store.identities(row["id"]))
    assert systems == ["crm", "fb"]


def test_lead_without_email_merges_when_email_arrives(store: Store) -> None:
    store.save_page("crm", "leads", [lead("crm", "c1", "bo@y.com", city="Oslo")], None)
    store.save_page("fb", "leads", [lead("fb", "f7", None, first_name="Bo")], None)
    store.save_page("fb", "acts", [activity("fb", "x1", "f7", 5)], None)
    assert store.count("lead") == 2
    store.save_page("fb", "leads", [lead("fb", "f7", "BO@y.com", first_name="Bo")], None)
    assert store.count("lead") == 1
    row = store.lead_by_email("bo@y.com")
    assert row is not None and (row["first_name"], row["city"]) == ("Bo", "Oslo")
    with store.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT lead_id FROM activity")).scalar_one() == row["id"]


def test_most_recent_value_wins_unless_source_order_pinned(store: Store) -> None:
    old, new = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    store.save_page("crm", "l", [lead("crm", "1", "c@z.com", job_title="VP", updated_at=old)], None)
    store.save_page(
        "fb", "l", [lead("fb", "2", "c@z.com", job_title="intern", updated_at=new)], None
    )
    row = store.lead_by_email("c@z.com")
    assert row is not None and row["job_title"] == "intern"
    pinned = {"job_title": ["crm", "fb"]}
    store.save_page(
        "fb",
        "l",
        [lead("fb", "2", "c@z.com", job_title="student", updated_at=new)],
        None,
        priority=pinned,
    )
    row = store.lead_by_email("c@z.com")
    assert row is not None and row["job_title"] == "VP"


def test_activity_for_unknown_lead_is_kept_and_joins_later(store: Store) -> None:
    store.save_page("mc", "acts", [activity("mc", "e1", "new@p.com", 2, "email_opened")], None)
    store.save_page("mc", "leads", [lead("mc", "m1", "new@p.com", first_name="Nia")], None)
    assert store.count("lead") == 1
    assert store.count("activity") == 1


def test_changed_record_counts_as_updated_and_marks_dirty(store: Store) -> None:
    store.save_page("crm", "l", [lead("crm", "1", "d@z.com", job_title="VP")], None)
    with store.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE lead SET dirty = false"))
    counts = store.save_page("crm", "l", [lead("crm", "1", "d@z.com", job_title="CTO")], None)
    assert (counts.updated, counts.created) == (1, 0)
    row = store.lead_by_email("d@z.com")
    assert row is not None and row["dirty"] and row["job_title"] == "CTO"


def test_outcomes_and_quarantine(store: Store) -> None:
    out = OutcomeRecord(
        source="crm", external_id="o1", lead="e@z.com", status="won", amount="1,200"
    )
    bad = Invalid(
        raw="x,y", reason="leads.csv:4: email: not an email address", record_ref="leads.csv:4"
    )
    counts = store.save_page("crm", "o", [out, bad], None)
    assert (counts.created, counts.quarantined, counts.read) == (1, 1, 2)
    rows = store.quarantine("crm")
    assert rows[0]["reason"].startswith("leads.csv:4: email")


@dataclass
class FlakySource:
    """A source of `pages` pages that raises after page `fail_after` (None: never)."""

    pages: int
    fail_after: int | None
    name: str = "flaky"

    def streams(self) -> list[FlakySource]:
        return [self]

    def read(self, cursor: Cursor | None) -> Iterator[Page]:
        start = cursor["page"] if cursor else 0
        for n in range(start, self.pages):
            if self.fail_after is not None and n == self.fail_after:
                raise SourceError(f"connection lost at page {n}")
            items = [lead("src", f"{n}-{i}", f"p{n}-{i}@q.com") for i in range(5)]
            items += [activity("src", f"a{n}-{i}", f"{n}-{i}", 1 + i) for i in range(5)]
            yield Page(items, {"page": n + 1})


def _snapshot(store: Store) -> list[tuple[object, ...]]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        leads = conn.execute(text("SELECT email FROM lead ORDER BY email")).all()
        acts = conn.execute(
            text(
                "SELECT a.external_id, l.email FROM activity a JOIN lead l ON l.id = a.lead_id "
                "ORDER BY a.external_id"
            )
        ).all()
    return [tuple(r) for r in leads + acts]


@pytest.mark.parametrize("fail_after", [1, 3])
def test_failed_pull_resumes_to_same_store_as_clean_run(
    db_url: str, tmp_path: object, fail_after: int
) -> None:
    broken = Store(db_url)
    first = pull_source(broken, "src", FlakySource(pages=5, fail_after=fail_after))
    assert not first.ok and "page" in (first.error or "")
    assert broken.get_run(first.run_id).status == "failed"
    second = pull_source(broken, "src", FlakySource(pages=5, fail_after=None))
    assert second.ok
    assert second.counts.created == (5 - fail_after) * 10
    resumed = _snapshot(broken)
    broken.close()

    clean_url = (
        db_url if db_url.startswith("postgres") else db_url.replace("leadhub.db", "clean.db")
    )
    if clean_url.startswith("postgres"):
        from tests.conftest import reset_postgres

        clean_url = reset_postgres(clean_url)
    clean = Store(clean_url)
    pull_source(clean, "src", FlakySource(pages=5, fail_after=None))
    assert _snapshot(clean) == resumed
    assert clean.count("lead") == 25 and clean.count("activity") == 25
    clean.close()


def test_two_pulls_meeting_on_the_same_new_people_make_one_lead_each(store: Store) -> None:
    emails = [f"person{i}@example.com" for i in range(300)]

    def pull(source: str) -> None:
        ordered = emails if source == "fb" else list(reversed(emails))
        for start in range(0, len(ordered), 50):
            page = [lead(source, f"{source}-{e}", e) for e in ordered[start : start + 50]]
            store.save_page(source, "leads", page, {"at": start})

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(pull, ["fb", "crm"]))

    with store.begin() as conn:
        rows = conn.execute(sa.text("SELECT email, COUNT(*) FROM lead GROUP BY email")).all()
        idents = conn.execute(
            sa.text("SELECT COUNT(DISTINCT lead_id), COUNT(*) FROM identity")
        ).one()
    assert sorted(email for email, _ in rows) == sorted(emails)
    assert all(count == 1 for _, count in rows)
    assert tuple(idents) == (300, 600)  # both sources' records sit on the same 300 leads


def test_a_pull_and_the_webhook_storing_the_same_lead_at_once_make_one_identity(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pull's page and a webhook delivery of the same Lead Ads lead meet in the store: the
    webhook's write reads before the pull's commits, so its insert of the identity collides on
    (system, external_id). That is a write conflict: the webhook's page is written again, and
    finds the identity the pull stored."""
    import threading
    import time

    from core.pipeline.run import Leads, take_leads
    from core.store.ingest import Ingest

    form_lead = lead("fb", "fb-lead-1", "ada@example.com", first_name="Ada", country="UK")
    attempts: list[int] = []
    once = Store._save_page_once

    def counted(self: Store, *args: object) -> object:
        attempts.append(1)
        return once(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_save_page_once", counted)
    errors: list[BaseException] = []

    def webhook() -> None:
        try:
            take_leads(store, Leads("fb", [form_lead]))
        except BaseException as exc:  # the assertion below says what went wrong
            errors.append(exc)

    with store.begin() as pull_page:  # the pull's page, not committed yet
        Ingest(pull_page).leads("fb", [form_lead])
        delivery = threading.Thread(target=webhook)
        delivery.start()
        if store.dialect == "postgresql":  # the delivery's insert waits on the pull's row
            waiting = sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                              "'Lock' AND datname = current_database()")  # fmt: skip
            with store.engine.connect() as watch:
                deadline = time.monotonic() + 10
                while not watch.execute(waiting).scalar() and time.monotonic() < deadline:
                    time.sleep(0.02)
        else:
            time.sleep(0.5)  # SQLite: the delivery waits for the write lock
    delivery.join(30)

    assert errors == []
    assert len(attempts) == 2  # collided once, then written again
    with store.engine.connect() as conn:
        idents = conn.execute(sa.text("SELECT system, external_id FROM identity")).all()
    assert [tuple(i) for i in idents] == [("fb", "fb-lead-1")]
    assert store.count("lead") == 1


def test_a_record_restamped_by_its_vendor_merges_as_a_fresh_sync_of_it_would(
    store: Store, tmp_path: Path
) -> None:
    """Our own write to a vendor (a score pushed into a field the source ignores) moves the
    record's timestamp without changing a field we keep. The newest record's value wins, so
    the stored stamp must move too: a store synced all along then merges the lead as a store
    synced once from the vendors' current state does."""

    def at(day: int) -> datetime:
        return datetime(2026, 10, day, tzinfo=UTC)

    crm = lead("crm", "c-1", "ada@example.com", channel="referral", updated_at=at(2))
    mail = lead("mail", "m-1", "ada@example.com", channel="email", updated_at=at(1))
    store.save_page("crm", "leads", [crm], None)
    store.save_page("mail", "leads", [mail], None)
    assert store.leads()[0]["channel"] == "referral"  # the CRM's record is the newer one

    touched = mail.model_copy(update={"updated_at": at(3)})  # only its stamp moved
    counts = store.save_page("mail", "leads", [touched], None)
    assert counts.updated == 1
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        fresh.save_page("crm", "leads", [crm], None)
        fresh.save_page("mail", "leads", [touched], None)
        assert fresh.leads()[0]["channel"] == "email"
        assert store.leads()[0]["channel"] == "email"
    finally:
        fresh.close()
    again = store.save_page("mail", "leads", [touched], None)
    assert (again.updated, again.unchanged) == (0, 1)  # the same stamp again: nothing to do


def test_no_index_repeats_the_leading_columns_of_another(store: Store) -> None:
    """Every index costs each row written (a full rescore writes a score per lead): none of the
    migrated schema's indexes is served by another key's leading columns. Partial indexes
    (a `WHERE`) index other rows and are not compared."""
    inspector = sa.inspect(store.engine)
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            partial = sa.text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '% WHERE %'")
        else:
            partial = sa.text("SELECT name FROM sqlite_master WHERE sql LIKE '% WHERE %'")
        skipped = set(conn.execute(partial).scalars())
    repeated = []
    for table in inspector.get_table_names():
        keys = [("primary key", tuple(inspector.get_pk_constraint(table)["constrained_columns"]))]
        keys += [
            (u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)
        ]
        keys += [
            (i["name"], tuple(str(c) for c in i["column_names"]))
            for i in inspector.get_indexes(table)
            if i["name"] not in skipped
        ]
        for name, columns in keys:
            for other, wider in keys:
                served = columns and len(columns) < len(wider) and wider[: len(columns)] == columns
                if other != name and served and name.startswith("ix_"):
                    repeated.append(f"{table}.{name} {columns} is led by {other} {wider}")
    assert repeated == []
