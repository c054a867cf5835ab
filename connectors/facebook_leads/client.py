"""The Graph API calls of the Lead Ads connector: forms, leads, one lead; errors and usage.

Everything goes through `core.http.HttpClient`; this module only says what differs for Graph:

- auth: the token as `access_token` (or a Bearer header) plus `appsecret_proof`, the hex
  HMAC-SHA256 of the token keyed with the app secret, when an app secret is configured;
- classification by the JSON `error.code`, whatever the HTTP status (Meta does not document
  which status goes with which code): throttling codes are RateLimited and wait for
  `estimated_time_to_regain_access` (minutes) from the usage headers, 190 is an AuthError that
  says to renew the token, 10 and 200-299 name the missing permission;
- pacing: above `slow_down_at` percent of the usage headers, requests are spaced out;
- paging: `paging.next` is followed until it is absent (an empty page may still have one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from connectors.base.contract import named
from connectors.base.paging import NextLinkPaginator, Request, listed, paginate
from connectors.facebook_leads.settings import FacebookLeadsSettings
from core.errors import AuthError, HTTPError, RateLimited, RequestRejected, SourceError
from core.errors import TransientError as Transient
from core.http import HttpClient, RetryPolicy, Verdict

LEAD_FIELDS = (
    "id,created_time,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,form_id,"
    "field_data,custom_disclaimer_responses,is_organic,platform"
)
FORM_FIELDS = "id,name,status,locale,created_time,questions{key,label,type}"

# Graph error codes → what to do ([doc] graph-api/guides/error-handling and rate-limiting).
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 80001, 80004, 80005})
TRANSIENT_CODES = frozenset({1, 2})
TOKEN_CODES = frozenset({102, 104, 190})
POLICY_BLOCK = 368
TOKEN_SUBCODES = {
    458: "the app is not installed for this user",
    459: "the user must log in to Facebook to clear a checkpoint",
    460: "the password was changed",
    463: "the token has expired",
    464: "the user is not confirmed",
    467: "the token is invalid",
    492: "the token's user has no role on the Page",
}
USAGE_HEADERS = ("x-app-usage", "x-business-use-case-usage", "x-ad-account-usage")
PACE_MAX_SECONDS = 30.0  # the hold-off at 100 % usage; it grows linearly from `slow_down_at`


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """`appsecret_proof`: hex HMAC-SHA256 of the token keyed with the app secret."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


# -- reading Graph answers -----------------------------------------------------------------------


def graph_error(response: httpx.Response) -> dict[str, Any] | None:
    """The `error` object of a Graph error body, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _usage_entries(headers: httpx.Headers) -> Iterator[dict[str, Any]]:
    """Every usage object in the usage headers (BUC holds lists per business object)."""
    for name in USAGE_HEADERS:
        try:
            value = json.loads(headers.get(name) or "null")
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        if name != "x-business-use-case-usage":
            yield value
            continue
        for entries in value.values():
            if isinstance(entries, list):
                yield from (e for e in entries if isinstance(e, dict))


def regain_seconds(headers: httpx.Headers) -> float | None:
    """The longest wait the usage headers announce, in seconds (BUC gives minutes), or None."""
    waits = []
    for entry in _usage_entries(headers):
        minutes = entry.get("estimated_time_to_regain_access")
        if isinstance(minutes, (int, float)) and minutes > 0:
            waits.append(60.0 * minutes)
        reset = entry.get("reset_time_duration")  # X-Ad-Account-Usage, in seconds
        if isinstance(reset, (int, float)) and reset > 0 and entry.get("acc_id_util_pct", 0) >= 100:
            waits.append(float(reset))
    return max(waits) if waits else None


def usage_percent(headers: httpx.Headers) -> float:
    """The highest usage percentage any usage header reports (0 without them)."""
    keys = ("call_count", "total_time", "total_cputime", "acc_id_util_pct")
    values = [
        float(entry[k])
        for entry in _usage_entries(headers)
        for k in keys
        if isinstance(entry.get(k), (int, float))
    ]
    return max(values, default=0.0)


def classifier(setting: str) -> Callable[[httpx.Response], Verdict | None]:
    """The Graph classification hook; `setting` is the hub-file path of the block (in hints)."""

    def classify(response: httpx.Response) -> Verdict | None:
        error = graph_error(response) if response.status_code >= 400 else None
        if error is None:
            return None
        code: Any = error.get("code")
        subcode: Any = error.get("error_subcode")
        label = f" (Graph error {code}{f'/{subcode}' if subcode else ''})"
        if code in THROTTLE_CODES or code == POLICY_BLOCK:
            wait = regain_seconds(response.headers)
            return Verdict(RateLimited, wait, f"{label}: throttled by Meta")
        if code in TOKEN_CODES:
            why = TOKEN_SUBCODES.get(subcode) or "the token is missing, expired or invalid"
            note = f"{label}: {why}; renew the token and update `{setting}.access_token`"
            return Verdict(AuthError, note=note)
        if code == 10 or (isinstance(code, int) and 200 <= code <= 299):
            note = (
                f"{label}: a permission is missing; the token needs leads_retrieval, "
                "pages_show_list, pages_read_engagement, pages_manage_ads and ads_management, "
                "and Leads Access Manager must allow its user"
            )
            return Verdict(AuthError, note=note)
        if "appsecret_proof" in str(error.get("message", "")):
            note = f"{label}: check `{setting}.app_secret` (the app requires appsecret_proof)"
            return Verdict(AuthError, note=note)
        if code in TRANSIENT_CODES or error.get("is_transient") is True:
            return Verdict(Transient, note=label)
        if response.status_code < 500:
            return Verdict(RequestRejected, note=label)
        return None

    return classify


def pacer(slow_down_at: float) -> Callable[[httpx.Response], float | None]:
    """The pace hook: hold off while Meta says access is blocked; space out calls near 100 %."""

    def pace(response: httpx.Response) -> float | None:
        if response.status_code >= 400:
            return None  # an error's wait is the classification's retry_after, not a second one
        blocked = regain_seconds(response.headers)
        if blocked:
            return blocked
        used = usage_percent(response.headers)
        if used < slow_down_at:
            return None
        share = (used - slow_down_at) / max(100.0 - slow_down_at, 1e-9)
        return min(1.0, share) * PACE_MAX_SECONDS

    return pace


# -- the client ----------------------------------------------------------------------------------


class GraphClient:
    """Graph calls for one Page, authenticated as the settings say.

    Parameters:
        name: the source's name in the hub file (errors name `sources.<name>.<key>`).
        settings: the validated block.
        transport, sleep: passed to `HttpClient` (tests).
    """

    def __init__(
        self,
        name: str,
        settings: FacebookLeadsSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.where = f"facebook_leads source {name!r}"
        token = settings.access_token.get_secret_value()
        self._auth: dict[str, str] = {}
        headers: dict[str, str] = {}
        if settings.token_in == "query":
            self._auth["access_token"] = token
        else:
            headers["Authorization"] = f"Bearer {token}"
        secrets = [token]
        if settings.app_secret is not None:
            secret = settings.app_secret.get_secret_value()
            self._auth["appsecret_proof"] = appsecret_proof(secret, token)
            secrets += [secret, self._auth["appsecret_proof"]]
        self.http = HttpClient(
            settings.graph_url,
            headers=headers,
            secrets=secrets,
            retry=RetryPolicy(max_retry_after=settings.max_wait_seconds),
            timeout=settings.timeout,
            transport=transport,
            classify=classifier(f"sources.{name}"),
            pace=pacer(settings.slow_down_at),
            sleep=sleep,
        )
        self._forms: dict[str, dict[str, Any]] = {}

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET a Graph path (relative to the version root) or a `paging.next` URL."""
        # httpx replaces a URL's query with `params`, so a `next` link's own query is carried over.
        target = httpx.URL(url)
        query = {**dict(target.params), **(params or {}), **self._auth}
        try:
            body = self.http.json("GET", str(target.copy_with(query=None)), params=query)
        except HTTPError as exc:
            raise named(exc, self.where) from exc
        if not isinstance(body, dict):
            raise SourceError(f"{self.where}: GET {url} answered {type(body).__name__}, not JSON")
        return body

    def pages(self, path: str, params: Mapping[str, Any], stream: str) -> Iterator[list[Any]]:
        """Each page's `data`, following `paging.next` until it is absent (not until empty)."""
        # The token goes with every request, so a next link must only lead back to the Graph host.
        paginator = NextLinkPaginator(
            stream, "paging.next", origin=self.settings.graph_url, where=self.where
        )

        def fetch(request: Request) -> dict[str, Any]:
            return self.get(request.path, request.params)

        return paginate(fetch, Request(path, dict(params)), paginator, listed("data"))

    def forms(self) -> list[dict[str, Any]]:
        """The forms to read: the configured ids, else the Page's forms in the wanted statuses."""
        if self.settings.form_ids:
            return [self.form(form_id) for form_id in self.settings.form_ids]
        params = {"fields": FORM_FIELDS, "limit": 100}
        path = f"{self.settings.page_id}/leadgen_forms"
        found = [f for page in self.pages(path, params, "leadgen_forms") for f in page]
        for form in found:
            self._forms[str(form["id"])] = form
        wanted = set(self.settings.form_statuses)
        return [f for f in found if f.get("status", "ACTIVE") in wanted]

    def form(self, form_id: str) -> dict[str, Any]:
        """One form (cached for the life of the client)."""
        if form_id not in self._forms:
            self._forms[form_id] = self.get(form_id, {"fields": FORM_FIELDS})
        return self._forms[form_id]

    def leads(self, form_id: str, since: int | None) -> Iterator[list[Any]]:
        """Pages of a form's leads, created at or after `since` (Unix seconds) when given."""
        params: dict[str, Any] = {"fields": LEAD_FIELDS, "limit": self.settings.page_size}
        if since is not None:
            where = {"field": "time_created", "operator": self.settings.filter_operator}
            params["filtering"] = json.dumps([{**where, "value": since}], separators=(",", ":"))
        return self.pages(f"{form_id}/leads", params, f"leads.{form_id}")

    def lead(self, lead_id: str) -> dict[str, Any]:
        """One lead by its id (what a webhook delivery names)."""
        return self.get(lead_id, {"fields": LEAD_FIELDS})

    def close(self) -> None:
        self.http.close()
