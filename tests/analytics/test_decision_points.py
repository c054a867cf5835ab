"""Decision points on stored data: each decided lead is scored as of just before its outcome, so
activity the sale caused never leaks into a backtest, a report or the training rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.pipeline import analytics
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store
from scoring.model import parse_models

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


MODEL = parse_models(
    {
        "models": [
            {
                "name": "m",
                "fit": {
                    "rules": [{"name": "VP", "field": "job_title", "matches": "VP", "points": 10}]
                },
                "engagement": {
                    "rules": [
                        {"name": "Pricing", "event": "page_viewed", "points": 25},
                        {"name": "Meeting", "event": "meeting_booked", "points": 30},
                    ]
                },
                "tiers": [{"name": "hot", "min": 60}, {"name": "cold"}],
                "qualified": {"total": 60},
            }
        ]
    }
)[0]


def activity(ref: str, lead: str, kind: str, days: float) -> ActivityRecord:
    return ActivityRecord(source="crm", external_id=ref, lead=lead, type=kind, occurred_at=at(days))


def seed(store: Store) -> None:
    leads = [
        LeadRecord(source="crm", external_id=key, job_title="VP Sales", channel="referral")
        for key in ("won", "lost", "open", "undated", "none")
    ]
    acts = [
        activity("a1", "won", "page_viewed", 1),
        activity("a2", "won", "meeting_booked", 10),  # after the sale: must not count
        activity("a3", "lost", "page_viewed", 2),
        activity("a4", "lost", "page_viewed", 3),
        activity("a5", "open", "meeting_booked", 4),
        activity("a6", "undated", "page_viewed", 6),
    ]
    outcomes = [
        OutcomeRecord(source="crm", external_id="o1", lead="won", status="won", closed_at=at(5)),
        OutcomeRecord(source="crm", external_id="o2", lead="lost", status="lost", closed_at=at(3)),
        OutcomeRecord(source="crm", external_id="o3", lead="open", status="open"),
        OutcomeRecord(source="crm", external_id="o4", lead="undated", status="lost"),
    ]
    store.save_page("crm", "all", [*leads, *acts, *outcomes], None)


def test_decided_leads_are_scored_just_before_their_outcome(store: Store) -> None:
    seed(store)
    found = analytics.decided_rows(store, [MODEL])[0]
    assert sorted(r.outcome or "" for r in found) == ["lost", "lost", "won"]  # not open ones
    rows = {r.outcome: r for r in found if r.at != at(6)}
    assert rows["won"].score == 10 + 25  # the meeting after the sale is left out
    assert rows["won"].at == at(5) - timedelta(microseconds=1)
    # Lost at day 3: the page view at that very moment is not "before" the outcome.
    assert rows["lost"].score == 10 + 25
    assert not rows["won"].qualified


def test_a_lost_outcome_without_date_is_scored_at_the_last_activity(store: Store) -> None:
    seed(store)
    lost = sorted(
        (s for s in analytics.snapshots(store) if s.outcome == "lost"), key=lambda s: s.at
    )
    assert [s.at for s in lost] == [at(3) - timedelta(microseconds=1), at(6)]
    assert [a.type for a in lost[1].activities] == ["page_viewed"]


def test_horizon_moves_every_decision_point_earlier(store: Store) -> None:
    seed(store)
    early = {r.outcome: r for r in analytics.decided_rows(store, [MODEL], 4.5)[0] if r.converted}
    # Won at day 5, looked at on day 0.5: before the day-1 page view.
    assert early["won"].score == 10


def test_training_rows_see_only_the_past(store: Store) -> None:
    seed(store)
    inputs = {i.converted: i for i in analytics.training_inputs(store) if i.converted}
    won = inputs[True]
    assert [a.type for a in won.activities] == ["page_viewed"]
    assert all(a.occurred_at <= won.at for a in won.activities)


def test_every_lead_at_its_decision_point_when_not_only_decided(store: Store) -> None:
    seed(store)
    snaps = list(analytics.snapshots(store, decided_only=False))
    assert len(snaps) == 5
    open_lead = next(s for s in snaps if s.outcome == "open")
    assert open_lead.at == at(4) and open_lead.source == "crm"


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([("lost", at(1)), ("won", at(9))], ("won", at(9))),
        ([("converted", at(7)), ("won", at(3))], ("won", at(3))),
        ([("lost", None), ("lost", at(2))], ("lost", at(2))),
        ([("open", None)], ("open", None)),
    ],
)
def test_the_deciding_outcome(
    outcomes: list[tuple[str, datetime | None]], expected: tuple[str, datetime | None]
) -> None:
    assert analytics.deciding_outcome(outcomes) == expected
