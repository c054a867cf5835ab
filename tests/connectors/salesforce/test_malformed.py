"""Salesforce rows of the wrong shape are quarantined with a reason naming the row and the field:
a row that is null or a list, a list where the Campaign or the Opportunity belongs, a timestamp
past year 9999; good rows beside them still become records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.base.contract import Invalid, Item
from connectors.salesforce import SalesforceSettings
from connectors.salesforce.mapping import (
    campaign_member_items,
    event_items,
    outcome_item,
    person_items,
    task_items,
)
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store
from tests.connectors.salesforce.payloads import LEAD_ID, lead, row, settings

T1 = "2024-05-02T10:11:12.000+0000"
SETTINGS = SalesforceSettings.model_validate(settings())
NOT_OBJECTS = [(None, "null"), ([lead()], "a list"), (42, "a number"), ("00Q1", "a string")]


def only_invalid(items: list[Item]) -> Invalid:
    [item] = items
    assert isinstance(item, Invalid), item
    return item


def member(record_id: str = "00v1", **extra: Any) -> dict[str, Any]:
    return row("CampaignMember", record_id, CampaignId="701W", LeadId=LEAD_ID, ContactId=None,
               Status="Attended", HasResponded=True, FirstRespondedDate="2024-05-03",
               CreatedDate="2024-05-01T09:00:00.000+0000", SystemModstamp=T1, **extra)  # fmt: skip


@pytest.mark.parametrize(("payload", "kind"), NOT_OBJECTS)
@pytest.mark.parametrize("sobject", ["Lead", "Contact"])
def test_a_person_row_that_is_not_an_object_is_quarantined(
    sobject: str, payload: Any, kind: str
) -> None:
    item = only_invalid(person_items("sf", sobject, payload, SETTINGS, {}))
    assert item.record_ref == f"{sobject} (no Id)"
    assert item.reason == f"{sobject} (no Id): {kind}, not a {sobject} object"
    assert json.loads(item.raw) == payload


@pytest.mark.parametrize(("payload", "kind"), NOT_OBJECTS)
def test_activity_rows_that_are_not_objects_are_quarantined(payload: Any, kind: str) -> None:
    cases = [
        (task_items("sf", payload), "Task (no Id)"),
        (event_items("sf", payload), "Event (no Id)"),
        (campaign_member_items("sf", payload, None, SETTINGS), "CampaignMember (no Id)"),
    ]
    for items, ref in cases:
        item = only_invalid(items)
        assert item.record_ref == ref and f"{ref}: {kind}, not a" in item.reason


def test_a_list_where_the_campaign_belongs_quarantines_the_member() -> None:
    campaign: Any = [row("Campaign", "701W", Name="Scoring 101", Type="Webinar")]
    item = only_invalid(campaign_member_items("sf", member(), campaign, SETTINGS))
    assert item.record_ref == "CampaignMember 00v1"
    assert "CampaignId: the Campaign is a list, not an object" in item.reason
    assert json.loads(item.raw) == {"member": member(), "campaign": campaign}


def test_a_list_where_the_opportunity_belongs_quarantines_only_the_outcome() -> None:
    converted = lead(IsConverted=True, ConvertedOpportunityId="006A", ConvertedDate="2024-05-01")
    opportunity: Any = [row("Opportunity", "006A", IsClosed=True, IsWon=True, Amount=100.0)]
    person, bad = person_items("sf", "Lead", converted, SETTINGS, {"006A": opportunity})
    assert isinstance(person, LeadRecord) and person.external_id == LEAD_ID
    assert isinstance(bad, Invalid) and bad.record_ref == f"Lead {LEAD_ID} outcome"
    assert "the Opportunity is a list, not an object" in bad.reason
    item = outcome_item("sf", [converted], None)  # type: ignore[arg-type]
    assert isinstance(item, Invalid) and item.record_ref == "Lead (no Id) outcome"


def test_a_timestamp_past_year_9999_is_quarantined_naming_the_field() -> None:
    item = only_invalid(person_items("sf", "Lead", lead(SystemModstamp=2**63), SETTINGS, {}))
    assert item.record_ref == f"Lead {LEAD_ID}" and "updated_at" in item.reason
    task = row("Task", "00T1", WhoId=LEAD_ID, IsClosed=True, ActivityDate=10**20)
    item = only_invalid(task_items("sf", task))
    assert item.record_ref == "Task 00T1" and "occurred_at" in item.reason


def test_good_rows_beside_bad_ones_still_become_records(store: Store) -> None:
    items: list[Item] = [
        *person_items("sf", "Lead", lead("00Q1", T1), SETTINGS, {}),
        *person_items("sf", "Lead", None, SETTINGS, {}),  # type: ignore[arg-type]
        *campaign_member_items("sf", member("00v1"), {"Id": "701W", "Type": "Webinar"}, SETTINGS),
        *campaign_member_items("sf", member("00v2"), [], SETTINGS),  # type: ignore[arg-type]
        outcome_item("sf", lead("00Q1", IsConverted=True, ConvertedDate="2024-05-01"), None),
    ]
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["LeadRecord", "Invalid", "ActivityRecord", "ActivityRecord", "Invalid",
                     "OutcomeRecord"]  # fmt: skip
    assert isinstance(items[0], LeadRecord) and isinstance(items[2], ActivityRecord)
    assert isinstance(items[-1], OutcomeRecord) and items[-1].status == "converted"
    store.save_page("sf", "leads", items, None)
    refs = sorted(r["record_ref"] for r in store.quarantine("sf"))
    assert refs == ["CampaignMember 00v2", "Lead (no Id)"]
