"""The webhook receiver: handshake, signatures, de-duplication, and a lead that lands scored in
the CRM in the same run. Graph is mocked with respx; the receiver runs in-process over ASGI."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from connectors.base.contract import Item
from connectors.facebook_leads import FacebookLeadsSource
from connectors.facebook_leads.webhook import (
    SIGNATURE_HEADER,
    WEBHOOK_PATH,
    WebhookReceiver,
    parse_delivery,
    sign,
)
from connectors.sandbox.server import serve
from core.records import LeadRecord
from core.store.store import Store
from tests.connectors.facebook_leads.hub import wired
from tests.connectors.facebook_leads.payloads import (
    APP_SECRET,
    DOC_DELIVERY,
    FORM_ID,
    FORMS_PAGE,
    GRAPH,
    PAGE_ID,
    SINGLE_LEAD,
    TEST_DELIVERY,
    TOKEN,
    VERIFY_TOKEN,
    graph_error,
    settings,
)

LEAD_URL = f"{GRAPH}/{SINGLE_LEAD['id']}"
BODY = json.dumps(TEST_DELIVERY).encode()


def receiver(handle: Any, **overrides: Any) -> WebhookReceiver:
    block = settings(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, **overrides)
    return WebhookReceiver(FacebookLeadsSource("fb", block, sleep=lambda _: None), handle)


def call(app: WebhookReceiver, method: str, **kwargs: Any) -> httpx.Response:
    """One request to the receiver's ASGI app (background work included, as a server runs it)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            return await client.request(method, WEBHOOK_PATH, **kwargs)

    return anyio.run(send)


def post(
    app: WebhookReceiver, body: bytes = BODY, signature: str | None = "good"
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = sign(APP_SECRET, body) if signature == "good" else signature
    return call(app, "POST", content=body, headers=headers)


def mock_graph() -> respx.Route:
    respx.get(f"{GRAPH}/{FORM_ID}").respond(json=FORMS_PAGE["data"][0])
    return respx.get(LEAD_URL).respond(json=SINGLE_LEAD)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Item]]] = []

    def __call__(self, source: str, items: Sequence[Item]) -> None:
        self.calls.append((source, list(items)))


# -- handshake -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "token", "status", "text"),
    [
        ("subscribe", VERIFY_TOKEN, 200, "1158201444"),
        ("subscribe", "wrong", 403, "verification failed"),
        ("unsubscribe", VERIFY_TOKEN, 403, "verification failed"),
    ],
)
def test_the_handshake_echoes_the_challenge_only_for_the_right_verify_token(
    mode: str, token: str, status: int, text: str
) -> None:
    params = {"hub.mode": mode, "hub.challenge": "1158201444", "hub.verify_token": token}

    answer = call(receiver(Recorder()), "GET", params=params)

    assert (answer.status_code, answer.text) == (status, text)


# -- signatures ----------------------------------------------------------------------------------


@respx.mock
@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (BODY, None),
        (BODY, sign("another-secret", BODY)),
        (BODY, "sha256=" + "0" * 64),
        # The same JSON, re-serialized: the signature is over the raw bytes, not the content.
        (json.dumps(TEST_DELIVERY, indent=1).encode(), sign(APP_SECRET, BODY)),
    ],
)
def test_a_wrong_or_missing_signature_is_403_and_nothing_is_stored(
    store: Store, body: bytes, signature: str | None
) -> None:
    graph = mock_graph()
    handle, crm = wired(store)
    app = receiver(handle)

    answer = post(app, body, signature)

    assert answer.status_code == 403
    assert not graph.called and store.count("lead") == 0 and crm.calls == []
    assert app.stats.rejected == 1


# -- deliveries ----------------------------------------------------------------------------------


@respx.mock
def test_a_valid_delivery_lands_the_lead_scored_in_the_crm_in_the_same_run(store: Store) -> None:
    mock_graph()
    handle, crm = wired(store)

    answer = post(receiver(handle))

    assert (answer.status_code, answer.text) == (200, "EVENT_RECEIVED")
    lead = store.lead_by_email("joe@example.com")
    assert lead is not None and lead["first_name"] == "Joe"
    [record] = crm.records.values()
    assert record == {"email": "joe@example.com", "firstname": "Joe", "lead_score": 70.0,
                      "lead_tier": "hot"}  # fmt: skip
    assert store.count("activity") == 1


@respx.mock
def test_a_delivery_sent_twice_gives_one_lead_and_one_fetch(store: Store) -> None:
    graph = mock_graph()
    handle, crm = wired(store)
    app = receiver(handle)

    assert post(app).status_code == 200
    assert post(app).status_code == 200  # Meta retries: answer 200, do nothing

    assert graph.call_count == 1
    assert store.count("lead") == 1 and len(crm.sent) == 1
    assert (app.stats.received, app.stats.duplicates, app.stats.stored) == (2, 1, 1)


@respx.mock
def test_the_docs_numeric_ids_are_read_as_strings_and_other_pages_are_ignored() -> None:
    route = respx.get(f"{GRAPH}/123123123123").respond(json={**SINGLE_LEAD, "id": "123123123123"})
    respx.get(f"{GRAPH}/{FORM_ID}").respond(json=FORMS_PAGE["data"][0])
    ours, theirs = Recorder(), Recorder()

    post(receiver(ours, page_id="123123123"), json.dumps(DOC_DELIVERY).encode())
    post(receiver(theirs), json.dumps(DOC_DELIVERY).encode())  # another Page's delivery

    assert route.call_count == 1
    [(source, items)] = ours.calls
    assert source == "fb" and {getattr(i, "external_id", None) for i in items} == {"123123123123"}
    assert theirs.calls == []
    assert parse_delivery(json.dumps(DOC_DELIVERY).encode())[0].form_id == "12312312312"


@respx.mock
def test_deliveries_for_forms_not_configured_are_ignored() -> None:
    graph = mock_graph()
    handle = Recorder()
    app = receiver(handle, form_ids=["999"])

    assert post(app).status_code == 200
    assert not graph.called and handle.calls == [] and app.stats.ignored == 1


@respx.mock
def test_a_lead_whose_fetch_failed_is_fetched_again_when_meta_redelivers_it() -> None:
    respx.get(f"{GRAPH}/{FORM_ID}").respond(json=FORMS_PAGE["data"][0])
    route = respx.get(LEAD_URL).mock(
        side_effect=[httpx.Response(400, json=graph_error(190, 463)),
                     httpx.Response(200, json=SINGLE_LEAD)]
    )  # fmt: skip
    handle = Recorder()
    app = receiver(handle)

    post(app)
    assert handle.calls == [] and app.stats.failed == [SINGLE_LEAD["id"]]
    post(app)

    assert route.call_count == 2 and len(handle.calls) == 1


def test_a_signed_body_that_is_not_a_delivery_is_400() -> None:
    assert post(receiver(Recorder()), b"not json").status_code == 400
    assert post(receiver(Recorder()), b'{"object": "page"}').status_code == 400


@pytest.mark.e2e
@respx.mock
def test_the_answer_does_not_wait_for_the_lead_to_be_fetched_and_stored() -> None:
    mock_graph()
    respx.route(host="127.0.0.1").pass_through()
    release, handled = threading.Event(), threading.Event()

    def slow_handle(source: str, items: Sequence[Item]) -> None:
        release.wait(10)
        handled.set()

    app = receiver(slow_handle)
    with serve(app.app()) as url:
        headers = {SIGNATURE_HEADER: sign(APP_SECRET, BODY)}
        answer = httpx.post(url + WEBHOOK_PATH, content=BODY, headers=headers, timeout=5)
        assert answer.status_code == 200 and not handled.is_set()
        release.set()
        assert app.wait_idle(5) and handled.is_set()
    assert TOKEN not in answer.text


class StuckGraph:
    """A Lead Ads source whose lead fetches hang until released (a slow Graph under a burst)."""

    name = "fb"

    def __init__(self) -> None:
        self.settings = settings(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
        self.release = threading.Event()
        self.fetched: list[str] = []

    def fetch_leads(self, lead_ids: Sequence[str]) -> list[Item]:
        self.release.wait(30)
        self.fetched.extend(lead_ids)
        return [LeadRecord(source="fb", external_id=lead_id) for lead_id in lead_ids]


def delivery(lead_id: int) -> bytes:
    value = {"leadgen_id": str(lead_id), "page_id": PAGE_ID}
    return json.dumps({"object": "page", "entry": [{"changes": [
        {"field": "leadgen", "value": value}]}]}).encode()  # fmt: skip


def test_a_burst_of_slow_fetches_leaves_the_servers_threads_to_the_api() -> None:
    # More accepted deliveries than the server has threads for synchronous endpoints (40):
    # their fetches queue on the receiver's own threads, and the API still answers meanwhile.
    graph, handled = StuckGraph(), Recorder()
    app = WebhookReceiver(graph, handled)
    web = Starlette(routes=[*app.routes(), Route("/api/ping", lambda _: PlainTextResponse("pong"))])
    deliveries = [delivery(n) for n in range(60)]
    with serve(web) as url, httpx.Client(base_url=url, timeout=10) as client:
        try:
            for body in deliveries:
                headers = {SIGNATURE_HEADER: sign(APP_SECRET, body)}
                assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200

            assert client.get("/api/ping").text == "pong"  # no fetch has finished yet
            assert graph.fetched == [] and handled.calls == []
        finally:
            graph.release.set()
        assert app.wait_idle(20)
    assert sorted(graph.fetched, key=int) == [str(n) for n in range(60)]
    assert app.stats.stored == 60
