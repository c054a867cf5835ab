"""The Mailchimp destination on documented payloads: batch updates, tag switching, merge fields."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import respx

from connectors.base import WriteItem, get_connector
from connectors.mailchimp import MailchimpDestination, MailchimpDestinationSettings
from connectors.mailchimp.destination import subscriber_hash
from core.errors import AuthError, ConfigError
from core.outbox_settings import DestinationSettings, validate_destination
from tests.connectors.mailchimp.payloads import API_KEY, LIST, PROBLEM, ROOT, member, problem

BATCH = f"{ROOT}/lists/{LIST}"


def destination(mode: str = "update", fields: dict[str, str] | None = None,
                **settings: Any) -> MailchimpDestination:  # fmt: skip
    config = DestinationSettings(name="mc", connector="mailchimp", mode=mode,
                                 fields=fields or {"total": "LSCORE", "tier": "tags"})  # fmt: skip
    block = MailchimpDestinationSettings.model_validate(
        {"api_key": API_KEY, "list_id": LIST, "tag_prefix": "score-", **settings}
    )
    return MailchimpDestination("mc", block, config, sleep=lambda _: None)


def item(i: int, total: float = 72.0, tier: str = "hot", record: bool = True) -> WriteItem:
    email = f"p{i}@example.com"
    return WriteItem(i, subscriber_hash(email) if record else None,
                     {"LSCORE": total, "tags": tier}, {"FNAME": f"P{i}"}, email)  # fmt: skip


def answered(email: str, tags: list[str], **extra: Any) -> dict[str, Any]:
    """A member object of the batch answer, with its current tags."""
    shown = [{"id": n, "name": t} for n, t in enumerate(tags)]
    fields = {"id": subscriber_hash(email), "email_address": email, "tags_count": len(tags),
              "tags": shown, **extra}  # fmt: skip
    return member(**fields)


def batch_answer(
    updated: Sequence[dict[str, Any]] = (),
    new: Sequence[dict[str, Any]] = (),
    errors: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The answer of `POST /lists/{id}` (batch subscribe/update, §4)."""
    return {"new_members": list(new), "updated_members": list(updated), "errors": list(errors),
            "total_created": len(new), "total_updated": len(updated),
            "error_count": len(errors)}  # fmt: skip


def tag_route(email: str) -> respx.Route:
    return respx.post(f"{BATCH}/members/{subscriber_hash(email)}/tags").respond(204)


@respx.mock
def test_update_mode_batch_body_carries_no_status() -> None:
    answer = batch_answer([answered("p1@example.com", ["score-hot"])])
    route = respx.post(BATCH).respond(200, json=answer)
    [outcome] = destination().write([item(1)])
    assert (outcome.status, outcome.record_id) == ("ok", None)
    body = json.loads(route.calls.last.request.content)
    assert body == {"members": [{"email_address": "p1@example.com",
                                 "merge_fields": {"LSCORE": 72.0}}],
                    "update_existing": True, "sync_tags": False}  # fmt: skip


@respx.mock
def test_upsert_creates_with_status_if_new_and_lead_fields_and_returns_the_id() -> None:
    route = respx.post(BATCH).respond(200, json=batch_answer(new=[answered("p2@example.com", [])]))
    tag_route("p2@example.com")
    [outcome] = destination("upsert", status_if_new="pending").write([item(2, record=False)])
    assert (outcome.status, outcome.record_id) == ("ok", subscriber_hash("p2@example.com"))
    [sent] = json.loads(route.calls.last.request.content)["members"]
    assert sent == {"email_address": "p2@example.com", "status_if_new": "pending",
                    "merge_fields": {"FNAME": "P2", "LSCORE": 72.0}}  # fmt: skip


@respx.mock
def test_a_tier_change_makes_the_old_tag_inactive_and_the_new_active() -> None:
    answer = batch_answer([answered("p1@example.com", ["vip", "score-warm"])])
    respx.post(BATCH).respond(200, json=answer)
    tags = tag_route("p1@example.com")
    [outcome] = destination().write([item(1, tier="hot")])
    assert outcome.status == "ok"
    assert json.loads(tags.calls.last.request.content) == {
        "tags": [{"name": "score-hot", "status": "active"},
                 {"name": "score-warm", "status": "inactive"}],
        "is_syncing": False}  # fmt: skip


@respx.mock
def test_no_tag_call_when_the_tier_tag_is_already_right() -> None:
    respx.post(BATCH).respond(200, json=batch_answer([answered("p1@example.com", ["score-hot"])]))
    tags = tag_route("p1@example.com")
    destination().write([item(1, tier="hot")])
    assert not tags.called


@respx.mock
def test_unknown_current_tags_switch_every_other_tier_off() -> None:
    # 60 tags: the answer shows only 50, so the destination cannot tell what the member has.
    many = answered("p1@example.com", [f"t{i}" for i in range(50)], tags_count=60)
    respx.post(BATCH).respond(200, json=batch_answer([many]))
    tags = tag_route("p1@example.com")
    destination().write([item(1, tier="cold")])
    sent = json.loads(tags.calls.last.request.content)["tags"]
    assert sent == [{"name": "score-cold", "status": "active"},
                    {"name": "score-hot", "status": "inactive"},
                    {"name": "score-warm", "status": "inactive"}]  # fmt: skip


@respx.mock
def test_per_member_errors_are_rejections_with_the_vendor_reason() -> None:
    error = {"email_address": "p2@example.com", "error": "p2@example.com is in a compliance state",
             "error_code": "ERROR_GENERIC", "field": "", "field_message": ""}  # fmt: skip
    respx.post(BATCH).respond(200, json=batch_answer([answered("p1@example.com", ["score-hot"])],
                                                     errors=[error]))  # fmt: skip
    ok, refused, silent = destination().write([item(1), item(2), item(3)])
    assert ok.status == "ok"
    assert (refused.status, refused.reason) == (
        "rejected", "p2@example.com is in a compliance state [ERROR_GENERIC]")  # fmt: skip
    assert silent.status == "retry"


@respx.mock
def test_a_refused_batch_rejects_every_member_with_the_problem_detail() -> None:
    body = problem(400, "Invalid Resource", "Your merge fields were invalid.",
                   [{"field": "LSCORE", "message": "Please enter a number"}])  # fmt: skip
    respx.post(BATCH).respond(400, json=body, headers=PROBLEM)
    outcomes = destination().write([item(1), item(2)])
    assert {o.status for o in outcomes} == {"rejected"}
    assert outcomes[0].reason == (
        "HTTP 400: Invalid Resource: Your merge fields were invalid. "
        "(LSCORE: Please enter a number)"
    )


@respx.mock
def test_a_refused_tag_call_rejects_that_member_only() -> None:
    respx.post(BATCH).respond(200, json=batch_answer(
        [answered("p1@example.com", []), answered("p2@example.com", [])]))  # fmt: skip
    tag_route("p1@example.com")
    respx.post(f"{BATCH}/members/{subscriber_hash('p2@example.com')}/tags").respond(
        404, json=problem(404, "Resource Not Found", "The requested resource could not be found."),
        headers=PROBLEM)  # fmt: skip
    first, second = destination().write([item(1), item(2)])
    assert first.status == "ok"
    assert second.status == "rejected" and "Resource Not Found" in second.reason


@respx.mock
def test_revoked_key_stops_the_push() -> None:
    respx.post(BATCH).respond(401, json=problem(401, "API Key Invalid", "revoked"), headers=PROBLEM)
    with pytest.raises(AuthError, match=r"destinations\.mc\.api_key"):
        destination().write([item(1)])


def test_a_lead_without_email_is_rejected_without_a_call() -> None:
    [outcome] = destination().write([WriteItem(9, "x", {"LSCORE": 1, "tags": "hot"})])
    assert outcome.status == "rejected" and "no email" in outcome.reason


@respx.mock
def test_prepare_creates_the_missing_number_merge_field() -> None:
    respx.get(f"{BATCH}/merge-fields").respond(200, json={"merge_fields": [
        {"merge_id": 1, "tag": "FNAME", "name": "First Name", "type": "text"}],
        "list_id": LIST, "total_items": 1})  # fmt: skip
    create = respx.post(f"{BATCH}/merge-fields").respond(200, json={"merge_id": 7, "tag": "LSCORE"})
    destination(fields={"total": "LSCORE", "reason": "LREASON", "tier": "tags"}).prepare()
    sent = [json.loads(c.request.content) for c in create.calls]
    assert [(s["tag"], s["type"]) for s in sent] == [("LSCORE", "number"), ("LREASON", "text")]


@respx.mock
def test_prepare_on_an_unknown_audience_names_the_setting() -> None:
    respx.get(f"{BATCH}/merge-fields").respond(404, json=problem(404, "Resource Not Found", "x"),
                                               headers=PROBLEM)  # fmt: skip
    with pytest.raises(ConfigError, match=r"destinations.mc.list_id: Mailchimp has no audience"):
        destination().prepare()


def test_a_field_that_is_no_merge_tag_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"destinations.mc.fields.total: 'lead score' is not"):
        destination(fields={"total": "lead score"})


def test_validates_as_a_destination_block() -> None:
    connectors = {"mailchimp": get_connector("mailchimp")}
    block = {"connector": "mailchimp", "api_key": API_KEY, "list_id": LIST, "mode": "update",
             "fields": {"total": "LSCORE", "tier": "tags"}, "tiers": ["hot", "cold"]}  # fmt: skip
    settings, errors = validate_destination("mc", block, connectors)
    assert errors == [] and settings is not None
    assert isinstance(settings.options, MailchimpDestinationSettings)
    bad, errors = validate_destination("mc", {**block, "batch_size": 501}, connectors)
    assert bad is None and any("batch_size" in e for e in errors)


@respx.mock
def test_tag_calls_use_at_most_max_connections() -> None:
    people = [answered(f"p{i}@example.com", []) for i in range(30)]
    respx.post(BATCH).respond(200, json=batch_answer(people))
    respx.post(url__regex=rf"{BATCH}/members/\w+/tags").mock(return_value=httpx.Response(204))
    mc = destination(max_connections=3)
    outcomes = mc.write([item(i) for i in range(30)])
    assert {o.status for o in outcomes} == {"ok"}
    assert mc.client.http.calls == 31
