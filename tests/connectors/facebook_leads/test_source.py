"""The source with respx: documented leads → records, custom questions, quarantine, cursors,
settings and registration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import respx
from pydantic import ValidationError

from connectors.base import Invalid, Item, Page, SourceContext, get_connector
from connectors.facebook_leads import FacebookLeadsConnector, FacebookLeadsSource
from connectors.facebook_leads.mapping import lead_items
from core.config import load_hub
from core.errors import ConfigError
from core.records import ActivityRecord, LeadRecord
from tests.connectors.facebook_leads.payloads import (
    DISCLAIMERS,
    FORM_ID,
    FORMS_PAGE,
    GRAPH,
    LEADS_PAGE,
    SINGLE_LEAD,
    settings,
)

LEADS_URL = f"{GRAPH}/{FORM_ID}/leads"


def items_of(lead: dict[str, Any], **overrides: Any) -> list[Item]:
    return lead_items("fb", lead, "My Form", settings(**overrides))


def answers(**values: list[str]) -> list[dict[str, Any]]:
    return [{"name": k, "values": v} for k, v in values.items()]


def read(cursor: dict[str, Any] | None = None, **overrides: Any) -> list[Page]:
    respx.get(f"{GRAPH}/{FORM_ID}").respond(json=FORMS_PAGE["data"][0])
    src = FacebookLeadsSource("fb", settings(form_ids=[FORM_ID], **overrides))
    return list(src.streams()[0].read(cursor))


# -- one lead → records --------------------------------------------------------------------------


def test_the_documented_lead_becomes_a_lead_and_its_ad_form_submission() -> None:
    lead, activity = items_of(LEADS_PAGE["data"][0])

    assert isinstance(lead, LeadRecord) and isinstance(activity, ActivityRecord)
    assert (lead.source, lead.external_id, lead.email) == (
        "fb",
        "976777789012345",
        "joe@example.com",
    )
    assert (lead.first_name, lead.last_name, lead.channel) == ("Joe", "Example", "facebook_ads")
    assert lead.custom == {"car_make": "Honda"}  # a custom question, under its key
    assert lead.updated_at == datetime(2018, 2, 28, 8, 49, 14, tzinfo=UTC)
    assert activity.type == "ad_form_submitted" and activity.lead == lead.external_id
    assert activity.occurred_at == lead.updated_at
    assert activity.properties == {
        "form": "My Form", "form_id": FORM_ID, "ad_id": "6071234567890", "is_organic": False,
    }  # fmt: skip


def test_custom_questions_go_to_custom_unless_the_hub_file_maps_them_onto_lead_fields() -> None:
    lead = {**SINGLE_LEAD, "field_data": SINGLE_LEAD["field_data"] + answers(
        number_of_employees=["51-200"], topics=["crm sync", "lead scoring"], zip_code=["75001"],
    )}  # fmt: skip

    plain, _ = items_of(lead)
    mapped, _ = items_of(
        lead, fields={"number_of_employees": "company_size", "selected_dealer": "product_interest"}
    )

    assert isinstance(plain, LeadRecord) and isinstance(mapped, LeadRecord)
    assert plain.custom == {
        "selected_dealer": "99213450", "number_of_employees": "51-200",
        "topics": ["crm sync", "lead scoring"], "zip_code": "75001",
    }  # fmt: skip
    assert mapped.company_size == 51  # a range answer: its lower bound
    assert mapped.product_interest == "99213450"
    assert mapped.custom == {"topics": ["crm sync", "lead scoring"], "zip_code": "75001"}


def test_standard_keys_fill_lead_fields_and_email_wins_over_work_email() -> None:
    lead = {**SINGLE_LEAD, "field_data": answers(
        first_name=["Ann"], last_name=["Lee"], full_name=["Ignored Name"],
        work_email=["ann@corp.example"], email=["Ann@Home.example"], phone_number=["+15551234"],
        company_name=["Acme"], job_title=["VP Marketing"], city=["Austin"], country=["US"],
    )}  # fmt: skip

    record, _ = items_of(lead)

    assert isinstance(record, LeadRecord)
    assert record.fields() | {"custom": record.custom} == {
        "email": "ann@home.example", "phone": "+15551234", "first_name": "Ann",
        "last_name": "Lee", "company": "Acme", "job_title": "VP Marketing", "industry": None,
        "company_size": None, "annual_revenue": None, "country": "US", "city": "Austin",
        "channel": "facebook_ads", "product_interest": None, "custom": {},
    }  # fmt: skip


def test_disclaimer_checkboxes_are_kept_as_booleans() -> None:
    record, _ = items_of({**SINGLE_LEAD, **DISCLAIMERS})

    assert isinstance(record, LeadRecord)
    assert record.custom["disclaimers"] == {"optional_1": True, "optional_2": False}


def test_an_organic_lead_has_no_ad_ids_and_is_marked_organic() -> None:
    organic = {k: v for k, v in SINGLE_LEAD.items() if k != "ad_id"} | {"is_organic": True}
    with_campaign = SINGLE_LEAD | {
        "campaign_id": "61",
        "campaign_name": "autumn",
        "is_organic": False,
    }

    _, activity = items_of(organic)
    _, paid = items_of(with_campaign)

    assert isinstance(activity, ActivityRecord) and isinstance(paid, ActivityRecord)
    assert activity.properties == {"form": "My Form", "form_id": FORM_ID, "is_organic": True}
    assert paid.properties["campaign"] == "autumn" and paid.properties["campaign_id"] == "61"


def test_a_lead_with_a_bad_answer_is_quarantined_with_its_id_and_the_field() -> None:
    bad = {**SINGLE_LEAD, "field_data": answers(email=["joe at example.com"])}

    [item] = items_of(bad)

    assert isinstance(item, Invalid)
    assert item.record_ref == SINGLE_LEAD["id"]
    assert item.reason.startswith(f"lead {SINGLE_LEAD['id']}: email:")
    assert "joe at example.com" in item.raw


# -- the stream ----------------------------------------------------------------------------------


@respx.mock
def test_the_bookmark_is_saved_with_the_last_page_of_a_form_and_is_the_newest_lead() -> None:
    newest, older = "2018-03-02T10:00:00+0000", "2018-03-01T10:00:00+0000"
    pages = {
        None: {"data": [LEADS_PAGE["data"][0] | {"id": "3", "created_time": newest}],
               "paging": {"next": f"{LEADS_URL}?after=A"}},
        "A": {"data": [LEADS_PAGE["data"][0] | {"id": "2", "created_time": older},
                       {**SINGLE_LEAD, "field_data": answers(email=["bad"])}],
              "paging": {}},
    }  # fmt: skip
    respx.get(LEADS_URL).mock(
        side_effect=lambda req: respx.MockResponse(200, json=pages[req.url.params.get("after")])
    )

    first, last = read()

    assert first.cursor is None  # Graph reads newest first: a crash here must not skip page A
    assert last.cursor == {"forms": {FORM_ID: 1519984800}}
    assert [type(i).__name__ for i in last.items] == ["LeadRecord", "ActivityRecord", "Invalid"]
    assert (first.left, last.left) == (None, None)  # no `summary` asked for: no total stated


@respx.mock
def test_the_bookmark_never_goes_back_and_an_empty_form_gives_no_cursor() -> None:
    respx.get(LEADS_URL).respond(json={"data": [], "paging": {}})

    assert read({"forms": {FORM_ID: 2_000_000_000}}) == []
    assert read() == []


# -- settings and registration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"api_version": "25"}, "api_version"),
        ({"fields": {"employees": "size"}}, "not a lead field"),
        ({"access_token": " "}, "access_token"),
        ({"base_url": "graph.facebook.com"}, "http:// or https://"),
        ({"page_size": 0}, "page_size"),
    ],
)
def test_bad_settings_name_the_key(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**override)


def test_the_connector_is_registered_and_builds_a_source() -> None:
    connector = get_connector("facebook_leads")()
    assert isinstance(connector, FacebookLeadsConnector)

    source = connector.source(settings(), SourceContext("fb"))

    assert [s.name for s in source.streams()] == ["leads"]
    assert source.client.http._http.base_url == "https://graph.facebook.com/v25.0/"


def test_the_webhook_receiver_needs_the_app_secret_and_the_verify_token() -> None:
    with pytest.raises(ConfigError, match=r"sources\.fb: .*app_secret.*verify_token"):
        FacebookLeadsConnector().webhook(settings(), SourceContext("fb"), lambda *_: None)


def test_a_hub_file_block_is_validated_with_errors_naming_the_source_and_key(
    tmp_path: Path,
) -> None:
    hub = tmp_path / "leadhub.yaml"
    hub.write_text(
        "sources:\n"
        "  fb:\n"
        "    connector: facebook_leads\n"
        "    page_id: '1234'\n"
        "    access_token: ${FB_TOKEN}\n"
        "    fields: {number_of_employees: company_size}\n"
        "  bad:\n"
        "    connector: facebook_leads\n"
        "    page_id: '1234'\n"
        "    api_version: '25.0'\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_hub(hub, env={"FB_TOKEN": "EAAB-from-env"})

    message = str(caught.value)
    assert "sources.bad.access_token" in message and "sources.bad.api_version" in message
    assert "sources.fb" not in message and "EAAB-from-env" not in message
    hub.write_text(hub.read_text().split("  bad:")[0])
    config = load_hub(hub, env={"FB_TOKEN": "EAAB-from-env"}).source("fb")
    assert config.settings.access_token.get_secret_value() == "EAAB-from-env"
    assert config.settings.fields == {"number_of_employees": "company_size"}
