"""The Facebook webhook under `leadhub serve`: its own signature and verify token, not the API's."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.facebook_leads.sandbox import app as fb_sandbox
from connectors.facebook_leads.sandbox.world import PAGE_ID as SANDBOX_PAGE_ID
from connectors.facebook_leads.webhook import SIGNATURE_HEADER, sign
from connectors.sandbox.server import serve
from connectors.sandbox.world import World
from core.config import HubConfig, SourceConfig, load_hub
from core.settings import Settings
from core.store import store as queries
from core.store.store import Store
from core.web.app import create_app
from tests.connectors.facebook_leads.payloads import (
    APP_SECRET,
    FORM_ID,
    FORMS_PAGE,
    GRAPH,
    PAGE_ID,
    SINGLE_LEAD,
    TEST_DELIVERY,
    VERIFY_TOKEN,
)
from tests.connectors.facebook_leads.payloads import settings as fb_settings
from tests.web import seed
from tests.web.conftest import TOKEN, Client, settings

BODY = json.dumps(TEST_DELIVERY).encode()
HANDSHAKE = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}


def hub_with(tmp_path: Path, **fb: Any) -> HubConfig:
    source = SourceConfig("fb", "facebook_leads", fb_settings(**fb))
    return HubConfig(path=tmp_path / "leadhub.yaml", sources={"fb": source}, models=seed.models())


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, source: str, items: Sequence[Any]) -> None:
        self.calls.append((source, len(items)))


def test_handshake_and_signed_delivery_need_no_api_credentials(
    store: Store, tmp_path: Path
) -> None:
    recorder = Recorder()
    hub = hub_with(tmp_path, app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
    app = create_app(store, hub, settings(), handle_leads=recorder)
    assert set(app.state.webhooks) == {"/webhooks/facebook", "/webhooks/facebook/fb"}
    client = Client(app)
    answer = client.get(
        "/webhooks/facebook", params={**HANDSHAKE, "hub.verify_token": VERIFY_TOKEN}
    )
    assert (answer.status_code, answer.text) == (200, "1158201444")
    with respx.mock:
        respx.get(f"{GRAPH}/{FORM_ID}").respond(json=FORMS_PAGE["data"][0])
        respx.get(f"{GRAPH}/{SINGLE_LEAD['id']}").respond(json=SINGLE_LEAD)
        headers = {SIGNATURE_HEADER: sign(APP_SECRET, BODY), "Content-Type": "application/json"}
        delivered = client.request("POST", "/webhooks/facebook", content=BODY, headers=headers)
    assert (delivered.status_code, delivered.text) == (200, "EVENT_RECEIVED")
    assert recorder.calls == [("fb", 2)]  # the lead and its ad_form_submitted activity


def test_the_api_token_opens_nothing_on_the_webhook(store: Store, tmp_path: Path) -> None:
    hub = hub_with(tmp_path, app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
    client = Client(create_app(store, hub, settings()), {"Authorization": f"Bearer {TOKEN}"})
    wrong = client.get("/webhooks/facebook", params={**HANDSHAKE, "hub.verify_token": TOKEN})
    assert wrong.status_code == 403
    unsigned = client.request("POST", "/webhooks/facebook", content=BODY)
    assert unsigned.status_code == 403


def test_a_source_without_webhook_secrets_is_not_mounted(store: Store, tmp_path: Path) -> None:
    app = create_app(store, hub_with(tmp_path), settings())
    assert app.state.webhooks == {}
    assert Client(app).get("/webhooks/facebook", params=HANDSHAKE).status_code == 404


def test_no_facebook_source_no_route(store: Store, tmp_path: Path) -> None:
    app = create_app(store, seed.hub(tmp_path), settings())
    assert app.state.webhooks == {}


# -- the default handler: stored, then scored by the score job ---------------------------------


@pytest.fixture
def hub_file(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., HubConfig]]:
    """Writes the hub file `leadhub serve` reads (source `fb` with its webhook secrets, the test
    model plus a lead-form rule), with the jobs (stub broker) pointed at it and the test store."""
    from core.jobs import actors  # noqa: F401  (declares the actors)
    from core.jobs.broker import configure, reset_context

    path = tmp_path / "leadhub.yaml"
    model: dict[str, Any] = copy.deepcopy(seed.MODEL)
    model["engagement"]["rules"].append(
        {"name": "Lead form", "event": "ad_form_submitted", "points": 40}
    )

    def write(**overrides: Any) -> HubConfig:
        source = {
            "connector": "facebook_leads",
            "page_id": PAGE_ID,
            "access_token": "EAAB-page-token-for-tests",
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            **overrides,
        }
        body = {"sources": {"fb": source}, "scoring": {"models": [model]}}
        path.write_text(yaml.safe_dump(body), encoding="utf-8")
        return load_hub(path)

    monkeypatch.setenv("LEADHUB_CONFIG", str(path))
    monkeypatch.setenv("LEADHUB_DATABASE_URL", db_url)
    broker = configure(Settings(broker_url=None))
    yield write
    broker.flush_all()
    reset_context()


def deliver_signed(client: Client, body: bytes, signature: str) -> tuple[int, int]:
    """(the answer's status, how many times the lead was fetched from the Graph API)."""
    headers = {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}
    with respx.mock:
        respx.get(f"{GRAPH}/{FORM_ID}").respond(json=FORMS_PAGE["data"][0])
        lead = respx.get(f"{GRAPH}/{SINGLE_LEAD['id']}").respond(json=SINGLE_LEAD)
        answer = client.request("POST", "/webhooks/facebook", content=body, headers=headers)
    return answer.status_code, lead.call_count


def score_of(store: Store, email: str) -> dict[str, Any]:
    lead = store.lead_by_email(email)
    assert lead is not None, f"{email} not stored"
    [score] = queries.lead_scores(store, int(lead["id"]))
    return score


def test_a_signed_delivery_is_stored_and_scored_once(
    hub_file: Callable[..., HubConfig], store: Store
) -> None:
    from core.jobs import actors as jobs

    client = Client(create_app(store, hub_file(), settings()))
    assert deliver_signed(client, BODY, sign(APP_SECRET, BODY)) == (200, 1)
    lead = store.lead_by_email("joe@example.com")
    assert lead is not None and lead["first_name"] == "Joe"
    jobs.run_until_idle(threads=1, timeout=30)  # the score job the delivery enqueued
    score = score_of(store, "joe@example.com")
    assert (score["model"], score["total"], score["tier"]) == ("default", 40, "warm")
    assert score["reason"].startswith("Lead form")

    # Meta retries a delivery: answered, not fetched again, still one lead.
    assert deliver_signed(client, BODY, sign(APP_SECRET, BODY)) == (200, 0)
    assert len(store.leads()) == 1


@pytest.mark.parametrize("signature", ["sha256=" + "0" * 64, sign("another-secret", BODY), ""])
def test_a_bad_signature_is_403_and_stores_nothing(
    hub_file: Callable[..., HubConfig], store: Store, signature: str
) -> None:
    client = Client(create_app(store, hub_file(), settings()))
    assert deliver_signed(client, BODY, signature) == (403, 0)
    assert store.leads() == []


@pytest.mark.e2e
def test_over_http_a_sandbox_lead_is_delivered_fetched_and_scored(
    hub_file: Callable[..., HubConfig], store: Store
) -> None:
    from core.jobs import actors as jobs

    world = World.build(seed=7, people=40)
    person = next(p for p in world.people if not p.in_facebook)
    graph = fb_sandbox.create_app(world)
    with serve(Starlette(routes=[Mount(fb_sandbox.MOUNT_PREFIX, app=graph)])) as sandbox_url:
        hub = hub_file(
            base_url=sandbox_url + fb_sandbox.MOUNT_PREFIX,
            page_id=SANDBOX_PAGE_ID,
            access_token=fb_sandbox.ACCESS_TOKEN,
            app_secret=fb_sandbox.APP_SECRET,
        )
        web = create_app(store, hub, settings())
        with serve(web) as served_url:
            submitted = httpx.post(
                f"{sandbox_url}{fb_sandbox.MOUNT_PREFIX}/__sandbox/leads",
                json={"person": person.key, "deliver_to": f"{served_url}/webhooks/facebook"},
            )
            assert submitted.status_code == 201 and submitted.json()["delivered"] == 200
            assert web.state.webhooks["/webhooks/facebook"].wait_idle(10)
    jobs.run_until_idle(threads=1, timeout=30)
    assert score_of(store, person.email)["total"] >= 40  # at least the lead-form rule
