"""The Mailchimp destination on documented payloads: batch updates, tags in bulk, merge fields."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
import respx

from connectors.base import DestinationSettings, WriteItem, get_connector, validate_destination
from connectors.mailchimp import MailchimpDestination, MailchimpDestinationSettings
from connectors.mailchimp.destination import subscriber_hash
from connectors.mailchimp.sandbox.conformance import OPERATIONS
from connectors.sandbox.conformance import check_body, find_operation
from core.errors import AuthError, ConfigError
from tests.connectors.mailchimp.payloads import (
    API_KEY,
    LIST,
    PROBLEM,
    ROOT,
    member,
    problem,
    segment,
    segment_answer,
    segments_page,
)

BATCH = f"{ROOT}/lists/{LIST}"
SEGMENTS = f"{BATCH}/segments"
BATCH_OPERATION = find_operation(OPERATIONS, "POST", f"/3.0/lists/{LIST}")
assert BATCH_OPERATION is not None
TAG_IDS = {"score-hot": 2865001, "score-warm": 2865002, "score-cold": 2865003}


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


def tags_exist(names: Sequence[str] = tuple(TAG_IDS)) -> respx.Route:
    """`GET /lists/{id}/segments`: the audience's tags (static segments), with a `vip` tag too."""
    listed = [segment(TAG_IDS[n], n) for n in names] + [segment(2865099, "vip", 4)]
    return respx.get(SEGMENTS).respond(200, json=segments_page(*listed))


def segment_route(tag: str, answer: dict[str, Any] | None = None) -> respx.Route:
    return respx.post(f"{SEGMENTS}/{TAG_IDS[tag]}").respond(200, json=answer or segment_answer())


def sent(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(c.request.content) for c in route.calls]


@respx.mock
def test_update_mode_sends_status_if_new_unsubscribed_and_never_status() -> None:
    # The published schema (openapi.json, "Add List Members") requires `status` or
    # `status_if_new` on every member. `status` would change an existing member's subscription;
    # `status_if_new: unsubscribed` only applies to an address the audience lacks, and cannot
    # subscribe it.
    answer = batch_answer([answered("p1@example.com", ["score-hot"])])
    route = respx.post(BATCH).respond(200, json=answer)
    [outcome] = destination().write([item(1)])
    assert (outcome.status, outcome.record_id) == ("ok", None)
    body = json.loads(route.calls.last.request.content)
    assert body == {"members": [{"email_address": "p1@example.com",
                                 "status_if_new": "unsubscribed",
                                 "merge_fields": {"LSCORE": 72.0}}],
                    "update_existing": True, "sync_tags": False}  # fmt: skip
    [member] = body["members"]
    assert "status" not in member
    assert check_body(BATCH_OPERATION, body) == []


@respx.mock
def test_update_mode_sends_only_members_the_audience_is_known_to_hold() -> None:
    route = respx.post(BATCH).respond(200, json=batch_answer([answered("p1@example.com", [])]))
    unknown = item(2, record=False)  # no Mailchimp member id
    # the lead's address is no longer the member's
    moved = WriteItem(3, subscriber_hash("old@example.com"), {"LSCORE": 5, "tags": "hot"},
                      email="new@example.com")  # fmt: skip
    known, *refused = destination(fields={"total": "LSCORE"}).write([item(1), unknown, moved])
    assert known.status == "ok"
    assert [o.status for o in refused] == ["rejected", "rejected"]
    assert all("never adds members" in o.reason for o in refused)
    [body] = sent(route)
    assert [m["email_address"] for m in body["members"]] == ["p1@example.com"]


@respx.mock
def test_update_mode_archives_again_a_member_mailchimp_added_back() -> None:
    # p2 left the audience after the last pull: Mailchimp adds it back as unsubscribed.
    back = answered("p2@example.com", [], status="unsubscribed")
    respx.post(BATCH).respond(200, json=batch_answer([answered("p1@example.com", [])], new=[back]))
    archive = respx.delete(f"{BATCH}/members/{subscriber_hash('p2@example.com')}").respond(204)
    ok, parked = destination(fields={"total": "LSCORE"}).write([item(1), item(2)])
    assert ok.status == "ok"
    assert parked.status == "rejected" and "no longer a member" in parked.reason
    assert archive.call_count == 1


@respx.mock
def test_upsert_creates_with_status_if_new_and_lead_fields_and_returns_the_id() -> None:
    route = respx.post(BATCH).respond(200, json=batch_answer(new=[answered("p2@example.com", [])]))
    tags_exist()
    hot = segment_route("score-hot", segment_answer(added=["p2@example.com"]))
    [outcome] = destination("upsert", status_if_new="pending").write([item(2, record=False)])
    assert (outcome.status, outcome.record_id) == ("ok", subscriber_hash("p2@example.com"))
    [body] = json.loads(route.calls.last.request.content)["members"]
    assert body == {"email_address": "p2@example.com", "status_if_new": "pending",
                    "merge_fields": {"FNAME": "P2", "LSCORE": 72.0}}  # fmt: skip
    assert sent(hot) == [{"members_to_add": ["p2@example.com"]}]


@respx.mock
def test_a_tier_change_adds_to_the_new_tag_and_removes_from_the_old_one_by_segment() -> None:
    answer = batch_answer([answered("p1@example.com", ["vip", "score-warm"])])
    respx.post(BATCH).respond(200, json=answer)
    listing = tags_exist()
    hot, warm, cold = (segment_route(t) for t in ("score-hot", "score-warm", "score-cold"))
    per_member = respx.post(url__regex=rf"{BATCH}/members/\w+/tags").respond(204)
    [outcome] = destination().write([item(1, tier="hot")])
    assert outcome.status == "ok"
    assert sent(hot) == [{"members_to_add": ["p1@example.com"]}]
    assert sent(warm) == [{"members_to_remove": ["p1@example.com"]}]
    assert not cold.called and not per_member.called  # `vip` is no tier: left alone
    params = listing.calls.last.request.url.params
    assert (params["type"], params["count"]) == ("static", "1000")


@respx.mock
def test_members_are_grouped_by_tier_one_segment_call_per_tag() -> None:
    before = {1: ["score-warm"], 2: ["score-warm", "vip"], 3: ["score-cold"], 4: ["score-hot"],
              5: ["score-hot"], 6: []}  # fmt: skip
    after = {1: "hot", 2: "hot", 3: "hot", 4: "cold", 5: "hot", 6: "warm"}
    people = [answered(f"p{i}@example.com", tags) for i, tags in before.items()]
    respx.post(BATCH).respond(200, json=batch_answer(people))
    tags_exist()
    hot, warm, cold = (segment_route(t) for t in ("score-hot", "score-warm", "score-cold"))
    mc = destination()
    outcomes = mc.write([item(i, tier=tier) for i, tier in after.items()])
    assert {o.status for o in outcomes} == {"ok"}
    assert sent(hot) == [{"members_to_add": ["p1@example.com", "p2@example.com", "p3@example.com"],
                          "members_to_remove": ["p4@example.com"]}]  # fmt: skip
    assert sent(warm) == [{"members_to_add": ["p6@example.com"],
                           "members_to_remove": ["p1@example.com", "p2@example.com"]}]  # fmt: skip
    assert sent(cold) == [{"members_to_add": ["p4@example.com"],
                           "members_to_remove": ["p3@example.com"]}]  # fmt: skip
    assert mc.client.http.calls == 1 + 1 + 3  # batch, tag ids, one call per tier tag


@respx.mock
def test_no_segment_call_when_the_tier_tags_are_already_right() -> None:
    respx.post(BATCH).respond(200, json=batch_answer([answered("p1@example.com", ["score-hot"])]))
    listing = tags_exist()
    segments = respx.post(url__regex=rf"{SEGMENTS}/\d+").respond(200, json=segment_answer())
    destination().write([item(1, tier="hot")])
    assert not listing.called and not segments.called


@respx.mock
def test_unknown_current_tags_remove_the_member_from_every_other_tier_tag() -> None:
    # 60 tags: the answer shows only 50, so the destination cannot tell what the member has.
    many = answered("p1@example.com", [f"t{i}" for i in range(50)], tags_count=60)
    respx.post(BATCH).respond(200, json=batch_answer([many]))
    tags_exist()
    hot, warm, cold = (segment_route(t) for t in ("score-hot", "score-warm", "score-cold"))
    destination().write([item(1, tier="cold")])
    assert sent(cold) == [{"members_to_add": ["p1@example.com"]}]
    assert sent(hot) == sent(warm) == [{"members_to_remove": ["p1@example.com"]}]


@respx.mock
def test_a_missing_tier_tag_is_created_once_and_the_ids_are_kept() -> None:
    people = [answered("p1@example.com", ["score-warm"]), answered("p2@example.com", [])]
    respx.post(BATCH).respond(200, json=batch_answer(people))
    listing = tags_exist(["score-warm"])  # no score-hot yet
    create = respx.post(SEGMENTS).respond(200, json=segment(2865001, "score-hot"))
    hot, warm = segment_route("score-hot"), segment_route("score-warm")
    mc = destination()
    assert {o.status for o in mc.write([item(1), item(2)])} == {"ok"}
    assert sent(create) == [{"name": "score-hot", "static_segment": []}]
    assert sent(hot) == [{"members_to_add": ["p1@example.com", "p2@example.com"]}]
    assert sent(warm) == [{"members_to_remove": ["p1@example.com"]}]

    respx.post(BATCH).respond(200, json=batch_answer([answered("p3@example.com", [])]))
    mc.write([item(3)])
    assert listing.call_count == 1 and create.call_count == 1  # ids read once per destination
    assert sent(hot)[-1] == {"members_to_add": ["p3@example.com"]}


@respx.mock
def test_per_member_segment_errors_park_those_members_only() -> None:
    people = [answered(f"p{i}@example.com", ["score-cold"]) for i in (1, 2, 3)]
    respx.post(BATCH).respond(200, json=batch_answer(people))
    tags_exist()
    error = {"email_addresses": ["P2@example.com"], "error": "Email address is not subscribed"}
    segment_route("score-hot", segment_answer(added=["p1@example.com", "p3@example.com"],
                                              errors=[error]))  # fmt: skip
    segment_route("score-cold", segment_answer(removed=["p1@example.com", "p3@example.com"]))
    first, second, third = destination().write([item(1), item(2), item(3)])
    assert (first.status, third.status) == ("ok", "ok")
    assert (second.status, second.reason) == (
        "rejected", "tag score-hot: Email address is not subscribed")  # fmt: skip


@respx.mock
def test_a_refused_segment_call_parks_its_members_and_a_gone_tag_is_retried() -> None:
    people = [answered("p1@example.com", ["score-warm"]), answered("p2@example.com", ["score-hot"])]
    respx.post(BATCH).respond(200, json=batch_answer(people))
    listing = tags_exist()
    respx.post(f"{SEGMENTS}/{TAG_IDS['score-cold']}").respond(
        400, json=problem(400, "Invalid Resource", "Maximum allowed member items exceeded"),
        headers=PROBLEM)  # fmt: skip
    respx.post(f"{SEGMENTS}/{TAG_IDS['score-warm']}").respond(
        404, json=problem(404, "Resource Not Found", "The requested resource could not be found."),
        headers=PROBLEM)  # fmt: skip
    segment_route("score-hot")
    mc = destination()
    first, second = mc.write([item(1, tier="hot"), item(2, tier="cold")])
    assert first.status == "retry" and "score-warm: HTTP 404" in first.reason
    assert second.status == "rejected"
    assert (
        second.reason
        == "tag score-cold: HTTP 400: Invalid Resource: Maximum allowed member items exceeded"
    )
    mc.write([item(1, tier="hot")])
    assert listing.call_count == 2  # the 404 made the ids stale: read again


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
def test_300_members_changing_tier_take_a_handful_of_calls_not_300() -> None:
    tiers = ("hot", "warm", "cold")
    people = [answered(f"p{i}@example.com", [f"score-{tiers[i % 3]}"]) for i in range(300)]
    respx.post(BATCH).respond(200, json=batch_answer(people))
    tags_exist()
    segments = respx.post(url__regex=rf"{SEGMENTS}/\d+").respond(200, json=segment_answer())
    mc = destination(max_connections=3)
    outcomes = mc.write([item(i, tier=tiers[(i + 1) % 3]) for i in range(300)])
    assert {o.status for o in outcomes} == {"ok"}
    assert segments.call_count == 3
    for body in sent(segments):
        assert len(body["members_to_add"]) == len(body["members_to_remove"]) == 100
    assert mc.client.http.calls == 5


def merge_fields_listed(*tags: str) -> respx.Route:
    fields = [{"merge_id": n, "tag": t, "name": t, "type": "number"} for n, t in enumerate(tags)]
    return respx.get(f"{BATCH}/merge-fields").respond(
        200, json={"merge_fields": fields, "list_id": LIST, "total_items": len(fields)}
    )


@respx.mock
def test_a_merge_field_check_holds_for_merge_field_check_hours_across_destinations() -> None:
    listing = merge_fields_listed("LSCORE", "LREASON")
    now = [1000.0]

    def opened(**settings: Any) -> MailchimpDestination:
        mc = destination(fields={"total": "LSCORE"}, **settings)
        mc._clock = lambda: now[0]
        return mc

    opened().prepare()
    opened().prepare()  # a new destination, as each push job opens one: no call
    assert listing.call_count == 1
    now[0] += 24 * 3600  # the check is a day old: read again
    opened().prepare()
    assert listing.call_count == 2
    opened(merge_field_check_hours=0).prepare()  # 0: every push checks
    assert listing.call_count == 3
    destination(fields={"total": "LSCORE", "reason": "LREASON"}).prepare()  # another mapping
    assert listing.call_count == 4


@respx.mock
def test_a_merge_field_deleted_since_the_check_retries_the_members_and_checks_again() -> None:
    listing = merge_fields_listed("LSCORE")
    mc = destination(fields={"total": "LSCORE"})
    mc.prepare()
    # Mailchimp drops unknown merge tags silently: the answer's members lack LSCORE.
    gone = answered("p1@example.com", [], merge_fields={"FNAME": "P1"})
    respx.post(BATCH).respond(200, json=batch_answer([gone]))
    [outcome] = mc.write([item(1)])
    assert outcome.status == "retry" and "LSCORE" in outcome.reason
    destination(fields={"total": "LSCORE"}).prepare()
    assert listing.call_count == 2
