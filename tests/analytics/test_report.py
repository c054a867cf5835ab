"""Report and backtest arithmetic against numbers worked out by hand on a twelve-lead fixture.

    lead  score  outcome    qualified  channel       decided at
      1     95   won        yes        referral      2026-01-10
      2     85   lost       yes        referral      2026-01-20
      3     75   converted  yes        referral      2026-02-05
      4     65   lost                  referral      2026-02-15
      5     55   won                   referral      2026-03-01
      6     45   lost                  facebook_ads  2026-03-10
      7     35   lost                  facebook_ads  2026-03-20
      8     25   lost                  facebook_ads  2026-03-25
      9     15   lost                  facebook_ads  2026-03-28
     10      5   won                   facebook_ads  2026-03-30
     11     50   open                  -             -
     12     50   -                     referral      -

Four of the ten decided leads converted (base rate 40 %); the decision points span 3 months.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sklearn.metrics import roc_auc_score

from scoring.report import (
    LeadRow,
    auc,
    backtest,
    brackets,
    build_report,
    deciles,
    months_spanned,
    threshold_for_precision,
    threshold_for_volume,
)


def day(month: int, d: int) -> datetime:
    return datetime(2026, month, d, 12, tzinfo=UTC)


def tier(score: float) -> str:
    return "hot" if score >= 70 else "warm" if score >= 40 else "cold"


SPEC = [
    (1, 95, "won", True, "referral", day(1, 10)),
    (2, 85, "lost", True, "referral", day(1, 20)),
    (3, 75, "converted", True, "referral", day(2, 5)),
    (4, 65, "lost", False, "referral", day(2, 15)),
    (5, 55, "won", False, "referral", day(3, 1)),
    (6, 45, "lost", False, "facebook_ads", day(3, 10)),
    (7, 35, "lost", False, "facebook_ads", day(3, 20)),
    (8, 25, "lost", False, "facebook_ads", day(3, 25)),
    (9, 15, "lost", False, "facebook_ads", day(3, 28)),
    (10, 5, "won", False, "facebook_ads", day(3, 30)),
    (11, 50, "open", False, None, None),
    (12, 50, None, False, "referral", None),
]
ROWS = [
    LeadRow(i, s, tier(s), q, channel, "crm" if i % 2 else "facebook", outcome, at)
    for i, s, outcome, q, channel, at in SPEC
]
DECIDED = [r for r in ROWS if r.decided]


def test_auc_is_the_share_of_converted_lost_pairs_ranked_right() -> None:
    # Converted 95, 75, 55, 5 beat 6, 5, 4 and 0 of the six lost leads: 15 of 24 pairs.
    assert auc([r.score for r in DECIDED], [r.converted for r in DECIDED]) == 0.625


def test_auc_counts_ties_as_half() -> None:
    scores, labels = [1.0, 1.0, 2.0, 0.0], [True, False, True, False]
    assert auc(scores, labels) == 3.5 / 4
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert auc([3.0, 3.0], [True, False]) == 0.5


def test_auc_needs_both_classes() -> None:
    assert auc([1.0, 2.0], [True, True]) is None
    assert auc([], []) is None


def test_deciles_lift_and_captured_conversions() -> None:
    found = deciles(ROWS)  # open and unknown leads are left out
    assert [d.leads for d in found] == [1] * 10
    top, second, third = found[:3]
    assert (top.rate, top.lift, top.captured) == (1.0, 2.5, 0.25)
    assert (second.rate, second.lift, second.captured) == (0.0, 0.0, 0.25)
    assert (third.rate, third.lift, third.captured) == (1.0, 2.5, 0.5)
    assert found[-1].captured == 1.0 and found[-1].high == 5


def test_decile_sizes_differ_by_at_most_one() -> None:
    rows = [LeadRow(i, float(i), outcome="won" if i % 3 else "lost") for i in range(23)]
    assert [d.leads for d in deciles(rows)] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert deciles(rows)[0].high == 22 and deciles(rows)[0].low == 20


def test_brackets_count_every_lead_once() -> None:
    found = brackets(ROWS)
    assert [(b.low, b.high) for b in found][:2] == [(0, 10), (10, 20)]
    fifty = found[5]  # 55 (won), 50 (open), 50 (no outcome)
    assert (fifty.leads, fifty.decided, fifty.converted, fifty.rate) == (3, 1, 1, 1.0)
    assert found[9].leads == 1 and found[9].rate == 1.0
    assert sum(b.leads for b in found) == 12
    outside = brackets([LeadRow(1, -5, outcome="lost"), LeadRow(2, 130, outcome="won")])
    assert (outside[0].leads, outside[-1].leads, outside[-1].converted) == (1, 1, 1)


def test_qualified_volume_precision_and_recall() -> None:
    result = backtest("m", ROWS)
    assert (result.leads, result.converted, result.months) == (10, 4, 3)
    assert result.base_rate == 0.4 and result.auc == 0.625
    q = result.qualified  # leads 1, 2, 3: two of them converted, of four conversions
    assert (q.threshold, q.leads, q.per_month) == (None, 3, 1.0)
    assert (q.precision, q.recall) == (pytest.approx(2 / 3), 0.5)


def test_threshold_for_a_target_precision_is_the_lowest_that_reaches_it() -> None:
    # At or above 55: five leads, three converted (60 %); any lower falls below 60 %.
    found = threshold_for_precision(ROWS, 0.6, months=3)
    assert found is not None
    assert (found.threshold, found.leads, found.precision, found.recall) == (55, 5, 0.6, 0.75)
    assert found.per_month == pytest.approx(5 / 3)
    top = threshold_for_precision(ROWS, 0.9)
    assert top is not None and (top.threshold, top.leads) == (95, 1)
    assert threshold_for_precision(ROWS, 1.01) is None


def test_threshold_for_a_monthly_volume() -> None:
    # One lead a month over three months: the top three (95, 85, 75).
    found = threshold_for_volume(ROWS, 1.0, months=3)
    assert found is not None
    assert (found.threshold, found.leads, found.per_month) == (75, 3, 1.0)
    assert (found.precision, found.recall) == (pytest.approx(2 / 3), 0.5)
    assert threshold_for_volume(ROWS, 0.1, months=3) is None
    suggested = backtest("m", ROWS, target_precision=0.6, monthly_volume=1.0)
    assert suggested.for_precision == threshold_for_precision(ROWS, 0.6, months=3)
    assert suggested.for_volume == found


def test_months_spanned_counts_calendar_months_inclusive() -> None:
    assert months_spanned([day(1, 31), day(3, 1)]) == 3
    assert months_spanned([datetime(2025, 12, 31, tzinfo=UTC), day(1, 1)]) == 2
    assert months_spanned([None]) == 1


def test_report_tiers_channels_sources_and_qualified() -> None:
    moments = [day(1, 10), day(1, 20), day(2, 5)]
    report = build_report(ROWS, DECIDED, moments, ["hot", "warm", "cold"])
    assert report.leads == 12
    assert [(t.tier, t.leads, t.share, t.average) for t in report.tiers] == [
        ("hot", 3, 0.25, 85.0),
        ("warm", 5, 5 / 12, 53.0),
        ("cold", 4, 4 / 12, 20.0),
    ]
    referral, facebook, none = report.channels
    assert (referral.name, referral.leads, referral.decided, referral.converted) == (
        "referral",
        6,
        5,
        3,
    )
    assert referral.average == pytest.approx(425 / 6) and referral.rate == 0.6
    assert (facebook.name, facebook.average, facebook.rate) == ("facebook_ads", 25.0, 0.2)
    assert (none.name, none.leads, none.rate) == ("(none)", 1, None)
    crm = next(g for g in report.sources if g.name == "crm")  # odd lead ids
    assert (crm.leads, crm.decided, crm.converted) == (6, 5, 3)
    assert report.qualified_before_close.share == 0.5  # leads 1 and 3 of 1, 3, 5, 10
    assert report.qualified_per_month == [("2026-01", 2), ("2026-02", 1)]
    assert sum(b.leads for b in report.conversion) == 10
