"""Mailchimp payloads → leadhub records: members, email activity, campaign unsubscribes.

A member is a `LeadRecord` keyed by its `id` (the MD5 of the lower-cased email, which is also
the subscriber hash the destination writes to). Its status adds one activity: `unsubscribed` →
unsubscribed, `cleaned` → email_bounced. Email activity is flattened into one activity per
`activity[]` entry, keyed (campaign, email_id, action, timestamp[, url]) so a re-read is an upsert.
A payload that fails validation becomes `Invalid` and goes to quarantine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from connectors.base.contract import Invalid, Item
from connectors.mailchimp.settings import MailchimpSourceSettings
from core.records import ActivityRecord, LeadRecord, describe_validation_error

# The member fields the source reads (`fields=`: no spaces after the commas).
MEMBER_FIELDS = ",".join(
    ["total_items"]
    + [
        f"members.{f}"
        for f in (
            "id", "email_address", "status", "merge_fields", "member_rating", "last_changed",
            "timestamp_opt", "location.country_code", "unsubscribe_reason", "list_id", "source",
        )
    ]
)  # fmt: skip
ACTIONS = {"open": "email_opened", "click": "email_clicked", "bounce": "email_bounced"}
STATUS_ACTIVITY = {"unsubscribed": "unsubscribed", "cleaned": "email_bounced"}


def _raw(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, default=str)


def _build(
    kind: type[LeadRecord] | type[ActivityRecord], ref: str, payload: Any, **kw: Any
) -> Item:
    try:
        return kind(**kw)
    except ValidationError as exc:
        return Invalid(_raw(payload), describe_validation_error(exc), ref)


def _address(value: Mapping[str, Any]) -> dict[str, Any]:
    """City and country of an ADDRESS merge field."""
    return {"city": value.get("city"), "country": value.get("country")}


def member_items(
    source: str, list_id: str, member: Mapping[str, Any], settings: MailchimpSourceSettings
) -> list[Item]:
    """The lead record of one member, plus its status activity when it left or bounced.

    A member of the wrong shape (not an object, `merge_fields` not an object, …) is quarantined.
    """
    if not isinstance(member, Mapping):
        return [Invalid(_raw(member), "not a member object", f"member {list_id}:")]
    try:
        return _member_items(source, list_id, member, settings)
    except (TypeError, AttributeError, ValueError, OverflowError) as exc:
        ref = f"member {list_id}:{member.get('id') or member.get('email_address')}"
        return [Invalid(_raw(member), _shape_error(exc), ref)]


def _shape_error(exc: Exception) -> str:
    return f"not the documented shape ({type(exc).__name__}: {exc})"


def _member_items(
    source: str, list_id: str, member: Mapping[str, Any], settings: MailchimpSourceSettings
) -> list[Item]:
    member_id = str(member.get("id") or "")
    ref = f"member {list_id}:{member_id or member.get('email_address')}"
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    mapping, ignored = settings.merge_map, {t.upper() for t in settings.ignore_merge_fields}
    for tag, value in (member.get("merge_fields") or {}).items():
        if tag in mapping:
            fields[mapping[tag]] = value
        elif tag == "ADDRESS" and isinstance(value, Mapping):
            fields.update({k: v for k, v in _address(value).items() if v})
        elif tag not in ignored and value not in ("", None):
            custom[tag] = value
    location = member.get("location") or {}
    fields.setdefault("country", location.get("country_code") or None)
    if member.get("member_rating") is not None:
        custom["member_rating"] = member["member_rating"]
    custom["mailchimp_status"] = member.get("status")
    lead = _build(
        LeadRecord, ref, member, source=source, external_id=member_id,
        email=member.get("email_address"), channel=settings.channel, custom=custom,
        updated_at=member.get("last_changed"), **fields,
        # An archived member is no longer in the audience: its identity is kept as deleted, so
        # the destination never writes to it (Mailchimp would add it back).
        deleted=member.get("status") == "archived",
    )  # fmt: skip
    items: list[Item] = [lead]
    kind = STATUS_ACTIVITY.get(str(member.get("status")))
    if kind is not None and not isinstance(lead, Invalid):
        props = {"list_id": list_id, "via": "status"}
        if member.get("unsubscribe_reason"):
            props["reason"] = member["unsubscribe_reason"]
        items.append(
            _build(
                ActivityRecord, ref, member, source=source,
                external_id=f"{list_id}:{member_id}:{member.get('status')}",
                lead=member.get("email_address") or member_id, type=kind,
                occurred_at=member.get("last_changed"), properties=props,
            )
        )  # fmt: skip
    return items


def campaign_title(campaign: Mapping[str, Any]) -> str:
    """The campaign's name as activities carry it: its title, else its subject, else its id."""
    settings = campaign.get("settings") or {}
    return str(settings.get("title") or settings.get("subject_line") or campaign.get("id"))


def activity_items(source: str, campaign: Mapping[str, Any], row: Mapping[str, Any]) -> list[Item]:
    """One activity per open, click and bounce of one recipient's email-activity row; a row of
    the wrong shape is one quarantined item."""
    try:
        return _activity_items(source, campaign, row)
    except (TypeError, AttributeError, ValueError, OverflowError) as exc:
        ref = f"email activity {_get(campaign, 'id')}:{_get(row, 'email_id')}"
        return [Invalid(_raw(row), _shape_error(exc), ref)]


def _get(payload: Any, key: str) -> Any:
    return payload.get(key) if isinstance(payload, Mapping) else None


def _activity_items(source: str, campaign: Mapping[str, Any], row: Mapping[str, Any]) -> list[Item]:
    cid, email_id = str(campaign.get("id")), str(row.get("email_id") or "")
    lead = row.get("email_address") or email_id
    base = {"campaign": campaign_title(campaign), "campaign_id": cid}
    items: list[Item] = []
    for event in row.get("activity") or []:
        kind = ACTIONS.get(str(event.get("action")))
        if kind is None:
            continue  # an action leadhub has no type for
        key = f"{cid}:{email_id}:{event.get('action')}:{event.get('timestamp')}"
        props = dict(base)
        if event.get("url"):
            props["url"] = event["url"]
            # Two clicks in one second on different links are two clicks.
            key += ":" + hashlib.sha1(str(event["url"]).encode()).hexdigest()[:12]
        if event.get("type"):
            props["bounce_type"] = event["type"]
        ref = f"email activity {key}"
        items.append(
            _build(
                ActivityRecord, ref, {**row, "activity": [event]}, source=source,
                external_id=key, lead=lead, type=kind, occurred_at=event.get("timestamp"),
                properties=props,
            )
        )  # fmt: skip
    return items


def unsubscribe_item(source: str, campaign: Mapping[str, Any], row: Mapping[str, Any]) -> Item:
    """An `unsubscribed` activity from one row of a campaign's unsubscribe report (or the row,
    quarantined, when it has the wrong shape)."""
    try:
        return _unsubscribe_item(source, campaign, row)
    except (TypeError, AttributeError, ValueError, OverflowError) as exc:
        ref = f"unsubscribe {_get(campaign, 'id')}:{_get(row, 'email_id')}"
        return Invalid(_raw(row), _shape_error(exc), ref)


def _unsubscribe_item(source: str, campaign: Mapping[str, Any], row: Mapping[str, Any]) -> Item:
    cid, email_id = str(campaign.get("id")), str(row.get("email_id") or "")
    key = f"{cid}:{email_id}:unsub:{row.get('timestamp')}"
    props = {"campaign": campaign_title(campaign), "campaign_id": cid, "via": "campaign"}
    if row.get("reason"):
        props["reason"] = row["reason"]
    return _build(
        ActivityRecord, f"unsubscribe {key}", row, source=source, external_id=key,
        lead=row.get("email_address") or email_id, type="unsubscribed",
        occurred_at=row.get("timestamp"), properties=props,
    )  # fmt: skip
