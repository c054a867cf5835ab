"""The generic webhook destination: signed JSON batches (HTTP mocked with respx)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from importlib.metadata import entry_points

import httpx
import pytest
import respx

from connectors.base.contract import DestinationContext, WriteItem
from connectors.webhook import (
    SIGNATURE_HEADER,
    WebhookConnector,
    WebhookDestination,
    WebhookSettings,
    verify,
)
from core.errors import AuthError
from core.pipeline import outbox
from core.pipeline.outbox import validate_destination
from core.store.store import Store
from tests.writeback.conftest import NOW, add_event, seed_leads, set_scores

URL = "https://hooks.example.com/T000/B000/XXXXsecretpath"
SECRET = "s3cr3t-signing-key"
BLOCK = {
    "connector": "webhook",
    "url": URL,
    "secret": SECRET,
    "batch_size": 50,
    "mode": "upsert",
    "fields": {"total": "score", "tier": "tier", "qualified": "qualified"},
    "lead_fields": {"first_name": "first_name", "company": "company"},
    "on_qualified": {"subject": "{name} qualified ({total:.0f})"},
}


def webhook(
    block: dict[str, object] | None = None,
) -> tuple[outbox.DestinationSettings, WebhookDestination]:
    cfg, errors = validate_destination("chat", block or BLOCK, {"webhook": WebhookConnector})
    assert cfg is not None, errors
    return cfg, WebhookDestination("chat", cfg.options, cfg, sleep=lambda _: None)


def test_the_connector_is_registered() -> None:
    [ep] = [e for e in entry_points(group="leadhub.connectors") if e.name == "webhook"]
    assert ep.value == "connectors.webhook:WebhookConnector"


@respx.mock
def test_batches_are_signed_with_hmac_sha256_of_the_raw_body(store: Store) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(204))
    ids = seed_leads(store, 120, system=None)
    set_scores(store, ids, 64)
    cfg, destination = webhook()

    result = outbox.push(store, cfg, destination, now=NOW)

    assert result.accepted == 120 and route.call_count == 3
    request = route.calls[0].request
    body = request.content
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == expected
    assert verify(SECRET, body, request.headers[SIGNATURE_HEADER])
    assert not verify("wrong", body, request.headers[SIGNATURE_HEADER])
    assert request.headers["X-Leadhub-Delivery"] == hashlib.sha256(body).hexdigest()
    payload = json.loads(body)
    assert (payload["type"], payload["destination"], len(payload["records"])) == (
        "scores",
        "chat",
        50,
    )
    assert payload["records"][0] == {
        "lead_id": ids[0],
        "email": "lead0@example.com",
        "record_id": None,
        "values": {"score": 64.0, "tier": "cold", "qualified": False},
        "lead": {"first_name": "First0", "company": "Co 0"},
    }
    assert outbox.push(store, cfg, destination, now=NOW).attempted == 0


@respx.mock
def test_qualified_crossings_are_posted_once(store: Store) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200))
    [lead] = seed_leads(store, 1, system=None)
    set_scores(store, [lead], 81, qualified=True, qualified_at=NOW)
    add_event(store, lead, "qualified")
    cfg, destination = webhook()

    outbox.push(store, cfg, destination, now=NOW)
    outbox.push(store, cfg, destination, now=NOW)

    kinds = [json.loads(c.request.content)["type"] for c in route.calls]
    assert kinds == ["scores", "qualified"]
    [record] = json.loads(route.calls[1].request.content)["records"]
    assert record["subject"] == "First0 Lee qualified (81)"
    assert record["due_at"] == (NOW + timedelta(days=1)).isoformat()


@respx.mock
def test_answers_map_to_outcomes(store: Store) -> None:
    ids = seed_leads(store, 3, system=None)
    set_scores(store, ids, 10)
    cfg, destination = webhook({**BLOCK, "on_qualified": None})
    results = {"results": [{"lead_id": ids[1], "status": "rejected", "reason": "unknown user"}]}
    respx.post(URL).mock(return_value=httpx.Response(200, json=results))
    outbox.push(store, cfg, destination, now=NOW)
    assert outbox.outbox_counts(store)["chat"] == {"sent": 2, "parked": 1}
    [parked] = outbox.outbox_rows(store, "chat", states=["parked"])
    assert parked["last_error"] == "unknown user"

    respx.post(URL).mock(return_value=httpx.Response(422, text="field 'score' is not a number"))
    result = outbox.push(store, cfg, destination, now=NOW, retry_parked=True)
    assert result.rejections == [(ids[1], "HTTP 422: field 'score' is not a number")]


@respx.mock
def test_outages_retry_and_the_url_never_appears_in_errors(store: Store) -> None:
    ids = seed_leads(store, 2, system=None)
    set_scores(store, ids, 10)
    cfg, destination = webhook()
    respx.post(URL).mock(return_value=httpx.Response(503, text="down"))
    result = outbox.push(store, cfg, destination, now=NOW)
    assert result.error and result.error.startswith("chat: ") and "503" in result.error
    assert "secretpath" not in result.error and "[redacted]" in result.error
    assert outbox.outbox_counts(store)["chat"] == {"retry": 2}

    respx.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    later = outbox.push(store, cfg, destination, now=NOW + timedelta(hours=1))
    assert later.error and "secretpath" not in later.error


@respx.mock
def test_refused_credentials_raise_auth_error() -> None:
    respx.post(URL).mock(return_value=httpx.Response(401))
    _, destination = webhook()
    with pytest.raises(AuthError, match="answered 401"):
        destination.write([WriteItem(1, None, {"score": 1})])


def test_settings_errors_name_their_path() -> None:
    block = {"connector": "webhook", "url": "ftp://x", "fields": {"score": "s"}, "tokn": "x"}
    cfg, errors = validate_destination("chat", block, {"webhook": WebhookConnector})
    assert cfg is None
    assert "destinations.chat.url: must be an http:// or https:// URL" in errors
    assert "destinations.chat.secret: field required" in errors
    assert "destinations.chat.tokn: unknown setting" in errors
    assert any(e.startswith("destinations.chat.fields.score") for e in errors)


def test_a_webhook_is_not_a_source() -> None:
    from connectors.base.contract import SourceContext
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="only writes"):
        WebhookConnector().source(None, SourceContext("hooks"))


def test_the_destination_gets_its_block() -> None:
    cfg, destination = webhook()
    assert destination.batch_size == 50
    assert isinstance(cfg.options, WebhookSettings)
    assert "XXXXsecretpath" not in repr(cfg.options)
    context = DestinationContext("chat", cfg)
    assert WebhookConnector().destination(cfg.options, context).config is cfg
