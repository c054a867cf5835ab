"""One Graph lead → a `LeadRecord` and its `ad_form_submitted` activity (or a quarantined payload).

`field_data` is a list of `{name, values[]}` keyed by question key. The standard keys below fill
lead fields; the block's `fields:` maps any other key (or overrides one); every other answer goes
to `custom` under its key — one value as a string, several (multi-select) as a list. Meta does
not document its default keys beyond `email` and `full_name`, so nothing else is hard-coded
beyond these common ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from connectors.base.contract import Invalid, Item
from connectors.facebook_leads.settings import FacebookLeadsSettings
from core.records import ActivityRecord, LeadRecord, describe_validation_error

# question key → lead field; the first key answered wins (`email` before `work_email`).
STANDARD_KEYS: dict[str, str] = {
    "email": "email",
    "work_email": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone_number": "phone",
    "work_phone_number": "phone",
    "company_name": "company",
    "job_title": "job_title",
    "city": "city",
    "country": "country",
}
# Ad context copied onto the activity, under these property names.
AD_PROPERTIES = {
    "ad_id": "ad_id",
    "ad_name": "ad_name",
    "adset_id": "adset_id",
    "adset_name": "adset_name",
    "campaign_id": "campaign_id",
    "campaign_name": "campaign",
    "platform": "platform",
}
_NUMBER = re.compile(r"\d[\d,]*")


def answers(lead: Mapping[str, Any]) -> dict[str, list[str]]:
    """`field_data` as question key → its values (always a list)."""
    found: dict[str, list[str]] = {}
    for entry in lead.get("field_data") or []:
        if isinstance(entry, dict) and entry.get("name"):
            values = entry.get("values")
            items = values if isinstance(values, list) else [values]
            found[str(entry["name"])] = [str(v) for v in items if v is not None]
    return found


def _lower_bound(value: str) -> str:
    """`51-200` → `51`, `1,000+` → `1000`: a size range answered on a form, as a number."""
    match = _NUMBER.search(value)
    return match.group().replace(",", "") if match else value


def lead_fields(lead: Mapping[str, Any], settings: FacebookLeadsSettings) -> dict[str, Any]:
    """Lead-field values plus `custom`, from the answers and the block's `fields:` mapping."""
    given = {key: values for key, values in answers(lead).items() if values}
    values: dict[str, Any] = {}
    for key, target in STANDARD_KEYS.items():  # in order: the first key answered wins
        if key in given and key not in settings.fields:
            values.setdefault(target, given[key][0])
    for key, target in settings.fields.items():
        if key in given:
            first = given[key][0]
            values[target] = _lower_bound(first) if target == "company_size" else first
    custom: dict[str, Any] = {
        key: found[0] if len(found) == 1 else found
        for key, found in given.items()
        if key not in STANDARD_KEYS and key not in settings.fields and key != "full_name"
    }
    full_name = next(iter(given.get("full_name") or []), "").strip()
    if full_name and not (values.get("first_name") or values.get("last_name")):
        first, _, last = full_name.partition(" ")
        values["first_name"], values["last_name"] = first, last.strip() or None
    disclaimers = lead.get("custom_disclaimer_responses")
    if isinstance(disclaimers, list) and disclaimers:
        custom["disclaimers"] = {
            str(d.get("checkbox_key")): d.get("is_checked") in ("1", 1, True)
            for d in disclaimers
            if isinstance(d, dict)
        }
    return {**values, "custom": custom}


def activity_properties(lead: Mapping[str, Any], form_name: str | None) -> dict[str, Any]:
    """The form, ad, ad set and campaign of the submission, and whether it was organic."""
    form_id = str(lead.get("form_id") or "")
    props: dict[str, Any] = {"form": form_name or form_id or None, "form_id": form_id or None}
    for key, name in AD_PROPERTIES.items():
        if lead.get(key) not in (None, ""):
            props[name] = str(lead[key])
    organic = lead.get("is_organic")
    # Organic and preview leads carry no ad ids; trust the flag when Meta sends it.
    props["is_organic"] = bool(organic) if organic is not None else "ad_id" not in props
    return {k: v for k, v in props.items() if v is not None}


def lead_items(
    source: str, lead: Mapping[str, Any], form_name: str | None, settings: FacebookLeadsSettings
) -> list[Item]:
    """The lead and its submission, or one `Invalid` naming the lead and the bad field.

    A payload of the wrong shape (not an object, `field_data` not a list, …) is quarantined too.
    """
    if not isinstance(lead, Mapping):
        return [Invalid(json.dumps(lead, default=str), "lead (no id): not a JSON object", "")]
    lead_id = str(lead.get("id") or "")
    try:
        fields = {"channel": settings.channel, **lead_fields(lead, settings)}
        record = LeadRecord(
            source=source, external_id=lead_id, updated_at=lead.get("created_time"), **fields
        )
        activity = ActivityRecord(
            source=source,
            external_id=lead_id,
            lead=lead_id,
            type="ad_form_submitted",
            occurred_at=lead.get("created_time"),
            properties=activity_properties(lead, form_name),
        )
    except ValidationError as exc:
        reason = f"lead {lead_id or '(no id)'}: {describe_validation_error(exc)}"
        return [Invalid(json.dumps(lead, default=str), reason, lead_id)]
    except (TypeError, AttributeError, ValueError, OverflowError) as exc:
        reason = f"lead {lead_id or '(no id)'}: not a Graph lead ({type(exc).__name__}: {exc})"
        return [Invalid(json.dumps(lead, default=str), reason, lead_id)]
    return [record, activity]
