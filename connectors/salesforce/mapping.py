"""Salesforce rows → leadhub records: Leads and Contacts, campaign members, tasks, events.

A Lead or Contact is a `LeadRecord` keyed by its record Id; a row `queryAll` returns with
`IsDeleted` (deleted, or merged into `MasterRecordId`) is the same record marked deleted. A
converted Lead also gives an `OutcomeRecord` keyed by the Lead Id: `won` or `lost` once its
converted Opportunity is closed (`IsWon`, `Amount`, `CloseDate`), else `converted`
(`ConvertedDate`). Activities are keyed `<row Id>:<type>`, so a re-read is an upsert and a webinar
member keeps both its registration and its attendance. A row that fails validation, or is not of
the documented shape (not an object, a list where the Campaign belongs, …), becomes `Invalid` and
goes to quarantine with a reason naming the row and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from connectors.base.contract import Invalid, Item, json_kind
from connectors.salesforce.settings import SalesforceSettings
from core.records import ActivityRecord, LeadRecord, OutcomeRecord, describe_validation_error

# The standard fields read per object; `custom_fields` are added to these.
LEAD_FIELDS = (
    "Id", "Email", "FirstName", "LastName", "Phone", "MobilePhone", "Company", "Title",
    "Industry", "LeadSource", "NumberOfEmployees", "AnnualRevenue", "City", "Country", "Status",
    "Rating", "IsConverted", "ConvertedDate", "ConvertedOpportunityId", "HasOptedOutOfEmail",
    "LastActivityDate", "CreatedDate", "IsDeleted", "MasterRecordId", "SystemModstamp",
)  # fmt: skip
CONTACT_FIELDS = (
    "Id", "Email", "FirstName", "LastName", "Phone", "MobilePhone", "Title",
    "LeadSource", "MailingCity", "MailingCountry", "AccountId", "HasOptedOutOfEmail",
    "LastActivityDate", "CreatedDate", "IsDeleted", "MasterRecordId", "SystemModstamp",
)  # fmt: skip
OPPORTUNITY_FIELDS = ("Id", "IsClosed", "IsWon", "Amount", "CloseDate", "SystemModstamp")
CONVERTED_LEAD_FIELDS = ("Id", "ConvertedDate", "ConvertedOpportunityId")
CAMPAIGN_MEMBER_FIELDS = (
    "Id", "CampaignId", "LeadId", "ContactId", "Status", "HasResponded", "FirstRespondedDate",
    "CreatedDate", "SystemModstamp",
)  # fmt: skip
CAMPAIGN_FIELDS = ("Id", "Name", "Type")
TASK_FIELDS = (
    "Id", "WhoId", "Subject", "Status", "IsClosed", "TaskSubtype", "CallType",
    "CallDurationInSeconds", "CallDisposition", "ActivityDate", "CreatedDate", "SystemModstamp",
)  # fmt: skip
EVENT_FIELDS = (
    "Id", "WhoId", "Subject", "ActivityDateTime", "DurationInMinutes", "IsDeleted", "CreatedDate",
    "SystemModstamp",
)  # fmt: skip

# Person fields → lead fields, per object (the first non-empty source field wins).
_PERSON = {
    "Lead": {
        "email": ("Email",), "first_name": ("FirstName",), "last_name": ("LastName",),
        "phone": ("Phone", "MobilePhone"), "company": ("Company",), "job_title": ("Title",),
        "industry": ("Industry",), "company_size": ("NumberOfEmployees",),
        "annual_revenue": ("AnnualRevenue",), "city": ("City",), "country": ("Country",),
    },
    "Contact": {
        "email": ("Email",), "first_name": ("FirstName",), "last_name": ("LastName",),
        "phone": ("Phone", "MobilePhone"), "job_title": ("Title",), "city": ("MailingCity",),
        "country": ("MailingCountry",),
    },
}  # fmt: skip
# Standard fields kept in `custom` (besides the configured custom fields).
_CUSTOM = {
    "Lead": ("Status", "Rating", "LeadSource", "HasOptedOutOfEmail", "LastActivityDate",
             "IsConverted"),
    "Contact": ("LeadSource", "AccountId", "HasOptedOutOfEmail",
                "LastActivityDate"),
}  # fmt: skip


def _raw(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, default=str)


# What a row of an unexpected shape raises when read as the documented one.
_SHAPE_ERRORS = (TypeError, AttributeError, ValueError, OverflowError, OSError, ArithmeticError)


def _invalid(payload: Any, ref: str, problem: str) -> Invalid:
    """A row of the wrong shape, quarantined: the reason names the row and the field."""
    return Invalid(_raw(payload), f"{ref}: {problem}", ref)


def _not_object(payload: Any, ref: str, what: str) -> Invalid:
    return _invalid(payload, ref, f"{json_kind(payload)}, not {what}")


def _guarded(sobject: str, row: Any, parse: Callable[[], list[Item]]) -> list[Item]:
    """`parse()` of one row; a row that is not an object, or not of the documented shape, is one
    `Invalid` naming the row and the field."""
    if not isinstance(row, Mapping):
        article = "an" if sobject[0] in "AEIOU" else "a"
        return [_not_object(row, f"{sobject} (no Id)", f"{article} {sobject} object")]
    try:
        return parse()
    except _SHAPE_ERRORS as exc:
        return [_invalid(row, _ref(sobject, row), _shape_error(exc))]


def _shape_error(exc: Exception) -> str:
    text = str(exc)
    text = text if len(text) <= 120 else f"{text[:119]}…"
    return f"not the documented shape ({type(exc).__name__}: {text})"


def _ref(sobject: str, row: Mapping[str, Any]) -> str:
    return f"{sobject} {row.get('Id') or '(no Id)'}"


def _build(
    kind: type[LeadRecord] | type[ActivityRecord] | type[OutcomeRecord],
    ref: str,
    payload: Any,
    **kw: Any,
) -> Item:
    try:
        return kind(**kw)
    except ValidationError as exc:
        return Invalid(_raw(payload), describe_validation_error(exc), ref)


def _first(row: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = row.get(name)
        if value not in (None, ""):
            return value
    return None


def person_items(
    source: str,
    sobject: str,
    row: Mapping[str, Any],
    settings: SalesforceSettings,
    opportunities: Mapping[str, Mapping[str, Any]],
) -> list[Item]:
    """The lead record of a Lead or Contact row, plus the outcome of a converted Lead.

    A row of the wrong shape (not an object, …) is one `Invalid`.
    """
    return _guarded(
        sobject, row, lambda: _person_items(source, sobject, row, settings, opportunities)
    )


def _person_items(
    source: str,
    sobject: str,
    row: Mapping[str, Any],
    settings: SalesforceSettings,
    opportunities: Mapping[str, Mapping[str, Any]],
) -> list[Item]:
    record_id = str(row.get("Id") or "")
    ref = f"{sobject} {record_id or '(no Id)'}"
    fields = {name: _first(row, names) for name, names in _PERSON[sobject].items()}
    custom: dict[str, Any] = {"salesforce_object": sobject}
    for name in (*_CUSTOM[sobject], *settings.custom_fields):
        if row.get(name) is not None:
            custom[name] = row[name]
    if row.get("MasterRecordId"):
        custom["merged_into"] = row["MasterRecordId"]
    channel = settings.channel or row.get("LeadSource")
    items = [
        _build(
            LeadRecord,
            ref,
            row,
            source=source,
            external_id=record_id,
            channel=channel,
            custom=custom,
            updated_at=row.get("SystemModstamp"),
            deleted=bool(row.get("IsDeleted")),
            **fields,
        )
    ]
    if sobject == "Lead" and row.get("IsConverted") and not row.get("IsDeleted"):
        opportunity = opportunities.get(str(row.get("ConvertedOpportunityId") or ""))
        items.append(outcome_item(source, row, opportunity))
    return items


def outcome_item(
    source: str, lead: Mapping[str, Any], opportunity: Mapping[str, Any] | None
) -> Item:
    """What became of a converted Lead: its Opportunity's result once closed, else converted.

    A Lead or Opportunity row of the wrong shape (not an object, …) is an `Invalid`.
    """
    payload = {"lead": lead, "opportunity": opportunity}
    if not isinstance(lead, Mapping):
        return _not_object(payload, "Lead (no Id) outcome", "a Lead object")
    ref = f"{_ref('Lead', lead)} outcome"
    if opportunity is not None and not isinstance(opportunity, Mapping):
        problem = (
            f"ConvertedOpportunityId: the Opportunity is {json_kind(opportunity)}, not an object"
        )
        return _invalid(payload, ref, problem)
    try:
        return _outcome_item(source, lead, opportunity)
    except _SHAPE_ERRORS as exc:
        return _invalid(payload, ref, _shape_error(exc))


def _outcome_item(
    source: str, lead: Mapping[str, Any], opportunity: Mapping[str, Any] | None
) -> Item:
    lead_id = str(lead.get("Id") or "")
    status, closed_at, amount = "converted", lead.get("ConvertedDate"), None
    if opportunity is not None:
        amount = opportunity.get("Amount")
        if opportunity.get("IsClosed"):
            status = "won" if opportunity.get("IsWon") else "lost"
            closed_at = opportunity.get("CloseDate") or closed_at
    return _build(OutcomeRecord, f"Lead {lead_id} outcome", {"lead": lead, "opportunity":
                  opportunity}, source=source, external_id=lead_id, lead=lead_id, status=status,
                  closed_at=closed_at, amount=amount)  # fmt: skip


def campaign_member_items(
    source: str,
    row: Mapping[str, Any],
    campaign: Mapping[str, Any] | None,
    settings: SalesforceSettings,
) -> list[Item]:
    """Activities of one campaign member (keyed on `HasResponded`, not on the status label).

    Webinar campaigns: a member registered (`CreatedDate`) and, once responded, attended
    (`FirstRespondedDate`). Other campaigns: a response only, as `form_submitted` for the
    campaign types in `form_campaign_types`, else `custom:campaign_response`. A member row or
    Campaign of the wrong shape (not an object, …) is one `Invalid`.
    """
    if not isinstance(row, Mapping):
        return [_not_object(row, "CampaignMember (no Id)", "a CampaignMember object")]
    ref = _ref("CampaignMember", row)
    if campaign is not None and not isinstance(campaign, Mapping):
        problem = f"CampaignId: the Campaign is {json_kind(campaign)}, not an object"
        return [_invalid({"member": row, "campaign": campaign}, ref, problem)]
    try:
        return _campaign_member_items(source, row, campaign, settings)
    except _SHAPE_ERRORS as exc:
        return [_invalid(row, ref, _shape_error(exc))]


def _campaign_member_items(
    source: str,
    row: Mapping[str, Any],
    campaign: Mapping[str, Any] | None,
    settings: SalesforceSettings,
) -> list[Item]:
    member_id = str(row.get("Id") or "")
    person = row.get("LeadId") or row.get("ContactId")
    if not person:
        return []
    campaign = campaign or {}
    kind = str(campaign.get("Type") or "")
    responded = bool(row.get("HasResponded"))
    responded_at = row.get("FirstRespondedDate") or row.get("SystemModstamp")
    found: list[tuple[str, Any]] = []
    if kind.lower() in {t.lower() for t in settings.webinar_campaign_types}:
        found.append(("webinar_registered", row.get("CreatedDate")))
        if responded:
            found.append(("webinar_attended", responded_at))
    elif responded:
        form = kind.lower() in {t.lower() for t in settings.form_campaign_types}
        found.append(("form_submitted" if form else "custom:campaign_response", responded_at))
    properties = {"campaign_id": row.get("CampaignId"), "campaign_name": campaign.get("Name"),
                  "campaign_type": kind or None, "member_status": row.get("Status")}  # fmt: skip
    return [
        _build(
            ActivityRecord,
            f"CampaignMember {member_id}",
            row,
            source=source,
            external_id=f"{member_id}:{kind_}",
            lead=str(person),
            type=kind_,
            occurred_at=when,
            properties=properties,
        )
        for kind_, when in found
    ]


def task_items(source: str, row: Mapping[str, Any]) -> list[Item]:
    """A completed Task: `custom:call_completed` for calls, else `custom:task_completed`.

    A row of the wrong shape (not an object, …) is one `Invalid`.
    """
    return _guarded("Task", row, lambda: _task_items(source, row))


def _task_items(source: str, row: Mapping[str, Any]) -> list[Item]:
    task_id, person = str(row.get("Id") or ""), row.get("WhoId")
    if not person or not row.get("IsClosed"):
        return []
    call = row.get("TaskSubtype") == "Call" or bool(row.get("CallType"))
    kind = "custom:call_completed" if call else "custom:task_completed"
    properties = {
        k: row.get(v)
        for k, v in (
            ("subject", "Subject"),
            ("status", "Status"),
            ("call_type", "CallType"),
            ("duration_seconds", "CallDurationInSeconds"),
            ("disposition", "CallDisposition"),
        )
        if row.get(v) is not None
    }
    when = row.get("ActivityDate") or row.get("CreatedDate")
    return [
        _build(
            ActivityRecord,
            f"Task {task_id}",
            row,
            source=source,
            external_id=f"{task_id}:{kind}",
            lead=str(person),
            type=kind,
            occurred_at=when,
            properties=properties,
        )
    ]


def event_items(source: str, row: Mapping[str, Any]) -> list[Item]:
    """A meeting: `meeting_booked` when created; a deleted Event adds `meeting_cancelled`.

    A row of the wrong shape (not an object, …) is one `Invalid`.
    """
    return _guarded("Event", row, lambda: _event_items(source, row))


def _event_items(source: str, row: Mapping[str, Any]) -> list[Item]:
    event_id, person = str(row.get("Id") or ""), row.get("WhoId")
    if not person:
        return []
    properties = {
        k: row.get(v)
        for k, v in (
            ("subject", "Subject"),
            ("starts_at", "ActivityDateTime"),
            ("duration_minutes", "DurationInMinutes"),
        )
        if row.get(v) is not None
    }
    found = [("meeting_booked", row.get("CreatedDate"))]
    if row.get("IsDeleted"):
        found.append(("meeting_cancelled", row.get("SystemModstamp")))
    return [
        _build(
            ActivityRecord,
            f"Event {event_id}",
            row,
            source=source,
            external_id=f"{event_id}:{kind}",
            lead=str(person),
            type=kind,
            occurred_at=when,
            properties=properties,
        )
        for kind, when in found
    ]
