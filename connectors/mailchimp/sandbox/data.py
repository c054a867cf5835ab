"""The Mailchimp sandbox's data: one audience seeded from the synthetic world, and its changes.

Who is there: every `Person.in_mailchimp`, as a member whose status follows the world (an
`unsubscribed` event makes them unsubscribed; about one in thirty is `cleaned`, with a hard
bounce); malformed people get an address without `@`. Campaigns are the world's newsletters,
sent an hour before their first open; email activity is the world's opens and clicks. The clock
starts at the world's `now` and runs with real time, so every change lands after the seed.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from connectors.sandbox.world import Event, Person, World

MERGE_FIELDS = (  # tag, name, type: Mailchimp's defaults plus two of the sandbox's own
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("ADDRESS", "Address", "address"),
    ("PHONE", "Phone Number", "phone"),
    ("COMPANY", "Company", "text"),
    ("JOBTITLE", "Job title", "text"),
)
MERGE_TYPES = frozenset(
    {"text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown",
     "birthday", "zip"}
)  # fmt: skip
UNSUBSCRIBE_REASON = "I no longer want to receive these emails"


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def stamp(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat()


@dataclass
class Member:
    id: str
    email: str
    status: str
    merge_fields: dict[str, Any]
    country: str
    rating: int
    timestamp_opt: datetime
    last_changed: datetime
    web_id: int
    tags: dict[str, datetime] = field(default_factory=dict)  # active tags → date added
    unsubscribe_reason: str = ""
    statuses: list[tuple[datetime, str]] = field(default_factory=list)  # the world's changes
    engaged: list[datetime] = field(default_factory=list)  # the opens and clicks its rating counts


@dataclass(frozen=True)
class Campaign:
    id: str
    title: str
    send_time: datetime


@dataclass(frozen=True)
class Activity:
    """One open, click or bounce of one recipient of one campaign."""

    campaign_id: str
    member_id: str
    action: str
    timestamp: datetime
    url: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Unsubscribe:
    campaign_id: str
    member_id: str
    timestamp: datetime
    reason: str = UNSUBSCRIBE_REASON


@dataclass
class Audience:
    """The sandbox's whole state: one audience, its campaigns and what the tests may inspect."""

    list_id: str
    now: datetime
    members: dict[str, Member] = field(default_factory=dict)
    merge_fields: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[Campaign] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)
    unsubscribes: list[Unsubscribe] = field(default_factory=list)
    tag_ids: dict[str, int] = field(default_factory=dict)  # tag (a static segment) → its id
    tag_dates: dict[str, datetime] = field(default_factory=dict)  # tag → when it was made
    counters: Counter[str] = field(default_factory=Counter)
    tag_events: list[dict[str, Any]] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    world: World | None = None  # whose `clock`, when set, is the audience's (see `seen`)

    @property
    def as_of(self) -> datetime | None:
        return self.world.clock if self.world is not None else None

    def shows(self, when: datetime) -> bool:
        """Whether something dated `when` has happened on the world's clock (always, unset)."""
        return self.as_of is None or when <= self.as_of

    def seen(self, member: Member) -> Member | None:
        """`member` as it stood at the world's clock: None before it joined; its status and
        rating as of then, changed at its last change by then; the member itself when the clock
        is unset."""
        at = self.as_of
        if at is None:
            return member
        if member.timestamp_opt > at:
            return None
        rating = min(member.rating, 2 + sum(1 for when in member.engaged if when <= at))
        status, stamps = "subscribed", [member.timestamp_opt]
        stamps += [member.last_changed] if member.last_changed <= at else []
        for when, value in member.statuses:
            if when <= at:
                status = value
                stamps.append(when)
        if status == "subscribed" and member.status not in ("unsubscribed", "cleaned"):
            status = member.status  # a change made through the API since
        return replace(member, status=status, last_changed=max(stamps), rating=rating)

    def clock(self) -> datetime:
        """The world's clock when set; else the world's `now`, moving on with real time (whole
        seconds, as Mailchimp reports)."""
        if self.as_of is not None:
            return self.as_of
        return (self.now + timedelta(seconds=time.monotonic() - self.started)).replace(
            microsecond=0
        )

    def merge_field(self, tag: str) -> dict[str, Any] | None:
        return next((f for f in self.merge_fields if f["tag"] == tag.upper()), None)

    def add_merge_field(self, name: str, kind: str, tag: str, **extra: Any) -> dict[str, Any]:
        merge_id = len(self.merge_fields) + 1
        entry = {"merge_id": merge_id, "tag": tag.upper(), "name": name, "type": kind,
                 "required": bool(extra.get("required", False)),
                 "default_value": extra.get("default_value", ""),
                 "public": bool(extra.get("public", False)), "display_order": merge_id,
                 "options": {}, "help_text": extra.get("help_text", ""),
                 "list_id": self.list_id}  # fmt: skip
        self.merge_fields.append(entry)
        return entry

    def tag_id(self, name: str) -> int:
        """The id of the tag `name` (a static segment), made now if the audience lacks it."""
        if name not in self.tag_ids:
            self.tag_ids[name] = 2865001 + len(self.tag_ids)
            self.tag_dates[name] = self.clock()
        return self.tag_ids[name]

    def tag_named(self, segment_id: int) -> str | None:
        return next((n for n, i in self.tag_ids.items() if i == segment_id), None)

    def tag_member(self, member: Member, name: str, active: bool, via: str) -> bool:
        """Give `member` the tag (or take it off); False when nothing changed. Logged."""
        self.tag_id(name)
        if active == (name in member.tags):
            return False
        if active:
            member.tags[name] = self.clock()
        else:
            del member.tags[name]
        self.tag_events.append({"email": member.email, "tag": name, "via": via,
                                "status": "active" if active else "inactive"})  # fmt: skip
        return True

    def add_member(self, email: str, status: str, merge_fields: dict[str, Any]) -> Member:
        now = self.clock()
        member = Member(subscriber_hash(email), email, status, dict(merge_fields), "", 2, now,
                        now, 100000 + len(self.members))  # fmt: skip
        self.members[member.id] = member
        return member


# -- seeding -------------------------------------------------------------------------------------


def _campaign_id(seed: int, name: str) -> str:
    return hashlib.md5(f"{seed}:{name}".encode()).hexdigest()[:10]


def _email(person: Person, malformed: set[int]) -> str:
    return person.email.replace("@", " at ") if person.key in malformed else person.email


def _campaigns(world: World) -> list[Campaign]:
    """The world's newsletters, each sent an hour before its first open (or weekly if unread)."""
    first: dict[str, datetime] = {}
    for event in world.events:
        name = event.properties.get("campaign")
        if event.type.startswith("email_") and isinstance(name, str):
            first[name] = min(first.get(name, event.occurred_at), event.occurred_at)
    names = sorted(set(first) | {f"newsletter-{c}" for c in range(6)})
    out = []
    for i, name in enumerate(names):
        sent = first.get(name, world.now - timedelta(days=7 * (len(names) - i)))
        out.append(Campaign(_campaign_id(world.seed, name), name, sent - timedelta(hours=1)))
    return sorted(out, key=lambda c: (c.send_time, c.id))


def _member(person: Person, events: list[Event], malformed: set[int]) -> Member:
    email = _email(person, malformed)
    merge = {"FNAME": person.first_name, "LNAME": person.last_name, "ADDRESS": "",
             "PHONE": person.phone, "COMPANY": person.company.name,
             "JOBTITLE": person.job_title}  # fmt: skip
    opens = [e.occurred_at for e in events if e.type.startswith("email_")]
    return Member(subscriber_hash(email), email, "subscribed", merge, person.country,
                  min(5, 2 + len(opens)), person.created_at, person.created_at,
                  100000 + person.key, engaged=opens)  # fmt: skip


def seed(world: World, list_id: str) -> Audience:
    """The audience of `world`: members, merge fields, campaigns, activity and unsubscribes."""
    audience = Audience(list_id, world.now, world=world)
    for tag, name, kind in MERGE_FIELDS:
        audience.add_merge_field(name, kind, tag)
    audience.campaigns = _campaigns(world)
    by_name = {c.title: c for c in audience.campaigns}
    malformed = set(world.malformed)
    events: dict[int, list[Event]] = {}
    for event in world.events:  # grouped once: `World.events_of` scans every event
        events.setdefault(event.person, []).append(event)
    for person in (p for p in world.people if p.in_mailchimp):
        member = _member(person, events.get(person.key, []), malformed)
        audience.members[member.id] = member
        for event in events.get(person.key, []):
            campaign = by_name.get(str(event.properties.get("campaign")))
            if campaign is None:
                continue
            if event.type == "unsubscribed":
                member.status, member.unsubscribe_reason = "unsubscribed", UNSUBSCRIBE_REASON
                member.last_changed = max(member.last_changed, event.occurred_at)
                member.statuses.append((event.occurred_at, "unsubscribed"))
                audience.unsubscribes.append(Unsubscribe(campaign.id, member.id, event.occurred_at))
            elif event.type in ("email_opened", "email_clicked"):
                action = "open" if event.type == "email_opened" else "click"
                url = event.properties.get("url") if action == "click" else None
                audience.activity.append(
                    Activity(campaign.id, member.id, action, event.occurred_at, url)
                )
        if person.key % 30 == 7 and member.status == "subscribed":
            _bounce(audience, member)
    return audience


def _bounce(audience: Audience, member: Member) -> None:
    """Clean `member` after a hard bounce on the last campaign sent after they joined."""
    sent = [c for c in audience.campaigns if c.send_time >= member.timestamp_opt]
    campaign = sent[-1] if sent else audience.campaigns[-1]
    when = max(campaign.send_time, member.timestamp_opt) + timedelta(minutes=5)
    audience.activity.append(Activity(campaign.id, member.id, "bounce", when, type="hard"))
    member.status, member.last_changed = "cleaned", max(member.last_changed, when)
    member.statuses.append((when, "cleaned"))


# -- rendering (the vendor's documented shapes) --------------------------------------------------


def render_segment(audience: Audience, name: str) -> dict[str, Any]:
    """A tag as the segments endpoints show it: a static segment."""
    count = sum(1 for m in audience.members.values() if name in m.tags)
    made = stamp(audience.tag_dates.get(name, audience.now))
    return {"id": audience.tag_ids[name], "name": name, "member_count": count, "type": "static",
            "created_at": made, "updated_at": made, "options": {"match": "any", "conditions": []},
            "list_id": audience.list_id}  # fmt: skip


def render_member(
    member: Member, list_id: str, tag_ids: Mapping[str, int] | None = None
) -> dict[str, Any]:
    ids = tag_ids or {}
    tags = [{"id": ids.get(n, 0), "name": n} for n in sorted(member.tags)][:50]  # "up to 50 tags"
    return {
        "id": member.id, "email_address": member.email,
        "unique_email_id": member.id[:10], "contact_id": member.id[10:30],
        "full_name": f"{member.merge_fields.get('FNAME', '')} "
                     f"{member.merge_fields.get('LNAME', '')}".strip(),
        "web_id": member.web_id, "email_type": "html", "status": member.status,
        "merge_fields": dict(member.merge_fields), "interests": {},
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0, "ecommerce_data": {}},
        "ip_signup": "", "timestamp_signup": "", "ip_opt": "127.0.0.1",
        "timestamp_opt": stamp(member.timestamp_opt), "member_rating": member.rating,
        "last_changed": stamp(member.last_changed), "language": "", "vip": False,
        "email_client": "", "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0,
                                         "country_code": member.country, "timezone": "",
                                         "region": ""},
        "source": "API - Generic", "tags_count": len(member.tags), "tags": tags,
        "list_id": list_id, "unsubscribe_reason": member.unsubscribe_reason, "last_note": {},
    }  # fmt: skip


def render_campaign(campaign: Campaign, list_id: str) -> dict[str, Any]:
    return {
        "id": campaign.id, "web_id": int(campaign.id[:6], 16), "type": "regular",
        "status": "sent", "send_time": stamp(campaign.send_time),
        "create_time": stamp(campaign.send_time - timedelta(days=1)),
        "recipients": {"list_id": list_id, "list_is_active": True},
        "settings": {"subject_line": campaign.title.replace("-", " ").title(),
                     "title": campaign.title, "from_name": "Sandbox"},
    }  # fmt: skip


def render_event(event: Activity) -> dict[str, Any]:
    out: dict[str, Any] = {"action": event.action, "timestamp": stamp(event.timestamp)}
    if event.url:
        out["url"] = event.url
    if event.type:
        out["type"] = event.type
    if event.action != "bounce":
        out["ip"] = "127.0.0.1"
    return out
