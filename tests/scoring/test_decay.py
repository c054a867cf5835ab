"""Decay: inactivity steps, half-life and expiry, and their floor at zero (DESIGN §4)."""

from __future__ import annotations

import pytest

from tests.scoring.helpers import act, engagement_model, entries, ledger_total, score

PRICING = {"name": "Pricing page", "event": "page_viewed", "url": "*/pricing*", "points": 25}
WEBINAR = {"name": "Webinar", "event": "webinar_attended", "points": 15}
QUOTE = {"name": "Request a quote", "event": "form_submitted", "points": 50}
CAREERS = {"name": "Careers page", "event": "page_viewed", "url": "*/careers*", "points": -10}
UNSUBSCRIBED = {"name": "Unsubscribed", "event": "unsubscribed", "points": -20}
STEPS = {
    "inactivity": [{"days": 30, "minus": 15}, {"days": 60, "minus": 30}, {"days": 90, "minus": 50}]
}


@pytest.mark.parametrize(
    ("days_inactive", "minus", "step"),
    [
        (0, 0, None),
        (29.9, 0, None),
        (30, 15, "Inactive 30+ days"),  # reached on its day
        (59, 15, "Inactive 30+ days"),
        (60, 30, "Inactive 60+ days"),
        (89, 30, "Inactive 60+ days"),
        (90, 50, "Inactive 90+ days"),  # the deepest step, not the sum
        (400, 50, "Inactive 90+ days"),
    ],
)
def test_inactivity_subtracts_the_deepest_step_reached(
    days_inactive: float, minus: float, step: str | None
) -> None:
    m = engagement_model(QUOTE, PRICING, decay=STEPS)
    acts = [
        act("form_submitted", days_inactive),
        act("page_viewed", days_inactive + 5, url="/pricing"),
    ]
    result = score(m, acts)
    assert result.engagement == 75 - minus
    assert entries(result, "decay") == ({step: (1, -minus)} if step else {})
    assert ledger_total(result) == result.total


def test_inactivity_counts_from_the_last_activity_of_any_type() -> None:
    m = engagement_model(QUOTE, decay=STEPS)
    acts = [
        act("form_submitted", 100),
        act("email_opened", 10),
    ]  # no rule for opens, still activity
    assert score(m, acts).engagement == 50


def test_our_own_sends_are_not_lead_activity() -> None:
    m = engagement_model(QUOTE, decay=STEPS)
    acts = [act("form_submitted", 100), act("email_sent", 1), act("email_delivered", 1)]
    assert score(m, acts).engagement == 0


def test_inactivity_ignores_activities_after_now() -> None:
    m = engagement_model(QUOTE, decay=STEPS)
    assert score(m, [act("form_submitted", 40), act("email_opened", -5)]).engagement == 35


def test_decay_never_takes_engagement_below_zero_on_its_own() -> None:
    m = engagement_model(WEBINAR, CAREERS, UNSUBSCRIBED, decay=STEPS)
    # 15 - 10 = 5 before decay; 90+ days inactive would subtract 50, but stops at zero
    result = score(m, [act("webinar_attended", 100), act("page_viewed", 95, url="/careers")])
    assert result.engagement == 0
    assert entries(result, "decay") == {"Inactive 90+ days": (1, -5)}
    # already negative through its own signals: decay leaves it alone
    negative = score(m, [act("unsubscribed", 120)])
    assert negative.engagement == -20
    assert entries(negative, "decay") == {}


def test_a_lead_without_activity_gets_no_decay_entry() -> None:
    result = score(engagement_model(QUOTE, decay=STEPS))
    assert result.engagement == 0
    assert result.ledger == ()


def test_half_life_weighs_each_activity_by_age() -> None:
    m = engagement_model(PRICING, WEBINAR, decay={"half_life_days": 45})
    acts = [
        act("page_viewed", 45, url="/pricing"),
        act("page_viewed", 0, url="/pricing"),
        act("webinar_attended", 90),
    ]
    result = score(m, acts)
    # 25 x (0.5 + 1) + 15 x 0.25 = 37.5 + 3.75 = 41.25, from 65 undecayed
    assert result.engagement == 41.25
    assert entries(result, "rule") == {"Pricing page": (2, 50), "Webinar": (1, 15)}
    assert entries(result, "decay") == {"Half-life 45 days": (3, -23.75)}


def test_half_life_rounds_to_cents_and_the_ledger_still_adds_up() -> None:
    m = engagement_model(PRICING, decay={"half_life_days": 7})
    result = score(m, [act("page_viewed", 3, url="/pricing")])
    assert result.engagement == round(25 * 0.5 ** (3 / 7), 2) == 18.57
    assert ledger_total(result) == result.total


def test_half_life_does_not_fade_negative_signals() -> None:
    m = engagement_model(PRICING, UNSUBSCRIBED, decay={"half_life_days": 10})
    result = score(m, [act("page_viewed", 10, url="/pricing"), act("unsubscribed", 10)])
    # 25 x 0.5 - 20 would be -7.5; but decay takes at most the 5 that was above zero
    assert result.engagement == 0
    assert entries(result, "decay") == {"Half-life 10 days": (1, -5)}


def test_half_life_and_inactivity_together_stop_at_zero() -> None:
    m = engagement_model(PRICING, decay={"half_life_days": 30, **STEPS})
    result = score(m, [act("page_viewed", 60, url="/pricing")])
    # 25 → 6.25 by half-life, then the 60-day step (30) takes the remaining 6.25 only
    assert result.engagement == 0
    assert entries(result, "decay") == {
        "Half-life 30 days": (1, -18.75),
        "Inactive 60+ days": (1, -6.25),
    }


def test_expire_after_days_drops_old_positive_activity_only() -> None:
    m = engagement_model(PRICING, CAREERS, decay={"expire_after_days": 180})
    acts = [
        act("page_viewed", 10, url="/pricing"),
        act("page_viewed", 180, url="/pricing"),  # age = 180: kept
        act("page_viewed", 181, url="/pricing"),  # expired
        act("page_viewed", 400, url="/careers"),  # a negative signal: kept (use window_days)
    ]
    result = score(m, acts)
    assert entries(result, "rule") == {"Pricing page": (3, 75), "Careers page": (1, -10)}
    assert entries(result, "decay") == {"Expired after 180 days": (1, -25)}
    assert result.engagement == 40
    assert result.reason == "Pricing page \u00d72"  # what still counts


def test_expiry_also_stops_at_zero() -> None:
    m = engagement_model(QUOTE, UNSUBSCRIBED, decay={"expire_after_days": 180})
    result = score(m, [act("form_submitted", 200), act("unsubscribed", 200)])
    # 50 - 20 = 30 before decay; expiring the quote takes those 30 and no more
    assert result.engagement == 0
    assert entries(result, "decay") == {"Expired after 180 days": (1, -30)}
    assert result.reason == ""


def test_expire_after_days_with_a_shorter_rule_window() -> None:
    rule = {**PRICING, "window_days": 7}
    m = engagement_model(rule, decay={"expire_after_days": 180})
    acts = [act("page_viewed", d, url="/pricing") for d in (1, 8, 200)]
    assert score(m, acts).engagement == 25
