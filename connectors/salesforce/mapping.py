"""Salesforce rows → leadhub records: Leads and Contacts, campaign members, tasks, events.

A Lead or Contact is a `LeadRecord` keyed by its record Id; a row `queryAll` returns with
`IsDeleted` (deleted, or merged into `MasterRecordId`) is the same record marked deleted. A
converted Lead also gives an `OutcomeRecord` keyed by the Lead Id: `won` or `lost` once its
converted Opportunity is closed (`IsWon`, `Amount`, `CloseDate`), else `converted`
(`ConvertedDate`). Activities are keyed `<row Id>:<type>`, so a re-read is an upsert and a webinar
member keeps both its registration and its attendance. A row that fails validation becomes
`Invalid` and goes to quarantine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from connectors.base import Invalid, Item
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
    """The lead record of a Lead or Contact row, plus the outcome of a converted Lead."""
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
    """What became of a converted Lead: its Opportunity's result once closed, else converted."""
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
    campaign types in `form_campaign_types`, else `custom:campaign_response`.
    """
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
    """A completed Task: `custom:call_completed` for calls, else `custom:task_completed`."""
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
    """A meeting: `meeting_booked` when created; a deleted Event adds `meeting_cancelled`."""
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
