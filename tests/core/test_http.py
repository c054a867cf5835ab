"""The HTTP client: classification, bounded retries, waits, rate budget, redaction.

Vendor payloads are the documented shapes from shared/api (HubSpot 429 policyName bodies, Graph
API error codes, Salesforce Sforce-Limit-Info, Mailchimp problem+json).
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from core.errors import (
    AuthError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from core.http import (
    HttpClient,
    LocalRateBudget,
    RedactingFilter,
    RetryPolicy,
    Verdict,
    parse_retry_after,
    redact,
    register_secret,
)

BASE = "https://api.vendor.test"
TOKEN = "EAAGm0PX4ZCpsBAtok3nSECRET"


class Sleeps(list[float]):
    """An injected `sleep` that records the waits instead of taking them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeClock:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def client(sleeps: Sleeps, **kwargs: object) -> HttpClient:
    return HttpClient(BASE, secrets=[TOKEN], sleep=sleeps, **kwargs)  # type: ignore[arg-type]


# -- classification and retries -------------------------------------------------------------------


def test_429_with_retry_after_seconds_waits_exactly_that(api, sleeps) -> None:
    route = api.get("/leads").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)]
    )
    assert client(sleeps).get("/leads").status_code == 200
    assert sleeps == [7.0]
    assert route.call_count == 2


def test_429_with_retry_after_as_http_date(api, sleeps) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    api.get("/leads").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200)]
    )
    client(sleeps).get("/leads")
    assert len(sleeps) == 1
    assert 28 <= sleeps[0] <= 30  # HTTP dates have one-second resolution


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == expected


def test_retry_after_beyond_max_raises_at_once_for_the_jobs_layer(api, sleeps) -> None:
    route = api.get("/leads").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"})
    )
    with pytest.raises(RateLimited) as caught:
        client(sleeps).get("/leads")
    assert caught.value.retry_after == 3600
    assert route.call_count == 1
    assert sleeps == []


def test_503_with_a_long_retry_after_is_raised_as_rate_limited(api, sleeps) -> None:
    api.get("/leads").mock(return_value=httpx.Response(503, headers={"Retry-After": "600"}))
    with pytest.raises(RateLimited) as caught:
        client(sleeps).get("/leads")
    assert (caught.value.status, caught.value.retry_after) == (503, 600)
    assert sleeps == []


def test_404_is_not_retried_and_the_message_says_what_happened(api, sleeps) -> None:
    route = api.get("/things/1").mock(
        return_value=httpx.Response(404, json={"message": "no such thing"})
    )
    http = client(sleeps)
    with pytest.raises(RequestRejected) as caught:
        http.get("/things/1", params={"fields": "id"})
    assert route.call_count == 1 and http.calls == 1
    message = str(caught.value)
    assert "GET /things/1" in message and "404" in message and "no such thing" in message
    assert caught.value.status == 404
    assert sleeps == []


@pytest.mark.parametrize("status", [400, 409, 418, 422])
def test_other_4xx_are_rejected_without_retry(api, sleeps, status: int) -> None:
    route = api.post("/batch").mock(return_value=httpx.Response(status))
    with pytest.raises(RequestRejected):
        client(sleeps).post("/batch", json={"inputs": []})
    assert route.call_count == 1


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_errors_not_retried(api, sleeps, status: int) -> None:
    body = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    route = api.get("/sobjects/Lead").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(AuthError) as caught:
        client(sleeps).get("/sobjects/Lead")
    assert route.call_count == 1
    assert "INVALID_SESSION_ID" in str(caught.value)
    assert "credentials" in str(caught.value)


def test_500_is_retried_then_succeeds(api, sleeps) -> None:
    route = api.get("/leads").mock(
        side_effect=[httpx.Response(500), httpx.Response(503), httpx.Response(200, json=[1])]
    )
    assert client(sleeps).json("GET", "/leads") == [1]
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert all(0 <= s <= RetryPolicy().backoff_cap for s in sleeps)


def test_retries_are_bounded_then_the_last_error_is_raised(api, sleeps) -> None:
    route = api.get("/leads").mock(return_value=httpx.Response(502, text="Bad Gateway"))
    http = client(sleeps, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(TransientError) as caught:
        http.get("/leads")
    assert route.call_count == 4 and http.calls == 4
    assert len(sleeps) == 3
    assert caught.value.status == 502
    assert "attempt 4 of 4" in str(caught.value)


def test_total_wait_is_bounded(api, sleeps) -> None:
    route = api.get("/leads").mock(return_value=httpx.Response(429, headers={"Retry-After": "60"}))
    with pytest.raises(RateLimited) as caught:
        client(sleeps, retry=RetryPolicy(max_total_wait=100)).get("/leads")
    assert sleeps == [60.0]  # a second 60 s wait would pass 100 s in all
    assert route.call_count == 2
    assert caught.value.retry_after == 60


def test_transport_errors_are_retried(api, sleeps) -> None:
    route = api.get("/leads").mock(
        side_effect=[
            httpx.ConnectError("connection refused"),
            httpx.ReadTimeout("read timed out"),
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.Response(200),
        ]
    )
    assert client(sleeps).get("/leads").status_code == 200
    assert route.call_count == 4


def test_transport_errors_exhausted_raise_transient_error(api, sleeps) -> None:
    api.get("/leads").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(TransientError) as caught:
        client(sleeps, retry=RetryPolicy(max_attempts=2)).get("/leads")
    assert caught.value.status is None
    assert "ConnectError" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_truncated_json_on_200_is_retried(api, sleeps) -> None:
    route = api.get("/crm/v3/objects/contacts").mock(
        side_effect=[
            httpx.Response(200, content=b'{"results": [{"id": "51"'),
            httpx.Response(200, json={"results": [{"id": "51"}]}),
        ]
    )
    assert client(sleeps).json("GET", "/crm/v3/objects/contacts") == {"results": [{"id": "51"}]}
    assert route.call_count == 2


def test_truncated_json_every_time_is_a_transient_error(api, sleeps) -> None:
    api.get("/leads").mock(return_value=httpx.Response(200, content=b"<html>"))
    with pytest.raises(TransientError, match="not JSON"):
        client(sleeps, retry=RetryPolicy(max_attempts=2)).json("GET", "/leads")


def test_json_of_204_is_none(api, sleeps) -> None:
    api.patch("/sobjects/Lead/00Q5g00000ABCdeEAF").mock(return_value=httpx.Response(204))
    http = client(sleeps)
    assert http.json("PATCH", "/sobjects/Lead/00Q5g00000ABCdeEAF", json={"Score__c": 87}) is None


def test_calls_are_counted_per_method_and_path(api, sleeps) -> None:
    api.get("/a").mock(return_value=httpx.Response(200))
    api.post("/b").mock(side_effect=[httpx.Response(500), httpx.Response(200)])
    http = client(sleeps)
    http.get("/a", params={"after": "1"})
    http.get("/a", params={"after": "2"})
    http.post("/b")
    assert http.calls == 4
    assert http.calls_by_path == {("GET", "/a"): 2, ("POST", "/b"): 2}


def test_each_request_is_logged_at_debug_without_headers(api, sleeps, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="leadhub")
    api.get("/a").mock(return_value=httpx.Response(200))
    HttpClient(BASE, headers={"X-Trace": "hdr-value-1"}, sleep=sleeps).get("/a")
    (record,) = [r for r in caplog.records if r.name == "leadhub.http"]
    assert record.levelno == logging.DEBUG
    assert "GET /a 200 in" in record.getMessage()
    assert "hdr-value-1" not in caplog.text


# -- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", [[TOKEN], []], ids=["secrets-given", "found-in-request"])
def test_a_token_never_appears_in_errors_or_logs(api, sleeps, caplog, given) -> None:
    caplog.set_level(logging.DEBUG, logger="leadhub")
    echo = (
        f'{{"error": {{"message": "Invalid OAuth access token - {TOKEN}", "code": 190}}, '
        f'"request": "GET /me?access_token={TOKEN}", "headers": "Authorization: Bearer {TOKEN}"}}'
    )
    api.get("/v25.0/me").mock(side_effect=[httpx.Response(500, text=echo)] * 2)
    http = HttpClient(
        BASE,
        headers={"Authorization": f"Bearer {TOKEN}"},
        secrets=given,
        sleep=sleeps,
        retry=RetryPolicy(max_attempts=2),
    )
    with pytest.raises(TransientError) as caught:
        http.get("/v25.0/me", params={"access_token": TOKEN, "appsecret_proof": "a1b2c3d4e5f6"})
    error = caught.value
    for text in (str(error), error.body, caplog.text, repr(error.args)):
        assert TOKEN not in text
        assert "a1b2c3d4e5f6" not in text
    assert "[redacted]" in str(error)
    assert "Invalid OAuth access token" in str(error)  # the vendor's reason survives
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_basic_auth_credentials_are_redacted(api, sleeps) -> None:
    pair = base64.b64encode(f"anystring:{TOKEN}".encode()).decode()
    api.get("/3.0/lists").mock(return_value=httpx.Response(401, text=f"bad: Basic {pair}"))
    http = HttpClient(BASE, headers={"Authorization": f"Basic {pair}"}, sleep=sleeps)
    with pytest.raises(AuthError) as caught:
        http.get("/3.0/lists")
    assert pair not in str(caught.value) and TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {TOKEN} refused", "token [redacted] refused"),
        ("GET /me?access_token=abc123&fields=id", "GET /me?access_token=[redacted]&fields=id"),
        (
            "GET /x?key=AIzaSyA1&appsecret_proof=ff00",
            "GET /x?key=[redacted]&appsecret_proof=[redacted]",
        ),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"),
        ("{'authorization': 'xyz123'}", "{'authorization': '[redacted]'}"),
        ("sent Bearer abc.def", "sent Bearer [redacted]"),
        ("Basic YW55c3RyaW5nOnMzY3IzdA==", "Basic [redacted]"),
        ("https://user:pa55@host.test/x", "https://[redacted]@host.test/x"),
        ('{"access_token": "abc\\"123", "x": 1}', '{"access_token": "[redacted]", "x": 1}'),
        ("a+b/c%7Cd", "a+b/c%7Cd"),
        (
            "Basic information, monkey=1, next_page_token=7",
            "Basic information, monkey=1, next_page_token=7",
        ),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text, [TOKEN]) == expected
    assert redact(expected, [TOKEN]) == expected  # idempotent


def test_redact_removes_the_url_encoded_form_of_a_secret() -> None:
    app_token = "1234567890|s3cr3t-app"
    assert redact("GET /x?id=1234567890%7Cs3cr3t-app", [app_token]) == "GET /x?id=[redacted]"


def test_registered_secrets_are_redacted_from_leadhub_logs(caplog) -> None:
    secret = "registered-s3cret-42"
    register_secret(secret)
    caplog.set_level(logging.INFO, logger="leadhub")
    logging.getLogger("leadhub").info("loaded token %s", secret)
    assert secret not in caplog.text
    assert "loaded token [redacted]" in caplog.text
    assert redact(f"x {secret}") == "x [redacted]"


def test_redacting_filter_covers_tracebacks() -> None:
    secret = "traceback-s3cret-7"
    try:
        raise ValueError(f"boom {secret}")
    except ValueError:
        record = logging.LogRecord("leadhub.x", logging.ERROR, __file__, 1, "%s", (secret,), None)
        record.exc_info = sys.exc_info()
    assert RedactingFilter([secret]).filter(record)
    assert secret not in record.getMessage()
    assert record.exc_text is not None and secret not in record.exc_text
    assert "boom [redacted]" in record.exc_text


# -- rate budget ----------------------------------------------------------------------------------


def test_rate_budget_never_exceeds_its_rate_in_any_window() -> None:
    clock = FakeClock()
    budget = LocalRateBudget(5, 10.0, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(23):
        budget.acquire("hubspot:123")
        stamps.append(clock.now)
    for start in stamps:
        assert sum(start <= t < start + 10.0 for t in stamps) <= 5
    assert stamps[:5] == [0.0] * 5  # no needless wait while there is room
    assert stamps[5] == pytest.approx(10.0)
    assert stamps[-1] == pytest.approx(40.0)


def test_rate_budget_keys_are_independent() -> None:
    clock = FakeClock()
    budget = LocalRateBudget(1, 1.0, clock=clock, sleep=clock.sleep)
    budget.acquire("account-a")
    budget.acquire("account-b")
    assert clock.now == 0.0


def test_rate_budget_rejects_a_nonsense_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        LocalRateBudget(0, 1.0)


def test_client_acquires_the_budget_before_every_attempt(api, sleeps) -> None:
    class Recording:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def acquire(self, key: str) -> None:
            self.keys.append(key)

    budget = Recording()
    api.get("/leads").mock(side_effect=[httpx.Response(500), httpx.Response(200)])
    client(sleeps, budget=budget, budget_key="hubspot:123").get("/leads")
    assert budget.keys == ["hubspot:123", "hubspot:123"]


# -- hooks ----------------------------------------------------------------------------------------


def graph_throttle(response: httpx.Response) -> Verdict | None:
    """Graph API: throttling comes as a 400 with error codes 4, 17, 32, 613; 190 is auth."""
    if response.status_code != 400:
        return None
    code = response.json().get("error", {}).get("code")
    if code in (4, 17, 32, 613):
        return Verdict(RateLimited, retry_after=3.0, note=f" (Graph code {code})")
    return Verdict(AuthError) if code == 190 else None


def test_classify_hook_maps_a_vendor_throttling_code_to_a_wait(api, sleeps) -> None:
    throttled = {
        "error": {"message": "User request limit reached", "type": "OAuthException", "code": 17}
    }
    route = api.get("/v25.0/123/leads").mock(
        side_effect=[httpx.Response(400, json=throttled), httpx.Response(200, json={"data": []})]
    )
    assert client(sleeps, classify=graph_throttle).json("GET", "/v25.0/123/leads") == {"data": []}
    assert sleeps == [3.0]
    assert route.call_count == 2


def test_classify_hook_falls_back_to_the_table(api, sleeps) -> None:
    invalid = {
        "error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}
    }
    api.get("/v25.0/x").mock(return_value=httpx.Response(400, json=invalid))
    with pytest.raises(RequestRejected):
        client(sleeps, classify=graph_throttle).get("/v25.0/x")


def hubspot_policy(response: httpx.Response) -> Verdict | None:
    """HubSpot: TEN_SECONDLY_ROLLING waits 10 s; DAILY waits until the daily reset (long)."""
    if response.status_code != 429:
        return None
    policy = response.json().get("policyName")
    waits = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0, "DAILY": 6 * 3600.0}
    return Verdict(RateLimited, retry_after=waits.get(policy), note=f" ({policy})")


def test_classify_hook_reads_hubspot_policy_names(api, sleeps) -> None:
    rolling = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    daily = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "policyName": "DAILY",
    }
    api.get("/crm/v3/objects/contacts").mock(
        side_effect=[httpx.Response(429, json=rolling), httpx.Response(429, json=daily)]
    )
    with pytest.raises(RateLimited) as caught:
        client(sleeps, classify=hubspot_policy).get("/crm/v3/objects/contacts")
    assert sleeps == [10.0]
    assert caught.value.retry_after == 6 * 3600.0
    assert "(DAILY)" in str(caught.value)


def test_classify_hook_can_fail_a_200(api, sleeps) -> None:
    def mailchimp_metadata(response: httpx.Response) -> Verdict | None:
        return Verdict(AuthError) if response.json().get("error") == "invalid_token" else None

    api.get("/oauth2/metadata").mock(
        return_value=httpx.Response(200, json={"error": "invalid_token"})
    )
    with pytest.raises(AuthError):
        client(sleeps, classify=mailchimp_metadata).get("/oauth2/metadata")


def salesforce_usage(response: httpx.Response) -> float | None:
    """Sforce-Limit-Info: api-usage=used/limit; above 90 % hold off 5 s between calls."""
    info = response.headers.get("Sforce-Limit-Info", "")
    if not info.startswith("api-usage="):
        return None
    used, limit = info.removeprefix("api-usage=").split(";")[0].split("/")
    return 5.0 if int(used) / int(limit) > 0.9 else None


def test_pace_hook_holds_off_the_next_request(api, sleeps) -> None:
    clock = FakeClock()
    api.get("/limits").mock(
        return_value=httpx.Response(200, headers={"Sforce-Limit-Info": "api-usage=95/100"})
    )
    http = client(sleeps, pace=salesforce_usage, clock=clock)
    http.get("/limits")
    assert sleeps == []  # the answer is not held back
    http.get("/limits")
    assert sleeps == [5.0]


def test_pace_beyond_max_retry_after_raises_without_sending(api, sleeps) -> None:
    clock = FakeClock()
    route = api.get("/leads").mock(return_value=httpx.Response(200))
    http = client(sleeps, pace=lambda r: 900.0, clock=clock)
    http.get("/leads")
    with pytest.raises(RateLimited) as caught:
        http.get("/leads")
    assert caught.value.retry_after == 900.0
    assert route.call_count == 1
