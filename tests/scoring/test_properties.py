"""Properties of the engine that must hold for any model and any activity history."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import compiled
from scoring.engine import Activity, ScoreResult, score_lead
from scoring.model import ScoringModel, parse_models
from tests.scoring.helpers import NOW, ledger_total

EVENTS = ("page_viewed", "email_opened", "form_submitted", "unsubscribed", "email_sent")
URLS = (None, "https://acme.example/pricing", "https://acme.example/careers", "/blog")
LEAD = {"email": "ann@gmail.com", "job_title": "VP Sales", "company_size": 300, "custom": {}}
FIT = {
    "max": 25,
    "rules": [
        {"name": "Senior", "field": "job_title", "matches": "(?i)vp", "points": 20},
        {"name": "Big", "field": "company_size", "gt": 100, "points": 10},
        {"name": "Free email", "field": "email", "domain_in": "@free_email", "points": -10},
    ],
}

rules = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["A", "B", "C", "D", "E"]),
        "event": st.sampled_from(EVENTS[:4]),
        "points": st.one_of(st.integers(-30, 50), st.sampled_from([0.5, 1.25, 3.33, -2.75])),
    },
    optional={
        "url": st.sampled_from(["*/pricing*", "*/careers*", "*"]),
        "where": st.just({"form": "quote"}),
        "limit": st.integers(1, 4),
        "limit_per_day": st.integers(1, 3),
        "window_days": st.integers(1, 120),
    },
)
decays = st.fixed_dictionaries(
    {},
    optional={
        "inactivity": st.just(
            [{"days": 30, "minus": 15}, {"days": 60, "minus": 30}, {"days": 90, "minus": 50}]
        ),
        "half_life_days": st.sampled_from([7, 30, 45.5]),
        "expire_after_days": st.sampled_from([30, 180]),
    },
)
activities = st.lists(
    st.builds(
        lambda kind, seconds, url, form: Activity(
            kind, NOW - timedelta(seconds=seconds), {"url": url, "form": form}
        ),
        st.sampled_from(EVENTS),
        st.integers(-10 * 86400, 200 * 86400),  # negative: after `now`
        st.sampled_from(URLS),
        st.sampled_from(["quote", "newsletter"]),
    ),
    max_size=40,
)


def build(
    engagement_rules: list[dict[str, Any]], decay: dict[str, Any], **extra: Any
) -> ScoringModel:
    engagement = {"rules": engagement_rules, "decay": decay}
    return parse_models({"models": [{"name": "p", "fit": FIT, "engagement": engagement, **extra}]})[
        0
    ]


rule_lists = st.lists(rules, max_size=5, unique_by=lambda rule: rule["name"])
models = st.builds(build, rule_lists, decays)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(model: ScoringModel, acts: list[Activity]) -> ScoreResult:
    return score_lead(LEAD, acts, model, NOW)


@PROPERTY
@given(models, activities, st.data())
def test_the_result_does_not_depend_on_activity_order(
    model: ScoringModel, acts: list[Activity], data: st.DataObject
) -> None:
    assert run(model, data.draw(st.permutations(acts))) == run(model, acts)


@PROPERTY
@given(rule_lists, decays, activities)
def test_decay_never_raises_engagement(
    engagement_rules: list[dict[str, Any]], decay: dict[str, Any], acts: list[Activity]
) -> None:
    decayed = run(build(engagement_rules, decay), acts).engagement
    undecayed = run(build(engagement_rules, {}), acts).engagement
    assert decayed <= undecayed
    assert decayed >= min(undecayed, 0)  # never below zero on its own


@PROPERTY
@given(models, activities)
def test_limits_are_never_exceeded(model: ScoringModel, acts: list[Activity]) -> None:
    counts = {e.name: e.count for e in run(model, acts).ledger if e.kind == "rule"}
    days = Counter((a.type, a.occurred_at.date()) for a in acts)
    for rule in model.engagement.rules:
        count = counts.get(rule.name, 0)
        assert count <= sum(1 for a in acts if a.type == rule.event)
        if rule.limit is not None:
            assert count <= rule.limit
        if rule.limit_per_day is not None:
            active_days = sum(1 for kind, _ in days if kind == rule.event)
            assert count <= rule.limit_per_day * active_days


@PROPERTY
@given(models, activities)
def test_scoring_twice_gives_identical_results(model: ScoringModel, acts: list[Activity]) -> None:
    first = run(model, acts)
    assert run(model, acts) == first
    compiled._COMPILED.clear()  # a cold compile (and empty match memo) agrees too
    assert run(model, acts) == first


@PROPERTY
@given(models, activities)
def test_activities_after_now_are_ignored(model: ScoringModel, acts: list[Activity]) -> None:
    past = [a for a in acts if a.occurred_at <= NOW]
    assert run(model, acts) == run(model, past)


@PROPERTY
@given(models, activities, st.sampled_from([(None, None), (-20, 30), (0, 100)]))
def test_the_ledger_adds_up_to_the_total(
    model: ScoringModel, acts: list[Activity], bounds: tuple[int | None, int | None]
) -> None:
    clamped = model.model_copy(update={"min": bounds[0], "max": bounds[1]})
    for m in (model, clamped):
        result = run(m, acts)
        assert ledger_total(result) == result.total
        fit = sum(e.points for e in result.ledger if e.section == "fit")
        engagement = sum(e.points for e in result.ledger if e.section == "engagement")
        assert round(fit, 2) == result.fit
        assert round(engagement, 2) == result.engagement
        assert all(round(e.points, 2) == e.points for e in result.ledger)
