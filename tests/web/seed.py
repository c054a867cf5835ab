"""A small seeded store for the web tests: twelve leads scored twice under one inline model.

    leads 0-3   directors (fit 30) with a quote request (+50): hot, qualified
    leads 4-7   analysts with pricing views (+25 each, up to 2): warm
    leads 8-11  analysts, no activity: cold
    channels    referral for even ids, facebook_ads (stored as paid_social) for odd ones
    outcomes    leads 0, 1 and 4 won; 8 and 9 lost; 5 open
The second scoring adds a pricing view to lead 4, so its history has two points.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.config import HubConfig
from core.pipeline import score as scorer
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store
from scoring.model import ScoringModel, parse_models

NOW = datetime(2026, 3, 1, tzinfo=UTC)
LATER = NOW + timedelta(days=1)
MODEL = {
    "name": "default",
    "description": "Test model.",
    "fit": {
        "rules": [
            {"name": "Director", "field": "job_title", "matches": "(?i)director", "points": 30},
            {"name": "Referral", "field": "channel", "equals": "referral", "points": 5},
        ]
    },
    "engagement": {
        "rules": [
            {
                "name": "Request a quote",
                "event": "form_submitted",
                "where": {"form": "request-quote"},
                "points": 50,
            },
            {"name": "Pricing page", "event": "page_viewed", "url": "*/pricing*", "points": 25},
        ]
    },
    "tiers": [
        {"name": "hot", "min": 70, "color": "#d7301f"},
        {"name": "warm", "min": 25, "color": "#fc8d59"},
        {"name": "cold", "color": "#4575b4"},
    ],
    "grade": {"fit": {"A": 30, "B": 5}, "engagement": {"1": 50, "2": 25}},
    "qualified": {"total": 70, "release_below": 60},
}


def models() -> list[ScoringModel]:
    return parse_models({"models": [MODEL]})


def hub(directory: Path) -> HubConfig:
    return HubConfig(path=directory / "leadhub.yaml", models=models())


def _activity(i: int, ext: str, kind: str, at: datetime, **props: str) -> ActivityRecord:
    return ActivityRecord(
        source="crm", external_id=ext, lead=str(i), type=kind, occurred_at=at, properties=props
    )


def seed(store: Store) -> None:
    """Store the twelve leads, their activity and outcomes, and score them twice."""
    leads = [
        LeadRecord(
            source="crm",
            external_id=str(i),
            email=f"lead{i}@acme.example",
            first_name=f"Person{i}",
            last_name="Test",
            company=f"Company {i}",
            job_title="Director of Sales" if i < 4 else "Analyst",
            channel="referral" if i % 2 == 0 else "facebook_ads",
        )
        for i in range(12)
    ]
    day = NOW - timedelta(days=2)
    acts = [_activity(i, f"q{i}", "form_submitted", day, form="request-quote") for i in range(4)]
    acts += [_activity(i, f"p{i}", "page_viewed", day, url="/pricing") for i in range(4, 8)]
    outcomes = [
        OutcomeRecord(source="crm", external_id=f"o{i}", lead=str(i), status=s, closed_at=NOW)
        for i, s in ((0, "won"), (1, "won"), (4, "won"), (8, "lost"), (9, "lost"))
    ]
    outcomes.append(OutcomeRecord(source="crm", external_id="o5", lead="5", status="open"))
    store.save_page("crm", "leads", [*leads, *acts, *outcomes], None)
    scorer.score(store, models(), now=NOW)
    store.save_page("crm", "acts", [_activity(4, "p4b", "page_viewed", NOW, url="/pricing")], None)
    scorer.score(store, models(), now=LATER)
