"""The REST calls of the Salesforce connector: sessions, errors, usage, SOQL paging.

Everything goes through `core.http.HttpClient`; this module only says what differs for Salesforce:

- where: tokens come from `login_url`, calls go to the session's `instance_url`, below
  `/services/data/<api_version>`;
- sessions: a 401 `INVALID_SESSION_ID` (or Bulk's 400 `InvalidSessionId`) fetches a new session
  once and retries the call once;
- errors: bodies are arrays of `{"message", "errorCode"}` (Bulk: `exceptionCode`); the code goes
  into the message. A 403 `REQUEST_LIMIT_EXCEEDED` for the daily allowance is not retried (the
  allowance is a rolling 24 hours): it raises `RateLimited` with a wait of an hour, so the run
  stops cleanly and is rescheduled; the concurrent-request variant is backed off and retried;
- usage: `Sforce-Limit-Info: api-usage=N/M` is read from every response; a source's queries stop
  with a clear message once N/M passes `limit_share`;
- paging: `nextRecordsUrl` until `done`, with `Sforce-Query-Options: batchSize=`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from connectors.base.contract import named
from connectors.base.paging import Countdown, NextLinkPaginator, Request, paginate
from connectors.salesforce.auth import SalesforceAuth, Session, default_token_file
from connectors.salesforce.settings import SalesforceSettings
from core.errors import AuthError, HTTPError, RateLimited, SourceError
from core.http import Classify, HttpClient, RetryPolicy, Verdict, classify_status

RETRY = RetryPolicy(max_attempts=5, backoff_base=1.0, backoff_cap=30.0, max_total_wait=300.0)
DAILY_LIMIT_WAIT = 3600.0  # seconds: the allowance is a rolling 24 h, so come back later
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
SESSION_EXPIRED = ("INVALID_SESSION_ID", "InvalidSessionId")


def error_codes(body: str) -> list[tuple[str, str]]:
    """`(code, message)` pairs of a Salesforce error body (REST array, Bulk object, or record
    `statusCode` entries); empty when the body is not one."""
    try:
        found = json.loads(body)
    except ValueError:
        return []
    entries = found if isinstance(found, list) else [found]
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        code = entry.get("errorCode") or entry.get("exceptionCode") or entry.get("statusCode")
        if code:
            pairs.append((str(code), str(entry.get("message") or "")))
    return pairs


def describe_errors(body: str) -> str:
    """`CODE: message; CODE: message`, else the start of the body."""
    pairs = error_codes(body)
    if not pairs:
        return " ".join(body.split())[:300]
    return "; ".join(f"{code}: {message}".rstrip(": ") for code, message in pairs)


def session_expired(error: HTTPError) -> bool:
    """Whether a refused call says the session (not the user's rights) is the problem."""
    codes = {code for code, _ in error_codes(error.body)}
    if codes & set(SESSION_EXPIRED):
        return error.status in (400, 401)
    return error.status == 401 and not codes


def classifier() -> Classify:
    """The classification hook: session expiry, the API allowance, error codes in the note."""

    def classify(response: httpx.Response) -> Verdict | None:
        if response.status_code < 400:
            return None
        pairs = error_codes(response.text)
        codes = {code for code, _ in pairs}
        note = f" ({describe_errors(response.text)})" if pairs else ""
        if "REQUEST_LIMIT_EXCEEDED" in codes:
            if any("concurrent" in message.lower() for _, message in pairs):
                return Verdict(RateLimited, note=note + ": too many long-running requests at once")
            note += (
                ": the org has used up its daily API requests (rolling 24 hours); the run stops "
                "here and resumes from its last saved page once requests are free again"
            )
            return Verdict(RateLimited, retry_after=DAILY_LIMIT_WAIT, note=note)
        if codes & set(SESSION_EXPIRED):
            return Verdict(AuthError, note=note)
        verdict = classify_status(response)
        return Verdict(verdict.error, verdict.retry_after, note)

    return classify


@dataclass(frozen=True)
class Usage:
    """The org's daily API requests: used and allowed, from `Sforce-Limit-Info`."""

    used: int
    limit: int

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 0.0


class SalesforceClient:
    """REST calls for one org.

    Parameters:
        where: who is calling, for messages (`salesforce source 'sf'`).
        setting: the hub-file path of the block (`sources.sf`).
        settings: the validated block.
        base_dir: the hub file's folder (token file, relative key path).
        limit_share: stop queries once this share of the daily allowance is used (sources).
        transport, sleep, clock: for tests.
    """

    def __init__(
        self,
        where: str,
        setting: str,
        settings: SalesforceSettings,
        *,
        base_dir: Path = Path("."),
        limit_share: float | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.where, self.setting, self.settings = where, setting, settings
        self.limit_share = limit_share
        self.http = HttpClient(
            headers={"Accept": "application/json"},
            retry=RETRY,
            timeout=settings.timeout,
            transport=transport,
            classify=classifier(),
            pace=self._read_usage,
            sleep=sleep,
        )
        token_file = settings.token_file or default_token_file(base_dir, settings)
        if not token_file.is_absolute():
            token_file = base_dir / token_file
        self.auth = SalesforceAuth(
            settings, self.http, setting, token_file, base_dir=base_dir, clock=clock
        )
        self.usage: Usage | None = None
        self._usage_lock = threading.Lock()

    @property
    def api_root(self) -> str:
        return f"/services/data/{self.settings.api_version}"

    def url(self, session: Session, path: str) -> str:
        """An absolute URL: `path` below the API root, or from `/services/…`.

        An absolute URL is followed only on the org's own host: the token goes with it.
        """
        if path.startswith(("http://", "https://")):
            if path.startswith(session.instance_url + "/"):
                return path
            raise SourceError(f"{self.where}: refused to follow a link off the org's host")
        path = path.lstrip("/")
        if path.startswith("services/"):  # e.g. a Bulk job's `contentUrl`, `nextRecordsUrl`
            return f"{session.instance_url}/{path}"
        return f"{session.instance_url}{self.api_root}/{path}"

    # -- calls -----------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, with a new session and one retry when the session expired."""
        response = self._with_session(method, path, kwargs, parse_json=False)[0]
        assert response is not None
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like `request`, returning the parsed JSON body (None for 204)."""
        return self._with_session(method, path, kwargs, parse_json=True)[1]

    def _with_session(
        self, method: str, path: str, kwargs: dict[str, Any], *, parse_json: bool
    ) -> tuple[httpx.Response | None, Any]:
        try:
            session = self.auth.session()
            try:
                return self._send(session, method, path, kwargs, parse_json)
            except AuthError as exc:
                if not session_expired(exc):
                    raise
                session = self.auth.renew(session)
                return self._send(session, method, path, kwargs, parse_json)
        except HTTPError as exc:
            raise named(exc, self.where) from exc

    def _send(
        self, session: Session, method: str, path: str, kwargs: dict[str, Any], parse_json: bool
    ) -> tuple[httpx.Response | None, Any]:
        auth = {"Authorization": f"Bearer {session.access_token}"}
        sent = {**kwargs, "headers": {**(kwargs.get("headers") or {}), **auth}}
        url = self.url(session, path)
        if parse_json:
            return None, self.http.json(method, url, **sent)
        return self.http.request(method, url, **sent), None

    # -- usage -----------------------------------------------------------------------------------

    def _read_usage(self, response: httpx.Response) -> float | None:
        found = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if found:
            with self._usage_lock:
                self.usage = Usage(int(found.group(1)), int(found.group(2)))
        return None

    def check_limit(self) -> None:
        """Raise SourceError once the org's usage passes `limit_share` (sources only)."""
        usage, share = self.usage, self.limit_share
        if share is None or usage is None or usage.share <= share:
            return
        raise SourceError(
            f"{self.where}: the org has used {usage.used:,} of its {usage.limit:,} daily API "
            f"requests ({usage.share:.0%}), over `{self.setting}.limit_share` ({share:.0%}); the "
            "pull stopped after its last saved page and goes on from there at the next run, "
            "leaving the rest of the allowance to the org's other integrations"
        )

    # -- queries ---------------------------------------------------------------------------------

    def query_url_length(self, soql: str, *, all_rows: bool = False) -> int:
        """Characters of the query's URL below the instance (for the URI limit)."""
        resource = "queryAll" if all_rows else "query"
        return len(f"{self.api_root}/{resource}?{urlencode({'q': soql})}")

    def query(
        self, soql: str, *, all_rows: bool = False, countdown: Countdown | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Each page's records of a SOQL query (`queryAll`: deleted and archived rows too).

        `countdown` (of `totalSize`, the rows of the whole result) learns what is left after each.
        """
        headers = {"Sforce-Query-Options": f"batchSize={self.settings.batch_size}"}
        resource = "queryAll" if all_rows else "query"
        paginator = NextLinkPaginator(f"salesforce {resource}", "nextRecordsUrl", done="done")

        def fetch(request: Request) -> Any:
            self.check_limit()
            query = {"params": request.params} if request.params else {}
            body = self.call("GET", request.path, headers=headers, **query)
            if not isinstance(body, dict):
                raise SourceError(f"{self.where}: a query answered {type(body).__name__}, not JSON")
            return body

        def records(body: Any) -> list[dict[str, Any]]:
            return [r for r in body.get("records") or [] if isinstance(r, dict)]

        request = Request(f"/{resource}", {"q": soql})
        yield from paginate(fetch, request, paginator, records, countdown)

    def close(self) -> None:
        self.http.close()
