"""The one HTTP client of leadhub: httpx + tenacity + rate budget + error classification.

    HttpClient.request(method, url)
    ├── pace hold-off      the vendor's usage headers asked us to slow down (optional `pace` hook)
    ├── RateBudget         acquire(vendor account) blocks until one more request fits
    │                      (`core.budgets`: in-process or shared in Redis; `budget_for` picks)
    ├── httpx send         transport errors and timeouts → TransientError
    ├── classification     the connector's `classify` hook first, then the default table:
    │                      401/403 AuthError · 429 RateLimited · 408/5xx TransientError ·
    │                      other 4xx RequestRejected
    └── tenacity           retries RateLimited and TransientError, honouring Retry-After,
                           bounded by attempts and by total wait; then raises the last error

Every message and log line goes through `redact`, so a token never leaves this module.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity

from core.budgets import LocalRateBudget, RateBudget, RedisRateBudget, budget_for
from core.errors import (
    AuthError,
    HTTPError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from core.redaction import (
    REDACTED,
    RedactingFilter,
    credential_values,
    param_values,
    redact,
    register_secret,
)

__all__ = [
    "REDACTED",
    "HttpClient",
    "LocalRateBudget",
    "RateBudget",
    "RedactingFilter",
    "RedisRateBudget",
    "RetryPolicy",
    "Verdict",
    "budget_for",
    "classify_status",
    "parse_retry_after",
    "redact",
    "register_secret",
]

log = logging.getLogger("leadhub.http")

# -- classification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """How to treat one response: `error` None is success; `retry_after` replaces the backoff.

    `note` is added to the error message, e.g. "HubSpot DAILY limit".
    """

    error: type[HTTPError] | None = None
    retry_after: float | None = None
    note: str = ""


Classify = Callable[[httpx.Response], Verdict | None]
"""A connector's classification: a Verdict, or None to fall back to `classify_status`."""
Pace = Callable[[httpx.Response], float | None]
"""Seconds to hold off before the next request, read from a vendor's usage headers."""

_RETRIED = (RateLimited, TransientError)
_HINTS: tuple[tuple[type[HTTPError], str], ...] = (
    (AuthError, "the credentials were refused: renew the token or check its permissions"),
    (RateLimited, "the vendor asked us to slow down"),
    (TransientError, "the vendor or the network failed; this may pass"),
    (RequestRejected, "the vendor refused the request itself; retrying will not help"),
)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def classify_status(response: httpx.Response) -> Verdict:
    """The default table; a connector's `classify` hook runs first and may defer here."""
    status = response.status_code
    error: type[HTTPError]
    if status < 400:
        return Verdict()
    if status in (401, 403):
        error = AuthError
    elif status == 429:
        error = RateLimited
    elif status == 408 or status >= 500:
        error = TransientError
    else:
        error = RequestRejected
    return Verdict(error, parse_retry_after(response.headers.get("Retry-After")))


# -- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one request.

    Parameters:
        max_attempts: attempts in all, the first one included.
        backoff_base, backoff_cap: full-jitter backoff, uniform(0, min(cap, base * 2**n)) seconds,
            used when the vendor gave no Retry-After.
        max_total_wait: give up rather than wait longer than this, in all, for one request.
        max_retry_after: a vendor wait longer than this raises RateLimited at once (with
            `retry_after`), so the jobs layer reschedules instead of holding a thread.
    """

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_total_wait: float = 300.0
    max_retry_after: float = 120.0


class _Failed(Exception):
    """One failed attempt as tenacity sees it: the classified error, and how to go on."""

    def __init__(self, error: HTTPError, *, retry: bool, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error, self.retry, self.wait = error, retry, wait


class HttpClient:
    """A sync HTTP client for one vendor account: retries, rate budget, classified errors.

    Parameters:
        base_url, headers, timeout: as for `httpx.Client`.
        secrets: values to redact from every message and log line (credential headers and
            token query parameters are added on their own).
        budget, budget_key: the rate budget to acquire before every attempt, and the account
            key to acquire it for (default: base_url).
        retry: the RetryPolicy.
        transport: any `httpx.BaseTransport`: a mock in tests, or a sync bridge to an in-process
            ASGI sandbox (`httpx.ASGITransport` is async-only).
        classify: a connector's extension of the classification table.
        pace: reads usage headers; returns seconds to hold off before the next request.
        sleep, clock: injectable so tests can assert waits without the wall clock.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        budget: RateBudget | None = None,
        budget_key: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.BaseTransport | None = None,
        classify: Classify | None = None,
        pace: Pace | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._secrets = (*secrets, *credential_values(self._http.headers))
        self._budget, self._budget_key = budget, budget_key or base_url
        self.policy = retry
        self._classify, self._pace = classify, pace
        self._sleep, self._clock = sleep, clock
        self._not_before = 0.0  # clock time before which the pace hook asked us not to send
        self.calls = 0
        self.calls_by_path: Counter[tuple[str, str]] = Counter()
        self._count_lock = threading.Lock()
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, _Failed) and e.retry),
            wait=self._wait,
            stop=self._stop,
            sleep=sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; return the response or raise the classified HTTPError.

        `kwargs` are those of `httpx.Client.build_request`: params, json, data, headers, ….
        """
        return self._call(method, url, kwargs, parse_json=False)[0]

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Like `request`, returning the parsed body (None for 204).

        A 2xx body that is not JSON (a truncated page) is a TransientError, and is retried.
        """
        return self._call(method, url, kwargs, parse_json=True)[1]

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self, method: str, url: str, kwargs: dict[str, Any], *, parse_json: bool
    ) -> tuple[httpx.Response, Any]:
        request = self._http.build_request(method, url, **kwargs)
        secrets = (
            *self._secrets,
            *credential_values(request.headers),
            *param_values(request.url),
        )
        attempts = itertools.count(1)
        try:
            return self._retrying.copy()(
                lambda: self._attempt(request, next(attempts), secrets, parse_json)
            )
        except _Failed as failed:
            raise failed.error from failed.error.__cause__

    def _attempt(
        self, request: httpx.Request, attempt: int, secrets: Sequence[str], parse_json: bool
    ) -> tuple[httpx.Response, Any]:
        """Send once and classify: return (response, parsed body or None), or raise _Failed."""
        self._hold_off(request, secrets)
        if self._budget is not None:
            self._budget.acquire(self._budget_key)
        response = self._send(request, attempt, secrets)
        pause = self._pace(response) if self._pace else None
        if pause and pause > 0:
            self._not_before = max(self._not_before, self._clock() + pause)
        verdict = (self._classify(response) if self._classify else None) or classify_status(
            response
        )
        if verdict.error is not None:
            raise self._failure(request, response, verdict, attempt, secrets)
        if not parse_json or response.status_code == 204:
            return response, None
        try:
            return response, response.json()
        except ValueError as exc:
            verdict = Verdict(TransientError, note=" with a body that is not JSON (truncated?)")
            failed = self._failure(request, response, verdict, attempt, secrets)
            failed.error.__cause__ = exc
            raise failed from exc

    def _send(self, request: httpx.Request, attempt: int, secrets: Sequence[str]) -> httpx.Response:
        path = redact(request.url.path, secrets)
        with self._count_lock:
            self.calls += 1
            self.calls_by_path[(request.method, request.url.path)] += 1
        started = self._clock()
        try:
            response = self._http.send(request)
        except httpx.RequestError as exc:
            elapsed_ms = (self._clock() - started) * 1000
            log.debug(
                "%s %s failed in %.0f ms: %s", request.method, path, elapsed_ms, type(exc).__name__
            )
            # A URL without http(s):// is a setting to fix, not a failure that may pass.
            error_type = (
                RequestRejected if isinstance(exc, httpx.UnsupportedProtocol) else TransientError
            )
            what = f"failed: {type(exc).__name__}: {exc}"
            error = error_type(self._message(request, what, error_type, attempt, secrets))
            error.__cause__ = exc
            raise _Failed(error, retry=error_type is TransientError) from exc
        elapsed_ms = (self._clock() - started) * 1000
        log.debug("%s %s %s in %.0f ms", request.method, path, response.status_code, elapsed_ms)
        return response

    def _failure(
        self,
        request: httpx.Request,
        response: httpx.Response,
        verdict: Verdict,
        attempt: int,
        secrets: Sequence[str],
    ) -> _Failed:
        """Build the classified error for a response; a too-long vendor wait becomes RateLimited."""
        error_type = verdict.error or TransientError
        wait, retry = verdict.retry_after, issubclass(error_type, _RETRIED)
        hint = ""
        if retry and wait is not None and wait > self.policy.max_retry_after:
            error_type, retry = (
                error_type if issubclass(error_type, RateLimited) else RateLimited,
                False,
            )
            hint = f"the vendor asks to wait {wait:.0f} s (over max_retry_after); reschedule"
        body = redact(response.text, secrets)
        excerpt = " ".join(body.split())[:300]
        what = f"answered {response.status_code} {response.reason_phrase}{verdict.note}: {excerpt}"
        message = self._message(request, what, error_type, attempt, secrets, hint)
        status = response.status_code
        error: HTTPError
        if issubclass(error_type, RateLimited):
            error = error_type(message, status=status, body=body, retry_after=wait)
        else:
            error = error_type(message, status=status, body=body)
        return _Failed(error, retry=retry, wait=wait)

    def _message(
        self,
        request: httpx.Request,
        what: str,
        error_type: type[HTTPError],
        attempt: int,
        secrets: Sequence[str],
        hint: str = "",
    ) -> str:
        hint = hint or next((h for t, h in _HINTS if issubclass(error_type, t)), "")
        tries = f" (attempt {attempt} of {self.policy.max_attempts})"
        text = f"{request.method} {request.url.path} {what} — {hint}"
        return redact(text + tries if issubclass(error_type, _RETRIED) else text, secrets)

    def _hold_off(self, request: httpx.Request, secrets: Sequence[str]) -> None:
        """Wait out a slow-down that the pace hook asked for; too long a one is raised instead."""
        delay = self._not_before - self._clock()
        if delay <= 0:
            return
        if delay > self.policy.max_retry_after:
            message = redact(
                f"{request.method} {request.url.path} not sent: the vendor's usage headers ask to "
                f"hold off {delay:.0f} s (over max_retry_after); reschedule",
                secrets,
            )
            raise _Failed(RateLimited(message, status=None, retry_after=delay), retry=False)
        self._sleep(delay)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The vendor's Retry-After when it gave one, else full-jitter exponential backoff."""
        failed = state.outcome.exception() if state.outcome else None
        if isinstance(failed, _Failed) and failed.wait is not None:
            return failed.wait
        backoff = tenacity.wait_random_exponential(
            multiplier=self.policy.backoff_base, max=self.policy.backoff_cap
        )
        return backoff(state)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        # tenacity computes the next wait before asking, so the total bound holds before sleeping.
        if state.attempt_number >= self.policy.max_attempts:
            return True
        return state.idle_for + state.upcoming_sleep > self.policy.max_total_wait

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        failed = state.outcome.exception() if state.outcome else None
        log.info("retrying in %.1f s: %s", state.upcoming_sleep, failed)
