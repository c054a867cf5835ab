"""The Graph client with respx: paging, filtering, auth and appsecret_proof, error codes, usage."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
import respx

from connectors.facebook_leads.client import GraphClient
from connectors.facebook_leads.source import FacebookLeadsSource
from core.errors import AuthError, RateLimited, RequestRejected, SourceError, TransientError
from tests.connectors.facebook_leads.payloads import (
    APP_SECRET,
    FORM_ID,
    FORMS_PAGE,
    GRAPH,
    LEADS_PAGE,
    PAGE_ID,
    TOKEN,
    buc_usage,
    graph_error,
    settings,
)

LEADS_URL = f"{GRAPH}/{FORM_ID}/leads"


def client(waits: list[float] | None = None, **overrides: Any) -> GraphClient:
    sleep = waits.append if waits is not None else (lambda _: None)
    return GraphClient("fb", settings(**overrides), sleep=sleep)


def source(waits: list[float] | None = None, **overrides: Any) -> FacebookLeadsSource:
    sleep = waits.append if waits is not None else (lambda _: None)
    return FacebookLeadsSource("fb", settings(form_ids=[FORM_ID], **overrides), sleep=sleep)


def mock_form() -> None:
    respx.get(f"{GRAPH}/{FORM_ID}").respond(json=FORMS_PAGE["data"][0])


def lead(lead_id: str, created: str) -> dict[str, Any]:
    return {**LEADS_PAGE["data"][0], "id": lead_id, "created_time": created}


# -- paging and filtering ------------------------------------------------------------------------


@respx.mock
def test_an_empty_page_with_next_does_not_stop_the_read_only_a_missing_next_does() -> None:
    pages = {
        None: {"data": [], "paging": {"next": f"{LEADS_URL}?limit=100&after=A"}},
        "A": {**LEADS_PAGE, "paging": {**LEADS_PAGE["paging"], "next": f"{LEADS_URL}?after=B"}},
        "B": {"data": [lead("2", "2018-03-01T10:00:00+0000")], "paging": {"cursors": {}}},
    }
    route = respx.get(LEADS_URL).mock(
        side_effect=lambda req: httpx.Response(200, json=pages[req.url.params.get("after")])
    )

    read = [page for page in client().leads(FORM_ID, None)]

    assert [len(p) for p in read] == [0, 1, 1]
    assert route.call_count == 3
    followed = route.calls[1].request.url.params
    assert followed["after"] == "A" and followed["limit"] == "100"  # the link's own query
    assert followed["access_token"] == TOKEN  # and the credentials, on every page


@respx.mock
def test_filtering_is_time_created_in_unix_seconds_from_the_bookmark_minus_the_overlap() -> None:
    mock_form()
    route = respx.get(LEADS_URL).respond(json=LEADS_PAGE)
    cursor = {"forms": {FORM_ID: 1519807754}}

    pages = list(source(overlap_seconds=600).streams()[0].read(cursor))

    [condition] = json.loads(route.calls[0].request.url.params["filtering"])
    assert condition == {
        "field": "time_created", "operator": "GREATER_THAN_OR_EQUAL", "value": 1519807154,
    }  # fmt: skip
    # The overlap read the bookmark's own lead again: nothing newer, so no cursor to save.
    assert [p.cursor for p in pages] == [None]


@respx.mock
def test_the_first_read_has_no_filter_unless_a_start_time_is_set() -> None:
    mock_form()
    route = respx.get(LEADS_URL).respond(json=LEADS_PAGE)
    list(source().streams()[0].read(None))
    list(source(start_time="2018-01-01T00:00:00Z", filter_operator="GREATER_THAN").streams()[0]
         .read(None))  # fmt: skip

    assert "filtering" not in route.calls[0].request.url.params
    [condition] = json.loads(route.calls[1].request.url.params["filtering"])
    assert condition["value"] == 1514764800 and condition["operator"] == "GREATER_THAN"


@respx.mock
def test_every_form_of_the_page_is_read_unless_deleted_and_forms_can_be_listed() -> None:
    forms = respx.get(f"{GRAPH}/{PAGE_ID}/leadgen_forms").respond(json=FORMS_PAGE)
    leads = respx.get(LEADS_URL).respond(json=LEADS_PAGE)
    src = FacebookLeadsSource("fb", settings())

    items = [i for page in src.streams()[0].read(None) for i in page.items]

    assert (
        forms.called and "questions{key,label,type}" in forms.calls[0].request.url.params["fields"]
    )
    assert leads.call_count == 1  # the DELETED form is skipped
    assert len(items) == 2


@respx.mock
def test_a_next_link_to_another_host_is_refused_so_the_token_stays_with_graph() -> None:
    page = {"data": [], "paging": {"next": "https://evil.example/v25.0/x?after=A"}}
    respx.get(LEADS_URL).respond(json=page)

    with pytest.raises(SourceError, match=r"paging\.next points away"):
        list(client().leads(FORM_ID, None))


# -- auth ----------------------------------------------------------------------------------------


@respx.mock
def test_appsecret_proof_is_the_hmac_sha256_of_the_token_keyed_with_the_app_secret() -> None:
    route = respx.get(f"{GRAPH}/{FORM_ID}").respond(json={"id": FORM_ID, "name": "My Form"})

    client(app_secret=APP_SECRET).form(FORM_ID)

    params = route.calls[0].request.url.params
    expected = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert params["appsecret_proof"] == expected
    assert params["access_token"] == TOKEN


@respx.mock
def test_without_an_app_secret_no_proof_and_the_token_can_go_in_a_bearer_header() -> None:
    route = respx.get(f"{GRAPH}/{FORM_ID}").respond(json={"id": FORM_ID})

    client(token_in="header").form(FORM_ID)

    request = route.calls[0].request
    assert "appsecret_proof" not in request.url.params
    assert "access_token" not in request.url.params
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@respx.mock
@pytest.mark.parametrize(("subcode", "why"), [(463, "has expired"), (460, "password was changed")])
def test_error_190_is_an_auth_error_that_says_to_renew_the_token(subcode: int, why: str) -> None:
    route = respx.get(LEADS_URL).respond(400, json=graph_error(190, subcode))

    with pytest.raises(AuthError) as caught:
        list(client(app_secret=APP_SECRET).leads(FORM_ID, None))

    message = str(caught.value)
    assert message.startswith("facebook_leads source 'fb':")
    assert why in message and "renew the token" in message
    assert "sources.fb.access_token" in message
    assert TOKEN not in message and APP_SECRET not in message
    assert route.call_count == 1  # never retried


@respx.mock
@pytest.mark.parametrize("code", [10, 200, 283])
def test_a_missing_permission_is_an_auth_error_naming_the_permissions(code: int) -> None:
    respx.get(LEADS_URL).respond(403, json=graph_error(code))

    with pytest.raises(AuthError, match="leads_retrieval"):
        list(client().leads(FORM_ID, None))


@respx.mock
def test_a_refused_appsecret_proof_points_at_the_app_secret_setting() -> None:
    body = {"error": {"message": "Invalid appsecret_proof provided in the API argument",
                      "type": "GraphMethodException", "code": 100}}  # fmt: skip
    respx.get(LEADS_URL).respond(400, json=body)

    with pytest.raises(AuthError, match=r"sources\.fb\.app_secret"):
        list(client(app_secret="wrong-secret").leads(FORM_ID, None))


# -- throttling and transient errors -------------------------------------------------------------


@respx.mock
@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80004, 80005])
def test_throttling_codes_wait_for_the_estimated_time_to_regain_access(code: int) -> None:
    route = respx.get(LEADS_URL).mock(
        side_effect=[
            httpx.Response(400, json=graph_error(code), headers=buc_usage(100, regain_minutes=1)),
            httpx.Response(200, json=LEADS_PAGE),
        ]
    )
    waits: list[float] = []

    [page] = list(client(waits).leads(FORM_ID, None))

    assert waits == [60.0]  # minutes in the header, seconds here
    assert route.call_count == 2 and len(page) == 1


@respx.mock
def test_a_throttle_longer_than_max_wait_ends_the_run_with_rate_limited_to_reschedule() -> None:
    respx.get(LEADS_URL).respond(400, json=graph_error(80005), headers=buc_usage(100, 10))
    waits: list[float] = []

    with pytest.raises(RateLimited) as caught:
        list(client(waits, max_wait_seconds=120).leads(FORM_ID, None))

    assert caught.value.retry_after == 600 and waits == []
    assert "throttled by Meta" in str(caught.value)


@respx.mock
@pytest.mark.parametrize(
    "first",
    [
        httpx.Response(500, json=graph_error(2, is_transient=True)),
        httpx.Response(400, json=graph_error(1)),
        httpx.Response(503, text="upstream unavailable"),
        httpx.Response(429, headers={"Retry-After": "3"}),
    ],
)
def test_transient_codes_5xx_and_429_are_retried(first: httpx.Response) -> None:
    route = respx.get(LEADS_URL).mock(side_effect=[first, httpx.Response(200, json=LEADS_PAGE)])

    assert len(next(client().leads(FORM_ID, None))) == 1
    assert route.call_count == 2


@respx.mock
def test_a_transient_error_that_persists_gives_up_after_the_bounded_attempts() -> None:
    route = respx.get(LEADS_URL).respond(500, json=graph_error(2, is_transient=True))

    with pytest.raises(TransientError, match="Graph error 2"):
        list(client().leads(FORM_ID, None))
    assert route.call_count == 5


@respx.mock
def test_an_invalid_parameter_is_rejected_at_once() -> None:
    body = graph_error(100, message="(#100) The After Cursor specified exceeds the max limit")
    route = respx.get(LEADS_URL).respond(400, json=body)

    with pytest.raises(RequestRejected, match="Graph error 100"):
        list(client().leads(FORM_ID, None))
    assert route.call_count == 1


@respx.mock
def test_high_usage_in_the_headers_spaces_out_the_next_request() -> None:
    usage = {"X-App-Usage": json.dumps({"call_count": 90, "total_time": 25, "total_cputime": 25})}
    page = {**LEADS_PAGE, "paging": {"next": f"{LEADS_URL}?after=A"}}
    respx.get(LEADS_URL).mock(
        side_effect=[
            httpx.Response(200, json=page, headers=usage),
            httpx.Response(200, json=LEADS_PAGE),
        ]
    )
    waits: list[float] = []

    list(client(waits).leads(FORM_ID, None))

    assert len(waits) == 1 and 15 <= waits[0] <= 20  # 90 % is 60 % of the way from 75 to 100
