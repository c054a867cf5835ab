"""HubSpot payloads → leadhub records: contacts, outcomes, merges, email events, form submissions.

Every property value in a v3 object is a string (numbers, booleans and dates too); v3 dates are
ISO 8601 with varying precision and v1 dates are epoch milliseconds, so `parse_time` reads both.
A payload that fails validation, or is not of the documented shape (not an object, a number where
a list belongs, an epoch out of range, …), becomes `Invalid`: quarantined with a reason naming the
record and the field; the page goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from connectors.base.contract import Invalid, Item, json_kind
from connectors.hubspot.settings import HubSpotSettings
from core.records import ActivityRecord, LeadRecord, OutcomeRecord, describe_validation_error

CORE_PROPERTIES = (
    "email",
    "lastmodifieddate",
    "hs_object_id",
    "hs_merged_object_ids",
    "createdate",
    "lifecyclestage",
    "hs_lead_status",
    "total_revenue",
)
_RANGE = re.compile(r"^\s*([\d,]+)\s*(?:-|\+|to|\u2013)")


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 or epoch milliseconds (int or digit string).

    Empty is None; anything else unreadable (wrong type, an epoch out of range) is a ValueError.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{json_kind(value)}, not a date/time")
    if isinstance(value, (int, float)) or value.strip().isdigit():
        try:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"not an epoch in milliseconds in range: {_show(value)}") from None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 date/time: {_show(value)}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def epoch_ms(value: Any) -> int | None:
    """`value` as epoch milliseconds, or None when it is empty or unreadable (for cursors)."""
    try:
        when = parse_time(value)
    except ValueError:
        return None
    return int(when.timestamp() * 1000) if when else None


class _Malformed(ValueError):
    """One field of a payload that is not of the documented shape."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _time(payload: Mapping[str, Any], key: str, field: str | None = None) -> datetime | None:
    """The date/time at `payload[key]`; a bad one is `_Malformed` naming `field` (or `key`)."""
    try:
        return parse_time(payload.get(key))
    except ValueError as exc:
        raise _Malformed(field or key, str(exc)) from None


def _invalid(payload: Any, ref: str, problem: str) -> Invalid:
    """A payload of the wrong shape, quarantined: the reason names the record and the field."""
    return Invalid(_raw(payload), f"{ref}: {problem}", ref)


# What a payload of an unexpected shape raises when read as the documented one.
_SHAPE_ERRORS = (TypeError, AttributeError, ValueError, OverflowError, OSError, ArithmeticError)


def _shape_error(exc: Exception) -> str:
    if isinstance(exc, _Malformed):
        return str(exc)
    return f"not the documented shape ({type(exc).__name__}: {_show(str(exc), 120)})"


def contact_properties(settings: HubSpotSettings) -> list[str]:
    """Every property to read, the ones the connector itself needs first; no duplicates."""
    stages = [f"hs_lifecyclestage_{stage}_date" for stage in settings.outcome_stages]
    wanted = [*CORE_PROPERTIES, *settings.lead_fields, *stages, *settings.properties]
    return list(dict.fromkeys(wanted))


def chunk_properties(properties: list[str], budget: int, overhead: int = 1) -> list[list[str]]:
    """Split `properties` so that no chunk takes more than `budget` characters once sent.

    `overhead` is what each name costs besides itself: 3 for `%2C` in a URL, 4 for `"…", ` in JSON.
    """
    chunks: list[list[str]] = [[]]
    size = 0
    for prop in properties:
        cost = len(prop) + overhead
        if chunks[-1] and size + cost > budget:
            chunks.append([])
            size = 0
        size += cost
        chunks[-1].append(prop)
    return chunks


def _company_size(value: str) -> Any:
    """`numemployees` is a picklist of ranges (`25-50`, `1000+`): read its lower bound."""
    match = _RANGE.match(value)
    return match.group(1).replace(",", "") if match else value


def _lead_values(props: Mapping[str, Any], settings: HubSpotSettings) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for prop, field in settings.lead_fields.items():
        value = props.get(prop)
        if value in (None, ""):
            continue
        if field == "company_size" and isinstance(value, str):
            value = _company_size(value)
        elif field == "channel" and isinstance(value, str):
            value = settings.channels.get(value, value.lower())
        values[field] = value
    return values


def contact_items(
    source: str, contact: Mapping[str, Any], settings: HubSpotSettings, *, deleted: bool = False
) -> list[Item]:
    """A contact's lead record, outcome and merged-away ids (archived: the lead only).

    A contact of the wrong shape (not an object, a date out of range, …) is one `Invalid`.
    """
    if not isinstance(contact, Mapping):
        return [_invalid(contact, "contact (no id)", f"{json_kind(contact)}, not a contact object")]
    try:
        return _contact_items(source, contact, settings, deleted)
    except _SHAPE_ERRORS as exc:
        return [_invalid(contact, f"contact {contact.get('id') or '(no id)'}", _shape_error(exc))]


def _contact_items(
    source: str, contact: Mapping[str, Any], settings: HubSpotSettings, deleted: bool
) -> list[Item]:
    cid = str(contact.get("id") or "")
    props = contact.get("properties") or {}
    if not cid or not isinstance(props, dict):
        return [Invalid(_raw(contact), "a contact without `id` or `properties`", f"contact {cid}")]
    custom = {p: props[p] for p in settings.properties
              if props.get(p) not in (None, "") and p not in settings.lead_fields}  # fmt: skip
    if props.get("lastmodifieddate"):
        updated = _time(props, "lastmodifieddate", "properties.lastmodifieddate")
    else:
        updated = _time(contact, "updatedAt")
    if deleted:
        updated = _time(contact, "archivedAt") or updated
    try:
        lead = LeadRecord(source=source, external_id=cid, custom=custom, updated_at=updated,
                          deleted=deleted, **_lead_values(props, settings))  # fmt: skip
    except ValidationError as exc:
        return [Invalid(_raw(contact), describe_validation_error(exc), f"contact {cid}")]
    if deleted:
        return [lead]
    items: list[Item] = [lead]
    outcome = _outcome(source, cid, props, settings, contact)
    if outcome is not None:
        items.append(outcome)
    items.extend(_merged(source, lead, props, contact))
    return items


def _raw(payload: Any) -> str:
    """The payload as quarantine keeps it (built only for a payload that failed)."""
    return json.dumps(payload, default=str)


def _outcome(
    source: str,
    cid: str,
    props: Mapping[str, Any],
    settings: HubSpotSettings,
    contact: Mapping[str, Any],
) -> Item | None:
    """Lifecycle stage and lead status → converted / won / lost (won beats lost beats converted)."""
    stage = str(props.get("lifecyclestage") or "")
    by_stage = settings.outcome_stages.get(stage)
    by_status = settings.outcome_lead_statuses.get(str(props.get("hs_lead_status") or ""))
    status = by_stage if by_stage == "won" else (by_status or by_stage)
    if status is None:
        return None
    amount = props.get("total_revenue") if status == "won" else None
    try:
        closed = _stage_date(props, stage) if status == by_stage else None
    except _Malformed as exc:
        return _invalid(contact, f"contact {cid} outcome", str(exc))
    try:
        return OutcomeRecord(source=source, external_id=f"contact-{cid}", lead=cid,
                             status=status, closed_at=closed, amount=amount)  # fmt: skip
    except ValidationError as exc:
        return Invalid(_raw(contact), describe_validation_error(exc), f"contact {cid} outcome")


def _stage_date(props: Mapping[str, Any], stage: str) -> datetime | None:
    key = f"hs_lifecyclestage_{stage}_date"
    return _time(props, key, f"properties.{key}")


def _merged(
    source: str, lead: LeadRecord, props: Mapping[str, Any], contact: Mapping[str, Any]
) -> list[Item]:
    """Ids merged into this contact join its lead: same email, so the store folds their leads.

    They stay undeleted (a deleted identity carries no fields, so its lead would not merge);
    HubSpot points a merged-away id at the surviving record, so a write to it still lands.
    """
    ids = [i.strip() for i in str(props.get("hs_merged_object_ids") or "").split(";")]
    items: list[Item] = []
    for i in dict.fromkeys(ids):
        if not i or i == lead.external_id:
            continue
        try:
            items.append(LeadRecord(source=source, external_id=i, email=lead.email,
                                    updated_at=lead.updated_at,
                                    custom={"hs_merged_into": lead.external_id}))  # fmt: skip
        except ValidationError as exc:
            ref = f"contact {lead.external_id} merged id {_show(i)}"
            problem = f"properties.hs_merged_object_ids: {describe_validation_error(exc)}"
            items.append(_invalid(contact, ref, problem))
    return items


def _unsubscribed(event: Mapping[str, Any], statuses: list[str]) -> bool:
    """A STATUSCHANGE that unsubscribes (field names UNCONFIRMED: both known shapes are read)."""
    if str(event.get("portalSubscriptionStatus") or "") in statuses:
        return True
    subscriptions = event.get("subscriptions") or []
    if not isinstance(subscriptions, list):
        raise _Malformed("subscriptions", f"{json_kind(subscriptions)}, not a list")
    return any(
        isinstance(s, dict) and str(s.get("status") or "") in statuses for s in subscriptions
    )


def email_event_items(
    source: str, event: Mapping[str, Any], settings: HubSpotSettings
) -> list[Item]:
    """One marketing email event → an activity of its recipient (filtered ones drop).

    An event of the wrong shape (not an object, `created` out of range, …) is one `Invalid`.
    """
    if not isinstance(event, Mapping):
        return [_invalid(event, "email event (no id)", f"{json_kind(event)}, not an event object")]
    try:
        return _email_event_items(source, event, settings)
    except _SHAPE_ERRORS as exc:
        return [_invalid(event, f"email event {event.get('id') or '(no id)'}", _shape_error(exc))]


def _email_event_items(
    source: str, event: Mapping[str, Any], settings: HubSpotSettings
) -> list[Item]:
    if event.get("filteredEvent") or event.get("obsoletedBy"):
        return []  # bot or scanner opens, and events a later one replaced
    kind = settings.email_event_types.get(str(event.get("type") or ""))
    if kind is None:
        return []
    if event.get("type") == "STATUSCHANGE" and not _unsubscribed(
        event, settings.unsubscribe_statuses
    ):
        return []  # a subscription, not an unsubscribe
    raw = json.dumps(event, default=str)
    props: dict[str, Any] = {"email_event": event.get("type")}
    if event.get("emailCampaignId") is not None:
        props["campaign"] = str(event["emailCampaignId"])
    for key in ("url", "category", "response"):
        if event.get(key):
            props[key] = event[key]
    ref = f"email-{event['id']}" if event.get("id") else ""
    occurred = _time(event, "created")
    try:
        return [
            ActivityRecord(
                source=source,
                external_id=ref,
                lead=str(event.get("recipient") or ""),
                type=kind,
                occurred_at=occurred,
                properties=props,
            )
        ]
    except ValidationError as exc:  # fmt: skip
        return [Invalid(raw, describe_validation_error(exc), f"email event {event.get('id')}")]


def form_submission_items(source: str, form_id: str, submission: Mapping[str, Any]) -> list[Item]:
    """A form submission → `form_submitted` by the email it gives.

    A submission of the wrong shape (not an object, `values` not a list, `submittedAt` out of
    range, …) is one `Invalid`.
    """
    if not isinstance(submission, Mapping):
        ref = f"form {form_id} submission (no conversionId)"
        return [_invalid(submission, ref, f"{json_kind(submission)}, not a submission object")]
    try:
        return _form_submission_items(source, form_id, submission)
    except _SHAPE_ERRORS as exc:
        ref = f"form {form_id} submission {submission.get('conversionId') or '(no conversionId)'}"
        return [_invalid(submission, ref, _shape_error(exc))]


def _form_submission_items(source: str, form_id: str, submission: Mapping[str, Any]) -> list[Item]:
    given = submission.get("values") or []
    if not isinstance(given, list):
        raise _Malformed("values", f"{json_kind(given)}, not a list")
    values = {str(v.get("name")): v.get("value") for v in given if isinstance(v, dict)}
    props: dict[str, Any] = {"form": form_id}
    if submission.get("pageUrl"):
        props["url"] = submission["pageUrl"]
    ref = str(submission.get("conversionId") or "")
    occurred = _time(submission, "submittedAt")
    try:
        return [ActivityRecord(source=source, external_id=f"form-{ref}" if ref else "",
                               lead=str(values.get("email") or ""), type="form_submitted",
                               occurred_at=occurred, properties=props)]  # fmt: skip
    except ValidationError as exc:
        raw = json.dumps(submission, default=str)
        return [Invalid(raw, describe_validation_error(exc), f"form {form_id} submission {ref}")]
