"""HubSpot payloads → leadhub records: contacts, outcomes, merges, email events, form submissions.

Every property value in a v3 object is a string (numbers, booleans and dates too); v3 dates are
ISO 8601 with varying precision and v1 dates are epoch milliseconds, so `parse_time` reads both.
A payload that fails validation becomes `Invalid` (quarantined with its reason); the page goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from connectors.base import Invalid, Item
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
    """An aware UTC datetime from ISO 8601 or epoch milliseconds (int or digit string)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return None


def epoch_ms(value: Any) -> int | None:
    when = parse_time(value)
    return int(when.timestamp() * 1000) if when else None


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
    """A contact's lead record, outcome and merged-away ids (archived: the lead only)."""
    cid = str(contact.get("id") or "")
    props = contact.get("properties") or {}
    if not cid or not isinstance(props, dict):
        return [Invalid(_raw(contact), "a contact without `id` or `properties`", f"contact {cid}")]
    custom = {p: props[p] for p in settings.properties
              if props.get(p) not in (None, "") and p not in settings.lead_fields}  # fmt: skip
    updated = parse_time(props.get("lastmodifieddate") or contact.get("updatedAt"))
    if deleted:
        updated = parse_time(contact.get("archivedAt")) or updated
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
    items.extend(_merged(source, lead, props))
    return items


def _raw(payload: Mapping[str, Any]) -> str:
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
    closed = (
        parse_time(props.get(f"hs_lifecyclestage_{stage}_date")) if status == by_stage else None
    )
    amount = props.get("total_revenue") if status == "won" else None
    try:
        return OutcomeRecord(source=source, external_id=f"contact-{cid}", lead=cid,
                             status=status, closed_at=closed, amount=amount)  # fmt: skip
    except ValidationError as exc:
        return Invalid(_raw(contact), describe_validation_error(exc), f"contact {cid} outcome")


def _merged(source: str, lead: LeadRecord, props: Mapping[str, Any]) -> list[Item]:
    """Ids merged into this contact join its lead: same email, so the store folds their leads.

    They stay undeleted (a deleted identity carries no fields, so its lead would not merge);
    HubSpot points a merged-away id at the surviving record, so a write to it still lands.
    """
    ids = [i.strip() for i in str(props.get("hs_merged_object_ids") or "").split(";")]
    return [
        LeadRecord(source=source, external_id=i, email=lead.email, updated_at=lead.updated_at,
                   custom={"hs_merged_into": lead.external_id})
        for i in dict.fromkeys(ids) if i and i != lead.external_id
    ]  # fmt: skip


def _unsubscribed(event: Mapping[str, Any], statuses: list[str]) -> bool:
    """A STATUSCHANGE that unsubscribes (field names UNCONFIRMED: both known shapes are read)."""
    if str(event.get("portalSubscriptionStatus") or "") in statuses:
        return True
    subscriptions = event.get("subscriptions") or []
    return any(
        isinstance(s, dict) and str(s.get("status") or "") in statuses for s in subscriptions
    )


def email_event_items(
    source: str, event: Mapping[str, Any], settings: HubSpotSettings
) -> list[Item]:
    """One marketing email event → an activity of its recipient (filtered ones drop)."""
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
    try:
        return [
            ActivityRecord(
                source=source,
                external_id=ref,
                lead=str(event.get("recipient") or ""),
                type=kind,
                occurred_at=parse_time(event.get("created")),
                properties=props,
            )
        ]
    except ValidationError as exc:  # fmt: skip
        return [Invalid(raw, describe_validation_error(exc), f"email event {event.get('id')}")]


def form_submission_items(source: str, form_id: str, submission: Mapping[str, Any]) -> list[Item]:
    """A form submission → `form_submitted` by the email it gives."""
    values = {str(v.get("name")): v.get("value") for v in submission.get("values") or []
              if isinstance(v, dict)}  # fmt: skip
    props: dict[str, Any] = {"form": form_id}
    if submission.get("pageUrl"):
        props["url"] = submission["pageUrl"]
    ref = str(submission.get("conversionId") or "")
    try:
        return [ActivityRecord(source=source, external_id=f"form-{ref}" if ref else "",
                               lead=str(values.get("email") or ""), type="form_submitted",
                               occurred_at=parse_time(submission.get("submittedAt")),
                               properties=props)]  # fmt: skip
    except ValidationError as exc:
        raw = json.dumps(submission, default=str)
        return [Invalid(raw, describe_validation_error(exc), f"form {form_id} submission {ref}")]
