"""Hostile payloads: every connector's parsing of vendor records, fed wrong types, huge strings,
odd unicode, missing keys and nulls, gives records or quarantined `Invalid` items — never an
exception — and the store takes whatever it gives (on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from connectors.base.contract import Invalid, Item, SourceContext
from connectors.csv import CsvConnector, CsvSettings
from connectors.facebook_leads.mapping import lead_items
from connectors.facebook_leads.settings import FacebookLeadsSettings
from connectors.facebook_leads.webhook import parse_delivery
from connectors.mailchimp.mapping import activity_items, member_items, unsubscribe_item
from connectors.mailchimp.settings import MailchimpSourceSettings
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip
# Connectors still in the making: no shrinking, so a failure is reported fast, not minimised.
FUZZ_FAST = settings(FUZZ, phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)
RECORDS = (LeadRecord, ActivityRecord, OutcomeRecord, Invalid)

HOSTILE_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\u202egnp.exe", "😀" * 40, "Z͑ͫ̓ͪ̂ͫ̽͏̴̙̤̞͉͚̯̞̠͍", "ǅemo", "İstanbul",
    "' OR 1=1; --", "<script>alert(1)</script>", "${jndi:ldap://x}", "%s%s%n", "\ud7ff",
    "x" * 70_000, "1" * 400, "null", "NaN", "-1e309", "2026-13-45T99:99:99Z", "@", "a@", "@b.c",
    "ann@example.com\nBcc: x@y.z", "\uff41\uff4e\uff4e\uff20example\uff0ecom",
    json.loads('"a\\ud800b"'),  # a lone surrogate, as a JSON escape gives it
])  # fmt: skip
TEXT = st.one_of(st.text(max_size=40), HOSTILE_TEXT)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63), st.floats(), TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, often anything at all."""
    return st.one_of(plausible, plausible, JSON)


def objects(**keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A vendor object with any subset of `keys`, each maybe of the wrong type."""
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in keys.items()})


def records(**keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Like `objects`, and sometimes not an object at all (null, a list, a number, …)."""
    shaped = objects(**keys)
    return st.one_of(shaped, shaped, shaped, JSON)


TIMES = st.sampled_from(["2026-10-01T10:00:00+0000", "2026-10-01T10:00:00Z", "1700000000"])
EMAILS = st.one_of(st.emails(), TEXT)


def check(items: list[Item], store: Store, source: str) -> None:
    """Every item is a record or a quarantined payload with a reason; the store takes them."""
    assert all(isinstance(i, RECORDS) for i in items), items
    for item in items:
        if isinstance(item, Invalid):
            assert item.reason and isinstance(item.raw, str)
    store.save_page(source, "fuzz", items, None)


# -- Facebook Lead Ads -----------------------------------------------------------------------------

FB_SETTINGS = FacebookLeadsSettings(page_id="1", access_token="t",
                                    fields={"number_of_employees": "company_size"})  # fmt: skip
FIELD_DATA = st.lists(
    records(name=st.sampled_from(["email", "full_name", "phone_number", "country",
                                  "number_of_employees", "first_name", "city"]),
            values=st.lists(TEXT, max_size=3)),
    max_size=6,
)  # fmt: skip
FB_LEAD = records(id=st.from_regex(r"\A[0-9]{1,18}\Z"), created_time=TIMES,
                  field_data=FIELD_DATA, form_id=TEXT, ad_id=TEXT, campaign_name=TEXT,
                  is_organic=st.booleans(),
                  custom_disclaimer_responses=st.lists(
                      records(checkbox_key=TEXT, is_checked=st.sampled_from(["1", "0"]))),
                  )  # fmt: skip


@FUZZ
@given(lead=FB_LEAD, form_name=st.one_of(st.none(), TEXT))
def test_facebook_leads_are_parsed_or_quarantined(store: Store, lead: Any, form_name: Any) -> None:
    check(lead_items("fb", lead, form_name, FB_SETTINGS), store, "fb")


DELIVERY = records(object=TEXT, entry=st.lists(records(id=TEXT, changes=st.lists(
    records(field=st.just("leadgen"), value=records(leadgen_id=TEXT, page_id=TEXT,
                                                    form_id=JSON))))))  # fmt: skip
BODIES = st.one_of(st.binary(max_size=200), st.one_of(JSON, DELIVERY).map(
    lambda v: json.dumps(v).encode()))  # fmt: skip


@FUZZ
@given(body=BODIES)
def test_a_webhook_body_is_a_list_of_changes_or_a_value_error(body: bytes) -> None:
    try:
        changes = parse_delivery(body)
    except ValueError:
        return  # the receiver answers 400
    assert all(isinstance(c.leadgen_id, str) and isinstance(c.page_id, str) for c in changes)


# -- Mailchimp ---------------------------------------------------------------------------------

MC_SETTINGS = MailchimpSourceSettings(api_key="k-us6", list_ids=["l1"], ignore_merge_fields=["X"])
MERGE = st.dictionaries(st.sampled_from(["FNAME", "LNAME", "PHONE", "COMPANY", "ADDRESS", "X",
                                         "SIZE"]), JSON, max_size=5)  # fmt: skip
MEMBER = records(id=st.from_regex(r"\A[0-9a-f]{32}\Z"), email_address=EMAILS, merge_fields=MERGE,
                 status=st.sampled_from(["subscribed", "unsubscribed", "cleaned", "archived"]),
                 last_changed=TIMES, location=records(country_code=TEXT),
                 member_rating=st.integers(), unsubscribe_reason=TEXT)  # fmt: skip
CAMPAIGN = records(id=TEXT, settings=records(title=TEXT, subject_line=TEXT))
ACTIVITY_ROW = records(email_id=TEXT, email_address=EMAILS, activity=st.lists(
    records(action=st.sampled_from(["open", "click", "bounce"]), timestamp=TIMES, url=TEXT,
            type=TEXT), max_size=3))  # fmt: skip
UNSUB_ROW = records(email_id=TEXT, email_address=EMAILS, timestamp=TIMES, reason=TEXT)


@FUZZ
@given(member=MEMBER)
def test_mailchimp_members_are_parsed_or_quarantined(store: Store, member: Any) -> None:
    check(member_items("mc", "l1", member, MC_SETTINGS), store, "mc")


@FUZZ
@given(campaign=CAMPAIGN, row=ACTIVITY_ROW, unsub=UNSUB_ROW)
def test_mailchimp_activity_is_parsed_or_quarantined(
    store: Store, campaign: Any, row: Any, unsub: Any
) -> None:
    items = [*activity_items("mc", campaign, row), unsubscribe_item("mc", campaign, unsub)]
    check(items, store, "mc")


# -- CSV -----------------------------------------------------------------------------------------

CELLS = st.one_of(TEXT, st.sampled_from(["2026-10-01", "ann@example.com", "12", "won", "-"]))
COLUMNS = ["external_id", "email", "first_name", "company_size", "annual_revenue", "updated_at",
           "lead", "type", "occurred_at", "status", "closed_at", "amount", "extra"]  # fmt: skip


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


@FUZZ
@given(rows=st.lists(st.lists(CELLS, min_size=0, max_size=len(COLUMNS) + 2), max_size=6),
       tail=st.sampled_from(["", "\n\"unclosed,quote\n", "\x00\x00\n", "a,b\r\r\n"]))  # fmt: skip
def test_csv_rows_are_parsed_or_quarantined(
    store: Store, tmp_path: Path, rows: list[list[str]], tail: str
) -> None:
    text = csv_text(rows) + tail
    for kind in ("leads", "activities", "outcomes"):  # undecodable bytes are a ConfigError
        (tmp_path / f"{kind}.csv").write_text(text, encoding="utf-8", errors="replace")
    block = CsvSettings(leads="leads.csv", activities="activities.csv", outcomes="outcomes.csv")
    source = CsvConnector().source(block, SourceContext("crm", tmp_path))
    for stream in source.streams():
        found = [item for page in stream.read(None) for item in page.items]
        check(found, store, "crm")


# -- HubSpot / Salesforce mapping, when installed -------------------------------------------------


def _optional(module: str) -> Any:
    return pytest.importorskip(module, reason=f"{module} is not installed")


CONTACT = records(id=st.from_regex(r"\A[0-9]{1,12}\Z"), properties=st.dictionaries(
    st.sampled_from(["email", "firstname", "lastname", "lifecyclestage", "hs_lead_status",
                     "numberofemployees", "annualrevenue", "lastmodifieddate",
                     "hs_merged_object_ids", "hs_analytics_source", "closedate"]),
    JSON, max_size=8), updatedAt=TIMES, archivedAt=TIMES)  # fmt: skip
EMAIL_EVENT = records(id=TEXT, type=st.sampled_from(["OPEN", "CLICK", "STATUSCHANGE", "BOUNCE"]),
                      recipient=EMAILS, created=st.integers(), emailCampaignId=st.integers(),
                      url=TEXT, subscriptions=JSON, filteredEvent=st.booleans())  # fmt: skip
SUBMISSION = records(conversionId=TEXT, submittedAt=st.integers(), pageUrl=TEXT,
                     values=st.lists(records(name=st.just("email"), value=EMAILS)))  # fmt: skip


@FUZZ_FAST
@given(contact=CONTACT, event=EMAIL_EVENT, submission=SUBMISSION, deleted=st.booleans())
@example(contact=None, event=[], submission=7, deleted=False)  # not objects at all
@example(  # epochs past year 9999, and a number where the list of values belongs
    contact={"id": "1", "properties": {}, "archivedAt": 2**63},
    event={"id": "e1", "type": "OPEN", "recipient": "ann@example.com", "created": 10**20},
    submission={"conversionId": "c1", "submittedAt": 10**20, "values": 5},
    deleted=True,
)
def test_hubspot_records_are_parsed_or_quarantined(
    store: Store, contact: Any, event: Any, submission: Any, deleted: bool
) -> None:
    mapping = _optional("connectors.hubspot.mapping")
    hs_settings = _optional("connectors.hubspot.settings").HubSpotSettings(
        token="t", properties=["hs_lead_status"]
    )
    calls: list[Callable[[], list[Item]]] = [
        lambda: mapping.contact_items("hs", contact, hs_settings, deleted=deleted),
        lambda: mapping.email_event_items("hs", event, hs_settings),
        lambda: mapping.form_submission_items("hs", "f1", submission),
    ]
    for call in calls:
        check(call(), store, "hs")


SF_PERSON = records(Id=st.from_regex(r"\A00Q[0-9A-Za-z]{15}\Z"), Email=EMAILS, FirstName=TEXT,
                    LastName=TEXT, Company=TEXT, Title=TEXT, NumberOfEmployees=st.integers(),
                    AnnualRevenue=st.floats(), Country=TEXT, City=TEXT, LeadSource=TEXT,
                    Status=TEXT, IsConverted=st.booleans(), ConvertedOpportunityId=TEXT,
                    LastModifiedDate=TIMES, SystemModstamp=TIMES, IsDeleted=st.booleans(),
                    attributes=records(type=st.just("Lead")))  # fmt: skip
SF_ACTIVITY = records(Id=TEXT, WhoId=TEXT, Subject=TEXT, ActivityDate=TIMES, CreatedDate=TIMES,
                      TaskSubtype=st.sampled_from(["Email", "Call", "Task"]), Type=TEXT,
                      StartDateTime=TIMES, Who=records(Email=EMAILS))  # fmt: skip
SF_MEMBER = records(Id=TEXT, LeadId=TEXT, ContactId=TEXT, HasResponded=st.booleans(),
                    CreatedDate=TIMES, FirstRespondedDate=TIMES, CampaignId=TEXT, Status=TEXT,
                    Lead=records(Email=EMAILS), Contact=records(Email=EMAILS))  # fmt: skip
SF_CAMPAIGN = st.one_of(
    st.none(), records(Id=TEXT, Name=TEXT, Type=st.sampled_from(["Webinar", "Web", "Email"]))
)
SF_OPPORTUNITY = st.one_of(st.none(), records(Id=TEXT, IsClosed=st.booleans(), IsWon=st.booleans(),
                                              Amount=st.floats(), CloseDate=TIMES))  # fmt: skip


@FUZZ_FAST
@given(person=SF_PERSON, activity=SF_ACTIVITY, member=SF_MEMBER, campaign=SF_CAMPAIGN,
       opportunity=SF_OPPORTUNITY)  # fmt: skip
@example(person=None, activity=[], member=None, campaign=None, opportunity=None)
@example(  # a list where the Campaign and the Opportunity belong; an epoch past year 9999
    person={
        "Id": "00Q000000000000001",
        "IsConverted": True,
        "ConvertedOpportunityId": "006",
        "SystemModstamp": 2**63,
    },
    activity=7,
    member={"Id": "00v1", "LeadId": "00Q1", "HasResponded": True, "CampaignId": "701"},
    campaign=[{"Id": "701", "Type": "Webinar"}],
    opportunity=[{"Id": "006", "IsClosed": True}],
)
def test_salesforce_records_are_parsed_or_quarantined(
    store: Store, person: Any, activity: Any, member: Any, campaign: Any, opportunity: Any
) -> None:
    mapping = _optional("connectors.salesforce.mapping")
    sf_settings = _optional("connectors.salesforce.settings").SalesforceSettings(
        client_id="c", client_secret="s", refresh_token="r"
    )
    calls: list[Callable[[], list[Item]]] = [
        lambda: mapping.person_items("sf", "Lead", person, sf_settings, {"006": opportunity}),
        lambda: [mapping.outcome_item("sf", person, opportunity)],
        lambda: mapping.task_items("sf", activity),
        lambda: mapping.event_items("sf", activity),
        lambda: mapping.campaign_member_items("sf", member, campaign, sf_settings),
    ]
    for call in calls:
        check(call(), store, "sf")
