"""The Facebook webhook receiver over real HTTP, fed by the Graph sandbox: signatures that are
truncated or mangled, replayed deliveries (also after a restart, when the in-memory de-duplication
is gone) and oversized bodies. Missing and wrong signatures are covered next to the receiver
(tests/connectors/facebook_leads/test_webhook.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.facebook_leads import FacebookLeadsSettings, FacebookLeadsSource
from connectors.facebook_leads.sandbox.app import ACCESS_TOKEN, APP_SECRET, create_app
from connectors.facebook_leads.sandbox.world import PAGE_ID, deliver
from connectors.facebook_leads.webhook import SIGNATURE_HEADER, WEBHOOK_PATH, WebhookReceiver, sign
from connectors.sandbox.server import serve
from core.store.store import Store
from tests.connectors.facebook_leads.hub import wired
from tests.e2e.harness import WORLD
from tests.writeback.recording import RecordingDestination

pytestmark = pytest.mark.e2e


@dataclass
class Hub:
    graph: str  # the Graph sandbox's base URL
    sandbox: Any
    store: Store
    crm: RecordingDestination
    receiver: WebhookReceiver
    url: str  # the receiver's URL

    def lead_reads(self) -> int:
        return sum(1 for c in self.sandbox.calls if c["path"].count("/") == 3)  # /prefix/vNN/{id}

    def new_lead(self) -> tuple[bytes, str]:
        """A new lead in the sandbox, and its delivery body as Meta would sign and send it."""
        answer = httpx.post(f"{self.graph}/__sandbox/leads", json={"person": WORLD.people[3].key})
        body = json.dumps(answer.json()["delivery"]).encode()
        return body, sign(APP_SECRET, body)

    def post(self, body: bytes | Any, signature: str | None) -> httpx.Response:
        headers: dict[bytes, bytes] = {}
        if signature is not None:  # as bytes: a mangled value may not be ASCII
            headers[SIGNATURE_HEADER.encode()] = signature.encode()
        answer = httpx.post(self.url, content=body, headers=headers, timeout=10)
        assert self.receiver.wait_idle(10)
        return answer


def receiver(graph: str, store: Store, **options: Any) -> tuple[WebhookReceiver, Any]:
    block = FacebookLeadsSettings(page_id=PAGE_ID, access_token=ACCESS_TOKEN,
                                  app_secret=APP_SECRET, verify_token="verify-me",
                                  base_url=graph)  # fmt: skip
    handle, crm = wired(store)
    return WebhookReceiver(FacebookLeadsSource("fb", block), handle, **options), crm


@pytest.fixture
def hub(store: Store) -> Iterator[Hub]:
    graph_app = create_app(WORLD)
    with serve(Starlette(routes=[Mount("/facebook_leads", app=graph_app)])) as graph_root:
        graph = f"{graph_root}/facebook_leads"
        app, crm = receiver(graph, store)
        with serve(app.app()) as root:
            yield Hub(graph, graph_app.state.sandbox, store, crm, app, root + WEBHOOK_PATH)


def test_the_sandbox_delivery_is_accepted_and_lands_in_the_crm(hub: Hub) -> None:
    body, signature = hub.new_lead()
    assert hub.post(body, signature).status_code == 200
    assert hub.store.count("lead") == 1 and len(hub.crm.sent) == 1


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-8], id="truncated"),
        pytest.param(lambda s: s[: len("sha256=") + 32], id="half"),
        pytest.param(lambda s: "sha256=", id="prefix-only"),
        pytest.param(lambda s: s.removeprefix("sha256="), id="hex-without-prefix"),
        pytest.param(lambda s: s.replace("sha256=", "sha1="), id="other-algorithm"),
        pytest.param(lambda s: "sha256=" + s[7:].upper(), id="upper-case-hex"),
        pytest.param(lambda s: s + "00", id="extended"),
        pytest.param(lambda s: s + ",sha256=" + "0" * 64, id="two-values"),
        pytest.param(lambda s: "sha256=\u00e9" + s[8:], id="non-ascii"),
    ],
)
def test_a_mangled_signature_is_403_and_nothing_is_fetched_or_stored(hub: Hub, mangle: Any) -> None:
    body, signature = hub.new_lead()
    reads = hub.lead_reads()

    answer = hub.post(body, mangle(signature))

    assert answer.status_code == 403
    assert hub.lead_reads() == reads and hub.store.count("lead") == 0 and hub.crm.sent == []
    assert hub.receiver.stats.rejected == 1


def test_a_body_signed_with_an_empty_secret_is_403(hub: Hub) -> None:
    body, _ = hub.new_lead()
    assert hub.post(body, sign("", body)).status_code == 403
    assert hub.store.count("lead") == 0


def test_a_replayed_delivery_is_answered_but_never_stored_or_pushed_twice(hub: Hub) -> None:
    body, signature = hub.new_lead()
    assert hub.post(body, signature).status_code == 200
    before = (hub.lead_reads(), hub.store.count("lead"), hub.store.count("activity"))

    for _ in range(3):  # Meta retrying, or someone replaying a captured delivery
        assert hub.post(body, signature).status_code == 200

    assert (hub.lead_reads(), hub.store.count("lead"), hub.store.count("activity")) == before
    assert len(hub.crm.sent) == 1
    assert hub.receiver.stats.duplicates == 3


def test_a_replay_after_a_restart_refetches_but_duplicates_nothing(hub: Hub) -> None:
    body, signature = hub.new_lead()
    assert hub.post(body, signature).status_code == 200
    first = hub.store.lead_by_email(WORLD.people[3].email)

    # A restart forgets the in-memory de-duplication; the store's upsert keys still hold.
    restarted, crm = receiver(hub.graph, hub.store)
    with serve(restarted.app()) as root:
        answer = httpx.post(root + WEBHOOK_PATH, content=body,
                            headers={SIGNATURE_HEADER: signature})  # fmt: skip
        assert answer.status_code == 200 and restarted.wait_idle(10)

    assert restarted.stats.stored == 1  # fetched again: the replay is not trusted, Graph is
    assert hub.store.count("lead") == 1 and hub.store.count("activity") == 1
    assert hub.store.lead_by_email(WORLD.people[3].email) == first
    assert crm.sent == []  # the score did not change, so nothing is pushed again


def test_an_oversized_body_is_413_without_being_read(hub: Hub) -> None:
    body, _ = hub.new_lead()
    limit = hub.receiver.max_body_bytes
    padded = body[:-1] + b', "padding": "' + b"x" * limit + b'"}'
    reads = hub.lead_reads()

    declared = hub.post(padded, sign(APP_SECRET, padded))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for start in range(0, len(padded), 64 * 1024):
            yield padded[start : start + 64 * 1024]

    streamed = hub.post(chunks(), sign(APP_SECRET, padded))

    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert hub.lead_reads() == reads and hub.store.count("lead") == 0
    assert hub.receiver.stats.rejected == 2


def test_a_body_just_under_the_limit_is_still_verified_and_accepted(hub: Hub) -> None:
    body, _ = hub.new_lead()
    padded = body[:-1] + b', "padding": "' + b"x" * (len(body) * 3) + b'"}'
    hub.receiver.max_body_bytes = len(padded)

    assert hub.post(padded, sign(APP_SECRET, padded)).status_code == 200
    assert hub.store.count("lead") == 1


def test_the_sandbox_signs_its_deliveries_as_meta_does(hub: Hub) -> None:
    body, signature = hub.new_lead()
    assert deliver(hub.url, json.loads(body), APP_SECRET).status_code == 200
    assert hub.receiver.wait_idle(10) and hub.store.count("lead") == 1
    assert signature == sign(APP_SECRET, body)
