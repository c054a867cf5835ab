"""The Mailchimp source on documented payloads: members, engagement, per-campaign bookmarks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from connectors.base import Invalid, Item, Page, SourceContext, get_connector
from connectors.mailchimp import MailchimpSource, MailchimpSourceSettings
from connectors.mailchimp.sandbox.app import LIST_ID, SANDBOX_API_KEY, create_app
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.pipeline.pull import pull_source
from core.records import ActivityRecord, LeadRecord
from core.store.store import Store
from tests.conformance.suite import SourceCase, check_source
from tests.connectors.mailchimp.payloads import (
    ADA_ID,
    API_KEY,
    BOUNCE,
    CAMPAIGN,
    CLICK,
    LIST,
    OPEN,
    ROOT,
    activity_page,
    activity_row,
    campaign,
    campaigns_page,
    member,
    members_page,
    unsubscribe,
    unsubscribes_page,
)

NOW = datetime(2026, 5, 10, tzinfo=UTC)
MEMBERS = f"{ROOT}/lists/{LIST}/members"


def source(**settings: Any) -> MailchimpSource:
    block = MailchimpSourceSettings.model_validate(
        {"api_key": API_KEY, "list_ids": [LIST], "overlap_seconds": 0, **settings}
    )
    return MailchimpSource("mc", block, now=lambda: NOW, sleep=lambda _: None)


def read(stream_name: str, cursor: dict[str, Any] | None = None, **settings: Any) -> list[Page]:
    [stream] = [s for s in source(**settings).streams() if s.name == stream_name]
    return list(stream.read(cursor))


def items(pages: list[Page]) -> list[Item]:
    return [i for p in pages for i in p.items]


# -- members -------------------------------------------------------------------------------------


@respx.mock
def test_members_map_merge_fields_location_and_configured_tags() -> None:
    ada = member(merge_fields={"FNAME": "Ada", "LNAME": "Lovelace", "PHONE": "+44 20 7946 0000",
                               "COMPANY": "Analytical Engines", "JOBTITLE": "Countess",
                               "ADDRESS": {"addr1": "1 St", "city": "London", "country": "GB"},
                               "LSCORE": 42, "NICKNAME": ""})  # fmt: skip
    respx.get(MEMBERS).respond(200, json=members_page([ada]))
    [lead] = items(read("members", merge_fields={"jobtitle": "job_title"},
                        ignore_merge_fields=["LSCORE"]))  # fmt: skip
    assert isinstance(lead, LeadRecord)
    assert (lead.external_id, lead.email, lead.first_name, lead.last_name) == (
        ADA_ID, "ada@example.com", "Ada", "Lovelace")  # fmt: skip
    assert (lead.phone, lead.company, lead.job_title) == (
        "+44 20 7946 0000", "Analytical Engines", "Countess")  # fmt: skip
    assert (lead.city, lead.country) == ("London", "GB")  # ADDRESS beats location.country_code
    assert lead.channel == "email"
    assert lead.custom == {"member_rating": 4, "mailchimp_status": "subscribed"}
    assert lead.updated_at == datetime(2020, 12, 31, 6, 55, 17, tzinfo=UTC)


@respx.mock
def test_unsubscribed_and_cleaned_members_add_activities() -> None:
    gone = member(status="unsubscribed", unsubscribe_reason="Too many emails")
    cleaned = member(id="b" * 32, email_address="bob@example.com", status="cleaned",
                     last_changed="2026-05-03T08:00:00+00:00")  # fmt: skip
    respx.get(MEMBERS).respond(200, json=members_page([gone, cleaned]))
    found = [i for i in items(read("members")) if isinstance(i, ActivityRecord)]
    assert [(a.type, a.lead, a.external_id) for a in found] == [
        ("unsubscribed", "ada@example.com", f"{LIST}:{ADA_ID}:unsubscribed"),
        ("email_bounced", "bob@example.com", f"{LIST}:{'b' * 32}:cleaned"),
    ]
    assert found[0].properties == {"list_id": LIST, "via": "status", "reason": "Too many emails"}
    assert found[1].occurred_at == datetime(2026, 5, 3, 8, tzinfo=UTC)


@respx.mock
def test_an_archived_member_is_a_deleted_identity_and_a_subscribed_one_is_not() -> None:
    # Mailchimp lists archived members with status "archived": they left the audience, so the
    # hub must not write to them (a batch write would add them back).
    archived = member(status="archived")
    live = member(id="b" * 32, email_address="bob@example.com", status="subscribed")
    respx.get(MEMBERS).respond(200, json=members_page([archived, live]))
    leads = [i for i in items(read("members")) if isinstance(i, LeadRecord)]
    assert [(lead.email, lead.deleted) for lead in leads] == [
        ("ada@example.com", True),
        ("bob@example.com", False),
    ]


@respx.mock
def test_a_bad_member_is_quarantined_and_the_page_goes_on() -> None:
    bad = member(id="c" * 32, email_address="not an address")
    respx.get(MEMBERS).respond(200, json=members_page([bad, member()]))
    found = items(read("members"))
    assert [type(i).__name__ for i in found] == ["Invalid", "LeadRecord"]
    invalid = found[0]
    assert isinstance(invalid, Invalid)
    assert "email" in invalid.reason and invalid.record_ref == f"member {LIST}:{'c' * 32}"


@respx.mock
def test_members_are_read_incrementally_in_utc_with_count_1000() -> None:
    route = respx.get(MEMBERS).respond(200, json=members_page([member(
        last_changed="2026-05-04T12:00:00+00:00")]))  # fmt: skip
    pages = read("members", {"lists": {LIST: "2026-05-01T00:00:00+00:00"}}, overlap_seconds=60)
    params = route.calls.last.request.url.params
    assert params["since_last_changed"] == "2026-04-30T23:59:00+00:00"
    assert (params["count"], params["offset"]) == ("1000", "0")
    assert (params["sort_field"], params["sort_dir"]) == ("last_changed", "DESC")
    assert "members.merge_fields" in params["fields"] and " " not in params["fields"]
    assert pages[-1].cursor == {"lists": {LIST: "2026-05-04T12:00:00+00:00"}}


@respx.mock
def test_the_members_cursor_comes_with_the_last_page_only() -> None:
    people = [
        member(id=f"{i:032x}", email_address=f"p{i}@example.com",
               last_changed=f"2026-05-0{9 - i}T00:00:00+00:00")
        for i in range(3)
    ]  # fmt: skip
    respx.get(MEMBERS).mock(side_effect=[
        httpx.Response(200, json=members_page(people[:2], 3)),
        httpx.Response(200, json=members_page(people[2:], 3)),
    ])  # fmt: skip
    pages = read("members", page_size=2)
    assert [p.cursor for p in pages] == [None, {"lists": {LIST: "2026-05-09T00:00:00+00:00"}}]


@respx.mock
def test_each_members_page_says_how_many_the_audience_still_holds() -> None:
    """`total_items` is the list's size on every page: left = total_items - members read."""
    people = [
        member(id=f"{i:032x}", email_address=f"p{i}@example.com",
               last_changed=f"2026-05-0{9 - i}T00:00:00+00:00")
        for i in range(5)
    ]  # fmt: skip
    respx.get(MEMBERS).mock(side_effect=[
        httpx.Response(200, json=members_page(people[:2], 5)),
        httpx.Response(200, json=members_page(people[2:4], 5)),
        httpx.Response(200, json=members_page(people[4:], 5)),
    ])  # fmt: skip
    pages = read("members", page_size=2)
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [p.left for p in pages] == [5 - 2, 5 - 4, 5 - 5]


# -- engagement ----------------------------------------------------------------------------------


def engagement_routes(cids: list[str]) -> dict[str, respx.Route]:
    routes = {"campaigns": respx.get(f"{ROOT}/campaigns").respond(
        200, json=campaigns_page(*[campaign(c) for c in cids]))}  # fmt: skip
    for cid in cids:
        routes[cid] = respx.get(f"{ROOT}/reports/{cid}/email-activity").respond(
            200, json=activity_page(cid=cid)
        )
        respx.get(f"{ROOT}/reports/{cid}/unsubscribed").respond(
            200, json=unsubscribes_page(cid=cid)
        )
    return routes


@respx.mock
def test_opens_clicks_and_bounces_stay_distinct() -> None:
    routes = engagement_routes([CAMPAIGN])
    routes[CAMPAIGN].respond(200, json=activity_page(activity_row(OPEN, CLICK, BOUNCE)))
    found = items(read("email_activity"))
    assert [a.type for a in found if isinstance(a, ActivityRecord)] == [
        "email_opened", "email_clicked", "email_bounced"]  # fmt: skip
    opened, clicked, bounced = found
    assert isinstance(clicked, ActivityRecord) and isinstance(bounced, ActivityRecord)
    assert clicked.properties == {"campaign": f"news {CAMPAIGN}", "campaign_id": CAMPAIGN,
                                  "url": "https://x.test/pricing"}  # fmt: skip
    assert bounced.properties["bounce_type"] == "hard"
    assert clicked.lead == "ada@example.com"
    assert isinstance(opened, ActivityRecord)
    assert opened.external_id == f"{CAMPAIGN}:{ADA_ID}:open:2026-05-02T10:01:00+00:00"


@respx.mock
def test_campaigns_come_from_the_lookback_window() -> None:
    routes = engagement_routes([])
    read("email_activity", lookback_days=7)
    params = routes["campaigns"].calls.last.request.url.params
    assert (params["status"], params["since_send_time"]) == ("sent", "2026-05-03T00:00:00+00:00")
    assert (params["sort_field"], params["sort_dir"], params["list_id"]) == (
        "send_time", "ASC", LIST)  # fmt: skip


@respx.mock
def test_each_campaign_reads_since_its_own_bookmark() -> None:
    routes = engagement_routes(["c1", "c2", "c3"])
    later = {**OPEN, "timestamp": "2026-05-06T00:00:00+00:00"}
    routes["c2"].respond(200, json=activity_page(activity_row(later, cid="c2"), cid="c2"))
    cursor = {"campaigns": {"c1": {"activity": "2026-05-02T00:00:00+00:00"},
                            "c2": {"activity": "2026-05-05T00:00:00+00:00"},
                            "gone": {"activity": "2026-01-01T00:00:00+00:00"}}}  # fmt: skip
    pages = read("email_activity", cursor, campaign_unsubscribes=False)
    since = {c: routes[c].calls.last.request.url.params.get("since") for c in ("c1", "c2", "c3")}
    assert since == {"c1": "2026-05-02T00:00:00+00:00", "c2": "2026-05-05T00:00:00+00:00",
                     "c3": None}  # fmt: skip
    # Only c2 moved; the campaign that left the window is dropped.
    assert [p.cursor for p in pages] == [{"campaigns": {
        "c1": {"activity": "2026-05-02T00:00:00+00:00"},
        "c2": {"activity": "2026-05-06T00:00:00+00:00"}}}]  # fmt: skip


@respx.mock
def test_campaign_unsubscribes_are_filtered_here_since_the_report_has_no_since() -> None:
    engagement_routes([CAMPAIGN])
    respx.get(f"{ROOT}/reports/{CAMPAIGN}/unsubscribed").respond(200, json=unsubscribes_page(
        unsubscribe("2026-05-01T00:00:00+00:00"),
        unsubscribe("2026-05-04T00:00:00+00:00", email="bob@example.com")))  # fmt: skip
    cursor = {"campaigns": {CAMPAIGN: {"unsubscribed": "2026-05-02T00:00:00+00:00"}}}
    pages = read("email_activity", cursor)
    [unsub] = items(pages)
    assert isinstance(unsub, ActivityRecord)
    assert (unsub.type, unsub.lead, unsub.properties["reason"]) == (
        "unsubscribed", "bob@example.com", "Too many emails")  # fmt: skip
    assert pages[-1].cursor == {"campaigns": {CAMPAIGN: {
        "unsubscribed": "2026-05-04T00:00:00+00:00"}}}  # fmt: skip


@respx.mock
def test_nothing_new_gives_no_cursor() -> None:
    engagement_routes([CAMPAIGN])
    assert (
        read("email_activity", {"campaigns": {CAMPAIGN: {"activity": "2026-05-02T00:00:00+00:00"}}})
        == []
    )


def test_registered_under_its_entry_point() -> None:
    connector = get_connector("mailchimp")()
    settings = connector.settings_model.model_validate(
        {"connector": "mailchimp", "api_key": API_KEY, "list_ids": [LIST]})  # fmt: skip
    assert isinstance(connector.source(settings, SourceContext("mc")), MailchimpSource)


@respx.mock
def test_each_email_activity_page_says_how_many_recipients_the_report_still_holds() -> None:
    routes = engagement_routes([CAMPAIGN])
    rows = [activity_row(OPEN, email=f"p{i}@example.com", email_id=f"{i:032x}") for i in range(3)]
    routes[CAMPAIGN].mock(side_effect=[
        httpx.Response(200, json={**activity_page(*rows[:2]), "total_items": 3}),
        httpx.Response(200, json={**activity_page(*rows[2:]), "total_items": 3}),
    ])  # fmt: skip
    pages = read("email_activity", page_size=2)
    assert [len(p.items) for p in pages] == [2, 1]
    assert [p.left for p in pages] == [3 - 2, 3 - 3]


# -- conformance, against the sandbox over HTTP ---------------------------------------------------

WORLD = World.build(seed=11, people=200)


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve(create_app(WORLD)) as url:
        yield url


def test_conformance(store: Store, sandbox_url: str) -> None:
    settings = MailchimpSourceSettings(
        api_key=SANDBOX_API_KEY, base_url=sandbox_url, list_ids=[LIST_ID], lookback_days=365,
        page_size=50,
    )  # fmt: skip
    in_mailchimp = {p.key for p in WORLD.people if p.in_mailchimp}
    broken = len(in_mailchimp & set(WORLD.malformed))
    assert broken > 0, "the world should hold a malformed Mailchimp member"
    case = SourceCase(
        "mailchimp",
        lambda: MailchimpSource("mailchimp", settings, now=lambda: WORLD.now),
        expect_quarantined=broken,
    )
    check_source(store, case)


def test_a_sync_counts_down_the_members_left_to_read(store: Store, sandbox_url: str) -> None:
    """The progress callback of a pull hears, page by page, how many members the audience still
    holds: the sandbox's member count less the members read, down to none."""
    settings = MailchimpSourceSettings(
        api_key=SANDBOX_API_KEY, base_url=sandbox_url, list_ids=[LIST_ID], page_size=50,
        campaign_unsubscribes=False,
    )  # fmt: skip
    state = httpx.get(f"{sandbox_url}/__sandbox/state", params={"members": 1}).json()
    members = len(state["members"])
    heard: list[tuple[str, int | None]] = []
    source = MailchimpSource("mc-left", settings, now=lambda: WORLD.now)
    result = pull_source(
        store, "mc-left", source, progress=lambda stream, _, left: heard.append((stream, left))
    )
    assert result.ok, result.error
    lefts = [left for stream, left in heard if stream == "members"]
    pages = -(-members // 50)
    assert lefts == [max(members - 50 * (n + 1), 0) for n in range(pages)]
    assert lefts[-1] == 0
