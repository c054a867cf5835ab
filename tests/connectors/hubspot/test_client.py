"""The HubSpot client: auth (token, OAuth refresh and rotation), path versions, rate limits."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.settings import HubSpotSettings
from core.errors import AuthError, RateLimited
from core.http import LocalRateBudget
from tests.connectors.hubspot.payloads import (
    API,
    BAD_REFRESH,
    CONTACTS,
    EXPIRED,
    SEARCH,
    TOKEN,
    TOKEN_URL,
    FakeTime,
    contact,
    page,
    rate_limit_body,
    settings,
    token_body,
    token_file,
)

OAUTH = {"client_id": "app-7f3", "client_secret": "shh-client-secret", "refresh_token": "na1-r1"}


def make_client(tmp_path: Path, t: FakeTime, block: HubSpotSettings) -> HubSpotClient:
    budget = LocalRateBudget(block.burst_rate, 10.0, clock=t, sleep=t.sleep)
    return HubSpotClient(
        block,
        where="sources.crm",
        label="hubspot source 'crm'",
        token_file=token_file(tmp_path),
        sleep=t.sleep,
        clock=t,
        budget=budget,
    )


def search_body() -> dict[str, Any]:
    return {"filterGroups": [], "limit": 200, "after": "0"}


# -- auth and paths --------------------------------------------------------------------------------


@respx.mock
def test_a_private_app_token_goes_as_bearer_on_v3_paths(tmp_path: Path) -> None:
    route = respx.get(CONTACTS).respond(200, json=page([contact(1)]))
    client = make_client(tmp_path, FakeTime(), settings())
    client.list_contacts(["email"], None)
    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.url.params["limit"] == "100" and sent.url.params["archived"] == "false"


@respx.mock
def test_the_dated_api_version_uses_the_dated_paths(tmp_path: Path) -> None:
    listed = respx.get(f"{API}/crm/objects/2026-03/contacts").respond(200, json=page([]))
    searched = respx.post(f"{API}/crm/objects/2026-03/contacts/search").respond(
        200, json={"total": 0, "results": []}
    )
    prop = respx.get(f"{API}/crm/properties/2026-03/contacts/leadhub_score").respond(404, json={})
    client = make_client(tmp_path, FakeTime(), settings(api_version="2026-03"))
    client.list_contacts(["email"], None)
    client.search_contacts(search_body())
    assert client.get_property("leadhub_score") is None
    assert listed.called and searched.called and prop.called


@respx.mock
def test_a_refused_token_names_the_setting_and_never_shows_the_token(tmp_path: Path) -> None:
    body = {
        "status": "error",
        "message": "Authentication credentials not found.",
        "category": "INVALID_AUTHENTICATION",
    }
    respx.get(CONTACTS).respond(401, json=body)
    client = make_client(tmp_path, FakeTime(), settings())
    with pytest.raises(AuthError) as failed:
        client.list_contacts(["email"], None)
    message = str(failed.value)
    assert "`sources.crm.token`" in message and "Authentication credentials not found" in message
    assert TOKEN not in message


# -- OAuth -----------------------------------------------------------------------------------------


@respx.mock
def test_oauth_refreshes_ahead_of_expiry_and_persists_a_rotated_refresh_token(
    tmp_path: Path,
) -> None:
    grants = respx.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(200, json=token_body("access-1", "na1-r2")),
            httpx.Response(200, json=token_body("access-2", "na1-r3")),
        ]
    )
    api = respx.get(CONTACTS).respond(200, json=page([]))
    t = FakeTime()
    client = make_client(tmp_path, t, settings(oauth=OAUTH))

    client.list_contacts(["email"], None)
    form = parse_qs(grants.calls[0].request.content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["na1-r1"]
    assert form["client_id"] == ["app-7f3"]
    assert api.calls[0].request.headers["Authorization"] == "Bearer access-1"
    saved = token_file(tmp_path)
    assert json.loads(saved.read_text())["refresh_token"] == "na1-r2"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    t.now += 1800 - 300 - 1  # still outside the 5-minute margin: no refresh
    client.list_contacts(["email"], None)
    assert grants.call_count == 1
    t.now += 2  # inside the margin: refreshed before the token expires, with the rotated token
    client.list_contacts(["email"], None)
    assert grants.call_count == 2
    assert parse_qs(grants.calls[1].request.content.decode())["refresh_token"] == ["na1-r2"]
    assert api.calls[-1].request.headers["Authorization"] == "Bearer access-2"

    # The next run starts from the rotated token on file, not the configured one.
    respx.post(TOKEN_URL).respond(200, json=token_body("access-3", "na1-r3"))
    again = make_client(tmp_path, FakeTime(), settings(oauth=OAUTH))
    again.list_contacts(["email"], None)
    assert again.credentials.header() == "Bearer access-3"
    last_grant = [c for c in respx.calls if c.request.url == TOKEN_URL][-1]
    assert parse_qs(last_grant.request.content.decode())["refresh_token"] == ["na1-r3"]


@respx.mock
def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(tmp_path: Path) -> None:
    respx.post(TOKEN_URL).mock(
        side_effect=[
            httpx.Response(200, json=token_body("access-1", "na1-r1")),
            httpx.Response(200, json=token_body("access-2", "na1-r1")),
        ]
    )
    api = respx.get(CONTACTS).mock(
        side_effect=[httpx.Response(401, json=EXPIRED), httpx.Response(200, json=page([]))]
    )
    client = make_client(tmp_path, FakeTime(), settings(oauth=OAUTH))
    client.list_contacts(["email"], None)
    assert [c.request.headers["Authorization"] for c in api.calls] == [
        "Bearer access-1",
        "Bearer access-2",
    ]


@respx.mock
def test_a_revoked_refresh_token_is_an_auth_error_naming_the_setting(tmp_path: Path) -> None:
    respx.post(TOKEN_URL).respond(400, json=BAD_REFRESH)
    client = make_client(tmp_path, FakeTime(), settings(oauth=OAUTH))
    with pytest.raises(AuthError) as failed:
        client.list_contacts(["email"], None)
    message = str(failed.value)
    assert "`sources.crm.oauth.refresh_token`" in message and "revoked" in message
    assert "na1-r1" not in message and "shh-client-secret" not in message


# -- rate limits -----------------------------------------------------------------------------------


@respx.mock
def test_a_ten_secondly_429_waits_ten_seconds_without_jitter(tmp_path: Path) -> None:
    route = respx.get(CONTACTS).mock(
        side_effect=[
            httpx.Response(429, json=rate_limit_body("TEN_SECONDLY_ROLLING")),
            httpx.Response(200, json=page([contact(1)])),
        ]
    )
    t = FakeTime()
    answer = make_client(tmp_path, t, settings()).list_contacts(["email"], None)
    assert answer["results"][0]["id"] == "1"
    assert route.call_count == 2 and t.sleeps == [10.0]


@respx.mock
def test_a_secondly_429_on_search_waits_one_second(tmp_path: Path) -> None:
    route = respx.post(SEARCH).mock(
        side_effect=[
            httpx.Response(429, json=rate_limit_body("SECONDLY")),
            httpx.Response(200, json={"total": 0, "results": []}),
        ]
    )
    t = FakeTime()
    make_client(tmp_path, t, settings()).search_contacts(search_body())
    assert route.call_count == 2 and t.sleeps == [1.0]


@respx.mock
def test_retry_after_when_given_beats_the_policy_wait(tmp_path: Path) -> None:
    respx.get(CONTACTS).mock(
        side_effect=[
            httpx.Response(
                429, json=rate_limit_body("TEN_SECONDLY_ROLLING"), headers={"Retry-After": "3"}
            ),
            httpx.Response(200, json=page([])),
        ]
    )
    t = FakeTime()
    make_client(tmp_path, t, settings()).list_contacts(["email"], None)
    assert t.sleeps == [3.0]


@respx.mock
def test_the_daily_limit_ends_the_run_without_retrying(tmp_path: Path) -> None:
    route = respx.get(CONTACTS).respond(429, json=rate_limit_body("DAILY"))
    t = FakeTime()
    with pytest.raises(RateLimited) as failed:
        make_client(tmp_path, t, settings()).list_contacts(["email"], None)
    assert route.call_count == 1 and t.sleeps == []
    assert failed.value.retry_after is not None and failed.value.retry_after > 120
    assert "DAILY" in str(failed.value)


@respx.mock
def test_a_daily_budget_down_to_the_reserve_stops_before_the_next_call(tmp_path: Path) -> None:
    usage = {
        "X-HubSpot-RateLimit-Daily": "250000",
        "X-HubSpot-RateLimit-Daily-Remaining": "40",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": "100",
        "X-HubSpot-RateLimit-Remaining": "99",
    }
    route = respx.get(CONTACTS).respond(200, json=page([]), headers=usage)
    client = make_client(tmp_path, FakeTime(), settings(daily_reserve=50))
    client.list_contacts(["email"], None)
    with pytest.raises(RateLimited, match="DAILY request budget is spent"):
        client.list_contacts(["email"], None)
    assert route.call_count == 1


@respx.mock
def test_the_burst_budget_follows_the_tier(tmp_path: Path) -> None:
    respx.get(CONTACTS).respond(200, json=page([]))
    t = FakeTime()
    client = make_client(tmp_path, t, settings(rate_limit_tier="starter"))  # 100 per 10 s
    for _ in range(100):
        client.list_contacts(["email"], None)
    assert t.sleeps == []
    client.list_contacts(["email"], None)
    assert sum(t.sleeps) == pytest.approx(10.0)
    assert settings(rate_limit_tier="professional").burst_rate == 190
    assert settings(rate_limit_tier="professional", burst_limit=150).burst_rate == 150


@respx.mock
def test_search_keeps_to_its_own_five_per_second(tmp_path: Path) -> None:
    route = respx.post(SEARCH).respond(200, json={"total": 0, "results": []})
    t = FakeTime()
    client = make_client(tmp_path, t, settings(rate_limit_tier="enterprise"))
    start = t.now
    for _ in range(11):
        client.search_contacts(search_body())
    assert route.call_count == 11
    assert t.now - start == pytest.approx(2.0)  # 5 at once, 5 a second later, 1 more
