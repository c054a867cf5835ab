"""The sandbox org's records: seeded from the synthetic world, changed by the API's writes.

Who is there: every `Person.in_salesforce` is a Lead (malformed people have no Email; about one in
a hundred sits in the recycle bin, seen only by queryAll). A `won` or `converted` outcome converts
the lead (Account, Contact, Opportunity: Closed Won, or still open); a `lost` one either converts
to a Closed Lost opportunity or closes the lead unconverted. Campaign members come from webinar,
newsletter and ad-form activity (`HasResponded` for attended, clicked, submitted); Tasks are the
reps' calls and emails and quote follow-ups, Events the demo meetings before a conversion. The clock
starts at the world's `now` and runs with real time, so every write lands after the seed.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from connectors.salesforce.sandbox.schema import (
    PREFIXES,
    REP_ID,
    Field,
    Schema,
)
from connectors.sandbox.world import Event, Person, Result, World

Record = dict[str, Any]
SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SOURCES = {"facebook_ads": "Advertisement", "organic": "Web", "referral": "Partner Referral",
           "email": "Purchased List", "event": "Trade Show"}  # fmt: skip
Problem = dict[str, Any]  # a per-record error: {"statusCode", "message", "fields"}


def id18(id15: str) -> str:
    """Salesforce's case-safe 18-character form of a 15-character id."""
    out = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, c in enumerate(chunk) if c.isupper())
        out += SUFFIX[bits]
    return id15 + out


def stamp(value: Any) -> Any:
    """A value as the REST API renders it: dateTime in UTC with milliseconds, date as ISO."""
    if isinstance(value, datetime):
        when = value.astimezone(UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    return value


def problem(code: str, message: str, *fields: str) -> Problem:
    return {"statusCode": code, "message": message, "fields": list(fields)}


@dataclass
class Org:
    """The whole org: records per object (insertion order is creation order) and counters."""

    schema: Schema
    now: datetime
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    blanks: dict[str, Record] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    world: World | None = None  # whose `clock`, when set, is the org's (see `seen`)
    # Per record id, what changed after it was made, in the order it was applied: (when, values).
    timeline: dict[str, list[tuple[datetime, Record]]] = field(default_factory=dict)
    initial: dict[str, Record] = field(default_factory=dict)  # values before the first change

    def __post_init__(self) -> None:
        for obj in self.schema.fields:
            self.records.setdefault(obj, {})

    @property
    def as_of(self) -> datetime | None:
        """The world's clock when set: the org then shows itself as it stood at that moment."""
        return self.world.clock if self.world is not None else None

    def clock(self) -> datetime:
        """The world's clock when set; else the world's `now`, moving on with real time, to the
        millisecond."""
        if self.as_of is not None:
            return self.as_of
        moved = self.now + timedelta(seconds=time.monotonic() - self.started)
        return moved.replace(microsecond=moved.microsecond // 1000 * 1000)

    def new_id(self, obj: str) -> str:
        self.counters[f"id:{obj}"] += 1
        n, digits = self.counters[f"id:{obj}"], ""
        while n:
            n, rest = divmod(n, 36)
            digits = DIGITS[rest] + digits
        return id18(f"{PREFIXES[obj]}5g{digits.rjust(10, '0')}")

    def find(self, record_id: str) -> tuple[str, Record] | None:
        """The object and record of any id (15 or 18 characters)."""
        full = id18(record_id) if len(record_id) == 15 else record_id
        for obj, prefix in PREFIXES.items():
            if full.startswith(prefix) and obj in self.records:
                found = self.records[obj].get(full)
                return (obj, found) if found is not None else None
        return None

    def insert(
        self,
        obj: str,
        values: Record,
        when: datetime | None = None,
        record_id: str | None = None,
        by: str = REP_ID,
    ) -> Record:
        """A new record of `obj` with `values`, system fields filled and nulls for the rest;
        `by` is the user who makes it (the API's writes: the integration user)."""
        when = when or self.clock()
        blank = self.blanks.get(obj)
        if blank is None or len(blank) != len(self.schema.fields[obj]):
            blank = self.blanks[obj] = {f.name: (False if f.type == "boolean" else None)
                                        for f in self.schema.fields[obj].values()}  # fmt: skip
        record = dict(blank)
        record.update(Id=record_id or self.new_id(obj), IsDeleted=False, OwnerId=by,
                      CreatedDate=when, CreatedById=by, LastModifiedDate=when,
                      LastModifiedById=by, SystemModstamp=when)  # fmt: skip
        record.update(values)
        derive(obj, record)
        self.records[obj][record["Id"]] = record
        return record

    def touch(self, record: Record, when: datetime | None = None, by: str = REP_ID) -> None:
        when = when or self.clock()
        record["LastModifiedDate"] = record["SystemModstamp"] = when
        record["LastModifiedById"] = by
        self.note(record, when, LastModifiedById=by)

    def note(self, record: Record, when: datetime, **values: Any) -> None:
        """Remember that `values` were set on `record` at `when` (applied by the caller) and that
        it was modified then, so `seen` shows them, and the modification, only from `when` on."""
        initial = self.initial.setdefault(record["Id"], {})
        for name in values:
            initial.setdefault(name, record.get(name))
        self.timeline.setdefault(record["Id"], []).append((when, values))

    def change(self, record: Record, when: datetime, **values: Any) -> None:
        """Set `values` on `record` as of `when` (see `note`)."""
        self.note(record, when, **values)
        record.update(values)

    def seen(self, obj: str, record: Record) -> Record | None:
        """`record` as it stood at the world's clock: None when made after it; its changes
        after it undone and its modification stamps at its last change by then. The record
        itself when the clock is not set."""
        at = self.as_of
        if at is None:
            return record
        if record["CreatedDate"] > at:
            return None
        line = self.timeline.get(record["Id"])
        if not line:
            return record
        view = {**record, **self.initial.get(record["Id"], {})}
        stamp, by = record["CreatedDate"], record["CreatedById"]
        for when, values in line:
            if when <= at:
                view.update(values)
                if when >= stamp:
                    stamp, by = when, values.get("LastModifiedById", by)
        view.update(LastModifiedDate=stamp, SystemModstamp=stamp, LastModifiedById=by)
        derive(obj, view)
        return view


def derive(obj: str, record: Record) -> None:
    """The read-only fields Salesforce computes from the others."""
    if obj in ("Lead", "Contact"):
        record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
    elif obj == "CampaignMember":
        record["LeadOrContactId"] = record.get("ContactId") or record.get("LeadId")
        record["HasResponded"] = record.get("Status") in ("Responded", "Attended")
    elif obj == "Task":
        record["IsClosed"] = record.get("Status") == "Completed"
    elif obj == "Opportunity":
        stage = record.get("StageName")
        record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
        record["IsWon"] = stage == "Closed Won"


# -- coercion of written values ------------------------------------------------------------------


class BadValue(ValueError):
    """A value the field's type cannot hold (a request-level JSON_PARSER_ERROR in REST)."""


def coerce(f: Field, value: Any) -> Any:
    """`value` (JSON or CSV text) as the Python value field `f` holds."""
    if value is None:
        return False if f.type == "boolean" else None  # a checkbox set to null is unchecked
    kind = f.type
    try:
        if kind in ("double", "currency", "percent"):
            if isinstance(value, bool):
                raise BadValue(value)
            # kept to the field's scale, rounding half up as Salesforce does
            step = Decimal(1).scaleb(-f.scale)
            return float(Decimal(str(float(value))).quantize(step, rounding=ROUND_HALF_UP))
        if kind == "int":
            if isinstance(value, bool):
                raise BadValue(value)
            return int(float(value))
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise BadValue(value)
        if kind == "datetime":
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        if kind == "date":
            return date.fromisoformat(str(value)[:10])
    except (TypeError, ValueError, InvalidOperation):
        raise BadValue(value) from None
    if isinstance(value, (dict, list)):
        raise BadValue(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_value(obj: str, f: Field, value: Any) -> Problem | None:
    """The per-record error a value gets (length, range), or None."""
    label = f.label or f.name
    if isinstance(value, str) and f.length and len(value) > f.length:
        return problem("STRING_TOO_LONG", f"{label}: data value too large: {value[:40]} "
                       f"(max length={f.length})", f.name)  # fmt: skip
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and f.precision and abs(value) >= 10 ** (f.precision - f.scale):
        return problem("NUMBER_OUTSIDE_VALID_RANGE",
                       f"{label}: value outside of valid range on numeric field: {value:g}",
                       f.name)  # fmt: skip
    if f.type == "email" and value and ("@" not in str(value) or " " in str(value)):
        return problem("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {value}", f.name)
    if not f.nillable and value is None and f.updateable:
        return problem("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]",
                       f.name)  # fmt: skip
    return None


# -- seeding -------------------------------------------------------------------------------------


def _at(d: datetime, now: datetime) -> datetime:
    return min(d, now)


def seed(world: World, schema: Schema) -> Org:
    """The org of `world`: leads, conversions, campaigns and members, tasks and events."""
    org = Org(schema, world.now, world=world)
    clock, world.clock = world.clock, None  # seeded whole; the clock only hides what is later
    events: dict[int, list[Event]] = {}
    for event in world.events:  # grouped once: `World.events_of` scans every event
        events.setdefault(event.person, []).append(event)
    outcomes = {r.person: r for r in world.outcomes}
    malformed = set(world.malformed)
    campaigns: dict[str, Record] = {}
    accounts: dict[str, Record] = {}
    for person in (p for p in world.people if p.in_salesforce):
        rng = random.Random(world.seed * 100_003 + person.key)
        lead = _lead(org, person, person.key in malformed)
        mine = events.get(person.key, [])
        members = _members(org, campaigns, lead, mine)
        _tasks(org, rng, lead, mine, world.now)
        result = outcomes.get(person.key)
        if result is not None:
            _outcome(org, accounts, rng, person, lead, result, members)
        engaged = [e.occurred_at for e in mine if e.type != "page_viewed"]
        for when in engaged:  # marketing automation touches the lead on each engagement
            org.note(lead, when)
        lead["LastModifiedDate"] = lead["SystemModstamp"] = max([lead["SystemModstamp"], *engaged])
        if person.key % 97 == 5:  # in the recycle bin: only queryAll sees it
            lead["IsDeleted"] = True
    world.clock = clock
    return org


def _lead(org: Org, person: Person, malformed: bool) -> Record:
    company = person.company
    values = {"FirstName": person.first_name, "LastName": person.last_name,
              "Email": None if malformed else person.email, "Phone": person.phone,
              "Title": person.job_title, "Company": company.name,
              "Website": f"https://{company.domain}", "City": person.city,
              "Country": person.country, "Industry": company.industry,
              "NumberOfEmployees": company.size, "LeadSource": SOURCES.get(person.channel, "Other"),
              "Status": "Open - Not Contacted"}  # fmt: skip
    return org.insert("Lead", values, person.created_at)


CAMPAIGNS = {"webinar_registered": ("Webinar: {}", "Registered", "Webinar"),
             "webinar_attended": ("Webinar: {}", "Attended", "Webinar"),
             "email_opened": ("Newsletter {}", "Sent", "Email"),
             "email_clicked": ("Newsletter {}", "Responded", "Email"),
             "ad_form_submitted": ("Lead Ads: {}", "Responded", "Advertisement")}  # fmt: skip


def _members(
    org: Org, campaigns: dict[str, Record], lead: Record, events: list[Event]
) -> list[Record]:
    mine: dict[str, Record] = {}
    for event in events:
        spec = CAMPAIGNS.get(event.type)
        if spec is None:
            continue
        pattern, status, kind = spec
        tag = event.properties.get("webinar") or event.properties.get("campaign") or "general"
        name = pattern.format(tag)
        campaign = campaigns.get(name) or org.insert(
            "Campaign", {"Name": name, "Type": kind, "Status": "In Progress", "IsActive": True,
                         "StartDate": (org.now - timedelta(days=120)).date()},
            org.now - timedelta(days=120))  # fmt: skip
        campaigns[name] = campaign
        member = mine.get(name)
        if member is None:
            member = mine[name] = org.insert(
                "CampaignMember", {"CampaignId": campaign["Id"], "LeadId": lead["Id"],
                                   "Status": status}, event.occurred_at)  # fmt: skip
        elif member["Status"] in ("Sent", "Registered"):
            org.change(member, event.occurred_at, Status=status)
            org.touch(member, event.occurred_at)
        derive("CampaignMember", member)
        if member["HasResponded"] and member["FirstRespondedDate"] is None:
            member["FirstRespondedDate"] = event.occurred_at.date()
    return list(mine.values())


def _tasks(org: Org, rng: random.Random, lead: Record, events: list[Event], now: datetime) -> None:
    """Reps' calls and emails (more for engaged leads) and a follow-up of each quote request."""
    engaged = sum(1 for e in events if e.type != "page_viewed")
    span = max(60.0, (now - lead["CreatedDate"]).total_seconds())
    for n in range(min(4, engaged // 2) + (1 if rng.random() < 0.5 else 0)):
        when = _at(lead["CreatedDate"] + timedelta(seconds=rng.uniform(0, span)), now)
        when = when.replace(microsecond=0)
        if n % 2 == 0:
            values = {
                "Subject": "Call",
                "TaskSubtype": "Call",
                "CallType": "Outbound",
                "CallDurationInSeconds": rng.randrange(20, 1500),
                "CallDisposition": rng.choice(("Connected", "Left voicemail", "No answer")),
            }
        else:
            values = {"Subject": "Email: Following up", "TaskSubtype": "Email"}
        values.update(
            WhoId=lead["Id"],
            Status="Completed",
            Priority="Normal",
            ActivityDate=when.date(),
            IsArchived=lead["CreatedDate"].day == 13 and n == 0,
        )
        org.insert("Task", values, when)
        last = max(lead["LastActivityDate"] or when.date(), when.date())
        org.change(lead, when, Status="Working - Contacted", LastActivityDate=last)
    for event in events:
        if event.type == "form_submitted":
            when = _at(event.occurred_at + timedelta(hours=2), now)
            org.insert(
                "Task",
                {
                    "WhoId": lead["Id"],
                    "Subject": "Quote request: follow up",
                    "TaskSubtype": "Task",
                    "Status": "Not Started",
                    "Priority": "High",
                    "ActivityDate": (when + timedelta(days=2)).date(),
                },
                when,
            )


def _outcome(org: Org, accounts: dict[str, Record], rng: random.Random, person: Person,
             lead: Record, result: Result, members: list[Record]) -> None:  # fmt: skip
    if result.status == "lost" and person.key % 2:
        org.change(lead, result.closed_at, Status="Closed - Not Converted")
        org.touch(lead, max(result.closed_at, lead["SystemModstamp"]))
        return
    converted = result.closed_at
    if result.status == "won":
        converted = max(lead["CreatedDate"], result.closed_at - timedelta(days=7))
    company = person.company
    account = accounts.get(company.name) or org.insert(
        "Account", {"Name": company.name, "Industry": company.industry,
                    "NumberOfEmployees": company.size, "BillingCountry": company.country,
                    "Website": f"https://{company.domain}"}, converted)  # fmt: skip
    accounts[company.name] = account
    contact = org.insert("Contact", {
        "FirstName": person.first_name, "LastName": person.last_name, "Email": lead["Email"],
        "Phone": person.phone, "Title": person.job_title, "AccountId": account["Id"],
        "MailingCity": person.city, "MailingCountry": person.country,
        "LeadSource": lead["LeadSource"]}, converted)  # fmt: skip
    stage = {"won": "Closed Won", "lost": "Closed Lost"}.get(result.status, "Qualification")
    opportunity = org.insert(
        "Opportunity",
        {
            "Name": f"{company.name} - {person.product_interest}",
            "AccountId": account["Id"],
            "ContactId": contact["Id"],
            "StageName": stage,
            "Amount": result.amount,
            "CloseDate": (
                result.closed_at
                if stage != "Qualification"
                else result.closed_at + timedelta(days=30)
            ).date(),
            "LeadSource": lead["LeadSource"],
            "Probability": {"Closed Won": 100, "Closed Lost": 0}.get(stage, 20),
        },
        converted,
    )
    if stage != "Qualification":
        org.change(
            opportunity,
            converted,
            StageName="Qualification",
            Probability=20,
            CloseDate=(converted + timedelta(days=30)).date(),
        )  # open until it closes
        org.change(opportunity, result.closed_at, StageName=stage,
                   Probability={"Closed Won": 100, "Closed Lost": 0}[stage],
                   CloseDate=result.closed_at.date())  # fmt: skip
        org.touch(opportunity, result.closed_at)
    meeting = max(lead["CreatedDate"], converted - timedelta(days=rng.uniform(1, 4)))
    meeting = meeting.replace(microsecond=0)
    org.insert("Event", {"WhoId": lead["Id"], "WhatId": opportunity["Id"], "Subject": "Demo",
                         "ActivityDateTime": meeting, "StartDateTime": meeting,
                         "EndDateTime": meeting + timedelta(minutes=45), "DurationInMinutes": 45,
                         "ActivityDate": meeting.date(), "EventSubtype": "Event"},
               meeting)  # fmt: skip
    ids = {"ConvertedAccountId": account["Id"], "ConvertedContactId": contact["Id"],
           "ConvertedOpportunityId": opportunity["Id"]}  # fmt: skip
    org.change(lead, converted, IsConverted=True, ConvertedDate=converted.date(),
               Status="Closed - Converted", **ids)  # fmt: skip
    org.touch(lead, max(converted, lead["SystemModstamp"]))
    for member in members:
        org.change(member, converted, ContactId=contact["Id"])
        derive("CampaignMember", member)
