"""The HubSpot source on documented payloads: list and search paging, the 10,000 cap, overlap,
property chunks, archived and merged contacts, outcomes, email events and forms."""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa

from connectors.base.contract import Invalid, Page, Stream
from connectors.hubspot.mapping import contact_items
from connectors.hubspot.source import HubSpotSource
from core.http import LocalRateBudget
from core.pipeline.pull import pull_source
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store
from tests.connectors.hubspot.payloads import (
    API,
    CONTACTS,
    EVENTS,
    SEARCH,
    T0,
    FakeTime,
    contact,
    email_event,
    iso,
    page,
    settings,
)


def make_source(tmp_path: Path, t: FakeTime | None = None, **block: Any) -> HubSpotSource:
    t = t or FakeTime()
    s = settings(**block)
    return HubSpotSource(
        "crm",
        s,
        base_dir=tmp_path,
        sleep=t.sleep,
        clock=t,
        budget=LocalRateBudget(10_000, 10.0, clock=t, sleep=t.sleep),
    )


def stream(source: HubSpotSource, name: str) -> Stream:
    return next(s for s in source.streams() if s.name == name)


def leads(pages: list[Page]) -> list[LeadRecord]:
    return [i for p in pages for i in p.items if isinstance(i, LeadRecord)]


class FakeSearch:
    """HubSpot's search over `rows` (id, modified ms): filters on lastmodifieddate and
    hs_object_id, one ascending sort, `limit`/`after` paging and the result cap (400 beyond)."""

    def __init__(self, rows: list[tuple[int, int]], cap: int = 10_000) -> None:
        self.rows, self.cap = rows, cap
        self.by_time = sorted(rows, key=lambda r: (r[1], r[0]))
        self.times = [r[1] for r in self.by_time]
        self.bodies: list[dict[str, Any]] = []

    def matching(self, filters: list[dict[str, str]], by_id: bool) -> list[tuple[int, int]]:
        [first, *rest] = filters
        if not rest and not by_id and first["operator"] in ("GT", "GTE"):  # the common case, fast
            cut = bisect_right if first["operator"] == "GT" else bisect_left
            return self.by_time[cut(self.times, int(first["value"])) :]
        found = [r for r in self.rows if all(self._match(r, f) for f in filters)]
        return sorted(found, key=lambda r: (r[0],) if by_id else (r[1], r[0]))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        after, limit = int(body["after"]), int(body["limit"])
        if after >= self.cap:
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": "limited to 10,000 total results",
                },
            )
        by_id = body["sorts"][0]["propertyName"] == "hs_object_id"
        found = self.matching(body["filterGroups"][0]["filters"], by_id)
        chunk = found[after : min(after + limit, self.cap)]
        answer: dict[str, Any] = {
            "total": len(found),
            "results": [contact(cid, ms) for cid, ms in chunk],
        }
        if after + limit < len(found):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return httpx.Response(200, json=answer)

    @staticmethod
    def _match(row: tuple[int, int], f: dict[str, str]) -> bool:
        value = row[1] if f["propertyName"] == "lastmodifieddate" else row[0]
        wanted = int(f["value"])
        ops = {"GTE": value >= wanted, "GT": value > wanted, "EQ": value == wanted}
        return ops[f["operator"]]


def search_run(tmp_path: Path, rows: list[tuple[int, int]], since: int, **block: Any) -> Any:
    fake = FakeSearch(rows, cap=block.get("search_cap", 10_000))
    respx.post(SEARCH).mock(side_effect=fake)
    source = make_source(tmp_path, overlap_seconds=0, **block)
    pages = list(stream(source, "contacts").read({"phase": "search", "since": since}))
    return fake, pages


# -- contacts: first sync --------------------------------------------------------------------------


@respx.mock
def test_the_first_sync_pages_the_list_endpoint_with_no_10000_cap(tmp_path: Path) -> None:
    total = 10_250

    def listing(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("after") or 1)
        ids = list(range(start, min(start + 100, total + 1)))
        after = str(ids[-1] + 1) if ids[-1] < total else None
        return httpx.Response(200, json=page([contact(i) for i in ids], after))

    route = respx.get(CONTACTS).mock(side_effect=listing)
    t = FakeTime()
    pages = list(stream(make_source(tmp_path, t), "contacts").read(None))
    assert len({lead.external_id for lead in leads(pages)}) == total
    assert route.call_count == 103
    since = int(t.now * 1000) - 300_000  # the sync's start less the overlap
    assert pages[0].cursor == {"phase": "list", "after": "101", "since": since}
    assert pages[-1].cursor == {"phase": "search", "since": since}


@respx.mock
def test_a_list_sync_resumes_after_its_cursor(tmp_path: Path) -> None:
    route = respx.get(CONTACTS).respond(200, json=page([contact(501)]))
    cursor = {"phase": "list", "after": "501", "since": T0}
    pages = list(stream(make_source(tmp_path), "contacts").read(cursor))
    assert route.calls[0].request.url.params["after"] == "501"
    assert pages[-1].cursor == {"phase": "search", "since": T0}


# -- contacts: increments --------------------------------------------------------------------------


@respx.mock
def test_increments_restart_the_search_at_the_last_timestamp_before_the_cap(
    tmp_path: Path,
) -> None:
    rows = [(1000 + n, T0 + 1 + n) for n in range(12_000)]  # one change per millisecond
    fake, pages = search_run(tmp_path, rows, since=T0)

    ids = [lead.external_id for lead in leads(pages)]
    assert len(ids) == 12_000 and len(set(ids)) == 12_000  # none lost, none twice
    assert max(int(b["after"]) for b in fake.bodies) < 10_000  # never paged into the 400
    starts = [b["filterGroups"][0]["filters"][0] for b in fake.bodies if b["after"] == "0"]
    assert starts[0] == {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(T0)}
    # Each restart begins at the last timestamp read before the cap (that contact is re-read,
    # and dropped as a duplicate).
    assert [int(s["value"]) for s in starts[1:]] == [T0 + 10_000]
    assert all(s["operator"] == "GTE" for s in starts)
    assert all(
        b["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
        for b in fake.bodies
    )
    assert all(b["limit"] == 200 for b in fake.bodies)
    marks = [p.cursor["since"] for p in pages if p.cursor]
    assert marks == sorted(marks) and marks[-1] == T0 + 12_000


@respx.mock
def test_a_capped_window_within_one_millisecond_is_drained_by_object_id(tmp_path: Path) -> None:
    rows = [(5000 + n, T0 + 7) for n in range(1_000)] + [(9000 + n, T0 + 8 + n) for n in range(5)]
    fake, pages = search_run(tmp_path, rows, since=T0, search_cap=400)

    ids = [lead.external_id for lead in leads(pages)]
    assert len(ids) == len(set(ids)) == 1_005
    windows = [b["filterGroups"][0]["filters"] for b in fake.bodies]
    drains = [filters for filters in windows if len(filters) == 2]
    assert drains[0][0] == {
        "propertyName": "lastmodifieddate",
        "operator": "EQ",
        "value": str(T0 + 7),
    }
    assert drains[0][1]["propertyName"] == "hs_object_id" and drains[0][1]["operator"] == "GT"
    tail = fake.bodies[-1]["filterGroups"][0]["filters"]
    assert tail == [{"propertyName": "lastmodifieddate", "operator": "GT", "value": str(T0 + 7)}]


@respx.mock
def test_each_search_page_says_how_many_results_the_search_still_holds(tmp_path: Path) -> None:
    """A search answer states `total` (§search): left = total - results read so far."""
    answers = [
        {"total": 250, "results": [contact(i, T0 + i) for i in range(1, 201)],
         "paging": {"next": {"after": "200"}}},
        {"total": 250, "results": [contact(i, T0 + i) for i in range(201, 251)]},
    ]  # fmt: skip
    respx.post(SEARCH).mock(side_effect=[httpx.Response(200, json=a) for a in answers])
    source = make_source(tmp_path, overlap_seconds=0)
    pages = list(stream(source, "contacts").read({"phase": "search", "since": T0}))
    assert [len(p.items) for p in pages] == [200, 50]
    assert [p.left for p in pages] == [250 - 200, 250 - 250]


@respx.mock
def test_list_pages_state_no_total_so_none_is_left_unknown(tmp_path: Path) -> None:
    respx.get(CONTACTS).mock(side_effect=[
        httpx.Response(200, json=page([contact(1), contact(2)], "3")),
        httpx.Response(200, json=page([contact(3)])),
    ])  # fmt: skip
    pages = list(stream(make_source(tmp_path), "contacts").read(None))
    assert [p.left for p in pages] == [None, None]


@respx.mock
def test_the_search_starts_an_overlap_before_the_bookmark(tmp_path: Path) -> None:
    fake = FakeSearch([(1, T0 - 60_000), (2, T0 + 5)])
    respx.post(SEARCH).mock(side_effect=fake)
    source = make_source(tmp_path, overlap_seconds=120)
    pages = list(stream(source, "contacts").read({"phase": "search", "since": T0}))
    first = fake.bodies[0]["filterGroups"][0]["filters"][0]
    assert first["value"] == str(T0 - 120_000)
    assert [lead.external_id for lead in leads(pages)] == ["1", "2"]  # the late-indexed one too
    assert pages[-1].cursor == {"phase": "search", "since": T0 + 5}


@respx.mock
def test_an_early_400_from_the_cap_restarts_instead_of_failing(tmp_path: Path) -> None:
    """HubSpot's cap may come before the configured one: the 400 restarts the window too."""
    rows = [(100 + n, T0 + 1 + n) for n in range(700)]
    fake = FakeSearch(rows, cap=400)
    respx.post(SEARCH).mock(side_effect=fake)
    source = make_source(tmp_path, overlap_seconds=0)  # search_cap setting stays 10,000
    pages = list(stream(source, "contacts").read({"phase": "search", "since": T0}))
    assert len({lead.external_id for lead in leads(pages)}) == 700


@respx.mock
def test_long_property_lists_are_chunked_and_merged(tmp_path: Path) -> None:
    custom = [f"custom_account_attribute_number_{n:03d}_from_import" for n in range(250)]
    first = contact(7, lead_source_detail="webinar")

    def listing(request: httpx.Request) -> httpx.Response:
        asked = request.url.params["properties"].split(",")
        values = {p: f"value of {p}" for p in asked if p.startswith("custom_")}
        listed = {**first, "properties": {**first["properties"], **values}}
        return httpx.Response(200, json=page([listed]))

    def batch_read(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        props = {p: f"value of {p}" for p in body["properties"]}
        return httpx.Response(
            200,
            json={
                "status": "COMPLETE",
                "results": [{"id": i["id"], "properties": props} for i in body["inputs"]],
            },
        )

    listed = respx.get(CONTACTS).mock(side_effect=listing)
    read = respx.post(f"{CONTACTS}/batch/read").mock(side_effect=batch_read)
    source = make_source(tmp_path, properties=["lead_source_detail", *custom])
    pages = list(stream(source, "contacts").read(None))

    url = str(listed.calls[0].request.url)
    assert len(url) <= 4000 and "lead_source_detail" in url
    assert read.call_count >= 2
    [lead] = leads(pages)
    assert lead.custom["lead_source_detail"] == "webinar"
    assert lead.custom[custom[-1]] == f"value of {custom[-1]}"
    assert len(lead.custom) == 251


# -- what a contact becomes --------------------------------------------------------------------


def test_lifecycle_stage_and_lead_status_become_outcomes() -> None:
    s = settings()
    won = contact(
        1,
        lifecyclestage="customer",
        hs_lifecyclestage_customer_date=iso(T0),
        total_revenue="1200.50",
    )
    converted = contact(2, lifecyclestage="opportunity")
    lost = contact(3, lifecyclestage="lead", hs_lead_status="UNQUALIFIED")
    plain = contact(4, lifecyclestage="lead", hs_lead_status="OPEN")
    outcomes = {
        c["id"]: [i for i in contact_items("crm", c, s) if isinstance(i, OutcomeRecord)]
        for c in (won, converted, lost, plain)
    }
    assert [o.status for o in outcomes["1"]] == ["won"]
    assert outcomes["1"][0].amount == pytest.approx(1200.5) and outcomes["1"][0].closed_at
    assert [o.status for o in outcomes["2"]] == ["converted"]
    assert [o.status for o in outcomes["3"]] == ["lost"]
    assert outcomes["4"] == []


def test_a_contact_with_a_bad_email_is_quarantined_with_its_reason() -> None:
    [item] = contact_items("crm", contact(9, email="ada at example.com"), settings())
    assert isinstance(item, Invalid) and "email" in item.reason and item.record_ref == "contact 9"


@respx.mock
def test_merged_contacts_resolve_to_one_lead(store: Store, tmp_path: Path) -> None:
    survivor = contact(31, email="ada@example.com", hs_merged_object_ids="12;31;17")
    respx.get(CONTACTS).respond(200, json=page([survivor]))
    respx.get(EVENTS).respond(200, json={"hasMore": False, "offset": "x", "events": []})
    result = pull_source(store, "crm", make_source(tmp_path))
    assert result.ok, result.error
    with store.engine.connect() as conn:
        lead_ids = (
            conn.execute(sa.text("select distinct lead_id from identity where system = 'crm'"))
            .scalars()
            .all()
        )
        external = (
            conn.execute(
                sa.text(
                    "select external_id from identity where system = 'crm' order by external_id"
                )
            )
            .scalars()
            .all()
        )
    assert sorted(external) == ["12", "17", "31"]
    assert len(lead_ids) == 1


@respx.mock
def test_archived_contacts_become_deleted_leads_of_this_source(tmp_path: Path) -> None:
    gone = {**contact(44), "archived": True, "archivedAt": iso(T0 + 9_000)}
    route = respx.get(CONTACTS, params={"archived": "true"}).respond(200, json=page([gone]))
    pages = list(stream(make_source(tmp_path), "archived").read(None))
    [lead] = leads(pages)
    assert lead.deleted and lead.external_id == "44"
    assert route.calls[0].request.url.params["archived"] == "true"
    assert pages[-1].cursor == {"archived_since": T0 + 9_000}


# -- engagement ------------------------------------------------------------------------------------


@respx.mock
def test_email_events_page_by_offset_and_become_activities(tmp_path: Path) -> None:
    first = [
        email_event("e1", "OPEN", T0 + 1),
        email_event("e2", "CLICK", T0 + 2, url="https://example.com/pricing"),
        email_event("e3", "DELIVERED", T0 + 3),
        email_event("e4", "OPEN", T0 + 4, filteredEvent=True),  # a scanner's open
    ]
    second = [
        email_event("e5", "BOUNCE", T0 + 5, category="HARD_BOUNCE"),
        email_event(
            "e6",
            "STATUSCHANGE",
            T0 + 6,
            portalSubscriptionStatus="UNSUBSCRIBED",
            source="SOURCE_RECIPIENT",
            subscriptions=[{"id": 7, "status": "UNSUBSCRIBED"}],
        ),
        email_event("e7", "STATUSCHANGE", T0 + 7, portalSubscriptionStatus="SUBSCRIBED"),
        email_event("e8", "SPAMREPORT", T0 + 8),
    ]
    route = respx.get(EVENTS).mock(
        side_effect=[
            httpx.Response(200, json={"hasMore": True, "offset": "abc", "events": first}),
            httpx.Response(200, json={"hasMore": False, "offset": "def", "events": second}),
        ]
    )
    t = FakeTime()
    pages = list(stream(make_source(tmp_path, t), "email_events").read(None))

    params = [c.request.url.params for c in route.calls]
    assert params[0]["excludeFilteredEvents"] == "true" and "offset" not in params[0]
    assert params[1]["offset"] == "abc"
    acts = [i for p in pages for i in p.items if isinstance(i, ActivityRecord)]
    assert [(a.external_id, a.type) for a in acts] == [
        ("email-e1", "email_opened"),
        ("email-e2", "email_clicked"),
        ("email-e5", "email_bounced"),
        ("email-e6", "unsubscribed"),
        ("email-e8", "spam_reported"),
    ]
    assert acts[1].properties["url"] == "https://example.com/pricing"
    assert {a.lead for a in acts} == {"ada@example.com"}
    now_ms = int(t.now * 1000)
    assert pages[0].cursor == {
        "start": int(params[0]["startTimestamp"]),
        "end": now_ms,
        "offset": "abc",
    }
    assert pages[-1].cursor == {"since": now_ms}


@respx.mock
def test_configured_form_submissions_become_form_submitted(tmp_path: Path) -> None:
    guid = "5f7a1c0e-0000-4000-8000-00000000f0e1"
    submission = {
        "conversionId": "conv-1",
        "submittedAt": T0,
        "pageUrl": "https://ex.com/quote",
        "values": [{"name": "email", "value": "ada@example.com"}],
    }
    respx.get(f"{API}/form-integrations/v1/submissions/forms/{guid}").respond(
        200, json={"results": [submission]}
    )
    pages = list(stream(make_source(tmp_path, form_ids=[guid]), "form_submissions").read(None))
    [act] = [i for p in pages for i in p.items]
    assert isinstance(act, ActivityRecord) and act.type == "form_submitted"
    assert act.lead == "ada@example.com" and act.properties["form"] == guid
    assert pages[-1].cursor == {"forms": {guid: T0}}
