"""A record waiting for retry keeps its backoff when its desired values change meanwhile."""

from __future__ import annotations

from datetime import timedelta

from core.pipeline import outbox
from core.store.store import Store
from tests.writeback.conftest import NOW, seed_leads, set_scores, settings
from tests.writeback.recording import RecordingDestination


def test_new_values_for_a_record_waiting_to_retry_keep_its_attempts_and_due_time(
    store: Store, crm: RecordingDestination
) -> None:
    [lead] = seed_leads(store, 1)
    set_scores(store, [lead], 10)
    crm.retry = {lead: 2}  # busy twice, then it takes the record
    cfg = settings(max_attempts=5, backoff_seconds=60)

    outbox.push(store, cfg, crm, now=NOW)  # attempt 1 fails: due at NOW + 60 s
    outbox.push(store, cfg, crm, now=NOW + timedelta(seconds=61))  # attempt 2 fails
    # Hand-computed: the second retry waits 60 s * 2^(2-1) = 120 s from NOW + 61 s.
    due = NOW + timedelta(seconds=61 + 120)
    [row] = outbox.outbox_rows(store, "crm")
    assert (row["state"], row["attempts"], row["next_attempt_at"]) == ("retry", 2, due)

    set_scores(store, [lead], 90)  # the score moves while the record waits
    early = outbox.push(store, cfg, crm, now=NOW + timedelta(seconds=100))

    assert early.attempted == 0 and len(crm.calls) == 2  # not due yet: nothing sent
    [row] = outbox.outbox_rows(store, "crm")
    assert (row["state"], row["attempts"], row["next_attempt_at"]) == ("retry", 2, due)
    assert row["last_error"] == "503 busy, try later"
    assert row["desired"]["lead_score"] == 90.0  # the retry will send the new values

    outbox.push(store, cfg, crm, now=due)
    assert len(crm.calls) == 3 and crm.calls[-1][0].values["lead_score"] == 90.0
    [row] = outbox.outbox_rows(store, "crm", states=["sent"])
    assert row["sent"]["lead_score"] == 90.0
