"""A synthetic world whose behaviour follows a working funnel, day by day over a window of time.

`World.build` scatters activity at random; `build_funnel` lives the window one day at a time for
every person, so what people do and whether they buy follow from who they are and what they did:

- **Fit** is hidden but shows in the fields: senior titles, companies over 100 people, software and
  financial services, the core markets (US, GB, CA) and a company address raise it; students and
  free email lower it.
- **Engagement** comes in bursts: a person is active for a while after arriving (longer the more
  interested), then goes quiet, and sometimes comes back. Active days bring page views (pricing
  among them), newsletter opens and clicks, webinar sign-ups and attendance, and at most one
  request for a quote.
- **Propensity** to buy is a logistic function of fit, the quote, pricing-page visits, webinars
  and clicks before the decision, lowered by inactivity before it, plus noise. Nine in ten people
  get a decision (won, converted or lost) at the end of their sales cycle or some days after they
  went quiet, whichever comes first, once that day has come; the rest stay open.

`World.build` stays as it was (the sandboxes' tests pin its records); `build_funnel` returns the
same `World`, so every vendor sandbox serves it unchanged.

    >>> w = build_funnel(seed=3, people=40, now=datetime(2026, 11, 1, tzinfo=UTC), days=30)
    >>> all(w.now - timedelta(days=30) <= p.created_at <= w.now for p in w.people)
    True
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox.world import (
    CHANNELS,
    CITIES,
    FIRST,
    FREE_DOMAINS,
    INDUSTRIES,
    LAST,
    PRODUCTS,
    Company,
    Event,
    Person,
    Result,
    World,
    _weighted,
)

# Who fills in the forms of a product that found its market: more senior people, mostly from the
# markets it sells in, than the scattered world's.
TITLES = (
    ("Chief Executive Officer", 5), ("VP Marketing", 9), ("Director of Sales", 10),
    ("Head of Growth", 9), ("Founder", 6), ("Marketing Manager", 14),
    ("Sales Operations Manager", 8), ("Software Engineer", 6), ("Student", 3),
    ("Marketing Coordinator", 8), ("Analyst", 7), ("Consultant", 6),
)  # fmt: skip
COUNTRIES = (("US", 48), ("GB", 16), ("CA", 9), ("DE", 9), ("FR", 5), ("IN", 8), ("BR", 3),
             ("AU", 2))  # fmt: skip
STEMS = ("Acme", "Globex", "Initech", "Umbra", "Vertex", "Northwind", "Contoso", "Helix", "Orbit",
         "Quanta", "Nimbus", "Pioneer")  # fmt: skip
SUFFIXES = ("Labs", "Systems", "Group", "Health", "Logistics", "Media", "Works")
PASSIVE = ("email_opened", "unsubscribed")  # what a person lets happen rather than does
SENIOR = ("Chief", "VP", "Director", "Head", "Founder")
TARGET_INDUSTRIES = ("Software", "Financial Services")
CORE_MARKETS = ("US", "GB", "CA")
SITE = "https://example.com"
BROWSING = ("/", "/features", "/blog/lead-scoring-guide", "/customers", "/docs")
NEWSLETTER_EVERY = 7  # days between newsletters (sent on the window's weekday 0, 7, 14, …)
WEBINAR_EVERY = 21  # days between webinars


@dataclass
class _Life:
    """What one person did over the window: their events and the signals propensity reads."""

    person: Person
    fit: float
    interest: float
    events: list[Event]
    quote: bool = False
    pricing: int = 0
    webinars: int = 0
    last_active: datetime | None = None


def build_funnel(
    seed: int = 42, people: int = 1200, *, now: datetime | None = None, days: int = 90
) -> World:
    """A world of `people` arriving over the `days` before `now`, living each day until `now`.

    Pure and deterministic: the same arguments give the same world.
    """
    rng = random.Random(seed)
    now = (now or datetime(2026, 11, 1, tzinfo=UTC)).replace(microsecond=0)
    start = now - timedelta(days=days)
    companies = [_company(rng, i) for i in range(max(1, people // 4))]
    drafts = [_person(rng, i, rng.choice(companies), now, days) for i in range(people)]
    # Keys in order of arrival, so a person's key says who came first.
    drafts.sort(key=lambda p: (p.created_at, p.email))
    persons = [_renumber(p, key) for key, p in enumerate(drafts)]
    events: list[Event] = []
    outcomes: list[Result] = []
    for person in persons:
        life = _live(rng, person, start, now)
        events.extend(life.events)
        result = _decide(rng, life, now)
        if result is not None:
            outcomes.append(result)
    malformed = sorted(rng.sample(range(people), k=min(people, max(1, people // 100))))
    return World(seed, now, companies, persons, events, outcomes, malformed)


def _company(rng: random.Random, i: int) -> Company:
    stem, suffix = rng.choice(STEMS), rng.choice(SUFFIXES)
    size = int(rng.lognormvariate(4.6, 1.3)) + 1
    domain = f"{stem.lower()}{suffix.lower()}{i}.com"
    return Company(f"{stem} {suffix} {i}", domain, rng.choice(INDUSTRIES), size,
                   _weighted(rng, COUNTRIES))  # fmt: skip


def _person(rng: random.Random, i: int, company: Company, now: datetime, days: int) -> Person:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(FREE_DOMAINS) if rng.random() < 0.12 else company.domain
    country = company.country if rng.random() < 0.9 else _weighted(rng, COUNTRIES)
    channel = _weighted(rng, CHANNELS)
    created = now - timedelta(seconds=rng.uniform(0, days * 86400))
    return Person(
        key=i, email=f"{first.lower()}.{last.lower()}{i}@{domain}", first_name=first,
        last_name=last, phone=f"+1555{rng.randrange(10**6, 10**7)}", company=company,
        job_title=_weighted(rng, TITLES), country=country, city=CITIES[country], channel=channel,
        product_interest=rng.choice(PRODUCTS), created_at=created.replace(microsecond=0),
        in_facebook=channel == "facebook_ads" or rng.random() < 0.1,
        in_mailchimp=rng.random() < 0.7, in_hubspot=rng.random() < 0.8,
        in_salesforce=rng.random() < 0.55,
    )  # fmt: skip


def _renumber(person: Person, key: int) -> Person:
    """The person under key `key` (the email's number follows, so emails stay unique)."""
    local, domain = person.email.split("@")
    stem = local.rstrip("0123456789")
    fields: dict[str, Any] = {**person.__dict__, "key": key, "email": f"{stem}{key}@{domain}"}
    return Person(**fields)


def fit_of(person: Person) -> float:
    """The hidden fit of a person: what a good scoring model's fit rules should recover."""
    fit = 0.0
    if any(word in person.job_title for word in SENIOR):
        fit += 1.2
    if person.company.size > 100:
        fit += 0.6
    if person.company.industry in TARGET_INDUSTRIES:
        fit += 0.5
    if person.country in CORE_MARKETS:
        fit += 0.7
    if person.channel == "referral":
        fit += 0.3
    if person.email.split("@")[1] in FREE_DOMAINS:
        fit -= 0.6
    if person.job_title == "Student":
        fit -= 1.5
    return fit


def _live(rng: random.Random, person: Person, start: datetime, now: datetime) -> _Life:
    """Walk the person's days from arrival to `now`: bursts of activity, then quiet."""
    fit = fit_of(person)
    interest = min(1.0, max(0.02, rng.betavariate(1.3, 3.0) + 0.15 * fit))
    life = _Life(person, fit, interest, [])
    if person.in_facebook:
        _add(life, "ad_form_submitted", {"form": "fb-lead-form", "campaign": "autumn"},
             person.created_at)  # fmt: skip
    active_until = person.created_at + timedelta(days=rng.expovariate(1 / (6 + 40 * interest)))
    day = person.created_at.replace(hour=0, minute=0, second=0) + timedelta(days=1)
    while day < now:
        index = (day - start).days
        active = day <= active_until
        if not active and rng.random() < 0.004 + 0.01 * interest:  # back after a quiet spell
            active_until = day + timedelta(days=rng.expovariate(1 / (3 + 10 * interest)))
            active = True
        moment = day + timedelta(seconds=rng.randrange(8 * 3600, 20 * 3600))
        if active:
            _active_day(rng, life, moment, index)
        if person.in_mailchimp and index % NEWSLETTER_EVERY == 0:
            _newsletter(rng, life, moment, index, active)
        day += timedelta(days=1)
    life.events.sort(key=lambda e: e.occurred_at)
    return life


def _active_day(rng: random.Random, life: _Life, moment: datetime, index: int) -> None:
    interest = life.interest
    if rng.random() < 0.25 + 0.35 * interest:
        _add(life, "page_viewed", {"url": SITE + rng.choice(BROWSING)}, moment)
    if rng.random() < 0.03 + 0.2 * interest:
        life.pricing += 1
        _add(life, "page_viewed", {"url": f"{SITE}/pricing"}, moment + timedelta(minutes=3))
    if rng.random() < 0.01:
        _add(life, "page_viewed", {"url": f"{SITE}/careers"}, moment + timedelta(minutes=5))
    if index % WEBINAR_EVERY == 10 and rng.random() < 0.1 + 0.5 * interest:
        name = f"scoring-{index // WEBINAR_EVERY + 101}"
        signed_up = max(moment - timedelta(days=3), life.person.created_at)
        _add(life, "webinar_registered", {"webinar": name}, signed_up)
        if rng.random() < 0.55:
            life.webinars += 1
            _add(life, "webinar_attended", {"webinar": name}, moment + timedelta(hours=1))
    ready = life.pricing >= 1 or life.webinars >= 1
    chance = (0.002 + 0.07 * interest * (1 if ready else 0.3)) * math.exp(0.35 * life.fit)
    if not life.quote and rng.random() < chance:
        life.quote = True
        form = {"form": "request-quote", "url": f"{SITE}/quote"}
        _add(life, "form_submitted", form, moment + timedelta(minutes=9))


def _newsletter(
    rng: random.Random, life: _Life, moment: datetime, index: int, active: bool
) -> None:
    campaign = {"campaign": f"newsletter-{index // NEWSLETTER_EVERY}"}
    if rng.random() < (0.25 + 0.45 * life.interest) * (1 if active else 0.12):
        _add(life, "email_opened", campaign, moment)
        if rng.random() < 0.15 + 0.45 * life.interest:
            props = {**campaign, "url": f"{SITE}/pricing"}
            _add(life, "email_clicked", props, moment + timedelta(minutes=2))
    elif rng.random() < 0.006:
        _add(life, "unsubscribed", campaign, moment + timedelta(minutes=1))


def _add(life: _Life, kind: str, props: dict[str, Any], at: datetime) -> None:
    key = f"{life.person.key}-{len(life.events)}"
    life.events.append(Event(key, life.person.key, kind, at.replace(microsecond=0), props))
    if kind not in PASSIVE:
        life.last_active = max(life.last_active or at, at)


def propensity(life: _Life, decided_at: datetime, noise: float) -> float:
    """The chance that the person buys when decided at `decided_at`, from what they did before."""
    before = [e for e in life.events if e.occurred_at < decided_at]
    count = Counter(_signal(e) for e in before)
    active = [e.occurred_at for e in before if e.type not in PASSIVE]
    quiet = (decided_at - max(active, default=life.person.created_at)).days
    logit = (
        -3.1
        + 0.9 * life.fit
        + 2.0 * min(count["quote"], 1)
        + 0.45 * min(count["pricing"], 3)
        + 0.7 * min(count["webinar_attended"], 2)
        + 0.15 * min(count["email_clicked"], 4)
        - 0.04 * max(0, quiet - 10)
        + noise
    )
    return 1 / (1 + math.exp(-logit))


def _signal(event: Event) -> str:
    if event.type == "form_submitted":
        return "quote"
    if event.type == "page_viewed" and str(event.properties.get("url", "")).endswith("/pricing"):
        return "pricing"
    return event.type


def _decide(rng: random.Random, life: _Life, now: datetime) -> Result | None:
    """Won, converted or lost at the end of a sales cycle, or some days after the person went
    quiet, whichever comes first; None when still open at `now`."""
    if rng.random() > 0.9:
        return None
    last = life.last_active or life.person.created_at
    quiet = last + timedelta(days=rng.uniform(2, 24))
    cycle = life.person.created_at + timedelta(days=rng.uniform(12, 70))
    closed = min(quiet, cycle) + timedelta(seconds=rng.randrange(3600, 80_000))
    if closed >= now:
        return None
    chance = propensity(life, closed, rng.gauss(0, 1.0))
    key, closed = life.person.key, closed.replace(microsecond=0)
    if rng.random() < chance:
        won = rng.random() < 0.6
        amount = round(rng.uniform(2_000, 60_000), 2) if won else None
        return Result(key, "won" if won else "converted", closed, amount)
    return Result(key, "lost", closed, None)
