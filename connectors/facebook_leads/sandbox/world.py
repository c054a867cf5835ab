"""The sandbox's data: a Page's lead forms and leads seeded from the synthetic world, Graph's
field selection, and the helper that sends Meta-shaped, signed `leadgen` webhook deliveries to a
receiver (`leadgen_delivery` builds one, `deliver` signs and POSTs it).

Every person with `in_facebook` submitted one form when they were created. Forms differ the way
real ones do: one asks `full_name`, another `first_name`/`last_name` and `work_email`; custom
questions (`number_of_employees`, a plan, multi-select `topics`) have keys Meta did not define.
Every fifth lead is organic (no ad ids). People in `world.malformed` answered the email question
with something that is not an address, so their leads are quarantined.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.facebook_leads.sandbox.conformance import field_names
from connectors.facebook_leads.webhook import SIGNATURE_HEADER, sign
from connectors.sandbox.world import Person, World

PAGE_ID = "1234567890"
LEAD_ID_BASE = 8_000_000_000_000
NEW_LEAD_ID_BASE = 8_900_000_000_000
PLANS = {"starter": "Starter", "professional": "Professional", "enterprise": "Enterprise"}


def question(key: str, label: str, kind: str = "CUSTOM", **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": label, "type": kind, "id": f"q-{key}", **extra}


@dataclass
class SandboxForm:
    id: str
    name: str
    status: str
    created_time: int
    questions: list[dict[str, Any]]
    locale: str = "en_US"

    def graph(self) -> dict[str, Any]:
        """Every field the sandbox knows, in Graph's shape (the caller picks with `fields`)."""
        return {
            "id": self.id, "name": self.name, "status": self.status, "locale": self.locale,
            "created_time": graph_time(self.created_time), "questions": self.questions,
        }  # fmt: skip


@dataclass
class SandboxLead:
    id: str
    form_id: str
    created_time: int  # Unix seconds
    field_data: list[dict[str, Any]]
    ad: dict[str, str] = field(default_factory=dict)  # ad_id, adset_id, campaign_id and names
    platform: str = "fb"
    disclaimers: list[dict[str, str]] = field(default_factory=list)

    def graph(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "created_time": graph_time(self.created_time), "form_id": self.form_id,
            "field_data": self.field_data, "is_organic": not self.ad, "platform": self.platform,
            **self.ad,
        }  # fmt: skip
        if self.disclaimers:
            body["custom_disclaimer_responses"] = self.disclaimers
        return body


def graph_time(unix: int) -> str:
    """Graph's `created_time`: ISO 8601 with a colon-less UTC offset."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def select(obj: dict[str, Any], fields: str) -> dict[str, Any]:
    """Only `id` and the requested top-level fields; `questions{key,label}` picks subfields."""
    wanted: dict[str, set[str] | None] = {"id": None}
    for name, sub in field_names(fields):
        wanted[name] = {n for n, _ in field_names(sub)} if sub else None
    out: dict[str, Any] = {}
    for key, subfields in wanted.items():
        if key in obj:
            value = obj[key]
            if subfields and isinstance(value, list):
                value = [{k: v for k, v in x.items() if k in subfields} for x in value]
            out[key] = value
    return out


def seed_forms(world: World) -> list[SandboxForm]:
    start = int(world.now.timestamp()) - 200 * 86400
    demo = [
        question("full_name", "Full name", "FULL_NAME"), question("email", "Email", "EMAIL"),
        question("phone_number", "Phone", "PHONE"),
        question("company_name", "Company", "COMPANY_NAME"),
        question("job_title", "Job title", "JOB_TITLE"), question("country", "Country", "COUNTRY"),
        question("number_of_employees", "How many employees?"),
        question("which_plan_interests_you?", "Which plan interests you?",
                 options=[{"key": k, "value": v} for k, v in PLANS.items()]),
    ]  # fmt: skip
    guide = [
        question("first_name", "First name", "FIRST_NAME"),
        question("last_name", "Last name", "LAST_NAME"),
        question("work_email", "Work email", "WORK_EMAIL"), question("city", "City", "CITY"),
        question("job_title", "Job title", "JOB_TITLE"),
        question("topics", "Topics you care about"),
    ]  # fmt: skip
    webinar = [question("full_name", "Full name", "FULL_NAME"), question("email", "Email", "EMAIL")]
    return [
        SandboxForm("7000000000001", "Autumn demo request", "ACTIVE", start, demo),
        SandboxForm("7000000000002", "Pricing guide", "ACTIVE", start + 86400, guide),
        SandboxForm("7000000000003", "Scoring 101 webinar", "ARCHIVED", start + 2 * 86400, webinar),
        SandboxForm("7000000000004", "Draft survey", "DRAFT", start + 3 * 86400, webinar),
    ]


def _answers(person: Person, form: SandboxForm, broken: bool) -> list[dict[str, Any]]:
    email = f"{person.first_name.lower()} at {person.company.domain}" if broken else person.email
    by_key: dict[str, list[str]] = {
        "full_name": [f"{person.first_name} {person.last_name}"], "email": [email],
        "work_email": [email], "first_name": [person.first_name],
        "last_name": [person.last_name], "phone_number": [person.phone],
        "company_name": [person.company.name], "job_title": [person.job_title],
        "country": [person.country], "city": [person.city],
        "number_of_employees": [str(person.company.size)],
        "which_plan_interests_you?": [PLANS[person.product_interest]],
        "topics": ["lead scoring", "crm sync"][: 1 + person.key % 2],
    }  # fmt: skip
    return [{"name": q["key"], "values": by_key[q["key"]]} for q in form.questions]


def _ad(person: Person, form: SandboxForm, campaign: str) -> dict[str, str]:
    if person.key % 5 == 0:
        return {}  # organic: no ad, ad set or campaign
    n = form.id[-1]
    return {
        "ad_id": f"63000000000{n}", "ad_name": f"{form.name} ad",
        "adset_id": f"62000000000{n}", "adset_name": f"{campaign} audience",
        "campaign_id": "6100000000001", "campaign_name": campaign,
    }  # fmt: skip


def person_lead(
    person: Person, form: SandboxForm, lead_id: str, created: int, broken: bool = False
) -> SandboxLead:
    """The lead `person` submits on `form`."""
    disclaimers = []
    if form.id.endswith("1"):
        checked = "1" if person.key % 2 else ""
        disclaimers = [{"checkbox_key": "optional_1", "is_checked": checked}]
    return SandboxLead(
        lead_id, form.id, created, _answers(person, form, broken),
        _ad(person, form, "autumn"), "ig" if person.key % 3 == 0 else "fb", disclaimers,
    )  # fmt: skip


def seed_leads(world: World, forms: Sequence[SandboxForm]) -> list[SandboxLead]:
    """One lead per Facebook person, on the demo or guide form (every seventh: the webinar)."""
    broken = set(world.malformed)
    leads = []
    for person in world.people:
        if not person.in_facebook:
            continue
        form = forms[2] if person.key % 7 == 0 else forms[person.key % 2]
        created = int(person.created_at.timestamp())
        lead_id = str(LEAD_ID_BASE + person.key)
        leads.append(person_lead(person, form, lead_id, created, person.key in broken))
    return leads


# -- webhook deliveries --------------------------------------------------------------------------


def leadgen_delivery(
    page_id: str, leads: Sequence[SandboxLead], *, numeric_ids: bool = False
) -> dict[str, Any]:
    """A `leadgen` delivery for `leads`, shaped as Meta sends it (ids as strings, as in Meta's
    own test payload; `numeric_ids` gives the numbers of the docs' example)."""

    def ident(value: str) -> str | int:
        return int(value) if numeric_ids else value

    changes = []
    for lead in leads:
        value: dict[str, Any] = {
            "leadgen_id": ident(lead.id), "page_id": ident(page_id),
            "form_id": ident(lead.form_id), "created_time": lead.created_time,
        }  # fmt: skip
        if lead.ad:
            value |= {"ad_id": ident(lead.ad["ad_id"]), "adgroup_id": ident(lead.ad["ad_id"])}
        changes.append({"field": "leadgen", "value": value})
    entry = {"id": page_id, "time": int(time.time()), "changes": changes}
    return {"object": "page", "entry": [entry]}


def deliver(
    url: str, payload: dict[str, Any] | bytes, app_secret: str | None, *, timeout: float = 10.0
) -> httpx.Response:
    """POST a delivery to a receiver, signed with `app_secret` (None: no signature header)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if app_secret is not None:
        headers[SIGNATURE_HEADER] = sign(app_secret, body)
    return httpx.post(url, content=body, headers=headers, timeout=timeout)
