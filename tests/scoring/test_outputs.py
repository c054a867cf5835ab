"""Total, tier, grade, qualified (with hysteresis and events) and the reason (DESIGN §4)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from scoring.engine import LedgerEntry, QualifiedState, ScoreResult, reason, score_lead
from scoring.model import ScoringModel
from tests.scoring.helpers import NOW, act, entries, ledger_total, model

TIERS = [
    {"name": "hot", "min": 70, "color": "#d7301f"},
    {"name": "warm", "min": 40, "color": "#fc8d59"},
    {"name": "cold", "color": "#4575b4"},
]
GRADE = {"fit": {"A": 45, "B": 30, "C": 15}, "engagement": {1: 30, 2: 20, 3: 10}}


def points_model(**spec: Any) -> ScoringModel:
    """Fit is the lead's `fit_points` field, engagement 1 point per `email_opened`."""
    fit = {
        "rules": [
            {"name": f"fit {p}", "field": "fit_points", "equals": p, "points": p}
            for p in range(-50, 101)
        ]
    }
    engagement = {"rules": [{"name": "Open", "event": "email_opened", "points": 1}]}
    return model(fit=fit, engagement=engagement, tiers=TIERS, grade=GRADE, **spec)


def at(
    m: ScoringModel,
    fit: int,
    engagement: int,
    previous: QualifiedState | None = None,
    now: datetime = NOW,
) -> ScoreResult:
    """A lead with exactly `fit` fit points and `engagement` engagement points."""
    acts = [act("email_opened", 1)] * engagement
    return score_lead({"custom": {"fit_points": fit}}, acts, m, now, previous)


def test_total_is_fit_plus_engagement_clamped() -> None:
    m = points_model(min=0, max=100)
    assert at(m, 30, 20).total == 50
    high = at(m, 80, 40)
    assert high.total == 100
    assert entries(high, "clamp") == {"Total max 100": (1, -20)}
    low = at(m, -50, 0)
    assert low.total == 0
    assert entries(low, "clamp") == {"Total min 0": (1, 50)}
    assert ledger_total(high) == 100 and ledger_total(low) == 0


@pytest.mark.parametrize(
    ("total", "tier", "color"),
    [
        (100, "hot", "#d7301f"),
        (70, "hot", "#d7301f"),
        (69, "warm", "#fc8d59"),
        (40, "warm", "#fc8d59"),
        (39, "cold", "#4575b4"),
        (-10, "cold", "#4575b4"),
    ],
)
def test_tier_is_the_first_from_the_top_whose_min_is_met(total: int, tier: str, color: str) -> None:
    result = at(points_model(), total, 0)
    assert result.total == total
    assert (result.tier, result.tier_color) == (tier, color)


def test_without_a_catch_all_tier_a_low_total_has_none() -> None:
    m = model(tiers=[{"name": "hot", "min": 70}])
    assert score_lead({}, [], m, NOW).tier is None
    assert score_lead({}, [], model(), NOW).tier is None


@pytest.mark.parametrize(
    ("fit", "engagement", "grade"),
    [
        (45, 30, "A1"),
        (50, 29, "A2"),
        (30, 20, "B2"),
        (29, 19, "C3"),
        (15, 10, "C3"),
        (14, 9, "D4"),
        (-20, 0, "D4"),
        (100, 5, "A4"),
    ],
)
def test_grade_letter_from_fit_and_digit_from_engagement(
    fit: int, engagement: int, grade: str
) -> None:
    assert at(points_model(), fit, engagement).grade == grade


def test_no_grade_block_means_no_grade() -> None:
    assert score_lead({}, [], model(), NOW).grade is None


def test_qualified_when_every_condition_holds() -> None:
    m = points_model(qualified={"total": 70, "fit": 30, "grade": "B2"})
    assert at(m, 50, 20).qualified  # 70, fit 50, A2
    assert not at(m, 25, 50).qualified  # fit below 30
    assert not at(m, 50, 15).qualified  # A3 is not at least B2
    assert not at(m, 45, 20).qualified  # total 65


def test_qualified_at_is_stamped_on_the_crossing_and_kept() -> None:
    m = points_model(qualified={"total": 70, "release_below": 60})
    first = at(m, 50, 25)
    assert (first.qualified, first.qualified_at, first.event) == (True, NOW, "qualified")
    later = NOW + timedelta(days=3)
    kept = at(m, 50, 30, QualifiedState(True, first.qualified_at), now=later)
    assert (kept.qualified, kept.qualified_at, kept.event) == (True, NOW, None)


def test_release_below_holds_a_qualified_lead_until_its_total_falls_below() -> None:
    m = points_model(qualified={"total": 70, "release_below": 60})
    was = QualifiedState(True, NOW - timedelta(days=1))
    held = at(m, 40, 20, was)  # 60: below 70 but not below 60
    assert (held.qualified, held.qualified_at, held.event) == (True, was.qualified_at, None)
    released = at(m, 40, 19, was)  # 59
    assert (released.qualified, released.qualified_at, released.event) == (False, None, "released")
    # and a lead that was not qualified needs the full 70 again
    assert not at(m, 40, 25, QualifiedState(False, None)).qualified


def test_without_release_below_a_lead_is_released_when_a_condition_fails() -> None:
    m = points_model(qualified={"total": 70})
    result = at(m, 40, 29, QualifiedState(True, NOW))
    assert (result.qualified, result.event) == (False, "released")


def test_requalifying_after_a_release_is_a_new_crossing() -> None:
    m = points_model(qualified={"total": 70})
    result = at(m, 50, 25, QualifiedState(False, None))
    assert (result.qualified_at, result.event) == (NOW, "qualified")


def test_no_qualified_block_never_qualifies_and_releases_a_qualified_lead() -> None:
    m = points_model()
    assert not at(m, 100, 100).qualified
    assert at(m, 100, 100, QualifiedState(True, NOW)).event == "released"
    assert at(m, 100, 100, QualifiedState(False, None)).event is None


def test_reason_lists_the_top_three_positive_contributions() -> None:
    rules = [
        {"name": "Pricing page", "event": "page_viewed", "points": 25},
        {"name": "Request a quote", "event": "form_submitted", "points": 50},
        {"name": "Webinar", "event": "webinar_attended", "points": 15},
        {"name": "Unsubscribed", "event": "unsubscribed", "points": -20},
    ]
    fit = [{"name": "Decision maker", "field": "job_title", "contains": "director", "points": 20}]
    m = model(fit={"rules": fit}, engagement={"rules": rules})
    acts = [act("page_viewed", d) for d in (1, 2, 3)] + [
        act("form_submitted", 1),
        act("webinar_attended", 1),
        act("unsubscribed", 1),
    ]
    result = score_lead({"job_title": "Director"}, acts, m, NOW)
    assert result.reason == "Pricing page \u00d73, Request a quote, Decision maker"
    assert score_lead({}, [act("unsubscribed", 1)], m, NOW).reason == ""


def _line(section: str, kind: str, name: str, count: int, points: float, **more: Any) -> Any:
    return {"section": section, "kind": kind, "name": name, "count": count, "points": points,
            **more}  # fmt: skip


def test_the_reason_is_built_from_the_stored_ledger_alone() -> None:
    """Rule lines with positive points weigh their points, or, when expiry took some matches,
    the live share of them (30 points for 3 matches, 1 live: 10); decay and clamp lines and
    negative rules never show; a line whose matches all expired is left out; ties keep ledger
    order. A ledger stored before lines had `live` reads as all live."""
    ledger = [
        _line("fit", "rule", "Director", 1, 20),
        _line("fit", "rule", "Student", 1, -10),
        _line("fit", "clamp", "Fit max 5", 1, -5),
        _line("engagement", "rule", "Pricing page", 3, 30, live=1),  # weighs 10
        _line("engagement", "rule", "Webinar", 2, 20),  # weighs 20: ties with Director
        _line("engagement", "rule", "Old form", 1, 50, live=0),  # all expired
        _line("engagement", "rule", "Unsubscribed", 1, -20),
        _line("engagement", "decay", "Expired after 30 days", 3, -70),
        _line("total", "clamp", "Total max 100", 1, 40),
    ]
    assert reason(ledger) == "Director, Webinar \u00d72, Pricing page"
    assert reason([LedgerEntry.of(line) for line in ledger]) == reason(ledger)
    older = [_line("engagement", "rule", "Pricing page", 3, 30)]
    assert reason(older) == "Pricing page \u00d73"
    assert reason([]) == ""


def test_an_expired_part_is_on_the_rule_line_and_the_reason_names_what_still_counts() -> None:
    """Four pricing views 1, 2, 40 and 50 days ago at 25 points, expiry after 30 days: the
    line counts 4 (100 points) of which 2 live; expiry takes 50; the reason says x2."""
    m = model(
        engagement={
            "rules": [{"name": "Pricing page", "event": "page_viewed", "points": 25}],
            "decay": {"expire_after_days": 30},
        }
    )
    result = score_lead({}, [act("page_viewed", d) for d in (1, 2, 40, 50)], m, NOW)
    assert result.ledger[0] == LedgerEntry("engagement", "rule", "Pricing page", 4, 100, 2)
    assert result.ledger[0].as_dict()["live"] == 2
    assert (result.engagement, result.reason) == (50, "Pricing page \u00d72")
    assert result.reason == reason(result.ledger) == reason(e.as_dict() for e in result.ledger)


def test_outputs_are_what_destinations_map() -> None:
    m = points_model(qualified={"total": 70})
    result = at(m, 50, 25)
    assert result.outputs() == {
        "total": 75,
        "fit": 50,
        "engagement": 25,
        "tier": "hot",
        "grade": "A2",
        "qualified": True,
        "qualified_at": NOW,
        "reason": "fit 50, Open \u00d725",
    }
    assert (result.model, result.model_hash) == ("m", m.content_hash)
