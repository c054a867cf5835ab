"""HubSpot payloads of the wrong shape are quarantined with a reason naming the record and the
field, and the rest of the page still lands: out-of-range epochs, a number where `values` belongs,
a contact or event that is not an object, a revenue of `Infinity`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import respx

from connectors.base.contract import Invalid, Item
from connectors.hubspot.mapping import (
    contact_items,
    email_event_items,
    epoch_ms,
    form_submission_items,
    parse_time,
)
from core.records import ActivityRecord, LeadRecord
from core.store.store import Store
from tests.connectors.hubspot.payloads import API, T0, contact, email_event, settings
from tests.connectors.hubspot.test_source import make_source, stream

PAST_9999 = 10**20  # epoch milliseconds far beyond what a datetime holds
GUID = "5f7a1c0e-0000-4000-8000-00000000f0e1"


def submission(conversion: str, **overrides: Any) -> dict[str, Any]:
    """A v1 form submission (`/form-integrations/v1/submissions/forms/{guid}`)."""
    return {
        "conversionId": conversion,
        "submittedAt": T0,
        "pageUrl": "https://ex.com/quote",
        "values": [{"name": "email", "value": "ada@example.com"}],
        **overrides,
    }


def only_invalid(items: list[Item]) -> Invalid:
    [item] = items
    assert isinstance(item, Invalid), item
    return item


def test_an_out_of_range_submitted_at_is_quarantined_naming_the_submission() -> None:
    bad = submission("conv-9", submittedAt=PAST_9999)
    item = only_invalid(form_submission_items("crm", GUID, bad))
    assert item.record_ref == f"form {GUID} submission conv-9"
    assert item.reason.startswith(item.record_ref) and "submittedAt" in item.reason
    assert "not an epoch in milliseconds in range" in item.reason
    assert json.loads(item.raw) == bad


def test_a_number_where_the_values_list_belongs_is_quarantined() -> None:
    item = only_invalid(form_submission_items("crm", GUID, submission("conv-3", values=5)))
    assert item.record_ref == f"form {GUID} submission conv-3"
    assert "values: a number, not a list" in item.reason


def test_an_out_of_range_email_event_created_is_quarantined() -> None:
    event = email_event("e1", "OPEN", PAST_9999)
    item = only_invalid(email_event_items("crm", event, settings()))
    assert item.record_ref == "email event e1" and "created" in item.reason


def test_subscriptions_that_are_not_a_list_are_quarantined() -> None:
    event = email_event("e6", "STATUSCHANGE", T0, subscriptions=7)
    item = only_invalid(email_event_items("crm", event, settings()))
    assert item.record_ref == "email event e6" and "subscriptions: a number" in item.reason


def test_an_archived_contact_with_an_out_of_range_archived_at_is_quarantined() -> None:
    archived = {**contact(7), "archived": True, "archivedAt": PAST_9999}
    item = only_invalid(contact_items("crm", archived, settings(), deleted=True))
    assert item.record_ref == "contact 7" and "archivedAt" in item.reason


def test_an_unreadable_last_modified_date_is_quarantined_naming_the_property() -> None:
    item = only_invalid(contact_items("crm", contact(8, lastmodifieddate="yesterday"), settings()))
    assert item.record_ref == "contact 8"
    assert "properties.lastmodifieddate" in item.reason and "'yesterday'" in item.reason


def test_a_revenue_of_infinity_is_quarantined_naming_the_field() -> None:
    item = only_invalid(contact_items("crm", contact(4, annualrevenue="Infinity"), settings()))
    assert item.record_ref == "contact 4" and "annual_revenue" in item.reason


@pytest.mark.parametrize(
    ("payload", "kind"), [(None, "null"), ([{"id": "1"}], "a list"), ("1", "a string")]
)
def test_a_payload_that_is_not_an_object_is_quarantined(payload: Any, kind: str) -> None:
    for items, ref in [
        (contact_items("crm", payload, settings()), "contact (no id)"),
        (email_event_items("crm", payload, settings()), "email event (no id)"),
        (form_submission_items("crm", GUID, payload), f"form {GUID} submission (no conversionId)"),
    ]:
        item = only_invalid(items)
        assert item.record_ref == ref and f"{kind}, not a" in item.reason
        assert json.loads(item.raw) == payload


def test_parse_time_refuses_what_it_cannot_read_and_epoch_ms_gives_none() -> None:
    assert parse_time(T0) == parse_time(str(T0)) == parse_time("2026-10-01T00:00:00Z")
    assert parse_time("") is None and parse_time(None) is None
    for bad in (PAST_9999, -(2**63), float("nan"), "1" * 400, "soon", True, [T0]):
        with pytest.raises(ValueError):
            parse_time(bad)
        assert epoch_ms(bad) is None


@respx.mock
def test_a_bad_submission_is_quarantined_and_the_rest_of_the_page_lands(
    store: Store, tmp_path: Path
) -> None:
    results = [
        submission("conv-1"),
        submission("conv-2", submittedAt=PAST_9999),
        submission("conv-3", values=5),
    ]
    respx.get(f"{API}/form-integrations/v1/submissions/forms/{GUID}").respond(
        200, json={"results": results}
    )
    pages = list(stream(make_source(tmp_path, form_ids=[GUID]), "form_submissions").read(None))
    items = [i for p in pages for i in p.items]
    good, *bad = items
    assert isinstance(good, ActivityRecord) and good.lead == "ada@example.com"
    assert [i.record_ref for i in bad if isinstance(i, Invalid)] == [
        f"form {GUID} submission conv-2",
        f"form {GUID} submission conv-3",
    ]
    assert pages[-1].cursor == {"forms": {GUID: T0}}  # the bad epoch does not move the mark
    for page in pages:
        store.save_page("crm", "form_submissions", page.items, page.cursor)
    rows = store.quarantine("crm")
    assert sorted(r["record_ref"] for r in rows) == [
        f"form {GUID} submission conv-2",
        f"form {GUID} submission conv-3",
    ]
    assert all(r["stream"] == "form_submissions" and r["reason"] for r in rows)


def test_a_merged_id_too_long_to_store_is_quarantined_and_the_contact_kept() -> None:
    survivor = contact(31, hs_merged_object_ids="12;" + "9" * 300)
    lead, merged, bad = contact_items("crm", survivor, settings())
    assert isinstance(lead, LeadRecord) and lead.external_id == "31"
    assert isinstance(merged, LeadRecord) and merged.external_id == "12"
    assert isinstance(bad, Invalid) and "hs_merged_object_ids" in bad.reason
    assert bad.record_ref.startswith("contact 31 merged id")


@respx.mock
def test_search_results_of_the_wrong_shape_are_quarantined_and_the_rest_land(
    tmp_path: Path,
) -> None:
    """A result that is not an object, or whose properties are a list, never stops the read."""
    broken = {**contact(8), "properties": ["email", "x@example.com"]}
    respx.post(f"{API}/crm/v3/objects/contacts/search").respond(
        200, json={"total": 4, "results": [contact(7), broken, None, contact(9)]}
    )
    source = make_source(tmp_path, overlap_seconds=0)
    pages = list(stream(source, "contacts").read({"phase": "search", "since": T0 - 1}))
    items = [i for p in pages for i in p.items]
    assert sorted(i.external_id for i in items if isinstance(i, LeadRecord)) == ["7", "9"]
    refs = sorted(i.record_ref for i in items if isinstance(i, Invalid))
    assert refs == ["contact (no id)", "contact 8"]
