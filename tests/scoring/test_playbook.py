"""A model straight from users' playbooks, scored by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from scoring.engine import QualifiedState, ScoreResult, score_lead
from scoring.model import ScoringModel, load_model_file
from tests.scoring.helpers import NOW, act, entries, ledger_total

PLAYBOOK = """
models:
  - name: playbook
    fit:
      rules:
        - {name: Job title Director, field: job_title, matches: "(?i)director", points: 20}
        - {name: Company size > 100, field: company_size, gt: 100, points: 10}
        - {name: Competitor, field: email, domain_in: competitors.txt, points: -30}
    engagement:
      rules:
        - {name: Request a quote, event: form_submitted, where: {form: request-quote}, points: 50}
        - {name: Attended webinar, event: webinar_attended, points: 15}
        - {name: Visited pricing page, event: page_viewed, url: "*/pricing*", points: 25}
        - {name: Careers page, event: page_viewed, url: "*/careers*", points: -10}
        - {name: Unsubscribed, event: unsubscribed, points: -20}
      decay:
        inactivity: [{days: 30, minus: 15}, {days: 60, minus: 30}, {days: 90, minus: 50}]
    tiers: [{name: hot, min: 70}, {name: warm, min: 40}, {name: cold}]
    qualified: {total: 70, release_below: 60}
"""

DIRECTOR = {"email": "dana@acme.com", "job_title": "Marketing Director", "company_size": 250}


@pytest.fixture
def playbook(tmp_path: Path) -> ScoringModel:
    (tmp_path / "competitors.txt").write_text("rival.com\ncontender.io\n")
    (tmp_path / "models.yaml").write_text(PLAYBOOK)
    return load_model_file(tmp_path / "models.yaml")[0]


def journey(days_ago: float) -> list:
    """Quote request, webinar and a pricing visit, the last of them `days_ago` days ago."""
    return [
        act("form_submitted", days_ago, form="request-quote"),
        act("webinar_attended", days_ago + 3),
        act("page_viewed", days_ago + 1, url="https://acme.example/pricing"),
    ]


def scored(model: ScoringModel, lead: dict, activities: list) -> ScoreResult:
    result = score_lead(lead, activities, model, NOW)
    assert ledger_total(result) == result.total
    return result


def test_an_engaged_director(playbook: ScoringModel) -> None:
    result = scored(playbook, DIRECTOR, journey(2))
    assert (result.fit, result.engagement, result.total) == (30, 90, 120)  # 20+10, 50+15+25
    assert (result.tier, result.qualified, result.event) == ("hot", True, "qualified")
    assert result.reason == "Request a quote, Visited pricing page, Job title Director"


@pytest.mark.parametrize(("days", "engagement"), [(29, 90), (45, 75), (70, 60), (100, 40)])
def test_inactivity_decay_steps(playbook: ScoringModel, days: int, engagement: int) -> None:
    # 90 points of engagement, minus 15 after 30 days, 30 after 60 and 50 after 90
    assert scored(playbook, DIRECTOR, journey(days)).engagement == engagement


def test_a_competitor_visiting_careers_and_unsubscribing(playbook: ScoringModel) -> None:
    lead = {"email": "spy@eu.rival.com", "job_title": "Director of Strategy", "company_size": 5000}
    acts = [act("page_viewed", 1, url="https://acme.example/careers/"), act("unsubscribed", 2)]
    result = scored(playbook, lead, acts)
    assert (result.fit, result.engagement, result.total) == (0, -30, -30)  # 20+10-30; -10-20
    assert entries(result, "rule")["Competitor"] == (1, -30)
    assert result.tier == "cold"
    assert result.reason == "Job title Director, Company size > 100"


def test_a_negative_lead_is_not_decayed_further(playbook: ScoringModel) -> None:
    result = scored(playbook, {}, [act("unsubscribed", 120)])
    assert result.engagement == -20


def test_decay_stops_at_zero(playbook: ScoringModel) -> None:
    acts = [act("webinar_attended", 95), act("page_viewed", 96, url="/careers")]
    result = scored(playbook, {}, acts)
    assert result.engagement == 0  # 15 - 10 = 5; the 90-day step takes only those 5
    assert entries(result, "decay") == {"Inactive 90+ days": (1, -5)}


def test_hysteresis_keeps_a_cooling_lead_qualified(playbook: ScoringModel) -> None:
    first = scored(playbook, {}, journey(2))  # 90
    assert (first.qualified, first.qualified_at, first.event) == (True, NOW, "qualified")
    state = QualifiedState(first.qualified, first.qualified_at)
    later = NOW + timedelta(days=68)  # 70 days since the last activity: 90 - 30 = 60
    held = score_lead({}, journey(2), playbook, later, state)
    assert (held.total, held.qualified, held.qualified_at, held.event) == (60, True, NOW, None)
    gone = score_lead({}, journey(2), playbook, NOW + timedelta(days=88), state)  # 90 - 50 = 40
    assert (gone.total, gone.qualified, gone.qualified_at, gone.event) == (
        40,
        False,
        None,
        "released",
    )
