"""The Salesforce source on documented payloads: paging, the cursor boundary, deletions,
outcomes, campaign members, tasks and events, and the API allowance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.base import Invalid, Item, Page, SourceContext, get_connector
from connectors.salesforce import SalesforceSettings, SalesforceSource
from core.errors import ConfigError, RateLimited, SourceError
from core.pipeline.pull import pull_source
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store
from tests.conformance.suite import SourceCase, check_source
from tests.connectors.salesforce.payloads import (
    ACCESS,
    ACCESS_2,
    API,
    DAILY_LIMIT,
    LEAD_ID,
    LIMIT_HEADERS,
    SESSION_EXPIRED,
    TOKEN_URL,
    FakeOrg,
    lead,
    page,
    row,
    settings,
    soql,
    token,
)

T1 = "2024-05-02T10:11:12.000+0000"
T2 = "2024-05-02T10:11:13.000+0000"


def source(tmp_path: Path, **overrides: Any) -> SalesforceSource:
    block = SalesforceSettings.model_validate(
        settings(**{"campaign_members": False, "tasks_and_events": False, **overrides})
    )
    return SalesforceSource("sf", block, base_dir=tmp_path, sleep=lambda _: None)


def stream(src: SalesforceSource, name: str) -> Any:
    [found] = [s for s in src.streams() if s.name == name]
    return found


def items(pages: list[Page]) -> list[Item]:
    return [i for p in pages for i in p.items]


@pytest.fixture
def org() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).respond(200, json=token())
        yield router


def serve(router: respx.MockRouter, fake: FakeOrg) -> None:
    for resource in ("query", "queryAll"):
        router.get(url__regex=rf"^{re.escape(API)}/{resource}(/|\?|$)").mock(side_effect=fake)


# -- leads ---------------------------------------------------------------------------------------


def test_a_lead_row_maps_to_a_lead_record(tmp_path: Path, org: respx.MockRouter) -> None:
    serve(org, FakeOrg({"Lead": [lead(Lead_Source_Detail__c="G2 review")]}))
    pages = list(
        stream(source(tmp_path, custom_fields=["Lead_Source_Detail__c"]), "leads").read(None)
    )
    [record] = items(pages)
    assert isinstance(record, LeadRecord)
    assert (record.external_id, record.email, record.first_name, record.last_name) == (
        LEAD_ID, "a@b.com", "Ada", "Lovelace")  # fmt: skip
    assert (record.phone, record.company, record.job_title, record.company_size) == (
        "+44 7700 900", "Acme", "CTO", 250)  # fmt: skip
    assert (record.city, record.country, record.channel, record.deleted) == (
        "London", "United Kingdom", "Web", False)  # fmt: skip
    assert record.custom["Lead_Source_Detail__c"] == "G2 review"
    assert record.custom["Status"] == "Working - Contacted"
    assert str(record.updated_at) == "2024-05-02 10:11:12+00:00"
    assert pages[-1].cursor == {"modstamp": "2024-05-02T10:11:12Z", "id": LEAD_ID}


def test_pages_follow_next_records_url_with_the_batch_size_header(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    fake = FakeOrg({"Lead": [lead(f"00Q{i:015d}", T1) for i in range(5)]}, page_size=2)
    serve(org, fake)
    pages = list(stream(source(tmp_path, batch_size=200), "leads").read(None))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert all(p.cursor for p in pages)  # every page is a checkpoint
    calls = [c.request for c in org.calls if c.request.method == "GET"]
    assert calls[0].url.path == "/services/data/v62.0/queryAll"  # deletions too
    assert calls[1].url.path.startswith("/services/data/v62.0/query/01gRO")
    assert not calls[1].url.query  # nextRecordsUrl is followed as given
    assert {c.headers["Sforce-Query-Options"] for c in calls} == {"batchSize=200"}
    assert "ORDER BY SystemModstamp ASC, Id ASC" in soql(calls[0])


def test_rows_sharing_the_saved_timestamp_are_neither_skipped_nor_repeated(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    """Five rows at one timestamp, a page boundary among them, and a crash after page one."""
    same = [lead(f"00Q{i:015d}", T1) for i in range(5)]
    fake = FakeOrg({"Lead": [*same, lead("00Q999999999999999", T2)]}, page_size=2)
    serve(org, fake)
    leads = stream(source(tmp_path), "leads")
    first = next(iter(leads.read(None)))  # the run stops after its first page
    assert first.cursor == {"modstamp": "2024-05-02T10:11:12Z", "id": "00Q000000000000001"}
    rest = list(leads.read(first.cursor))
    seen = [r.external_id for r in items([first, *rest]) if isinstance(r, LeadRecord)]
    assert seen == [*(f"00Q{i:015d}" for i in range(5)), "00Q999999999999999"]
    assert ("(SystemModstamp > 2024-05-02T10:11:12Z OR (SystemModstamp = 2024-05-02T10:11:12Z "
            "AND Id > '00Q000000000000001'))") in fake.queries[-1]  # fmt: skip
    again = list(leads.read(rest[-1].cursor))
    assert items(again) == []  # nothing new: nothing read twice


def test_session_expiry_in_the_middle_of_a_paged_query(tmp_path: Path) -> None:
    with respx.mock() as router:
        auth = router.post(TOKEN_URL)
        auth.side_effect = [httpx.Response(200, json=token()),
                            httpx.Response(200, json=token(ACCESS_2))]  # fmt: skip
        next_url = "/services/data/v62.0/query/01gRO0000016PIAYA2-2"
        router.get(f"{API}/queryAll").respond(200, json=page([lead("00Q1", T1)], next_url, 2))
        following = router.get(f"{API.removesuffix('/services/data/v62.0')}{next_url}")
        following.side_effect = [httpx.Response(401, json=SESSION_EXPIRED),
                                 httpx.Response(200, json=page([lead("00Q2", T2)]))]  # fmt: skip
        pages = list(stream(source(tmp_path), "leads").read(None))
    assert [r.external_id for r in items(pages) if isinstance(r, LeadRecord)] == ["00Q1", "00Q2"]
    assert auth.call_count == 2
    assert [c.request.headers["Authorization"] for c in following.calls] == [
        f"Bearer {ACCESS}", f"Bearer {ACCESS_2}"]  # fmt: skip


def test_a_deleted_lead_from_query_all_is_marked_deleted(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    serve(org, FakeOrg({"Lead": [lead(IsDeleted=True, MasterRecordId="00Q5g00000MASTERAAA")]}))
    [record] = items(list(stream(source(tmp_path), "leads").read(None)))
    assert isinstance(record, LeadRecord) and record.deleted
    assert record.custom["merged_into"] == "00Q5g00000MASTERAAA"


def test_a_bad_row_is_quarantined_and_the_page_still_lands(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    serve(org, FakeOrg({"Lead": [lead("00Q1", T1, Email="not-an-email"), lead("00Q2", T2)]}))
    bad, good = items(list(stream(source(tmp_path), "leads").read(None)))
    assert isinstance(bad, Invalid) and "email" in bad.reason and bad.record_ref == "Lead 00Q1"
    assert isinstance(good, LeadRecord)


def test_contacts_are_read_when_configured(tmp_path: Path, org: respx.MockRouter) -> None:
    contact = row("Contact", "0035g00000XYZ", Email="c@d.com", FirstName="Cy", LastName="D",
                  MailingCity="Paris", MailingCountry="France", AccountId="0015g00000ACC",
                  IsDeleted=False, SystemModstamp=T1)  # fmt: skip
    serve(org, FakeOrg({"Lead": [], "Contact": [contact]}))
    src = source(tmp_path, objects=["Lead", "Contact"])
    [record] = items(list(stream(src, "contacts").read(None)))
    assert isinstance(record, LeadRecord)
    assert (record.email, record.city, record.custom["salesforce_object"]) == (
        "c@d.com", "Paris", "Contact")  # fmt: skip


def test_a_query_over_the_uri_limit_is_refused_naming_custom_fields(tmp_path: Path) -> None:
    many = [f"Very_Long_Custom_Field_Name_Number_{i:03d}__c" for i in range(400)]
    with pytest.raises(ConfigError, match=r"sources\.sf\.custom_fields: the Lead query would be"):
        source(tmp_path, custom_fields=many)


# -- outcomes ------------------------------------------------------------------------------------


def converted(record_id: str, opportunity: str | None, modstamp: str = T1) -> dict[str, Any]:
    return lead(record_id, modstamp, IsConverted=True, ConvertedDate="2024-05-20",
                ConvertedOpportunityId=opportunity, Status="Closed - Converted")  # fmt: skip


def opportunity(record_id: str, closed: bool, won: bool, amount: float | None = 12000.0,
                modstamp: str = T2) -> dict[str, Any]:  # fmt: skip
    return row("Opportunity", record_id, IsClosed=closed, IsWon=won, Amount=amount,
               CloseDate="2024-06-30", SystemModstamp=modstamp)  # fmt: skip


def test_converted_leads_give_converted_won_and_lost_outcomes(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    leads = [converted("00QA", "006A"), converted("00QB", "006B"), converted("00QC", "006C"),
             converted("00QD", None)]  # fmt: skip
    opportunities = [opportunity("006A", True, True), opportunity("006B", True, False),
                     opportunity("006C", False, False, 500.0)]  # fmt: skip
    fake = FakeOrg({"Lead": leads, "Opportunity": opportunities}, page_size=10)
    serve(org, fake)
    found = items(list(stream(source(tmp_path), "leads").read(None)))
    outcomes = {o.lead: o for o in found if isinstance(o, OutcomeRecord)}
    assert {k: (o.status, o.amount, str(o.closed_at)[:10]) for k, o in outcomes.items()} == {
        "00QA": ("won", 12000.0, "2024-06-30"), "00QB": ("lost", 12000.0, "2024-06-30"),
        "00QC": ("converted", 500.0, "2024-05-20"), "00QD": ("converted", None, "2024-05-20"),
    }  # fmt: skip
    lookup = [q for q in fake.queries if "FROM Opportunity" in q]
    assert lookup == ["SELECT Id, IsClosed, IsWon, Amount, CloseDate, SystemModstamp FROM "
                      "Opportunity WHERE Id IN ('006A', '006B', '006C')"]  # fmt: skip


def test_a_deal_closed_later_turns_the_outcome_won(tmp_path: Path, org: respx.MockRouter) -> None:
    fake = FakeOrg({"Opportunity": [opportunity("006A", True, True, 99.5)],
                    "Lead": [converted("00QA", "006A")]})  # fmt: skip
    serve(org, fake)
    pages = list(stream(source(tmp_path), "opportunities").read(None))
    [outcome] = items(pages)
    assert isinstance(outcome, OutcomeRecord)
    assert (outcome.external_id, outcome.lead, outcome.status, outcome.amount) == (
        "00QA", "00QA", "won", 99.5)  # fmt: skip
    assert pages[-1].cursor == {"modstamp": "2024-05-02T10:11:13Z", "id": "006A"}


# -- activities ----------------------------------------------------------------------------------


def member(record_id: str, campaign: str, responded: bool, **extra: Any) -> dict[str, Any]:
    return row("CampaignMember", record_id, CampaignId=campaign, LeadId=LEAD_ID, ContactId=None,
               Status="Responded" if responded else "Sent", HasResponded=responded,
               FirstRespondedDate="2024-05-03" if responded else None,
               CreatedDate="2024-05-01T09:00:00.000+0000", SystemModstamp=T1, **extra)  # fmt: skip


def test_campaign_members_become_webinar_form_and_custom_activities(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    campaigns = [row("Campaign", "701W", Name="Scoring 101", Type="Webinar"),
                 row("Campaign", "701F", Name="Pricing page", Type="Web"),
                 row("Campaign", "701T", Name="Booth", Type="Trade Show")]  # fmt: skip
    members = [member("00v1", "701W", True), member("00v2", "701W", False),
               member("00v3", "701F", True), member("00v4", "701T", True),
               member("00v5", "701T", False)]  # fmt: skip
    serve(org, FakeOrg({"CampaignMember": members, "Campaign": campaigns}, page_size=10))
    src = source(tmp_path, campaign_members=True)
    found = items(list(stream(src, "campaign_members").read(None)))
    assert all(isinstance(a, ActivityRecord) for a in found)
    got = {(a.external_id, a.type, str(a.occurred_at)[:10]) for a in found}  # type: ignore[union-attr]
    assert got == {
        ("00v1:webinar_registered", "webinar_registered", "2024-05-01"),
        ("00v1:webinar_attended", "webinar_attended", "2024-05-03"),
        ("00v2:webinar_registered", "webinar_registered", "2024-05-01"),
        ("00v3:form_submitted", "form_submitted", "2024-05-03"),
        ("00v4:custom:campaign_response", "custom:campaign_response", "2024-05-03"),
    }  # the trade-show member who did not respond did nothing
    assert {a.lead for a in found if isinstance(a, ActivityRecord)} == {LEAD_ID}


def test_completed_calls_and_meetings_become_activities(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    tasks = [row("Task", "00T1", WhoId=LEAD_ID, Subject="Call", Status="Completed", IsClosed=True,
                 TaskSubtype="Call", CallType="Outbound", CallDurationInSeconds=300,
                 ActivityDate="2024-05-04", CreatedDate="2024-05-04T10:00:00.000+0000",
                 SystemModstamp=T1)]  # fmt: skip
    events = [row("Event", "00U1", WhoId=LEAD_ID, Subject="Demo", DurationInMinutes=30,
                  ActivityDateTime="2024-05-10T15:00:00.000+0000", IsDeleted=False,
                  CreatedDate="2024-05-05T10:00:00.000+0000", SystemModstamp=T1),
              row("Event", "00U2", WhoId=LEAD_ID, Subject="Call back", IsDeleted=True,
                  CreatedDate="2024-05-05T11:00:00.000+0000", SystemModstamp=T2)]  # fmt: skip
    fake = FakeOrg({"Task": tasks, "Event": events}, page_size=10)
    serve(org, fake)
    src = source(tmp_path, tasks_and_events=True)
    [call] = items(list(stream(src, "tasks").read(None)))
    assert isinstance(call, ActivityRecord)
    assert (call.type, call.lead, call.properties["duration_seconds"]) == (
        "custom:call_completed", LEAD_ID, 300)  # fmt: skip
    assert "IsClosed = true" in fake.queries[-1]
    meetings = items(list(stream(src, "events").read(None)))
    assert [(m.external_id, m.type) for m in meetings if isinstance(m, ActivityRecord)] == [
        ("00U1:meeting_booked", "meeting_booked"), ("00U2:meeting_booked", "meeting_booked"),
        ("00U2:meeting_cancelled", "meeting_cancelled")]  # fmt: skip


# -- limits --------------------------------------------------------------------------------------


def test_a_pull_stops_cleanly_above_the_limit_share(tmp_path: Path, store: Store) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).respond(200, json=token())
        next_url = "/services/data/v62.0/query/01gRO0000016PIAYA2-2"
        router.get(f"{API}/queryAll").respond(
            200,
            json=page([lead("00Q1", T1)], next_url, 2),
            headers={"Sforce-Limit-Info": "api-usage=85000/100000"},
        )
        following = router.get(f"{API.removesuffix('/services/data/v62.0')}{next_url}")
        result = pull_source(store, "sf", source(tmp_path))
    assert not following.called
    assert result.error is not None
    assert "85,000 of its 100,000 daily API requests (85%)" in result.error
    assert "sources.sf.limit_share` (80%)" in result.error
    assert result.counts.created == 1  # the page read before stopping is kept
    assert store.get_cursor("sf", "leads") == {"modstamp": "2024-05-02T10:11:12Z", "id": "00Q1"}


def test_request_limit_exceeded_is_a_clean_stop_not_a_retry_or_crash(
    tmp_path: Path, store: Store
) -> None:
    with respx.mock() as router:
        router.post(TOKEN_URL).respond(200, json=token())
        query = router.get(f"{API}/queryAll").respond(403, json=DAILY_LIMIT)
        result = pull_source(store, "sf", source(tmp_path))
        assert query.call_count == 1
    assert result.error is not None and "REQUEST_LIMIT_EXCEEDED" in result.error
    assert "daily API requests" in result.error


def test_request_limit_exceeded_raises_rate_limited_with_a_wait(tmp_path: Path) -> None:
    with respx.mock() as router:
        router.post(TOKEN_URL).respond(200, json=token())
        router.get(f"{API}/queryAll").respond(403, json=DAILY_LIMIT)
        with pytest.raises(RateLimited) as caught:
            list(stream(source(tmp_path), "leads").read(None))
    assert caught.value.retry_after == 3600 and ACCESS not in str(caught.value)


def test_usage_is_read_from_every_response(tmp_path: Path, org: respx.MockRouter) -> None:
    serve(org, FakeOrg({"Lead": [lead()]}))
    src = source(tmp_path)
    list(stream(src, "leads").read(None))
    assert src.client.usage is not None
    assert (src.client.usage.used, src.client.usage.limit) == (10018, 100000)
    assert LIMIT_HEADERS["Sforce-Limit-Info"].endswith("/100000")


# -- conformance ---------------------------------------------------------------------------------


def test_the_source_passes_the_conformance_suite(tmp_path: Path, store: Store) -> None:
    rows = {
        "Lead": [lead("00QA", T1), lead("00QB", T1, Email="b@b.com"),
                 converted("00QC", "006C", T2), lead("00QD", T2, Email="broken@")],
        "Opportunity": [opportunity("006C", True, True)],
        "CampaignMember": [member("00v1", "701W", True)],
        "Campaign": [row("Campaign", "701W", Name="Scoring 101", Type="Webinar")],
        "Task": [row("Task", "00T1", WhoId="00QA", IsClosed=True, TaskSubtype="Call",
                     CreatedDate=T1, SystemModstamp=T1)],
        "Event": [row("Event", "00U1", WhoId="00QB", IsDeleted=False, CreatedDate=T1,
                      SystemModstamp=T1)],
    }  # fmt: skip
    block = SalesforceSettings.model_validate(settings())
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).respond(200, json=token())
        serve(router, FakeOrg(rows, page_size=2))
        connector = get_connector("salesforce")()
        case = SourceCase(
            "sf",
            lambda: connector.source(block, SourceContext("sf", tmp_path)),
            cursor_order=lambda c: (c["modstamp"], c["id"]),
            expect_quarantined=1,
        )
        check_source(store, case)


def test_too_many_concurrent_requests_are_backed_off_and_retried(tmp_path: Path) -> None:
    concurrent = [{"message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                   "errorCode": "REQUEST_LIMIT_EXCEEDED"}]  # fmt: skip
    with respx.mock() as router:
        router.post(TOKEN_URL).respond(200, json=token())
        query = router.get(f"{API}/queryAll")
        query.side_effect = [httpx.Response(403, json=concurrent),
                             httpx.Response(200, json=page([lead()]))]  # fmt: skip
        found = items(list(stream(source(tmp_path), "leads").read(None)))
    assert len(found) == 1 and query.call_count == 2


def test_a_next_page_link_off_the_org_host_is_not_followed(tmp_path: Path) -> None:
    with respx.mock() as router:
        router.post(TOKEN_URL).respond(200, json=token())
        elsewhere = "https://collector.example.net/services/data/v62.0/query/01g-2"
        router.get(f"{API}/queryAll").respond(200, json=page([lead()], elsewhere, 2))
        with pytest.raises(SourceError, match="off the org's host"):
            list(stream(source(tmp_path), "leads").read(None))


def test_each_page_says_how_many_rows_the_query_still_holds(
    tmp_path: Path, org: respx.MockRouter
) -> None:
    """`totalSize` is the whole result's row count on every page (§2): left = total - rows read."""
    ids = [f"00Q{i:015d}" for i in range(5)]
    more = "/services/data/v62.0/query/01gRO0000016PIAYA2-"  # a `nextRecordsUrl` (§2)
    answers = iter([
        page([lead(ids[0], T1), lead(ids[1], T1)], f"{more}2", total=5),
        page([lead(ids[2], T1), lead(ids[3], T1)], f"{more}4", total=5),
        page([lead(ids[4], T2)], total=5),
    ])  # fmt: skip
    org.get(url__regex=rf"^{re.escape(API)}/(queryAll|query/)").mock(
        side_effect=lambda request: httpx.Response(200, json=next(answers))
    )
    pages = list(stream(source(tmp_path), "leads").read(None))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [p.left for p in pages] == [5 - 2, 5 - 4, 5 - 5]
