"""The report the scorer keeps up to date equals the report computed from scratch over the store.

The oracle is `analytics.report_from_scratch`: every stored score joined with its lead, the
first identity of each lead, its outcomes, and each decided lead rescored at its decision point
— nothing of the kept figures. The store goes through pulls that add leads, move channels,
add outcomes, add sources and merge two people; incremental and full rescores as time passes;
a changed model file, a model removed and put back.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from core.pipeline import analytics
from core.pipeline import score as scorer
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store import summary
from core.store.store import Store
from core.web.api import rule_stats, rule_stats_from_scratch, tier_stats, tier_stats_from_scratch
from scoring.model import ScoringModel, parse_models

START = datetime(2026, 9, 3, 9, tzinfo=UTC)
CHANNELS = ("paid_search", "referral", "organic_search", None)


def models(
    hot: int = 70, quote: int = 50, with_us: bool = True, pricing: int = 15, gone: int = 0
) -> list[ScoringModel]:
    """The hub's models; `gone` (when not 0): the points of an unsubscribe."""
    everyone = {
        "name": "default",
        "fit": {
            "rules": [
                {"name": "Director", "field": "job_title", "matches": "(?i)director", "points": 20},
                {"name": "Big", "field": "company_size", "gte": 500, "points": 10},
            ]
        },
        "engagement": {
            "rules": [
                {
                    "name": "Quote",
                    "event": "form_submitted",
                    "where": {"form": "request-quote"},
                    "points": quote,
                },
                {
                    "name": "Pricing",
                    "event": "page_viewed",
                    "url": "*/pricing*",
                    "points": pricing,
                    "limit": 3,
                },
                *([{"name": "Gone", "event": "unsubscribed", "points": gone}] if gone else []),
            ],
            "decay": {"expire_after_days": 40},
        },
        "tiers": [{"name": "hot", "min": hot}, {"name": "warm", "min": 30}, {"name": "cold"}],
        "qualified": {"total": hot, "release_below": hot - 10},
    }
    us = {
        "name": "us",
        "segment": {"country": "US"},
        "engagement": {
            "rules": [{"name": "Any page", "event": "page_viewed", "points": 12, "limit": 8}]
        },
        "tiers": [{"name": "A", "min": 50}, {"name": "B"}],
        "qualified": {"total": 50},
    }
    return parse_models({"models": [everyone, us] if with_us else [everyone]})


def lead(i: int, source: str = "crm", **fields: Any) -> LeadRecord:
    base: dict[str, Any] = {
        "email": f"p{i}@acme{i % 5}.com",
        "job_title": "Director of Sales" if i % 3 == 0 else "Analyst",
        "company_size": 100 * (i % 9),
        "country": "US" if i % 2 else "GB",
        "channel": CHANNELS[i % len(CHANNELS)],
    }
    return LeadRecord(source=source, external_id=f"{source}-{i}", **(base | fields))


def views(i: int, at: datetime, n: int, url: str = "https://x.io/pricing") -> list[ActivityRecord]:
    return [
        ActivityRecord(
            source="crm",
            external_id=f"v-{i}-{at:%m%d%H}-{k}",
            lead=f"crm-{i}",
            type="page_viewed",
            occurred_at=at - timedelta(hours=k),
            properties={"url": url},
        )
        for k in range(n)
    ]


def quote(i: int, at: datetime) -> ActivityRecord:
    return ActivityRecord(
        source="crm",
        external_id=f"q-{i}-{at:%m%d}",
        lead=f"crm-{i}",
        type="form_submitted",
        occurred_at=at,
        properties={"form": "request-quote"},
    )


def outcome(i: int, status: str, closed: datetime | None) -> OutcomeRecord:
    return OutcomeRecord(
        source="crm", external_id=f"o-{i}-{status}", lead=f"crm-{i}", status=status,
        closed_at=closed,
    )  # fmt: skip


def same(kept: Any, scratch: Any) -> None:
    """Equal figure by figure; averages and shares to floating-point precision."""
    a, b = asdict(kept), asdict(scratch)
    assert a.keys() == b.keys()
    for key in a:
        assert _approx(a[key]) == _approx(b[key]), key


def _approx(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _approx(asdict(value))
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_approx(v) for v in value]
    return value


def check(store: Store, hub: list[ScoringModel]) -> None:
    with store.engine.connect() as conn:
        assert summary.built(conn)
    for model in hub:
        kept = analytics.report(store, model)
        scratch = analytics.report_from_scratch(store, model)
        same(kept, scratch)
        rules = sorted(rule_stats(store, model.name), key=str)
        assert rules == sorted(rule_stats_from_scratch(store, model.name), key=str)
        tiers = sorted(tier_stats(store, model.name), key=str)
        assert _approx(tiers) == _approx(
            sorted(tier_stats_from_scratch(store, model.name), key=str)
        )


def test_kept_report_equals_the_report_from_scratch(store: Store) -> None:
    hub = models()
    # a first pull: 40 leads, activity for most, a few decided outcomes
    store.save_page("crm", "leads", [lead(i) for i in range(40)], None)
    acts: list[Any] = []
    for i in range(40):
        acts += views(i, START - timedelta(days=i % 7), i % 5)
        if i % 4 == 0:
            acts.append(quote(i, START - timedelta(days=2)))
    store.save_page("crm", "acts", acts, None)
    store.save_page(
        "crm",
        "outcomes",
        [outcome(i, "won", START - timedelta(days=1)) for i in range(0, 40, 8)]
        + [outcome(i, "lost", START - timedelta(days=3)) for i in range(3, 40, 7)]
        + [outcome(5, "open", None), outcome(6, "converted", None)],
        None,
    )
    scorer.score(store, hub, now=START)
    check(store, hub)
    first = analytics.report(store, hub[0])
    assert first.leads == 40 and first.qualified_per_month == [("2026-09", 10)]
    assert sum(b.decided for b in first.conversion) == 11

    # a month later: channels and countries move, new activity and outcomes, a second source
    # knows two of the leads and brings a new one, and lead 11 takes lead 12's email (a merge)
    later = START + timedelta(days=31)
    moved = [lead(i, channel="events") for i in range(0, 40, 3)]
    moved += [lead(i, country="US") for i in range(0, 10, 2)]
    moved.append(lead(11, email="p12@acme2.com"))
    store.save_page("crm", "leads", moved, None)
    store.save_page(
        "ads",
        "leads",
        [lead(1, "ads"), lead(2, "ads"), lead(99, "ads", channel="paid_social")],
        None,
    )
    acts = [quote(i, later - timedelta(days=1)) for i in range(1, 40, 5)]
    acts += views(13, later, 4) + views(12, later, 3)
    store.save_page("crm", "acts", acts, None)
    store.save_page(
        "crm",
        "outcomes",
        [outcome(1, "won", later), outcome(13, "lost", later), outcome(5, "won", None)],
        None,
    )
    run = scorer.score(store, hub, now=later)
    assert 0 < run.leads < 41  # incremental: only the leads the pulls touched
    check(store, hub)

    # time passes: a full rescore lets engagement expire; leads are released
    scorer.score(store, hub, now=later + timedelta(days=45), full=True)
    check(store, hub)

    # the model file changes (new thresholds and points): every lead is rescored
    changed = models(hot=60, quote=70)
    scorer.score(store, changed, now=later + timedelta(days=46))
    check(store, changed)

    # a model is removed, then put back
    alone = models(hot=60, quote=70, with_us=False)
    scorer.score(store, alone, now=later + timedelta(days=47))
    check(store, alone)
    with store.engine.connect() as conn:
        assert summary.figures(conn, "us") == {} or not any(
            f != "month" for f in summary.figures(conn, "us")
        )
    scorer.score(store, changed, now=later + timedelta(days=48))
    check(store, changed)


def test_one_lead_rescored_pass_after_pass_keeps_the_report_equal_to_the_one_from_scratch(
    store: Store,
) -> None:
    """The pass after a webhook (one lead, one model) keeps what the lead now counts as, so
    the next pass takes away what it really added: the figures stay those from scratch."""
    hub = models(with_us=False)
    store.save_page("crm", "leads", [lead(i) for i in range(3)], None)
    scorer.score(store, hub, now=START)
    for day in range(1, 4):
        at = START + timedelta(days=day)
        store.save_page("crm", "acts", views(1, at, 1), None)
        run = scorer.score(store, hub, now=at)
        assert (run.leads, run.changed) == (1, 1)
        check(store, hub)
    # three pricing views at 15 points: lead 1 went cold, warm (30), warm (45)
    assert [t.tier for t in analytics.report(store, hub[0]).tiers if t.leads] == ["warm", "cold"]


def test_a_model_change_over_many_leads_keeps_the_report_equal_to_the_one_from_scratch(
    store: Store,
) -> None:
    """A changed model moves every lead's report row: more than a bulk write's threshold in each
    chunk, and more leads than one chunk. The rows are rewritten in bulk and the moves of all
    chunks counted together; the figures stay those from scratch, and so do they after the
    model changes back (which takes away what the rewritten rows say they added)."""
    hub = models()
    store.save_page("crm", "leads", [lead(i) for i in range(1200)], None)
    acts: list[Any] = []
    for i in range(1200):
        acts += views(i, START - timedelta(days=i % 11), i % 6)
        if i % 3 == 0:
            acts.append(quote(i, START - timedelta(days=i % 50)))
    store.save_page("crm", "acts", acts, None)
    store.save_page("crm", "outcomes", [outcome(i, "won", START) for i in range(0, 1200, 37)], None)
    scorer.score(store, hub, now=START)
    check(store, hub)
    changed = models(hot=60, quote=70, pricing=16)  # every lead with a view or a quote moves
    run = scorer.score(store, changed, now=START + timedelta(days=1))
    assert run.full_models == ["default"] and run.changed > 1000
    check(store, changed)
    scorer.score(store, hub, now=START + timedelta(days=2))
    check(store, hub)


def test_rebuild_from_scratch_matches_the_kept_figures(store: Store) -> None:
    hub = models()
    store.save_page("crm", "leads", [lead(i) for i in range(12)], None)
    store.save_page("crm", "acts", [quote(i, START) for i in range(0, 12, 2)], None)
    store.save_page("crm", "outcomes", [outcome(2, "won", START + timedelta(days=1))], None)
    scorer.score(store, hub, now=START)
    with store.engine.connect() as conn:
        kept = {m.name: summary.figures(conn, m.name) for m in hub}
    with store.begin() as conn:
        summary.rebuild(conn, hub)
    with store.engine.connect() as conn:
        rebuilt = {m.name: summary.figures(conn, m.name) for m in hub}
    nonzero = {
        model: {f: {k: v for k, v in keys.items() if any(v.values())} for f, keys in figs.items()}
        for model, figs in kept.items()
    }
    assert nonzero == rebuilt


def test_a_store_without_the_summary_builds_it_on_the_next_score_run(store: Store) -> None:
    hub = models()
    store.save_page("crm", "leads", [lead(i) for i in range(6)], None)
    scorer.score(store, hub, now=START)
    with store.begin() as conn:  # as after the upgrade that adds the tables
        conn.execute(sa.text("DELETE FROM report_figure"))
        conn.execute(sa.text("DELETE FROM report_lead"))
        conn.execute(sa.text("DELETE FROM meta WHERE key = 'report_summary'"))
    scratch = analytics.report_from_scratch(store, hub[0])
    same(analytics.report(store, hub[0]), scratch)  # computed from scratch meanwhile
    total = sa.text("SELECT sum(total) FROM score")
    with store.engine.connect() as conn:
        before = conn.execute(total).scalar_one()
    store.save_page("crm", "acts", [quote(1, START)], None)
    run = scorer.score(store, hub, now=START + timedelta(hours=1))
    assert (run.leads, run.changed) == (1, 1)
    with store.engine.connect() as conn:  # the lead's new score is stored with the summary
        assert conn.execute(total).scalar_one() > before
    check(store, hub)


def test_a_full_rescore_recounts_leads_a_pull_moved_although_their_scores_stay(
    store: Store,
) -> None:
    hub = models()
    store.save_page("crm", "leads", [lead(i) for i in range(16)], None)
    acts: list[Any] = []
    for i in range(16):
        acts += views(i, START - timedelta(days=1), 1 + i % 3)
    store.save_page("crm", "acts", acts, None)
    store.save_page("crm", "outcomes", [outcome(4, "won", START - timedelta(hours=1))], None)
    scorer.score(store, hub, now=START)
    check(store, hub)
    with store.engine.connect() as conn:
        query = sa.text(
            "SELECT l.email, s.model, s.total FROM score s JOIN lead l ON l.id = s.lead_id"
        )
        before = {(i, m): total for i, m, total in conn.execute(query)}

    # a pull moves channels (not a fit field of the models), decides outcomes, and a second
    # system comes to know a lead; lead 3 also requested a quote before it was won. Then a
    # full rescore (not incremental)
    store.save_page("crm", "leads", [lead(1, channel="events"), lead(2, channel="events")], None)
    store.save_page(
        "crm",
        "outcomes",
        [outcome(3, "won", START - timedelta(hours=2)), outcome(6, "lost", START)],
        None,
    )
    store.save_page("ads", "leads", [lead(5, "ads")], None)
    store.save_page("crm", "acts", [quote(3, START - timedelta(hours=3))], None)
    run = scorer.score(store, hub, now=START, full=True)
    assert run.full_models and run.changed == 1  # lead 3's quote; every other score as it was
    with store.engine.connect() as conn:
        after = {(i, m): total for i, m, total in conn.execute(query)}
    assert {key for key in after if after[key] != before[key]} == {("p3@acme3.com", "default")}
    check(store, hub)
    kept = analytics.report(store, hub[0])
    assert kept is not None
    # hand count: leads 1 and 2 moved to "event"; leads 3 and 4 won, lead 6 lost
    assert {g.name: g.leads for g in kept.channels}["event"] == 2
    assert sum(b.decided for b in kept.conversion) == 3
    assert sum(b.converted for b in kept.conversion) == 2
    assert {g.name: g.leads for g in kept.sources} == {"crm": 16}


def unsubscribe(i: int, at: datetime) -> ActivityRecord:
    return ActivityRecord(
        source="crm", external_id=f"u-{i}-{at:%m%d}", lead=f"crm-{i}", type="unsubscribed",
        occurred_at=at, properties={},
    )  # fmt: skip


def test_a_lead_qualified_twice_in_a_month_counts_once_in_that_months_figure(
    store: Store,
) -> None:
    """Qualified, released and qualified again within September: September's figure counts the
    lead once, as the report from scratch does; qualified again in October, once there too."""
    hub = models(with_us=False, gone=-40)
    store.save_page("crm", "leads", [lead(0), lead(3)], None)  # two directors: 20 points
    steps = [  # (day, what lead 0 does, its total after it)
        (datetime(2026, 9, 3, 9, tzinfo=UTC), quote, 70),  # qualified
        (datetime(2026, 9, 10, 9, tzinfo=UTC), unsubscribe, 30),  # released
        (datetime(2026, 9, 20, 9, tzinfo=UTC), quote, 80),  # qualified again, same month
        (datetime(2026, 10, 5, 9, tzinfo=UTC), unsubscribe, 40),  # released
        (datetime(2026, 10, 10, 9, tzinfo=UTC), quote, 90),  # qualified in October
    ]
    store.save_page("crm", "acts", [quote(3, steps[0][0])], None)  # lead 3: once, in September
    for at, act, total in steps:
        store.save_page("crm", "acts", [act(0, at)], None)
        scorer.score(store, hub, now=at)
        with store.engine.connect() as conn:
            query = sa.text("SELECT total FROM score JOIN lead ON lead.id = score.lead_id "
                            "WHERE lead.email = 'p0@acme0.com'")  # fmt: skip
            assert conn.execute(query).scalar_one() == total
        check(store, hub)
    report = analytics.report(store, hub[0])
    assert report.qualified_per_month == [("2026-09", 2), ("2026-10", 1)]
