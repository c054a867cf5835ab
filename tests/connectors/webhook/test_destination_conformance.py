"""The webhook destination passes the destination conformance suite against a local receiver.

The receiver is what a user's endpoint does with the documented payload (see
`connectors/webhook/destination.py`): it verifies the signature, keeps each record's values by
record id, and can answer 429 or 500, or refuse one record with a per-record result. The
decoders are JSON's own forms: numbers and booleans as JSON numbers and booleans, the time as an
ISO 8601 string with its offset, an absent value as null; a webhook has no length limit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.base.settings import DestinationSettings
from connectors.sandbox.server import serve
from connectors.webhook import SIGNATURE_HEADER, WebhookDestination, WebhookSettings, verify
from core.store.store import Store
from tests.conformance import destination as suite

pytestmark = pytest.mark.e2e
SECRET = "receiver-signing-key"


def number(raw: Any) -> float | None:
    if raw is None:
        return None
    assert isinstance(raw, (int, float)) and not isinstance(raw, bool), f"{raw!r}: not a number"
    return float(raw)


def boolean(raw: Any) -> bool:
    assert isinstance(raw, bool), f"{raw!r} is not a JSON boolean"
    return raw


def string(raw: Any) -> str | None:
    assert raw is None or isinstance(raw, str), f"{raw!r} is not a JSON string"
    return raw


class Receiver:
    """A user's endpoint: keeps what it was sent; fails or refuses when told to."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.failing: int | None = None  # answer every POST with this status
        self.refusing: dict[str, str] = {}  # record id → the reason it is refused with
        self.lock = threading.Lock()

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.posts += 1
            if self.failing is not None:
                return JSONResponse({"error": "busy"}, self.failing, headers={"Retry-After": "0"})
        if not verify(SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            return JSONResponse({"error": "bad signature"}, 401)
        payload = await request.json()
        results = []
        for record in payload["records"]:
            ref = str(record["record_id"])
            if ref in self.refusing:
                results.append({"lead_id": record["lead_id"], "status": "rejected",
                                "reason": self.refusing[ref]})  # fmt: skip
                continue
            with self.lock:
                self.records[ref] = {**record["values"], "email": record["email"]}
            results.append({"lead_id": record["lead_id"], "status": "ok"})
        return JSONResponse({"results": results})


class WebhookHarness(suite.DestinationHarness):
    block: Mapping[str, Any] = {
        "connector": "webhook", "system": "receiver",
        "fields": {"total": "score", "fit": "fit", "engagement": "engagement", "tier": "tier",
                   "grade": "grade", "qualified": "qualified", "qualified_at": "qualified_at",
                   "reason": "reason"},
    }  # fmt: skip
    decoders = {"total": number, "fit": number, "engagement": number, "tier": string,
                "grade": string, "qualified": boolean, "qualified_at": suite.iso_datetime,
                "reason": string}  # fmt: skip

    def __init__(self, url: str, receiver: Receiver) -> None:
        self.url, self.receiver = url, receiver
        self._ids = iter(range(1, 1_000_000))

    def destination(self, config: DestinationSettings) -> WebhookDestination:
        block = WebhookSettings(connector="webhook", url=self.url, secret=SECRET)
        return WebhookDestination(config.name, block, config, sleep=lambda _: None)

    def records(self, n: int) -> list[tuple[str, str]]:
        return [(f"hook{i}@example.com", f"r-{i}") for i in (next(self._ids) for _ in range(n))]

    def stored(self, record_id: str) -> Mapping[str, Any] | None:
        return self.receiver.records.get(record_id)

    def holding(self, email: str) -> int:
        return sum(1 for r in self.receiver.records.values() if r["email"] == email)

    def calls(self) -> int:
        return self.receiver.posts

    def fail(self, kind: suite.Failure | None) -> None:
        self.receiver.failing = {None: None, "rate_limit": 429, "server_error": 500}[kind]

    def refuse(self, record_id: str) -> str:
        self.receiver.refusing[record_id] = f"no such subscriber {record_id}"
        return f"no such subscriber {record_id}"


@pytest.fixture
def harness() -> Iterator[WebhookHarness]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hooks/scores", receiver.receive, methods=["POST"])])
    with serve(app) as root:
        yield WebhookHarness(f"{root}/hooks/scores", receiver)


def test_one_outcome_per_item_in_order(store: Store, harness: WebhookHarness) -> None:
    suite.check_outcomes_match_the_batch(store, harness)


def test_429_and_5xx_are_retried(store: Store, harness: WebhookHarness) -> None:
    suite.check_failures_are_retried(store, harness)


def test_every_output_type_is_sent_as_json(store: Store, harness: WebhookHarness) -> None:
    suite.check_encodings(store, harness)


def test_unchanged_values_make_no_calls(store: Store, harness: WebhookHarness) -> None:
    suite.check_unchanged_values_make_no_calls(store, harness)
