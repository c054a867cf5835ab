"""Engagement rules: matching, counting, windows, per-day caps, limits and `now` (DESIGN §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from scoring.engine import Activity, score_lead
from tests.scoring.helpers import NOW, act, engagement_model, entries, ledger_total, score

PRICING = {"name": "Pricing page", "event": "page_viewed", "url": "*/pricing*", "points": 25}
QUOTE = {
    "name": "Request a quote",
    "event": "form_submitted",
    "where": {"form": "request-quote"},
    "points": 50,
}


def test_points_times_count_per_rule() -> None:
    m = engagement_model(PRICING, {"name": "Webinar", "event": "webinar_attended", "points": 15})
    acts = [
        act("page_viewed", 1, url="https://acme.com/pricing"),
        act("page_viewed", 2, url="https://acme.com/PRICING?plan=pro"),  # glob is case-insensitive
        act("page_viewed", 3, url="https://acme.com/blog"),
        act("page_viewed", 3),  # no url: a url rule does not match
        act("webinar_attended", 4),
        act("webinar_registered", 4),
    ]
    result = score(m, acts)
    assert result.engagement == 2 * 25 + 15
    assert entries(result, "rule") == {"Pricing page": (2, 50), "Webinar": (1, 15)}


def test_where_compares_properties_like_fit_equality() -> None:
    rule = {**QUOTE, "where": {"form": "request-quote", "step": 2}}
    m = engagement_model(rule)
    acts = [
        act("form_submitted", 1, form="Request-Quote", step="2"),
        act("form_submitted", 1, form="request-quote"),  # no step
        act("form_submitted", 1, form="newsletter", step=2),
        act("ad_form_submitted", 1, form="request-quote", step=2),  # another type
    ]
    assert score(m, acts).engagement == 50


def test_where_accepts_a_list_of_values() -> None:
    m = engagement_model(
        {"name": "Forms", "event": "form_submitted", "where": {"form": ["a", "b"]}, "points": 5}
    )
    acts = [
        act("form_submitted", 1, form="a"),
        act("form_submitted", 1, form="B"),
        act("form_submitted", 1, form="c"),
    ]
    assert score(m, acts).engagement == 10


def test_an_activity_counts_for_every_rule_it_matches() -> None:
    docs = {"name": "Docs", "event": "page_viewed", "url": "*/docs/*", "points": 2}
    api = {"name": "API docs", "event": "page_viewed", "url": "*/docs/api*", "points": 5}
    result = score(engagement_model(docs, api), [act("page_viewed", 1, url="/docs/api/auth")])
    assert result.engagement == 7


def test_window_days_counts_only_recent_activities_inclusive() -> None:
    m = engagement_model(
        {"name": "Email open", "event": "email_opened", "points": 1, "window_days": 30}
    )
    acts = [act("email_opened", d) for d in (0, 29.9, 30, 30.01, 45)]
    assert score(m, acts).engagement == 3


def test_limit_keeps_the_most_recent_activities() -> None:
    rule = {**PRICING, "limit": 3}
    m = engagement_model(rule, decay={"half_life_days": 10})
    acts = [act("page_viewed", d, url="/pricing") for d in (40, 0, 10, 30, 20)]
    result = score(m, acts)
    # counted: ages 0, 10, 20 → 25 x (1 + 0.5 + 0.25) = 43.75 after a half-life of 10 days
    assert entries(result, "rule") == {"Pricing page": (3, 75)}
    assert result.engagement == 43.75


def test_limit_per_day_caps_each_utc_day() -> None:
    m = engagement_model(
        {"name": "Email click", "event": "email_clicked", "points": 3, "limit_per_day": 2}
    )
    day = datetime(2024, 5, 30, tzinfo=UTC)
    stamps = [
        day + timedelta(hours=1),
        day + timedelta(hours=9),
        day + timedelta(hours=23, minutes=59),  # third on May 30: capped
        day + timedelta(days=1, minutes=1),  # May 31, 00:01 UTC: a new day
        day - timedelta(minutes=1),  # May 29, 23:59 UTC
    ]
    result = score(m, [Activity("email_clicked", t) for t in stamps])
    assert entries(result, "rule") == {"Email click": (4, 12)}


def test_limit_per_day_uses_utc_days_whatever_the_offset() -> None:
    m = engagement_model(
        {"name": "Click", "event": "email_clicked", "points": 1, "limit_per_day": 1}
    )
    paris = timezone(timedelta(hours=2))
    same_local_day = [
        datetime(2024, 5, 31, 1, 30, tzinfo=paris),
        datetime(2024, 5, 31, 23, 30, tzinfo=paris),
    ]
    same_utc_day = [
        datetime(2024, 5, 30, 3, 0, tzinfo=paris),
        datetime(2024, 5, 31, 0, 30, tzinfo=paris),
    ]
    assert score(m, [Activity("email_clicked", t) for t in same_local_day]).engagement == 2
    assert score(m, [Activity("email_clicked", t) for t in same_utc_day]).engagement == 1


def test_limit_per_day_then_limit() -> None:
    rule = {"name": "Click", "event": "email_clicked", "points": 1, "limit_per_day": 1, "limit": 2}
    acts = [act("email_clicked", d) for d in (0, 0, 1, 1, 2, 3)]
    assert entries(score(engagement_model(rule), acts), "rule") == {"Click": (2, 2)}


def test_activities_after_now_are_ignored() -> None:
    m = engagement_model(PRICING, QUOTE)
    past = [act("page_viewed", 2, url="/pricing")]
    future = [
        act("form_submitted", -1, form="request-quote"),
        act("page_viewed", -0.01, url="/pricing"),
    ]
    assert score(m, past + future) == score(m, past)
    assert score(m, past + future).engagement == 25
    assert score(m, [act("page_viewed", 0, url="/pricing")]).engagement == 25  # at now: counts


def test_naive_timestamps_are_read_as_utc() -> None:
    m = engagement_model(PRICING)
    naive = Activity(
        "page_viewed", (NOW - timedelta(hours=1)).replace(tzinfo=None), {"url": "/pricing"}
    )
    assert score_lead({}, [naive], m, NOW.replace(tzinfo=None)).engagement == 25


def test_engagement_is_clamped() -> None:
    m = engagement_model(
        QUOTE, PRICING, {"name": "Unsub", "event": "unsubscribed", "points": -50}, max=40, min=-30
    )
    high = score(
        m, [act("form_submitted", 1, form="request-quote"), act("page_viewed", 1, url="/pricing")]
    )
    assert high.engagement == 40
    assert entries(high, "clamp") == {"Engagement max 40": (1, -35)}
    low = score(m, [act("unsubscribed", 1)])
    assert low.engagement == -30
    assert entries(low, "clamp") == {"Engagement min -30": (1, 20)}
    assert ledger_total(high) == high.total
    assert ledger_total(low) == low.total


def test_custom_activity_types_and_unknown_properties() -> None:
    m = engagement_model({"name": "Trial", "event": "custom:trial_started", "points": 40})
    acts = [act("custom:trial_started", 1, plan=["a", "b"]), act("custom:other", 1)]
    assert score(m, acts).engagement == 40


def test_unhashable_property_values_still_match() -> None:
    rule = {"name": "Tagged", "event": "page_viewed", "where": {"section": "blog"}, "points": 1}
    acts = [act("page_viewed", 1, section=["blog", "news"]), act("page_viewed", 1, section="blog")]
    assert score(engagement_model(rule), acts).engagement == 2
