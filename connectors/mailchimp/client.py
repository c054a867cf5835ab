"""The Marketing API calls of the Mailchimp connector: where the API is, errors, offset paging.

Everything goes through `core.http.HttpClient`; this module only says what differs for Mailchimp:

- the API root: `base_url` when set, else `https://<dc>.api.mailchimp.com` from the key's
  `-<dc>` suffix, else (OAuth) the `api_endpoint` of the metadata endpoint — which answers 200
  even for a bad token, so its body is checked, not its status;
- auth: HTTP Basic with the key as password, or a Bearer OAuth token;
- errors: `application/problem+json` bodies (title, detail, per-field errors) are put into the
  message; a 403 without a JSON body is Mailchimp's connection limit at high volume, not a
  permission problem, so it backs off like a 429 (Mailchimp sends no Retry-After);
- connections: at most `max_connections` (Mailchimp allows 10 simultaneous per user);
- paging: `count` + `offset` until `total_items` is reached or a page comes back empty.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.base.contract import named
from connectors.base.paging import Countdown, OffsetPaginator, Request, paginate
from connectors.mailchimp.settings import METADATA_URL, MailchimpAuth, datacenter
from core.errors import AuthError, ConfigError, HTTPError, RateLimited, SourceError
from core.http import HttpClient, RetryPolicy, Verdict, classify_status

API_VERSION = "/3.0"
# TAP retries 429/5xx six times with exponential backoff; no Retry-After to honour.
RETRY = RetryPolicy(max_attempts=6, backoff_base=1.0, backoff_cap=60.0, max_total_wait=300.0)


def problem(body: str) -> dict[str, Any] | None:
    """The problem+json object of an error body, or None when the body is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict) and ("title" in value or "detail" in value):
        return value
    return None


def describe_problem(body: str) -> str:
    """`Title: detail (FIELD: message; …)` of a problem+json body, else its start."""
    found = problem(body)
    if found is None:
        return " ".join(body.split())[:300]
    text = f"{found.get('title') or 'Error'}: {found.get('detail') or ''}".strip()
    fields = [
        f"{e.get('field') or '?'}: {e.get('message') or ''}"
        for e in found.get("errors") or []
        if isinstance(e, dict)
    ]
    return f"{text} ({'; '.join(fields)})" if fields else text


def classifier(credential: str) -> Callable[[httpx.Response], Verdict | None]:
    """The classification hook; `credential` is the hub-file path of the key or token."""

    def classify(response: httpx.Response) -> Verdict | None:
        if response.status_code < 400:
            return None
        found = problem(response.text)
        if response.status_code == 403 and found is None:
            note = ": a 403 without a JSON body is Mailchimp's connection limit at high volume"
            return Verdict(RateLimited, note=note)
        if found is None:
            return None
        verdict = classify_status(response)
        note = f" ({describe_problem(response.text)})"
        if response.status_code == 401:
            note += (
                f"; check `{credential}` (a key's -dc suffix must be the account's data center; "
                "a revoked OAuth token must be authorized again)"
            )
        return Verdict(verdict.error, verdict.retry_after, note)

    return classify


class MailchimpClient:
    """Marketing API calls for one account.

    Parameters:
        where: who is calling, for messages (`mailchimp source 'mc'`).
        setting: the hub-file path of the block (`sources.mc`).
        settings: the validated block.
        transport, sleep: passed to `HttpClient` (tests).
    """

    def __init__(
        self,
        where: str,
        setting: str,
        settings: MailchimpAuth,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.where, self.setting, self.settings = where, setting, settings
        self.credential = f"{setting}.{settings.credential_key}"
        if settings.api_key is not None:
            key = settings.api_key.get_secret_value()
            pair = base64.b64encode(f"leadhub:{key}".encode()).decode()
            self._secret, auth = key, f"Basic {pair}"
        else:
            assert settings.access_token is not None  # the settings require one of the two
            self._secret = settings.access_token.get_secret_value()
            auth = f"Bearer {self._secret}"
        limits = httpx.Limits(max_connections=settings.max_connections)
        self.http = HttpClient(
            headers={"Authorization": auth, "Accept": "application/json"},
            secrets=[self._secret],
            retry=RETRY,
            timeout=settings.timeout,
            transport=transport or httpx.HTTPTransport(limits=limits),
            classify=classifier(self.credential),
            sleep=sleep,
        )
        self._root: str | None = None
        self._root_lock = threading.Lock()

    # -- where the API is --------------------------------------------------------------------

    @property
    def root(self) -> str:
        """The versioned API root, e.g. `https://us6.api.mailchimp.com/3.0` (resolved once)."""
        with self._root_lock:
            if self._root is None:
                self._root = self._resolve_root() + API_VERSION
            return self._root

    def _resolve_root(self) -> str:
        if self.settings.base_url is not None:
            return self.settings.base_url
        if self.settings.api_key is not None:
            dc = datacenter(self.settings.api_key.get_secret_value())
            if dc is None:  # the settings check this too; kept for settings built by hand
                raise ConfigError(f"{self.credential}: the key has no -dc suffix; set base_url")
            return f"https://{dc}.api.mailchimp.com"
        return self._metadata_endpoint()

    def _metadata_endpoint(self) -> str:
        """`api_endpoint` from the OAuth metadata; a 200 with `error` is a refused token."""
        scheme = self.settings.metadata_auth_scheme
        headers = {"Authorization": f"{scheme} {self._secret}"}
        try:
            body = self.http.json("GET", self.settings.metadata_url, headers=headers)
        except HTTPError as exc:
            raise named(exc, self.where) from exc
        error = body.get("error") if isinstance(body, dict) else "not a JSON object"
        endpoint = body.get("api_endpoint") if isinstance(body, dict) else None
        if error or not isinstance(endpoint, str) or not endpoint:
            why = error or "no api_endpoint in the answer"
            raise AuthError(
                f"{self.where}: the OAuth metadata endpoint refused the token ({why}); "
                f"authorize the app again and update `{self.credential}`",
                status=401,
            )
        parts = urlsplit(endpoint)
        official = self.settings.metadata_url == METADATA_URL
        if parts.scheme not in ("http", "https") or (
            official and (parts.scheme != "https" or not parts.netloc.endswith(".mailchimp.com"))
        ):  # the token goes to this host with every call: only a Mailchimp host will do
            raise SourceError(f"{self.where}: the metadata gave an unexpected host {endpoint!r}")
        return endpoint.rstrip("/")

    # -- calls -------------------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call to `path` (below `/3.0`); the parsed body, None for 204."""
        try:
            return self.http.json(method, self.root + path, **kwargs)
        except HTTPError as exc:
            raise named(exc, self.where) from exc

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = self.call("GET", path, params=dict(params or {}))
        if not isinstance(body, dict):
            raise SourceError(f"{self.where}: GET {path} answered {type(body).__name__}, not JSON")
        return body

    def pages(
        self,
        path: str,
        key: str,
        params: Mapping[str, Any],
        page_size: int,
        countdown: Countdown | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Each page's `key` list, by `count`/`offset` until `total_items` or an empty page.

        `countdown` (of `total_items`) learns after each page how many the list still holds.
        """
        paginator = OffsetPaginator(f"mailchimp {path}", page_size, identity=_identity)

        def records(body: Any) -> list[Any]:
            return [i for i in body.get(key) or [] if isinstance(i, dict)]

        def fetch(request: Request) -> dict[str, Any]:
            return self.get(request.path, request.params)

        request = Request(path, dict(params))
        for page in paginate(fetch, request, paginator, records, countdown):
            if page:
                yield page

    def close(self) -> None:
        self.http.close()


def _identity(item: Mapping[str, Any]) -> str:
    for key in ("id", "email_id", "merge_id", "tag"):
        if key in item:
            return str(item[key])
    return json.dumps(item, sort_keys=True, default=str)[:200]
