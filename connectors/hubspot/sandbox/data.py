"""The sandbox's portal: contacts, email events, form submissions, properties and tasks.

Seeded from `connectors.sandbox.world.World`: every person `in_hubspot` is a contact whose
properties are strings, as HubSpot's are; the world's email activity becomes v1 marketing email
events (with DELIVERED events and bot-filtered opens around them); its quote requests become
form submissions; its outcomes set the lifecycle stage or lead status. People in `malformed`
get an email address HubSpot would never hold, so the connector has something to quarantine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox.world import Event, Person, World

PORTAL_ID = 62515
FORM_GUID = "5f7a1c0e-0000-4000-8000-00000000f0e1"  # the world's `request-quote` form
CHANNEL_SOURCES = {
    "facebook_ads": "PAID_SOCIAL",
    "organic": "ORGANIC_SEARCH",
    "referral": "REFERRALS",
    "email": "EMAIL_MARKETING",
    "event": "OFFLINE",
}
STRING_PROPS = (
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "jobtitle",
    "industry",
    "country",
    "city",
    "hs_merged_object_ids",
    "hs_additional_emails",
)
READ_ONLY = ("hs_object_id", "createdate", "lastmodifieddate", "hs_merged_object_ids")
DEFAULT_SEARCH_PROPS = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)


def iso(ms: int) -> str:
    """HubSpot's v3 date format, e.g. `2025-07-07T20:27:17.947Z`."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _definition(name: str, kind: str, field_type: str, **extra: Any) -> dict[str, Any]:
    """A HubSpot-defined property in the client's `Property` shape (its required fields set)."""
    return {
        "name": name,
        "label": name,
        "type": kind,
        "fieldType": field_type,
        "description": "",
        "groupName": "contactinformation",
        "options": [],
        "displayOrder": -1,
        "hidden": False,
        "hubspotDefined": True,
        "formField": name not in READ_ONLY,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": False,
        "archived": False,
        "modificationMetadata": {
            "readOnlyValue": name in READ_ONLY,
            "readOnlyDefinition": True,
            "archivable": False,
        },
        **extra,
    }


def _stage_options(values: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {"label": v, "value": v, "hidden": False, "displayOrder": n} for n, v in enumerate(values)
    ]


def standard_properties() -> dict[str, dict[str, Any]]:
    """The contact properties every portal has (the ones the sandbox fills and checks)."""
    props = {n: _definition(n, "string", "text") for n in STRING_PROPS}
    for name in ("numemployees", "annualrevenue", "total_revenue", "hs_object_id"):
        props[name] = _definition(name, "number", "number")
    for name in (
        "createdate",
        "lastmodifieddate",
        "hs_lifecyclestage_customer_date",
        "hs_lifecyclestage_opportunity_date",
        "hs_lifecyclestage_evangelist_date",
    ):
        props[name] = _definition(name, "datetime", "date")
    stages = (
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    )
    props["lifecyclestage"] = _definition(
        "lifecyclestage", "enumeration", "radio", options=_stage_options(stages)
    )
    statuses = (
        "NEW",
        "OPEN",
        "IN_PROGRESS",
        "OPEN_DEAL",
        "UNQUALIFIED",
        "ATTEMPTED_TO_CONTACT",
        "CONNECTED",
        "BAD_TIMING",
    )
    props["hs_lead_status"] = _definition(
        "hs_lead_status", "enumeration", "radio", options=_stage_options(statuses)
    )
    sources = sorted(set(CHANNEL_SOURCES.values()) | {"DIRECT_TRAFFIC", "PAID_SEARCH"})
    props["hs_analytics_source"] = _definition(
        "hs_analytics_source", "enumeration", "select", options=_stage_options(sources)
    )
    return props


@dataclass
class Contact:
    id: str
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None
    merged_into: str | None = None
    # What the world changed after the contact was made, in order: (ms, properties set then;
    # None unsets), and the values those properties had before (see `as_of`).
    changes: list[tuple[int, dict[str, str | None]]] = field(default_factory=list)
    initial: dict[str, str | None] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.archived_ms is None and self.merged_into is None

    def change(self, ms: int, values: dict[str, str | None]) -> None:
        """Set `values` as of `ms`, remembered so that `as_of` shows them only from then."""
        for name in values:
            self.initial.setdefault(name, self.properties.get(name))
        self.changes.append((ms, values))
        _apply(self.properties, values)
        self.updated_ms = max(self.updated_ms, ms)

    def as_of(self, ms: int) -> Contact | None:
        """The contact as it stood at `ms`: None before it was made; the world's later changes
        undone, modified at its last change by then. Writes made since (at or before `ms` on a
        clock that only moves on) are kept."""
        if self.created_ms > ms:
            return None
        if not self.changes and self.updated_ms <= ms:
            return self
        props = dict(self.properties)
        _apply(props, self.initial)
        stamps = [self.created_ms, *([self.updated_ms] if self.updated_ms <= ms else ())]
        for when, values in self.changes:
            if when <= ms:
                _apply(props, values)
                stamps.append(when)
        return Contact(self.id, props, self.created_ms, max(stamps), self.archived_ms,
                       self.merged_into)  # fmt: skip

    def value(self, name: str) -> str | None:
        if name == "lastmodifieddate":
            return iso(self.updated_ms)
        if name == "hs_object_id":
            return self.id
        if name == "createdate":
            return iso(self.created_ms)
        return self.properties.get(name)

    def view(self, names: Iterable[str]) -> dict[str, Any]:
        """The SimplePublicObject shape with the requested properties (unset ones null)."""
        body: dict[str, Any] = {
            "id": self.id,
            "properties": {n: self.value(n) for n in dict.fromkeys(names)},
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "archived": self.archived_ms is not None,
        }
        if self.archived_ms is not None:
            body["archivedAt"] = iso(self.archived_ms)
        return body


def _apply(props: dict[str, str], values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            props.pop(name, None)
        else:
            props[name] = value


def person_contact(person: Person, world: World, malformed: bool) -> Contact:
    """A world person as a HubSpot contact (outcome folded into stage or lead status, as of the
    day it closed)."""
    created = to_ms(person.created_at)
    updated = min(to_ms(world.now), created + (person.key % 9) * 3_600_000 + 61_000)
    email = person.email.replace("@", " at ") if malformed else person.email
    props = {
        "email": email,
        "firstname": person.first_name,
        "lastname": person.last_name,
        "phone": person.phone,
        "company": person.company.name,
        "jobtitle": person.job_title,
        "industry": person.company.industry,
        "numemployees": str(person.company.size),
        "country": person.country,
        "city": person.city,
        "hs_analytics_source": CHANNEL_SOURCES.get(person.channel, "DIRECT_TRAFFIC"),
        "lifecyclestage": "lead",
        "hs_lead_status": "NEW",
    }
    contact = Contact(str(100_000 + person.key), props, created, created)
    contact.change(updated, {})  # a first edit a few hours after it was made
    for result in world.outcomes_of(person.key):
        closed = to_ms(result.closed_at)
        if result.status == "lost":
            contact.change(closed, {"hs_lead_status": "UNQUALIFIED"})
            continue
        stage = "customer" if result.status == "won" else "opportunity"
        values = {"lifecyclestage": stage, f"hs_lifecyclestage_{stage}_date": iso(closed)}
        if result.amount is not None:
            values["total_revenue"] = f"{result.amount:.2f}"
        contact.change(closed, dict(values))
    return contact


def email_events(person: Person, events: Iterable[Event]) -> list[dict[str, Any]]:
    """The person's email activity as v1 events, with DELIVERED ones and bot-filtered opens."""
    out: list[dict[str, Any]] = []
    base = {"recipient": person.email, "portalId": PORTAL_ID, "appId": 113, "appName": "Batch"}
    kinds = {"email_opened": "OPEN", "email_clicked": "CLICK", "unsubscribed": "STATUSCHANGE"}
    for event in events:
        kind = kinds.get(event.type)
        if kind is None:
            continue
        ms = to_ms(event.occurred_at)
        campaign = 1000 + int(str(event.properties.get("campaign", "newsletter-0")).split("-")[-1])
        sent = {"id": f"sent-{event.key}", "created": ms - 3_600_000}
        common = {**base, "emailCampaignId": campaign, "sentBy": sent}
        row = {**common, "id": f"evt-{event.key}", "created": ms, "type": kind}
        if kind == "CLICK":
            row["url"] = event.properties.get("url")
        if kind == "STATUSCHANGE":
            row.update(
                portalSubscriptionStatus="UNSUBSCRIBED",
                source="SOURCE_RECIPIENT",
                subscriptions=[{"id": 7, "status": "UNSUBSCRIBED"}],
            )
        out.append(row)
        if kind == "OPEN":
            out.append(
                {**common, "id": f"dlv-{event.key}", "created": ms - 60_000, "type": "DELIVERED"}
            )
            if person.key % 5 == 0:  # a security scanner's open, which HubSpot flags
                out.append(
                    {**row, "id": f"bot-{event.key}", "created": ms - 1_000, "filteredEvent": True}
                )
    if out and person.key % 37 == 0:
        out.append(
            {
                **base,
                "id": f"bnc-{person.key}",
                "created": out[0]["created"] + 5_000,
                "type": "BOUNCE",
                "category": "HARD_BOUNCE",
                "emailCampaignId": 1000,
            }
        )
    if out and person.key % 53 == 0:
        out.append(
            {
                **base,
                "id": f"spm-{person.key}",
                "created": out[-1]["created"] + 5_000,
                "type": "SPAMREPORT",
                "emailCampaignId": 1000,
            }
        )
    return out


def form_submissions(person: Person, events: Iterable[Event]) -> list[dict[str, Any]]:
    return [
        {
            "conversionId": f"conv-{e.key}",
            "submittedAt": to_ms(e.occurred_at),
            "pageUrl": e.properties.get("url"),
            "values": [
                {"name": "email", "value": person.email},
                {"name": "firstname", "value": person.first_name},
            ],
        }
        for e in events
        if e.type == "form_submitted"
    ]


def seed(world: World) -> tuple[list[Contact], list[dict[str, Any]], list[dict[str, Any]]]:
    """Contacts, email events (newest first) and quote-form submissions (newest first)."""
    by_person: dict[int, list[Event]] = {}
    for event in world.events:
        by_person.setdefault(event.person, []).append(event)
    broken = set(world.malformed)
    contacts, events, forms = [], [], []
    for person in world.people:
        if not person.in_hubspot:
            continue
        contacts.append(person_contact(person, world, person.key in broken))
        if person.key not in broken:
            events.extend(email_events(person, by_person.get(person.key, [])))
            forms.extend(form_submissions(person, by_person.get(person.key, [])))
    events.sort(key=lambda e: (e["created"], e["id"]), reverse=True)
    forms.sort(key=lambda f: (f["submittedAt"], f["conversionId"]), reverse=True)
    return contacts, events, forms


def synthetic_contact(n: int, contact_id: str, created_ms: int, updated_ms: int) -> Contact:
    """A generated contact for volume tests (`POST /__sandbox/generate`)."""
    props = {
        "email": f"bulk{n}@volume{n % 97}.example.com",
        "firstname": f"Bulk{n}",
        "lastname": "Contact",
        "lifecyclestage": "lead",
        "hs_lead_status": "NEW",
        "company": f"Volume {n % 97}",
        "numemployees": str(10 + n % 500),
    }
    return Contact(contact_id, props, created_ms, updated_ms)
