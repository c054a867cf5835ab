"""A deterministic synthetic world of companies, people, activity and outcomes.

Every sandbox is seeded from the same world, so one person can exist in Facebook, Mailchimp and a
CRM at once (same email), as in a real company. `World.build(seed, people)` is pure and fast:
the same arguments give the same world, byte for byte.

    >>> w = World.build(seed=7, people=50)
    >>> len(w.people), w.people[0].email == World.build(seed=7, people=50).people[0].email
    (50, True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

FIRST = [
    "Ann",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
    "Ada",
    "Bram",
    "Cleo",
    "Dario",
    "Elif",
    "Femi",
    "Gus",
    "Hana",
    "Ivo",
    "Jae",
    "Kofi",
    "Lena",
    "Milo",
    "Nina",
]
LAST = [
    "Smith",
    "Garcia",
    "Chen",
    "Okafor",
    "Novak",
    "Silva",
    "Tanaka",
    "Muller",
    "Rossi",
    "Kowalski",
    "Haddad",
    "Jensen",
    "Costa",
    "Ivanova",
    "Murphy",
    "Nguyen",
    "Patel",
    "Andersen",
    "Moreau",
    "Schmidt",
    "Yilmaz",
    "Kim",
    "Lopez",
    "Berg",
    "Fischer",
]
TITLES = (
    ("Chief Executive Officer", 3),
    ("VP Marketing", 5),
    ("Director of Sales", 6),
    ("Head of Growth", 5),
    ("Marketing Manager", 12),
    ("Sales Operations Manager", 8),
    ("Software Engineer", 10),
    ("Student", 6),
    ("Marketing Coordinator", 10),
    ("Analyst", 8),
    ("Consultant", 6),
    ("Founder", 4),
)
INDUSTRIES = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Logistics",
    "Media",
)
COUNTRIES = (
    ("US", 40),
    ("GB", 15),
    ("CA", 8),
    ("DE", 10),
    ("FR", 6),
    ("IN", 12),
    ("BR", 5),
    ("AU", 4),
)
CITIES = {
    "US": "Austin",
    "GB": "London",
    "CA": "Toronto",
    "DE": "Berlin",
    "FR": "Lyon",
    "IN": "Pune",
    "BR": "Recife",
    "AU": "Perth",
}
CHANNELS = (("facebook_ads", 30), ("organic", 25), ("referral", 10), ("email", 20), ("event", 15))
FREE_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com")
PRODUCTS = ("starter", "professional", "enterprise")
PAGES = (
    ("/", 30),
    ("/features", 20),
    ("/pricing", 12),
    ("/blog/lead-scoring-guide", 15),
    ("/careers", 4),
    ("/customers", 10),
    ("/docs", 9),
)


@dataclass(frozen=True)
class Company:
    name: str
    domain: str
    industry: str
    size: int
    country: str


@dataclass(frozen=True)
class Person:
    key: int
    email: str
    first_name: str
    last_name: str
    phone: str
    company: Company
    job_title: str
    country: str
    city: str
    channel: str
    product_interest: str
    created_at: datetime
    in_facebook: bool
    in_mailchimp: bool
    in_hubspot: bool
    in_salesforce: bool


@dataclass(frozen=True)
class Event:
    """One thing a person did: `type` is a leadhub activity type."""

    key: str
    person: int
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    person: int
    status: str  # converted | won | lost
    closed_at: datetime
    amount: float | None


@dataclass
class World:
    seed: int
    now: datetime
    companies: list[Company]
    people: list[Person]
    events: list[Event]
    outcomes: list[Result]
    malformed: list[int]  # keys of people whose source records are deliberately broken
    # The sandboxes' clock. None (the default): every sandbox shows the whole world and stamps
    # its writes with real time. Set: each shows the world as it stood at `clock` (records made
    # by then, statuses as of then) and stamps its writes with `clock`; moving it forward lets
    # the world happen day by day under incremental pulls (`leadhub demo --days`).
    clock: datetime | None = None

    def shows(self, when: datetime) -> bool:
        """Whether something made at `when` exists yet on the sandboxes' clock."""
        return self.clock is None or when <= self.clock

    @classmethod
    def build(
        cls, seed: int = 42, people: int = 500, *, now: datetime | None = None, days: int = 90
    ) -> World:
        rng = random.Random(seed)
        now = now or datetime(2026, 11, 1, tzinfo=UTC)
        companies = [_company(rng, i) for i in range(max(1, people // 4))]
        persons = [_person(rng, i, rng.choice(companies), now, days) for i in range(people)]
        events: list[Event] = []
        outcomes: list[Result] = []
        for p in persons:
            interest = _interest(p, rng)
            events.extend(_events(rng, p, interest, now))
            result = _outcome(rng, p, interest, now)
            if result:
                outcomes.append(result)
        malformed = sorted(rng.sample(range(people), k=min(people, max(1, people // 100))))
        return cls(seed, now, companies, persons, events, outcomes, malformed)

    def events_of(self, person: int) -> list[Event]:
        return [e for e in self.events if e.person == person]

    def outcomes_of(self, person: int) -> list[Result]:
        """The person's outcomes (at most one), from an index built on first use."""
        index = self.__dict__.get("_outcomes_by_person")
        if index is None:
            index = {}
            for result in self.outcomes:
                index.setdefault(result.person, []).append(result)
            self.__dict__["_outcomes_by_person"] = index
        return list(index.get(person, ()))


def _weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _company(rng: random.Random, i: int) -> Company:
    stem = rng.choice(
        (
            "Acme",
            "Globex",
            "Initech",
            "Umbra",
            "Vertex",
            "Northwind",
            "Contoso",
            "Helix",
            "Orbit",
            "Quanta",
            "Nimbus",
            "Pioneer",
        )
    )
    suffix = rng.choice(("Labs", "Systems", "Group", "Health", "Logistics", "Media", "Works"))
    name = f"{stem} {suffix} {i}"
    size = int(rng.lognormvariate(4.2, 1.4)) + 1
    return Company(
        name,
        f"{stem.lower()}{suffix.lower()}{i}.com",
        rng.choice(INDUSTRIES),
        size,
        _weighted(rng, COUNTRIES),
    )


def _person(rng: random.Random, i: int, company: Company, now: datetime, days: int) -> Person:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    free = rng.random() < 0.2
    domain = rng.choice(FREE_DOMAINS) if free else company.domain
    email = f"{first.lower()}.{last.lower()}{i}@{domain}"
    country = company.country if rng.random() < 0.85 else _weighted(rng, COUNTRIES)
    channel = _weighted(rng, CHANNELS)
    created = now - timedelta(days=rng.uniform(0, days), seconds=rng.randrange(86400))
    return Person(
        key=i,
        email=email,
        first_name=first,
        last_name=last,
        phone=f"+1555{rng.randrange(10**6, 10**7)}",
        company=company,
        job_title=_weighted(rng, TITLES),
        country=country,
        city=CITIES[country],
        channel=channel,
        product_interest=rng.choice(PRODUCTS),
        created_at=created.replace(microsecond=0),
        in_facebook=channel == "facebook_ads" or rng.random() < 0.1,
        in_mailchimp=rng.random() < 0.7,
        in_hubspot=rng.random() < 0.6,
        in_salesforce=rng.random() < 0.5,
    )


def _interest(p: Person, rng: random.Random) -> float:
    """A hidden propensity: senior people at bigger companies in core markets engage and buy."""
    score = 0.2 + 0.4 * rng.random()
    if any(w in p.job_title for w in ("Chief", "VP", "Director", "Head", "Founder")):
        score += 0.35
    if p.company.size > 100:
        score += 0.2
    if p.country in ("US", "GB", "CA"):
        score += 0.1
    if p.job_title == "Student":
        score -= 0.3
    return max(0.02, min(score, 1.2))


def _events(rng: random.Random, p: Person, interest: float, now: datetime) -> list[Event]:
    span = max(1.0, (now - p.created_at).total_seconds())
    out: list[Event] = []

    def add(kind: str, props: dict[str, Any], at: datetime | None = None) -> None:
        when = at or p.created_at + timedelta(seconds=rng.uniform(0, span))
        out.append(Event(f"{p.key}-{len(out)}", p.key, kind, when.replace(microsecond=0), props))

    if p.in_facebook:
        add("ad_form_submitted", {"form": "fb-lead-form", "campaign": "autumn"}, p.created_at)
    for _ in range(int(rng.expovariate(1 / (2 + 10 * interest)))):
        add("page_viewed", {"url": "https://example.com" + _weighted(rng, PAGES)})
    if p.in_mailchimp:
        for c in range(int(rng.uniform(0, 6))):
            props = {"campaign": f"newsletter-{c}"}
            if rng.random() < 0.3 + 0.4 * interest:
                add("email_opened", props)
                if rng.random() < 0.2 + 0.3 * interest:
                    add("email_clicked", {**props, "url": "https://example.com/pricing"})
        if rng.random() < 0.04:
            add("unsubscribed", {"campaign": "newsletter-0"})
    if rng.random() < 0.15 * interest:
        add("form_submitted", {"form": "request-quote", "url": "https://example.com/quote"})
    if rng.random() < 0.25 * interest:
        add("webinar_registered", {"webinar": "scoring-101"})
        if rng.random() < 0.6:
            add("webinar_attended", {"webinar": "scoring-101"})
    return sorted(out, key=lambda e: e.occurred_at)


def _outcome(rng: random.Random, p: Person, interest: float, now: datetime) -> Result | None:
    if rng.random() > 0.4:
        return None
    closed = p.created_at + timedelta(days=rng.uniform(5, 40))
    if closed > now:
        return None
    if rng.random() < 0.35 * interest:
        won = rng.random() < 0.6
        amount = round(rng.uniform(2_000, 60_000), 2) if won else None
        return Result(p.key, "won" if won else "converted", closed.replace(microsecond=0), amount)
    return Result(p.key, "lost", closed.replace(microsecond=0), None)
