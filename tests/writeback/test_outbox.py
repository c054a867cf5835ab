"""The outbox against a recording destination, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from core.errors import AuthError, TransientError
from core.pipeline import delivery as outbox_delivery
from core.pipeline import outbox
from core.store.ingest import Ingest
from core.store.store import Store
from tests.writeback.conftest import NOW, add_identities, seed_leads, set_scores, settings
from tests.writeback.recording import RecordingDestination


def states(store: Store, destination: str = "crm") -> dict[str, int]:
    return outbox.outbox_counts(store, destination).get(destination, {})


def test_changed_leads_go_out_in_full_batches_and_unchanged_ones_not_at_all(
    store: Store, crm: RecordingDestination
) -> None:
    ids = seed_leads(store, 1000)
    set_scores(store, ids, 55)

    first = outbox.push(store, settings(), crm, now=NOW)

    assert len(crm.calls) == 10
    assert all(len(call) == 100 for call in crm.calls)
    assert sorted(crm.sent) == ids
    assert first.accepted == 1000 and first.ok
    assert crm.calls[0][0].values == {
        "lead_score": 55.0,
        "lead_tier": "cold",
        "lead_reason": "scored 55",
    }
    assert crm.calls[0][0].record_id == f"crm-{ids[0]}"
    assert states(store) == {"sent": 1000}

    second = outbox.push(store, settings(), crm, now=NOW)
    assert len(crm.calls) == 10
    assert second.attempted == 0 and second.calls == 0

    set_scores(store, ids[:5], 80)
    outbox.push(store, settings(), crm, now=NOW)
    assert len(crm.calls) == 11 and [i.lead_id for i in crm.calls[-1]] == ids[:5]
    assert crm.records[f"crm-{ids[0]}"]["lead_tier"] == "hot"


def test_rejected_records_park_and_retryable_ones_come_back(
    store: Store, crm: RecordingDestination
) -> None:
    ids = seed_leads(store, 100)
    set_scores(store, ids, 40)
    rejected, retried = ids[10:13], ids[50:52]
    crm.reject = {i: f"INVALID_EMAIL: lead {i}" for i in rejected}
    crm.retry = {i: 1 for i in retried}

    first = outbox.push(store, settings(), crm, now=NOW)
    assert len(crm.calls) == 1
    assert (first.accepted, first.parked, first.retrying) == (95, 3, 2)
    assert states(store) == {"sent": 95, "parked": 3, "retry": 2}
    parked = outbox.outbox_rows(store, "crm", states=["parked"])
    assert {r["lead_id"]: r["last_error"] for r in parked} == crm.reject

    assert outbox.push(store, settings(), crm, now=NOW).attempted == 0  # still backing off

    later = NOW + timedelta(minutes=5)
    outbox.push(store, settings(), crm, now=later)
    assert len(crm.calls) == 2 and [i.lead_id for i in crm.calls[1]] == retried
    assert states(store) == {"sent": 97, "parked": 3}
    sends = Counter(crm.sent)  # once each; twice for the two whose first answer was "retry"
    assert {lead: n for lead, n in sends.items() if n != 1} == {i: 2 for i in retried}

    outbox.push(store, settings(), crm, now=later)
    assert len(crm.calls) == 2  # parked records wait for --retry-parked

    crm.reject = {}
    result = outbox.push(store, settings(), crm, now=later, retry_parked=True)
    assert [i.lead_id for i in crm.calls[2]] == rejected and result.accepted == 3
    assert states(store) == {"sent": 100}


def test_retries_back_off_and_are_bounded(store: Store, crm: RecordingDestination) -> None:
    [lead] = seed_leads(store, 1)
    set_scores(store, [lead], 10)
    crm.retry = {lead: 99}
    cfg = settings(max_attempts=3, backoff_seconds=60)

    outbox.push(store, cfg, crm, now=NOW)
    [row] = outbox.outbox_rows(store, "crm")
    assert (row["state"], row["attempts"]) == ("retry", 1)
    assert row["next_attempt_at"] == NOW + timedelta(seconds=60)

    outbox.push(store, cfg, crm, now=NOW + timedelta(seconds=61))
    [row] = outbox.outbox_rows(store, "crm")
    assert row["next_attempt_at"] == NOW + timedelta(seconds=61 + 120)

    outbox.push(store, cfg, crm, now=NOW + timedelta(hours=1))
    [row] = outbox.outbox_rows(store, "crm")
    assert (row["state"], row["attempts"]) == ("parked", 3)
    assert row["last_error"] == "gave up after 3 attempts: 503 busy, try later"
    assert len(crm.calls) == 3


def test_upsert_creates_stores_the_id_then_updates(store: Store, crm: RecordingDestination) -> None:
    ids = seed_leads(store, 3, system=None)
    set_scores(store, ids, 30)
    cfg = settings(mode="upsert", lead_fields={"email": "email", "first_name": "firstname"})

    outbox.push(store, settings(), crm, now=NOW)  # update mode: these leads are not in the CRM
    assert crm.calls == []

    created = outbox.push(store, cfg, crm, now=NOW)
    assert created.created == 3 and len(crm.records) == 3
    item = crm.calls[0][0]
    assert item.record_id is None and item.lead_fields == {
        "email": "lead0@example.com",
        "firstname": "First0",
    }
    idents = store.identities(ids[0])
    assert [(i["system"], i["external_id"]) for i in idents] == [("crm", "rec-1")]

    set_scores(store, ids, 75)
    updated = outbox.push(store, cfg, crm, now=NOW)
    assert updated.created == 0 and updated.accepted == 3 and len(crm.records) == 3
    first_update = crm.calls[1][0]
    assert (first_update.record_id, dict(first_update.lead_fields)) == ("rec-1", {})
    assert crm.records["rec-1"]["lead_score"] == 75.0

    outbox.push(store, settings(), crm, now=NOW + timedelta(days=1))  # update mode now knows them
    assert len(crm.calls) == 2


def test_sources_limit_which_leads_go(store: Store, crm: RecordingDestination) -> None:
    ids = seed_leads(store, 4, system=None)
    with store.begin() as conn:
        add_identities(conn, "facebook", ids[:2])
    set_scores(store, ids, 50)

    outbox.push(store, settings(mode="upsert", sources=["facebook"]), crm, now=NOW)
    assert sorted(crm.sent) == ids[:2]


def test_values_changed_back_are_not_sent(store: Store, crm: RecordingDestination) -> None:
    ids = seed_leads(store, 2)
    set_scores(store, ids, 50)
    outbox.push(store, settings(), crm, now=NOW)
    set_scores(store, ids, 60)
    assert outbox.plan(store, settings()).pending == 2
    set_scores(store, ids, 50)
    assert outbox.plan(store, settings()).pending == 0
    assert states(store) == {"sent": 2}
    assert outbox.push(store, settings(), crm, now=NOW).attempted == 0


def test_dry_run_sends_nothing_and_counts_the_calls(
    store: Store, crm: RecordingDestination
) -> None:
    ids = seed_leads(store, 250)
    set_scores(store, ids, 50)
    runs_before = len(store.last_runs())

    preview = outbox.push(store, settings(), crm, now=NOW, dry_run=True)
    assert crm.calls == [] and crm.prepared == 0
    assert (preview.attempted, preview.calls) == (250, 3)
    assert [i.lead_id for i in preview.preview] == ids
    assert states(store) == {"pending": 250}
    assert len(store.last_runs()) == runs_before

    outbox.push(store, settings(), crm, now=NOW)
    again = outbox.push(store, settings(), crm, now=NOW, dry_run=True, resend_all=True)
    assert (again.attempted, again.calls, len(crm.calls)) == (250, 3, 3)


def test_resend_all_sends_accepted_values_again(store: Store, crm: RecordingDestination) -> None:
    ids = seed_leads(store, 150)
    set_scores(store, ids, 50)
    outbox.push(store, settings(), crm, now=NOW)
    result = outbox.push(store, settings(), crm, now=NOW, resend_all=True)
    assert result.accepted == 150 and len(crm.calls) == 4
    assert states(store) == {"sent": 150}


def test_a_crash_between_send_and_record_resends_only_that_batch(
    store: Store, crm: RecordingDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed_leads(store, 1000)
    set_scores(store, ids, 50)
    real = outbox_delivery.record_outcomes
    batches = 0

    def crash_on_third(*args: Any, **kwargs: Any) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise RuntimeError("killed after the write returned")
        real(*args, **kwargs)

    monkeypatch.setattr(outbox_delivery, "record_outcomes", crash_on_third)
    with pytest.raises(RuntimeError):
        outbox.push(store, settings(), crm, now=NOW)
    assert len(crm.calls) == 3
    run = store.last_runs()[-1]
    assert (run.kind, run.status) == ("push", "failed") and "killed" in (run.error or "")

    monkeypatch.setattr(outbox_delivery, "record_outcomes", real)
    result = outbox.push(store, settings(), crm, now=NOW)
    assert len(crm.calls) == 11 and result.accepted == 800
    assert crm.calls[3] == crm.calls[2]  # the unrecorded batch, and only it, went again
    twice = sorted(lead for lead, n in Counter(crm.sent).items() if n == 2)
    assert twice == sorted(i.lead_id for i in crm.calls[2])
    assert states(store) == {"sent": 1000}
    assert all(rec["lead_score"] == 50.0 for rec in crm.records.values())


def test_a_vendor_outage_stops_the_push_and_retries_later(
    store: Store, crm: RecordingDestination
) -> None:
    ids = seed_leads(store, 300)
    set_scores(store, ids, 50)
    crm.fail_with = TransientError("crm: HTTP 503", status=503)

    result = outbox.push(store, settings(), crm, now=NOW)
    assert not result.ok and "503" in (result.error or "")
    assert len(crm.calls) == 1
    assert states(store) == {"retry": 100, "pending": 200}
    run = store.last_runs()[-1]
    assert (run.status, run.target) == ("failed", "crm")

    outbox.push(store, settings(), crm, now=NOW + timedelta(minutes=2))
    assert states(store) == {"sent": 300}


def test_bad_credentials_stop_the_push_without_touching_the_outbox(
    store: Store, crm: RecordingDestination
) -> None:
    ids = seed_leads(store, 10)
    set_scores(store, ids, 50)
    crm.fail_with = AuthError("crm: HTTP 401; renew destinations.crm.token", status=401)
    result = outbox.push(store, settings(), crm, now=NOW)
    assert result.error and "401" in result.error
    assert states(store) == {"pending": 10}


def test_push_run_is_recorded_with_counts(store: Store, crm: RecordingDestination) -> None:
    ids = seed_leads(store, 20)
    set_scores(store, ids, 50)
    crm.reject = {ids[0]: "bad"}
    result = outbox.push(store, settings(), crm, now=NOW)
    run = store.get_run(result.run_id or 0)
    assert (run.kind, run.target, run.status) == ("push", "crm", "ok")
    assert (run.read, run.updated, run.quarantined) == (20, 19, 1)


def test_merging_leads_drops_the_merged_leads_outbox_rows(
    store: Store, crm: RecordingDestination
) -> None:
    a, b = seed_leads(store, 2)
    set_scores(store, [a, b], 50)
    outbox.push(store, settings(), crm, now=NOW)
    with store.begin() as conn:
        Ingest(conn).merge_leads(source_id=b, target_id=a)
    rows = outbox.outbox_rows(store, "crm", states=outbox.STATES)
    assert [r["lead_id"] for r in rows] == [a]
