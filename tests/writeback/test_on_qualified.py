"""Threshold actions: `on_qualified` fires once per qualified crossing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from core.pipeline import outbox
from core.store.store import Store
from tests.writeback.conftest import NOW, add_event, seed_leads, set_scores, settings
from tests.writeback.recording import RecordingDestination

ACTION = {"subject": "Call {name} at {company} ({total:.0f}, {tier})", "due_in_days": 2}


def fired(crm: RecordingDestination) -> list[int]:
    return [item.lead_id for batch in crm.actions for item in batch]


def test_a_crossing_fires_once_and_a_new_crossing_fires_again(
    store: Store, crm: RecordingDestination
) -> None:
    lead, other = seed_leads(store, 2)
    set_scores(store, [lead, other], 40)
    cfg = settings(on_qualified=ACTION)
    outbox.push(store, cfg, crm, now=NOW)
    assert crm.actions == []

    set_scores(store, [lead], 75, qualified=True, qualified_at=NOW)
    event = add_event(store, lead, "qualified")
    result = outbox.push(store, cfg, crm, now=NOW)
    [[item]] = crm.actions
    assert (item.lead_id, item.record_id, item.event_id) == (lead, f"crm-{lead}", event)
    assert item.subject == "Call First0 Lee at Co 0 (75, hot)"
    assert item.due_at == NOW + timedelta(days=2)
    assert item.values["lead_score"] == 75.0
    assert result.actions == 1

    set_scores(store, [lead], 78, qualified=True, qualified_at=NOW)
    outbox.push(store, cfg, crm, now=NOW)
    outbox.push(store, cfg, crm, now=NOW)
    assert fired(crm) == [lead]

    set_scores(store, [lead], 50)
    add_event(store, lead, "released")
    outbox.push(store, cfg, crm, now=NOW)
    assert fired(crm) == [lead]

    set_scores(store, [lead], 72, qualified=True, qualified_at=NOW)
    add_event(store, lead, "qualified")
    outbox.push(store, cfg, crm, now=NOW)
    assert fired(crm) == [lead, lead]


def test_events_of_other_models_and_released_leads_do_not_fire(
    store: Store, crm: RecordingDestination
) -> None:
    a, b = seed_leads(store, 2)
    set_scores(store, [a, b], 40)
    add_event(store, a, "qualified", model="upsell")
    add_event(store, b, "qualified")
    add_event(store, b, "released")
    outbox.push(store, settings(on_qualified=ACTION), crm, now=NOW)
    assert crm.actions == []


def test_upsert_creates_the_record_before_acting_on_it(
    store: Store, crm: RecordingDestination
) -> None:
    [lead] = seed_leads(store, 1, system=None)
    set_scores(store, [lead], 90, qualified=True, qualified_at=NOW)
    add_event(store, lead, "qualified")
    crm.retry = {lead: 1}
    cfg = settings(mode="upsert", on_qualified=ACTION)

    outbox.push(store, cfg, crm, now=NOW)
    assert crm.actions == []  # the record does not exist there yet

    outbox.push(store, cfg, crm, now=NOW + timedelta(hours=1))
    [[item]] = crm.actions
    assert item.record_id == "rec-1"


def test_dry_run_counts_actions_without_firing(store: Store, crm: RecordingDestination) -> None:
    ids = seed_leads(store, 3)
    set_scores(store, ids, 80, qualified=True, qualified_at=NOW)
    for lead in ids:
        add_event(store, lead, "qualified")
    preview = outbox.push(store, settings(on_qualified=ACTION), crm, now=NOW, dry_run=True)
    assert crm.actions == [] and crm.calls == []
    assert (preview.actions, preview.calls) == (3, 2)
    assert [i.lead_id for i in preview.action_preview] == ids


def test_a_destination_without_actions_is_a_config_error(store: Store) -> None:
    class WriteOnly:
        name, batch_size = "crm", 10

        def prepare(self) -> None: ...

        def write(self, batch: object) -> list[object]:
            raise AssertionError("not reached")

    [lead] = seed_leads(store, 1)
    add_event(store, lead, "qualified")
    with pytest.raises(ConfigError, match=r"destinations\.crm\.on_qualified"):
        outbox.push(store, settings(on_qualified=ACTION), WriteOnly())  # type: ignore[arg-type]


def test_templates_only_take_known_placeholders() -> None:
    with pytest.raises(ValidationError, match=r"unknown placeholder \{owner\}"):
        settings(on_qualified={"subject": "Call {name} for {owner}"})
    with pytest.raises(ValidationError, match="unknown placeholder"):
        settings(on_qualified={"subject": "{name.__class__}"})
