"""POST batches of changed scores as JSON to a URL, signed with HMAC-SHA256.

Signature. Every request carries the header

    X-Leadhub-Signature-256: sha256=<hex>

where `<hex>` is the lowercase hex digest of HMAC-SHA256 keyed with the block's `secret` (its UTF-8
bytes) over the raw request body, exactly as sent. To verify, compute the same digest over the body
bytes as received (before parsing the JSON) and compare in constant time:

    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    hmac.compare_digest(expected, request.headers["X-Leadhub-Signature-256"])

(`verify(secret, body, header)` does exactly this.) `X-Leadhub-Delivery` is the SHA-256 of the body:
a batch sent again after a crash has the same delivery id, so a receiver that must not act twice
(a chat message) can drop repeats.

Payloads (`Content-Type: application/json`):

    {"type": "scores", "destination": "slack", "model": "default",
     "records": [{"lead_id": 7, "email": "ann@example.com", "record_id": null,
                  "values": {"total": 72.0, "tier": "hot"}, "lead": {"first_name": "Ann"}}]}

    {"type": "qualified", "destination": "slack", "model": "default",
     "records": [{"lead_id": 7, "email": "ann@example.com", "record_id": null, "event_id": 31,
                  "subject": "Follow up: Ann Lee qualified (score 72)", "body": "…",
                  "due_at": "2026-01-02T09:00:00+00:00", "values": {…}}]}

Answers: 2xx accepts every record, unless the body is `{"results": [{"lead_id": 7, "status":
"ok" | "retry" | "rejected", "reason": "…"}]}` (records not listed are accepted); 401/403 stop the
push (bad credentials); 408, 425, 429, 5xx and network failures are retried twice at once, then the
batch waits for the outbox's backoff and the push stops; any other status parks the batch's records
with the status and the start of the response body as their reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from connectors.base.contract import (
    ConnectorSettings,
    DestinationContext,
    QualifiedItem,
    SourceContext,
    WriteItem,
    WriteOutcome,
    http_url,
)
from connectors.base.settings import DestinationSettings
from core.errors import ConfigError, RequestRejected, TransientError
from core.http import HttpClient, RetryPolicy, Verdict

SIGNATURE_HEADER = "X-Leadhub-Signature-256"
DELIVERY_HEADER = "X-Leadhub-Delivery"
RETRY = RetryPolicy(max_attempts=3, backoff_base=0.5, backoff_cap=5, max_total_wait=30)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`: `sha256=<hex HMAC-SHA256(secret, body)>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under `secret` (constant-time compare)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class WebhookSettings(ConnectorSettings):
    """The webhook's own keys in a destination block.

    Parameters:
        url: where to POST; kept secret, since chat webhook URLs carry their token in the path.
        secret: the HMAC key the receiver verifies signatures with.
        headers: extra request headers.
        batch_size: records per request, 1 to 1000.
        timeout: seconds to wait for an answer.
    """

    url: SecretStr
    secret: SecretStr
    headers: dict[str, str] = Field(default_factory=dict)
    batch_size: int = Field(default=100, ge=1, le=1000)
    timeout: float = Field(default=10, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        http_url(value.get_secret_value())
        return value

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty (receivers verify the signature with it)")
        return value


class WebhookDestination:
    """Sends each batch as one signed POST; the answer applies to every record of the batch.

    Requests go through `core.http.HttpClient` (a few quick retries, classified errors, the URL
    redacted from every message); longer outages are the outbox's backoff.
    """

    def __init__(
        self,
        name: str,
        settings: WebhookSettings,
        config: DestinationSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.batch_size = settings.batch_size
        self.settings = settings
        self.config = config
        url = settings.url.get_secret_value()
        path = urlsplit(url).path
        self.client = HttpClient(
            headers=settings.headers,
            secrets=[url, settings.secret.get_secret_value(), *([path] if len(path) > 1 else [])],
            retry=RETRY,
            timeout=settings.timeout,
            classify=_classify,
            sleep=sleep,
        )

    def prepare(self) -> None:
        """Nothing to create: the receiver takes whatever fields the block maps."""

    def write(self, batch: Sequence[WriteItem]) -> list[WriteOutcome]:
        records = [
            {"lead_id": i.lead_id, "email": i.email, "record_id": i.record_id,
             "values": dict(i.values), "lead": dict(i.lead_fields)}
            for i in batch
        ]  # fmt: skip
        return self._post("scores", records, [i.lead_id for i in batch])

    def on_qualified(self, batch: Sequence[QualifiedItem]) -> list[WriteOutcome]:
        records = [
            {"lead_id": i.lead_id, "email": i.email, "record_id": i.record_id,
             "event_id": i.event_id, "subject": i.subject, "body": i.body,
             "due_at": i.due_at.isoformat() if i.due_at else None, "values": dict(i.values)}
            for i in batch
        ]  # fmt: skip
        return self._post("qualified", records, [i.lead_id for i in batch])

    def _post(
        self, kind: Literal["scores", "qualified"], records: list[dict[str, Any]], ids: list[int]
    ) -> list[WriteOutcome]:
        payload = {"type": kind, "destination": self.name, "model": self.config.model}
        body = json.dumps({**payload, "records": records}, separators=(",", ":"), default=str)
        raw = body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.settings.secret.get_secret_value(), raw),
            DELIVERY_HEADER: hashlib.sha256(raw).hexdigest(),
        }
        try:
            response = self.client.post(
                self.settings.url.get_secret_value(), content=raw, headers=headers
            )
        except RequestRejected as exc:  # the receiver refused this batch: park its records
            reason = f"HTTP {exc.status}: {exc.body[:300]}" if exc.status else str(exc)
            return [WriteOutcome(i, "rejected", reason=reason) for i in ids]
        return _per_record(response, ids)


def _classify(response: httpx.Response) -> Verdict | None:
    """425 Too Early is worth a retry too; everything else as `core.http` classifies it."""
    return Verdict(TransientError) if response.status_code == 425 else None


def _per_record(response: httpx.Response, ids: list[int]) -> list[WriteOutcome]:
    """A 2xx answer accepts every record unless it lists per-record results."""
    try:
        results = response.json().get("results") if response.content else None
    except (ValueError, AttributeError):
        results = None
    said: dict[int, WriteOutcome] = {}
    for entry in results if isinstance(results, list) else []:
        if isinstance(entry, dict) and entry.get("status") in ("ok", "retry", "rejected"):
            lead_id = entry.get("lead_id")
            if isinstance(lead_id, int):
                reason = str(entry.get("reason", ""))
                said[lead_id] = WriteOutcome(lead_id, entry["status"], reason=reason)
    return [said.get(i, WriteOutcome(i, "ok")) for i in ids]


class WebhookConnector:
    """Entry point `webhook` in `leadhub.connectors`: a destination only."""

    name: ClassVar[str] = "webhook"
    settings_model: ClassVar[type[ConnectorSettings]] = WebhookSettings

    def source(self, settings: Any, context: SourceContext) -> Any:
        raise ConfigError(
            f"sources.{context.name}.connector: webhook only writes; list it under destinations"
        )

    def destination(
        self, settings: WebhookSettings, context: DestinationContext
    ) -> WebhookDestination:
        return WebhookDestination(context.name, settings, context.config)
