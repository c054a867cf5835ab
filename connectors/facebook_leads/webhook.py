"""The `leadgen` webhook receiver, a plain ASGI route that `leadhub serve` mounts.

    GET  ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…   the subscription handshake:
         the bare challenge when the verify token matches (constant-time), else 403
    POST {"object": "page", "entry": [{"changes": [{"field": "leadgen", "value": {…}}]}]}
         verified with X-Hub-Signature-256 (HMAC-SHA256 of the raw body, keyed with the app
         secret; constant-time); a wrong or missing signature is 403 and nothing is stored.
         Answered 200 at once; then each new `leadgen_id` of our Page (and forms) is fetched
         (`GET /{leadgen_id}`) and handed to `handle_leads(source_name, items)`.

The fetching runs on the receiver's own few threads, not on the server's thread pool: a burst
of deliveries queues there, and the API's synchronous endpoints keep their threads.

Meta retries a delivery for up to 36 hours, so lead ids are de-duplicated (in memory by default,
`Dedup` for a shared store), and records upsert on the lead id anyway. A lead whose fetch fails
is forgotten, so a redelivery tries it again; the scheduled pull is the backfill either way.

What happens to the leads is the hub's business, not this module's: `leadhub serve` passes a
`handle_leads` that stores them and enqueues the score job (`core.web.app`), and
`core.pipeline.run.leads_handler` stores, scores and pushes them in the process (tests, bench).
Mount: `app.add_route("/webhooks/facebook", receiver.endpoint, methods=["GET", "POST"])`, or
`receiver.routes()`, or `receiver.app()` as a whole ASGI app.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.base.contract import Item
from connectors.facebook_leads.settings import FacebookLeadsSettings
from core.errors import ConfigError, LeadhubError, RequestRejected

SIGNATURE_HEADER = "X-Hub-Signature-256"
# Meta's deliveries are a few kB (batched changes included); a larger body is refused unread.
MAX_BODY_BYTES = 1024 * 1024
WEBHOOK_PATH = "/webhooks/facebook"
# Threads fetching and handing on accepted leads; further deliveries wait their turn.
FETCH_THREADS = 16
HandleLeads = Callable[[str, Sequence[Item]], None]
log = logging.getLogger("leadhub.connectors.facebook_leads")


def sign(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` signs the raw `body` under `app_secret` (constant-time compare)."""
    if header is None:
        return False
    expected = sign(app_secret, body).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


@dataclass(frozen=True)
class LeadgenChange:
    """One `leadgen` change; ids are strings (Meta's docs show numbers, its tests send strings)."""

    leadgen_id: str
    page_id: str
    form_id: str | None = None


def parse_delivery(body: bytes) -> list[LeadgenChange]:
    """The leadgen changes of a delivery body; ValueError when it is not a delivery at all."""
    payload = json.loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise ValueError("not a webhook delivery: no `entry` list")
    found = []
    for entry in payload["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            value = change.get("value")
            if change.get("field") != "leadgen" or not isinstance(value, dict):
                continue
            if value.get("leadgen_id") is None:
                continue
            page = value.get("page_id", entry.get("id"))
            form = value.get("form_id")
            form_id = None if form is None else str(form)
            found.append(LeadgenChange(str(value["leadgen_id"]), str(page), form_id))
    return found


class LeadFetcher(Protocol):
    """What the receiver needs of the Lead Ads source: its name, settings, and leads by id."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> FacebookLeadsSettings: ...

    def fetch_leads(self, lead_ids: Sequence[str]) -> list[Item]:
        """The items of the leads named by a delivery (`GET /{leadgen_id}` each)."""
        ...


class Dedup(Protocol):
    """Which lead ids are already taken care of (Redis- or store-backed in a cluster)."""

    def claim(self, lead_id: str) -> bool:
        """True the first time `lead_id` is seen (within the retention), else False."""
        ...

    def forget(self, lead_id: str) -> None:
        """Let a later delivery of `lead_id` through again (its processing failed)."""
        ...


class SeenLeads:
    """In-memory Dedup: ids are remembered for `ttl_seconds` (Meta retries for 36 h), at most
    `max_size` of them (the oldest go first)."""

    def __init__(
        self,
        ttl_seconds: float = 48 * 3600,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.max_size, self._clock = ttl_seconds, max_size, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, lead_id: str) -> bool:
        with self._lock:
            now = self._clock()
            while self._seen and next(iter(self._seen.values())) <= now - self.ttl:
                self._seen.popitem(last=False)
            if lead_id in self._seen:
                return False
            self._seen[lead_id] = now
            if len(self._seen) > self.max_size:
                self._seen.popitem(last=False)
            return True

    def forget(self, lead_id: str) -> None:
        with self._lock:
            self._seen.pop(lead_id, None)


@dataclass
class ReceiverStats:
    received: int = 0  # leadgen changes in verified deliveries
    duplicates: int = 0
    ignored: int = 0  # another Page's or an unconfigured form's
    rejected: int = 0  # deliveries refused (bad signature, bad body)
    stored: int = 0  # leads handed to handle_leads
    failed: list[str] = field(default_factory=list)  # lead ids whose processing failed


class WebhookReceiver:
    """Verifies deliveries, answers at once, then fetches and hands on each new lead.

    Parameters:
        source: the Lead Ads source whose settings (page, forms, secrets) and client are used
            (a `FacebookLeadsSource`).
        handle_leads: called with the source's name and the new leads' items, off the request.
        dedup: the de-duplication of lead ids; in memory by default.
        max_body_bytes: a delivery larger than this is answered 413 without being read whole.
        fetch_threads: the receiver's own threads fetching accepted leads; a burst queues for
            them instead of filling the server's thread pool (which the API's endpoints use).
    """

    def __init__(
        self,
        source: LeadFetcher,
        handle_leads: HandleLeads,
        *,
        dedup: Dedup | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        fetch_threads: int = FETCH_THREADS,
    ) -> None:
        settings, where = source.settings, f"sources.{source.name}"
        if settings.app_secret is None or settings.verify_token is None:
            raise ConfigError(
                f"{where}: the Facebook webhook needs `app_secret` (to verify signatures) and "
                "`verify_token` (for the subscription handshake); set both"
            )
        self.source, self.handle_leads = source, handle_leads
        self.dedup: Dedup = dedup or SeenLeads()
        self.stats = ReceiverStats()
        self.max_body_bytes = max_body_bytes
        self._secret = settings.app_secret.get_secret_value()
        self._verify_token = settings.verify_token.get_secret_value()
        self._busy = 0
        self._idle = threading.Condition()
        self._threads = ThreadPoolExecutor(fetch_threads, thread_name_prefix="facebook-webhook")

    async def endpoint(self, request: Request) -> Response:
        """The ASGI endpoint: GET is the handshake, POST a delivery."""
        if request.method in ("GET", "HEAD"):
            return self._handshake(request)
        body = await self._body(request)
        if body is None:
            self.stats.rejected += 1
            log.warning("facebook webhook: refused a delivery over %d bytes", self.max_body_bytes)
            return PlainTextResponse("payload too large", status_code=413)
        if not signature_ok(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            self.stats.rejected += 1
            log.warning("facebook webhook: refused a delivery with a wrong or missing signature")
            return PlainTextResponse("invalid signature", status_code=403)
        try:
            changes = parse_delivery(body)
        except ValueError as exc:
            self.stats.rejected += 1
            return PlainTextResponse(f"bad delivery: {exc}", status_code=400)
        new = self._claim(changes)
        if not new:
            return PlainTextResponse("EVENT_RECEIVED")
        with self._idle:
            self._busy += 1
        task = BackgroundTask(self._hand_on, new)
        return PlainTextResponse("EVENT_RECEIVED", background=task)

    async def _hand_on(self, lead_ids: Sequence[str]) -> None:
        """After the answer: process the leads on the receiver's threads."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, self._process_accepted, lead_ids)

    async def _body(self, request: Request) -> bytes | None:
        """The raw body, or None as soon as it is known to be over `max_body_bytes`."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > self.max_body_bytes:
                return None
        return bytes(body)

    def _handshake(self, request: Request) -> Response:
        query = request.query_params
        token, challenge = query.get("hub.verify_token", ""), query.get("hub.challenge", "")
        same = hmac.compare_digest(token.encode(), self._verify_token.encode())
        if query.get("hub.mode") != "subscribe" or not same or not challenge:
            return PlainTextResponse("verification failed", status_code=403)
        return PlainTextResponse(challenge[:256])

    def _claim(self, changes: Sequence[LeadgenChange]) -> list[str]:
        settings = self.source.settings
        forms = set(settings.form_ids)
        new = []
        for change in changes:
            self.stats.received += 1
            if change.page_id != settings.page_id or (forms and change.form_id not in forms):
                self.stats.ignored += 1
            elif self.dedup.claim(change.leadgen_id):
                new.append(change.leadgen_id)
            else:
                self.stats.duplicates += 1
        return new

    def process(self, lead_ids: Sequence[str]) -> None:
        """Fetch the leads and hand them on; failures are logged and their ids forgotten."""
        items, fetched = self._fetch(lead_ids)
        if not items:
            return
        try:
            self.handle_leads(self.source.name, items)
            self.stats.stored += len(fetched)
        except Exception:
            log.exception("facebook webhook: storing leads %s failed", ", ".join(fetched))
            self._failed(fetched)

    def _process_accepted(self, lead_ids: Sequence[str]) -> None:
        try:
            self.process(lead_ids)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _fetch(self, lead_ids: Sequence[str]) -> tuple[list[Item], list[str]]:
        items: list[Item] = []
        fetched: list[str] = []
        for lead_id in lead_ids:
            try:
                items.extend(self.source.fetch_leads([lead_id]))
                fetched.append(lead_id)
            except RequestRejected as exc:  # deleted, or a test lead we may not read: final
                log.warning("facebook webhook: lead %s cannot be read: %s", lead_id, exc)
                self.stats.failed.append(lead_id)
            except LeadhubError as exc:
                log.error("facebook webhook: lead %s not fetched (the next pull will): %s",
                          lead_id, exc)  # fmt: skip
                self._failed([lead_id])
        return items, fetched

    def _failed(self, lead_ids: Sequence[str]) -> None:
        for lead_id in lead_ids:
            self.dedup.forget(lead_id)
            self.stats.failed.append(lead_id)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every accepted delivery is processed; False on timeout (tests, demo)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def routes(self, path: str = WEBHOOK_PATH) -> list[BaseRoute]:
        return [Route(path, self.endpoint, methods=["GET", "POST"])]

    def app(self, path: str = WEBHOOK_PATH) -> Starlette:
        """A standalone ASGI app serving the receiver at `path`."""
        return Starlette(routes=self.routes(path))
