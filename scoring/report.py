"""Reports and backtests: do the scores pick the leads that buy? Pure: rows in, dataclasses out.

`core.pipeline.analytics` builds the rows from the store; everything here is arithmetic on them.

- A lead is *decided* when its outcome is won, converted or lost, and *converted* when it is won
  or converted. Conversion rates are converted / decided: open leads and leads without an
  outcome count as leads, never as failures.
- Brackets are `width` points wide from 0; a score below 0 falls in the first bracket and a score
  of 100 or more in the last, so every lead is counted once.
- AUC is the rank statistic (Mann-Whitney): the chance that a converted lead outscores a lost one,
  ties counting one half. None when either class is empty.
- Deciles split the decided leads, best score first, into ten groups whose sizes differ by at most
  one (the first groups take the remainder); ties are broken by lead id so results are stable.
- A month is a calendar month (UTC) between the first and the last decision point, both included.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

CONVERTED = frozenset({"won", "converted"})
DECIDED = CONVERTED | {"lost"}
NONE_LABEL = "(none)"


@dataclass(frozen=True, slots=True)
class LeadRow:
    """One lead under one model: its score and what became of it.

    `at` is the moment the score was computed for (the decision point in a backtest).
    """

    lead_id: int
    score: float
    tier: str | None = None
    qualified: bool = False
    channel: str | None = None
    source: str | None = None
    outcome: str | None = None
    at: datetime | None = None

    @property
    def decided(self) -> bool:
        return self.outcome in DECIDED

    @property
    def converted(self) -> bool:
        return self.outcome in CONVERTED


JUST_BEFORE = timedelta(microseconds=1)


def deciding_outcome(
    outcomes: Sequence[tuple[str, datetime | None]],
) -> tuple[str, datetime | None]:
    """The (status, closed_at) that decides a lead: its earliest won or converted outcome, else
    its earliest lost one, else open (`core.pipeline.analytics` explains decision points)."""
    for statuses in (CONVERTED, frozenset({"lost"})):
        found = [o for o in outcomes if o[0] in statuses]
        if found:
            dated = [o for o in found if o[1] is not None]
            return min(dated, key=lambda o: o[1] or datetime.min) if dated else found[0]
    return "open", None


def decision_point(
    status: str | None,
    closed_at: datetime | None,
    activity_times: Sequence[datetime],
    stored_at: datetime,
    horizon_days: float = 0,
) -> datetime:
    """The moment a lead is scored for reports and backtests: just before its close date when
    decided on a known date, else its last activity (or when it was stored), `horizon_days`
    earlier."""
    if status in DECIDED and closed_at is not None:
        moment = closed_at - JUST_BEFORE
    else:
        moment = max(activity_times, default=stored_at)
    return moment - timedelta(days=horizon_days)


def rate(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Bracket:
    low: float
    high: float
    leads: int
    decided: int
    converted: int

    @property
    def rate(self) -> float | None:
        return rate(self.converted, self.decided)


@dataclass(frozen=True, slots=True)
class TierCount:
    tier: str
    leads: int
    share: float
    average: float | None


@dataclass(frozen=True, slots=True)
class Group:
    """Leads sharing a channel or a source."""

    name: str
    leads: int
    average: float
    decided: int
    converted: int

    @property
    def rate(self) -> float | None:
        return rate(self.converted, self.decided)


@dataclass(frozen=True, slots=True)
class QualifiedBeforeClose:
    """Of the converted leads, how many were qualified when their outcome was decided."""

    converted: int
    qualified: int

    @property
    def share(self) -> float | None:
        return rate(self.qualified, self.converted)


@dataclass(frozen=True, slots=True)
class Report:
    leads: int
    tiers: list[TierCount]
    brackets: list[Bracket]  # current scores
    conversion: list[Bracket]  # scores at each decided lead's decision point
    channels: list[Group]
    sources: list[Group]
    qualified_before_close: QualifiedBeforeClose
    qualified_per_month: list[tuple[str, int]]


def brackets(rows: Iterable[LeadRow], width: float = 10) -> list[Bracket]:
    """Leads, decided and converted per score bracket, every bracket from 0 to 100 listed."""
    count = max(1, math.ceil(100 / width))
    tallies = [[0, 0, 0] for _ in range(count)]
    for row in rows:
        index = min(max(math.floor(row.score / width), 0), count - 1)
        tally = tallies[index]
        tally[0] += 1
        tally[1] += row.decided
        tally[2] += row.converted
    return [
        Bracket(i * width, min((i + 1) * width, 100), *tally) for i, tally in enumerate(tallies)
    ]


def tier_counts(rows: Sequence[LeadRow], tiers: Sequence[str]) -> list[TierCount]:
    """Leads per tier in the model's order; tiers the model no longer has come after."""
    by_tier: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_tier[row.tier or NONE_LABEL].append(row.score)
    names = [*tiers, *sorted(t for t in by_tier if t not in tiers)]
    return [
        TierCount(
            name,
            len(by_tier[name]),
            len(by_tier[name]) / len(rows) if rows else 0.0,
            _mean(by_tier[name]),
        )
        for name in names
    ]


def groups(rows: Iterable[LeadRow], key: Callable[[LeadRow], str | None]) -> list[Group]:
    """Average score and conversion per value of `key`, most leads first."""
    members: dict[str, list[LeadRow]] = defaultdict(list)
    for row in rows:
        members[key(row) or NONE_LABEL].append(row)
    found = [
        Group(
            name,
            len(rows_),
            sum(r.score for r in rows_) / len(rows_),
            sum(r.decided for r in rows_),
            sum(r.converted for r in rows_),
        )
        for name, rows_ in members.items()
    ]
    return sorted(found, key=lambda g: (-g.leads, g.name))


def qualified_before_close(decided: Iterable[LeadRow]) -> QualifiedBeforeClose:
    converted = [r for r in decided if r.converted]
    return QualifiedBeforeClose(len(converted), sum(r.qualified for r in converted))


def per_month(moments: Iterable[datetime]) -> list[tuple[str, int]]:
    """How many moments fall in each calendar month, oldest first (`YYYY-MM`)."""
    counts: dict[str, int] = defaultdict(int)
    for moment in moments:
        counts[f"{moment:%Y-%m}"] += 1
    return sorted(counts.items())


def build_report(
    current: Sequence[LeadRow],
    decided: Sequence[LeadRow],
    qualified_at: Iterable[datetime],
    tiers: Sequence[str],
    width: float = 10,
) -> Report:
    """The monthly report of one model.

    Parameters:
        current: every lead's current score (with its outcome, if any).
        decided: decided leads scored as of their decision point.
        qualified_at: when each lead was qualified (one moment per lead and month).
        tiers: the model's tier names, top first.
    """
    return Report(
        leads=len(current),
        tiers=tier_counts(current, tiers),
        brackets=brackets(current, width),
        conversion=brackets(decided, width),
        channels=groups(current, lambda r: r.channel),
        sources=groups(current, lambda r: r.source),
        qualified_before_close=qualified_before_close(decided),
        qualified_per_month=per_month(qualified_at),
    )


# -- backtests -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decile:
    decile: int
    leads: int
    converted: int
    low: float
    high: float
    rate: float
    lift: float | None
    captured: float | None  # share of all conversions in this decile and the ones above


@dataclass(frozen=True, slots=True)
class Selection:
    """The decided leads at or above `threshold` (or flagged qualified when it is None)."""

    threshold: float | None
    leads: int
    per_month: float
    precision: float | None
    recall: float | None


@dataclass(frozen=True, slots=True)
class Backtest:
    model: str
    leads: int
    converted: int
    months: int
    auc: float | None
    deciles: list[Decile]
    brackets: list[Bracket]
    qualified: Selection
    for_precision: Selection | None
    for_volume: Selection | None

    @property
    def base_rate(self) -> float | None:
        return rate(self.converted, self.leads)


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve from ranks, ties averaged; None without both classes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1
        rank_sum += average_rank * sum(labels[order[k]] for k in range(start, end + 1))
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _ranked(rows: Iterable[LeadRow]) -> list[LeadRow]:
    return sorted(rows, key=lambda r: (-r.score, r.lead_id))


def deciles(rows: Sequence[LeadRow]) -> list[Decile]:
    """Conversion and lift of each tenth of the decided leads, best scores first."""
    ranked = _ranked(r for r in rows if r.decided)
    total_converted = sum(r.converted for r in ranked)
    base = rate(total_converted, len(ranked))
    size, extra = divmod(len(ranked), 10)
    found, start, captured = [], 0, 0
    for index in range(10):
        part = ranked[start : start + size + (index < extra)]
        start += len(part)
        if not part:
            continue
        converted = sum(r.converted for r in part)
        captured += converted
        part_rate = converted / len(part)
        found.append(
            Decile(
                decile=index + 1,
                leads=len(part),
                converted=converted,
                low=part[-1].score,
                high=part[0].score,
                rate=part_rate,
                lift=part_rate / base if base else None,
                captured=rate(captured, total_converted),
            )
        )
    return found


def months_spanned(moments: Iterable[datetime | None]) -> int:
    """Calendar months from the first to the last moment, both included (1 without any)."""
    stamps = [m.year * 12 + m.month for m in moments if m is not None]
    return max(stamps) - min(stamps) + 1 if stamps else 1


def _selection(
    threshold: float | None, chosen: Sequence[LeadRow], total_converted: int, months: int
) -> Selection:
    converted = sum(r.converted for r in chosen)
    return Selection(
        threshold,
        len(chosen),
        len(chosen) / months,
        rate(converted, len(chosen)),
        rate(converted, total_converted),
    )


def _cutoffs(rows: Sequence[LeadRow]) -> list[tuple[float, int, int]]:
    """(score, leads at or above it, converted among them) for each distinct score, high first."""
    found: list[tuple[float, int, int]] = []
    converted = 0
    for leads, row in enumerate(_ranked(rows), start=1):
        converted += row.converted
        if found and found[-1][0] == row.score:
            found[-1] = (row.score, leads, converted)
        else:
            found.append((row.score, leads, converted))
    return found


def _lowest_threshold(
    rows: Sequence[LeadRow], months: int, accept: Callable[[int, int], bool]
) -> Selection | None:
    """The lowest score whose (leads, converted) at or above it `accept` takes, or None."""
    decided = [r for r in rows if r.decided]
    best = None
    for score, leads, converted in _cutoffs(decided):
        if accept(leads, converted):
            best = score
    if best is None:
        return None
    chosen = [r for r in decided if r.score >= best]
    return _selection(best, chosen, sum(r.converted for r in decided), months)


def threshold_for_precision(
    rows: Sequence[LeadRow], target: float, months: int = 1
) -> Selection | None:
    """The lowest score threshold whose leads convert at `target` or better (the most leads at
    that precision); None when no threshold reaches it."""
    return _lowest_threshold(rows, months, lambda leads, converted: converted / leads >= target)


def threshold_for_volume(
    rows: Sequence[LeadRow], per_month: float, months: int = 1
) -> Selection | None:
    """The lowest score threshold that qualifies at most `per_month` leads a month; None when even
    the top score qualifies more."""
    return _lowest_threshold(rows, months, lambda leads, _: leads / months <= per_month)


def backtest(
    model: str,
    rows: Sequence[LeadRow],
    *,
    target_precision: float | None = None,
    monthly_volume: float | None = None,
    width: float = 10,
) -> Backtest:
    """Score quality on decided leads scored as of their decision points.

    Example: `backtest("default", rows, target_precision=0.5).auc`
    """
    decided = [r for r in rows if r.decided]
    months = months_spanned(r.at for r in decided)
    total_converted = sum(r.converted for r in decided)
    return Backtest(
        model=model,
        leads=len(decided),
        converted=total_converted,
        months=months,
        auc=auc([r.score for r in decided], [r.converted for r in decided]),
        deciles=deciles(decided),
        brackets=brackets(decided, width),
        qualified=_selection(None, [r for r in decided if r.qualified], total_converted, months),
        for_precision=(
            None
            if target_precision is None
            else threshold_for_precision(decided, target_precision, months)
        ),
        for_volume=(
            None
            if monthly_volume is None
            else threshold_for_volume(decided, monthly_volume, months)
        ),
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
