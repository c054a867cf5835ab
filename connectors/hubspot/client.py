"""The HubSpot calls of the connector, through `core.http.HttpClient`; only what differs is here.

- paths: v3 (`/crm/v3/objects/contacts`) or dated (`/crm/objects/2026-03/contacts`) by the
  `api_version` setting; the legacy v1 email-events and forms paths have no dated equivalent;
- auth: `connectors.hubspot.auth` supplies the Authorization header per request (OAuth tokens
  change every 30 minutes); a refused credential becomes an AuthError naming the setting;
- rate limits: one sliding 10-second budget per app (`rate_limit_tier` / `burst_limit`), shared
  by every client of the same account in the process (and across workers when jobs run on Redis);
  search requests also take a 5-per-second budget of their own; a 429's `policyName` decides
  the wait (SECONDLY 1 s, TEN_SECONDLY_ROLLING 10 s without jitter, DAILY until the account's
  midnight, which ends the run so the jobs layer reschedules); the usage headers pace requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from connectors.base.contract import batched
from connectors.hubspot.auth import TOKEN_RETRY, Credentials, OAuthTokens, StaticToken
from connectors.hubspot.settings import HubSpotSettings
from core.errors import AuthError, RateLimited, RequestRejected, TransientError
from core.http import (
    HttpClient,
    LocalRateBudget,
    RateBudget,
    RetryPolicy,
    Verdict,
    budget_for,
    parse_retry_after,
)

EMAIL_EVENTS_PATH = "/email/public/v1/events"
FORM_SUBMISSIONS_PATH = "/form-integrations/v1/submissions/forms/{form_id}"
POLICY_WAITS = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0}  # as HubSpot's own SDK waits
_BUDGETS: dict[tuple[str, int, float], RateBudget] = {}


@dataclass(frozen=True)
class Paths:
    """Paths per version: `v3` → `/crm/v3/objects/…`, `2026-03` → `/crm/objects/2026-03/…`."""

    version: str

    def objects(self, kind: str = "contacts") -> str:
        if self.version.startswith("v"):
            return f"/crm/{self.version}/objects/{kind}"
        return f"/crm/objects/{self.version}/{kind}"

    def properties(self, kind: str = "contacts") -> str:
        if self.version.startswith("v"):
            return f"/crm/{self.version}/properties/{kind}"
        return f"/crm/properties/{self.version}/{kind}"


def shared_budget(key: str, rate: int, per_seconds: float) -> RateBudget:
    """One budget per account and limit in this process (Redis-backed when jobs run there)."""
    slot = (key, rate, per_seconds)
    if slot not in _BUDGETS:
        _BUDGETS[slot] = budget_for(rate, per_seconds)
    return _BUDGETS[slot]


class BothBudgets:
    """Acquire a search slot, then a burst slot: search requests count toward both."""

    def __init__(self, *budgets: RateBudget) -> None:
        self.budgets = budgets

    def acquire(self, key: str) -> None:
        for budget in self.budgets:
            budget.acquire(key)


def seconds_to_midnight(timezone: str, now: datetime | None = None) -> float:
    """Seconds until the daily limit resets: midnight in the account's time zone."""
    zone = ZoneInfo(timezone)
    local = (now or datetime.now(zone)).astimezone(zone)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - local).total_seconds())


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classifier(timezone: str, max_wait: float) -> Callable[[httpx.Response], Verdict | None]:
    """HubSpot's additions to the status table (shared/api/hubspot.md §5).

    A DAILY 429 is never retried in the run (HubSpot's SDK does not either): its wait is at
    least `max_wait`, which makes the client raise RateLimited for the jobs layer to reschedule.
    """

    def classify(response: httpx.Response) -> Verdict | None:
        status = response.status_code
        header = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            policy = str(_body(response).get("policyName") or "")
            if policy == "DAILY":  # never worth retrying today: end the run, reschedule
                until = max(seconds_to_midnight(timezone), max_wait + 1)
                return Verdict(RateLimited, until, " (HubSpot DAILY limit)")
            wait = header if header is not None else POLICY_WAITS.get(policy)
            return Verdict(RateLimited, wait, f" (HubSpot {policy or 'rate'} limit)")
        if status == 530:  # a malformed token, as peers observe it
            return Verdict(AuthError, note=" (malformed token)")
        if status == 423:  # Locked during bulk upserts: wait at least 2 s
            return Verdict(TransientError, max(header or 0.0, 2.0))
        if status == 477:  # account migration in progress
            return Verdict(TransientError, header if header is not None else 30.0)
        return None

    return classify


class Pacer:
    """Hold off when the 10-second window is used up, or the daily budget is down to the reserve.

    `daily_spent` says which it was, so the error that ends a run can name the daily budget.
    """

    def __init__(self, daily_reserve: int, timezone: str) -> None:
        self.daily_reserve, self.timezone = daily_reserve, timezone
        self.daily_spent = False

    def __call__(self, response: httpx.Response) -> float | None:
        headers = response.headers
        remaining = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
        interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")) or 10_000
        daily_left = _int(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
        self.daily_spent = daily_left is not None and daily_left <= self.daily_reserve
        if self.daily_spent:
            return seconds_to_midnight(self.timezone)
        if remaining is not None and remaining <= 0:
            return interval / 1000
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class HubSpotClient:
    """Every HubSpot call the connector makes, with auth, budgets and classified errors.

    Parameters:
        settings: the validated block.
        where: the block's path in the hub file (`sources.crm`), named in error messages.
        label: how messages name the block (`hubspot source 'crm'`).
        token_file: where OAuth keeps a rotated refresh token.
        transport, sleep, clock: for tests.
        budget: replaces the shared 10-second budget (tests).
    """

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        where: str,
        label: str,
        token_file: Path,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        budget: RateBudget | None = None,
    ) -> None:
        self.settings, self.where, self.label = settings, where, label
        self.paths = Paths(settings.api_version)
        key = settings.account_key()
        burst = budget or shared_budget(key, settings.burst_rate, 10.0)
        own = LocalRateBudget(settings.search_rate, 1.0, clock=clock, sleep=sleep)
        search = BothBudgets(own, burst)
        retry = RetryPolicy(max_retry_after=settings.max_wait_seconds)
        common: dict[str, Any] = {
            "headers": {"Accept": "application/json"},
            "budget_key": key,
            "retry": retry,
            "timeout": settings.timeout,
            "transport": transport,
            "classify": classifier(settings.account_timezone, settings.max_wait_seconds),
            "sleep": sleep,
            "clock": clock,
        }
        self.pacer = Pacer(settings.daily_reserve, settings.account_timezone)
        self.http = HttpClient(settings.base_url, budget=burst, pace=self.pacer, **common)
        # Search responses carry no usage headers; its own budget paces it.
        self.search_http = HttpClient(settings.base_url, budget=search, **common)
        self.credentials = self._credentials(token_file, transport, sleep, clock)

    def _credentials(
        self,
        token_file: Path,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> Credentials:
        s = self.settings
        if s.oauth is None:
            assert s.token is not None
            return StaticToken(s.token.get_secret_value(), s.auth_scheme, f"{self.where}.token")
        token_http = HttpClient(s.base_url, retry=TOKEN_RETRY, timeout=s.timeout,
                                transport=transport, sleep=sleep)  # fmt: skip
        file = s.oauth.token_file or token_file
        return OAuthTokens(s.oauth, token_http, file, self.where, clock=clock)

    @property
    def calls(self) -> int:
        return self.http.calls + self.search_http.calls

    # -- the one call path ---------------------------------------------------------------------

    def call(self, method: str, path: str, *, search: bool = False, **kwargs: Any) -> Any:
        """Send one request and return its JSON body; a refused credential names the setting."""
        http = self.search_http if search else self.http
        extra = kwargs.pop("headers", {})
        for attempt in (1, 2):
            headers = {"Authorization": self.credentials.header(), **extra}
            try:
                return http.json(method, path, headers=headers, **kwargs)
            except RateLimited as exc:
                if exc.status is None and self.pacer.daily_spent:  # held off, never sent
                    raise self._daily_spent(exc) from None
                raise
            except AuthError as exc:
                if attempt == 1 and self.credentials.renew(exc):
                    continue  # an expired OAuth token: refreshed, one more try
                raise self._auth_error(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _daily_spent(self, exc: RateLimited) -> RateLimited:
        s = self.settings
        return RateLimited(
            f"{self.label}: the DAILY request budget is spent (X-HubSpot-RateLimit-Daily-Remaining "
            f"is at `daily_reserve`, {s.daily_reserve}); it resets at midnight in "
            f"`account_timezone` ({s.account_timezone}); the run resumes then",
            status=None,
            retry_after=exc.retry_after,
        )

    def _auth_error(self, exc: AuthError) -> AuthError:
        if exc.status == 403:
            what = f"a permission is missing (403: {_message(exc)}); add the scope to the app"
        elif exc.status is None:
            return exc  # the OAuth refresh itself failed: its message already names the setting
        else:
            what = f"the token was refused ({exc.status}: {_message(exc)})"
        return AuthError(f"{self.label}: {what}; check `{self.credentials.setting}`",
                         status=exc.status, body=exc.body)  # fmt: skip

    # -- contacts ------------------------------------------------------------------------------

    def list_contacts(
        self, properties: Sequence[str], after: str | None, *, archived: bool = False
    ) -> Any:
        params: dict[str, Any] = {
            "limit": self.settings.page_size,
            "archived": str(archived).lower(),
        }
        if properties:
            params["properties"] = ",".join(properties)
        if after:
            params["after"] = after
        return self.call("GET", self.paths.objects(), params=params)

    def search_contacts(self, body: dict[str, Any]) -> Any:
        return self.call("POST", f"{self.paths.objects()}/search", search=True, json=body)

    def read_contacts(
        self,
        ids: Sequence[str],
        properties: Sequence[str],
        *,
        id_property: str | None = None,
        archived: bool = False,
    ) -> list[dict[str, Any]]:
        """`batch/read` in calls of at most 100 ids (or emails with `id_property="email"`)."""
        found: list[dict[str, Any]] = []
        for chunk in batched(ids, 100):
            body: dict[str, Any] = {
                "properties": list(properties),
                "propertiesWithHistory": [],  # required by HubSpot's schema, even when empty
                "inputs": [{"id": i} for i in chunk],
            }
            if id_property:
                body["idProperty"] = id_property
            answer = self.call(
                "POST",
                f"{self.paths.objects()}/batch/read",
                params={"archived": str(archived).lower()},
                json=body,
            )
            found.extend(r for r in (answer or {}).get("results", []) if isinstance(r, dict))
        return found  # fmt: skip

    def batch_write(self, kind: str, inputs: list[dict[str, Any]]) -> Any:
        """`batch/update`, `batch/upsert` (contacts) or `batch/create` (tasks): ≤ 100 inputs."""
        obj = "tasks" if kind == "create" else "contacts"
        return self.call("POST", f"{self.paths.objects(obj)}/batch/{kind}", json={"inputs": inputs})

    # -- properties ----------------------------------------------------------------------------

    def get_property(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.call("GET", f"{self.paths.properties()}/{name}")
        except RequestRejected as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None

    def read_properties(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Definitions of `names` in one `properties/contacts/batch/read` call, by name.

        A name missing from the answer's `results` does not exist (the errors of a 207 are
        not needed to tell which).
        """
        if not names:
            return {}
        body = {"archived": False, "inputs": [{"name": n} for n in names]}
        answer = self.call("POST", f"{self.paths.properties()}/batch/read", json=body)
        results = (answer or {}).get("results") if isinstance(answer, dict) else None
        return {
            str(r["name"]): r
            for r in results or []
            if isinstance(r, dict) and r.get("name") in names
        }

    def create(self, path: str, body: dict[str, Any]) -> bool:
        """POST a definition; False when it already exists (409 CONFLICT)."""
        try:
            self.call("POST", path, json=body)
        except RequestRejected as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def group_exists(self, name: str) -> bool:
        try:
            self.call("GET", f"{self.paths.properties()}/groups/{name}")
        except RequestRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- engagement ----------------------------------------------------------------------------

    def email_events(self, params: dict[str, Any]) -> Any:
        return self.call("GET", EMAIL_EVENTS_PATH, params=params)

    def form_submissions(self, form_id: str, after: str | None) -> Any:
        params: dict[str, Any] = {"limit": 50}
        if after:
            params["after"] = after
        return self.call("GET", FORM_SUBMISSIONS_PATH.format(form_id=form_id), params=params)

    def close(self) -> None:
        self.http.close()
        self.search_http.close()


def _message(exc: AuthError) -> str:
    try:
        body = json.loads(exc.body)
    except ValueError:
        return "no reason given"
    if isinstance(body, dict):
        return str(body.get("message") or body.get("category") or "no reason given")[:200]
    return "no reason given"
