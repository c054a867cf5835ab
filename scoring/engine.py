"""Score one lead: fit, engagement, total, tier, grade, qualified, and the ledger explaining them.

Pure: no I/O, no clock (`now` is an argument), no SQL, so any past moment can be recomputed.
The semantics are DESIGN §4; where it leaves a choice open, this module settles it:

- Points are kept in integer cents: every output is rounded to 2 decimals and the ledger entries
  add up to the total exactly.
- Activities after `now` do not exist. Ages are `now - occurred_at`; `window_days` and
  `expire_after_days` keep activities whose age is at most that many days. `limit_per_day` keeps
  the most recent ones of each UTC day, then `limit` the most recent ones overall.
- Decay fades interest, not warnings: `expire_after_days` and `half_life_days` apply to rules
  with positive points; a negative signal (unsubscribed, careers page) lasts until its own
  `window_days`. So decay never raises engagement.
- The ledger's rule entries show what each rule matched; its decay entries show what time took
  away: expired activities, then half-life weighting, then the inactivity step. Together they
  never take engagement below zero on their own: each removes at most what is left above zero,
  and an engagement already below zero (through negative signals) is left as it is.
- Inactivity is the time since the lead's last activity at or before `now`, of any type except
  our own sends (email_sent, email_delivered, email_bounced: a lead we keep mailing is not active).
  A step is reached on its day (inactive ≥ days); the deepest step reached applies.
- Qualified: see `_qualify`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from scoring.compiled import DAY, CompiledModel, EngagementCheck, Qualifier, cents, compile_model
from scoring.model import ScoringModel

OUTBOUND_TYPES = frozenset({"email_sent", "email_delivered", "email_bounced"})
TIMES = "\N{MULTIPLICATION SIGN}"
_EMPTY: Mapping[str, Any] = MappingProxyType({})

Event = Literal["qualified", "released"]


@dataclass(frozen=True, slots=True)
class Activity:
    """Something the lead did; `occurred_at` is aware UTC (naive is read as UTC)."""

    type: str
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class QualifiedState:
    """The lead's qualified flag as last scored, for hysteresis and events."""

    qualified: bool
    qualified_at: datetime | None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One line of a score's explanation; the points of all entries add up to the total.

    An engagement rule's line says how many matches it counted and their points; when the
    model's expiry took some of them, `live` says how many still count (the expired points are
    in the "Expired after" decay line). The score's reason is built from these lines alone
    (`reason`)."""

    section: Literal["fit", "engagement", "total"]
    kind: Literal["rule", "decay", "clamp"]
    name: str
    count: int
    points: float
    live: int | None = None  # of `count`, how many have not expired; None: all of them

    def as_dict(self) -> dict[str, Any]:
        """The line as stored in a score row's JSON ledger (`live` only when set)."""
        line: dict[str, Any] = {
            "section": self.section,
            "kind": self.kind,
            "name": self.name,
            "count": self.count,
            "points": self.points,
        }
        if self.live is not None:
            line["live"] = self.live
        return line

    @classmethod
    def of(cls, line: Mapping[str, Any]) -> LedgerEntry:
        """A line as read back from a stored ledger (older ledgers have no `live`)."""
        live = line.get("live")
        return cls(
            line["section"],
            line["kind"],
            line["name"],
            int(line.get("count") or 0),
            float(line.get("points") or 0),
            None if live is None else int(live),
        )


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A lead's score under one model, stamped with the model's name and content hash."""

    model: str
    model_hash: str
    fit: float
    engagement: float
    total: float
    tier: str | None
    tier_color: str | None
    grade: str | None
    qualified: bool
    qualified_at: datetime | None
    event: Event | None
    ledger: tuple[LedgerEntry, ...]
    reason: str

    def outputs(self) -> dict[str, Any]:
        """The values a destination can map onto CRM fields."""
        return {
            "total": self.total,
            "fit": self.fit,
            "engagement": self.engagement,
            "tier": self.tier,
            "grade": self.grade,
            "qualified": self.qualified,
            "qualified_at": self.qualified_at,
            "reason": self.reason,
        }


def score_lead(
    fields: Mapping[str, Any],
    activities: Iterable[Activity],
    model: ScoringModel,
    now: datetime,
    previous: QualifiedState | None = None,
) -> ScoreResult:
    """Score a lead as of `now` (later activities are ignored); `previous` drives hysteresis.

    Example: `score_lead({"job_title": "VP Sales"}, [], model, datetime.now(UTC)).total`
    """
    compiled = compile_model(model)
    now = _as_utc(now)
    ledger: list[LedgerEntry] = []
    fit = _score_fit(compiled, fields, ledger)
    engagement = _score_engagement(compiled, activities, now.timestamp(), ledger)
    return outputs(compiled, fit, engagement, now, previous, ledger)


def outputs(
    compiled: CompiledModel,
    fit: int,
    engagement: int,
    now: datetime,
    previous: QualifiedState | None,
    ledger: list[LedgerEntry],
) -> ScoreResult:
    """The total, tier, grade, qualified state and reason from fit, engagement (in cents) and
    the ledger: the last steps of every scoring path, per lead or set-based."""
    total = _clamp(fit + engagement, compiled.total_bounds, "total", "Total", ledger)
    tier, color = _tier(compiled, total)
    grade = _grade(compiled, fit, engagement)
    qualified, qualified_at, event = _qualify(
        compiled.qualifier, fit, engagement, total, grade, now, previous
    )
    return ScoreResult(
        model=compiled.name,
        model_hash=compiled.hash,
        fit=fit / 100,
        engagement=engagement / 100,
        total=total / 100,
        tier=tier,
        tier_color=color,
        grade=grade,
        qualified=qualified,
        qualified_at=qualified_at,
        event=event,
        ledger=tuple(ledger),
        reason=reason(ledger),
    )


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _score_fit(
    compiled: CompiledModel,
    fields: Mapping[str, Any],
    ledger: list[LedgerEntry],
) -> int:
    fit = 0
    for rule in compiled.fit:
        if rule.test(rule.get(fields)):
            fit += rule.cents
            ledger.append(LedgerEntry("fit", "rule", rule.name, 1, rule.cents / 100))
    return _clamp(fit, compiled.fit_bounds, "fit", "Fit", ledger)


def _collect(
    compiled: CompiledModel, activities: Iterable[Activity], now_ts: float
) -> tuple[list[list[float]], float]:
    """Per engagement rule, the timestamps of matching activities; and the last activity's."""
    stamps: list[list[float]] = [[] for _ in compiled.engagement]
    last = -math.inf
    rules_for = compiled.rules_for
    for activity in activities:
        at = activity.occurred_at
        ts = at.timestamp() if at.tzinfo is not None else at.replace(tzinfo=UTC).timestamp()
        if ts > now_ts:
            continue
        if ts > last and activity.type not in OUTBOUND_TYPES:
            last = ts
        for i in rules_for(activity.type, activity.properties):
            stamps[i].append(ts)
    return stamps, last


def _counted(rule: EngagementCheck, stamps: list[float], now_ts: float) -> list[float]:
    """The timestamps a rule counts: within its window, per-day cap, then limit."""
    if rule.window is not None:
        oldest = now_ts - rule.window
        stamps = [ts for ts in stamps if ts >= oldest]
    if rule.per_day is None and rule.limit is None:
        return stamps
    stamps.sort(reverse=True)  # the most recent ones are kept
    if rule.per_day is not None:
        stamps = _cap_per_day(stamps, rule.per_day)
    return stamps if rule.limit is None else stamps[: rule.limit]


def _cap_per_day(newest_first: list[float], cap: int) -> list[float]:
    kept: list[float] = []
    day, taken = math.nan, 0
    for ts in newest_first:
        this_day = ts // DAY  # epoch seconds: whole days are UTC days
        if this_day != day:
            day, taken = this_day, 0
        if taken < cap:
            kept.append(ts)
            taken += 1
    return kept


@dataclass(slots=True)
class _Fading:
    """What time takes from the positive rules: expired activities, then half-life weighting."""

    expired: int = 0  # cents
    expired_count: int = 0
    unweighted: int = 0  # cents of the live activities, before half-life
    weighted: float = 0.0  # points of the same activities, after half-life
    weighted_count: int = 0


def _score_engagement(
    compiled: CompiledModel,
    activities: Iterable[Activity],
    now_ts: float,
    ledger: list[LedgerEntry],
) -> int:
    stamps, last = _collect(compiled, activities, now_ts)
    raw = 0
    fading = _Fading()
    for rule, matched in zip(compiled.engagement, stamps, strict=True):
        counted = _counted(rule, matched, now_ts) if matched else matched
        if not counted:
            continue
        points = cents(rule.points * len(counted))
        raw += points
        live = _fade(compiled, rule, counted, points, now_ts, fading) if rule.fades else counted
        alive = None if len(live) == len(counted) else len(live)
        ledger.append(
            LedgerEntry("engagement", "rule", rule.name, len(counted), points / 100, alive)
        )
    decayed = _decay(compiled, raw, fading, now_ts - last, ledger)
    return _clamp(decayed, compiled.engagement_bounds, "engagement", "Engagement", ledger)


def _fade(
    compiled: CompiledModel,
    rule: EngagementCheck,
    counted: list[float],
    points: int,
    now_ts: float,
    fading: _Fading,
) -> list[float]:
    """Add what expiry and half-life take from a positive rule to `fading`; the live stamps."""
    live = counted
    if compiled.expire is not None:
        oldest = now_ts - compiled.expire
        live = [ts for ts in counted if ts >= oldest]
        if len(live) < len(counted):
            fading.expired_count += len(counted) - len(live)
            fading.expired += points - cents(rule.points * len(live))
    if compiled.half_life is not None and live:
        fading.unweighted += cents(rule.points * len(live))
        fading.weighted_count += len(live)
        # fsum: the same activities in any order give the same cents
        fading.weighted += rule.points * math.fsum(
            0.5 ** ((now_ts - ts) / compiled.half_life) for ts in live
        )
    return live


def _decay(
    compiled: CompiledModel,
    raw: int,
    fading: _Fading,
    inactive: float,
    ledger: list[LedgerEntry],
) -> int:
    """Expiry, half-life, then inactivity, each a ledger entry; together at most max(raw, 0)."""
    cuts: list[tuple[str, int, int]] = []
    if fading.expired:
        cuts.append(
            (f"Expired after {compiled.expire_days:g} days", fading.expired_count, fading.expired)
        )
    if fading.weighted_count:
        faded = fading.unweighted - cents(fading.weighted)
        cuts.append((f"Half-life {compiled.half_life_days:g} days", fading.weighted_count, faded))
    # Deepest step first: the first one reached applies.
    step = next(((d, m) for after, m, d in compiled.inactivity if inactive >= after), None)
    if step is not None:
        cuts.append((f"Inactive {step[0]:g}+ days", 1, step[1]))
    engagement = raw
    for name, count, amount in cuts:
        cut = min(amount, engagement)  # decay never takes engagement below zero on its own
        if cut > 0:
            ledger.append(LedgerEntry("engagement", "decay", name, count, -cut / 100))
            engagement -= cut
    return engagement


def _clamp(
    value: int,
    bounds: tuple[int | None, int | None],
    section: Literal["fit", "engagement", "total"],
    label: str,
    ledger: list[LedgerEntry],
) -> int:
    """`value` (cents) within `bounds`; a clamp is a ledger entry so the ledger still adds up."""
    low, high = bounds
    if high is not None and value > high:
        name, bounded = f"{label} max {high / 100:g}", high
    elif low is not None and value < low:
        name, bounded = f"{label} min {low / 100:g}", low
    else:
        return value
    ledger.append(LedgerEntry(section, "clamp", name, 1, (bounded - value) / 100))
    return bounded


def _tier(compiled: CompiledModel, total: int) -> tuple[str | None, str | None]:
    for name, color, low in compiled.tiers:
        if low is None or total >= low:
            return name, color
    return None, None


def _grade(compiled: CompiledModel, fit: int, engagement: int) -> str | None:
    if compiled.grades is None:
        return None
    letters, digits = compiled.grades
    letter = next((k for k, low in letters if fit >= low), "D")
    digit = next((k for k, low in digits if engagement >= low), "4")
    return letter + digit


def _meets(rule: Qualifier, fit: int, engagement: int, total: int, grade: str | None) -> bool:
    checks = ((rule.total, total), (rule.fit, fit), (rule.engagement, engagement))
    if any(low is not None and value < low for low, value in checks):
        return False
    # `grade: B2` means at least B2 on both axes ("A" < "B" and "1" < "2" as text).
    return rule.grade is None or (
        grade is not None and grade[0] <= rule.grade[0] and grade[1] <= rule.grade[1]
    )


def _qualify(
    rule: Qualifier | None,
    fit: int,
    engagement: int,
    total: int,
    grade: str | None,
    now: datetime,
    previous: QualifiedState | None,
) -> tuple[bool, datetime | None, Event | None]:
    """Qualified when every condition holds; once qualified, held until total < release_below.

    `qualified_at` is stamped with `now` on the crossing and kept while qualified; crossing and
    release are the events. Without a `previous` state, a lead that qualifies is a crossing.
    """
    was = previous is not None and previous.qualified
    qualified = rule is not None and (
        _meets(rule, fit, engagement, total, grade)
        or (was and rule.release_below is not None and total >= rule.release_below)
    )
    if not qualified:
        return False, None, "released" if was else None
    if was and previous is not None:
        return True, previous.qualified_at or now, None
    return True, now, "qualified"


def _label(name: str, count: int) -> str:
    return name if count == 1 else f"{name} {TIMES}{count}"


def reason(ledger: Iterable[LedgerEntry | Mapping[str, Any]]) -> str:
    """A score's short reason, from its ledger alone (lines as `LedgerEntry` or as stored):
    the labels of the three rule lines with positive points that weigh most, e.g. "Request a
    quote, Pricing page" followed by a multiplication sign and 3. A line weighs what still
    counts: its `live` matches (when expiry took some) and their share of its points; a line
    whose matches all expired is left out. Ties keep ledger order (the model's: fit rules,
    then engagement rules). Every reason leadhub stores, shows or sends is this function's."""
    weighed: list[tuple[int, str]] = []
    for line in ledger:
        entry = line if isinstance(line, LedgerEntry) else LedgerEntry.of(line)
        if entry.kind != "rule" or entry.points <= 0:
            continue
        if entry.live is None:
            weighed.append((round(entry.points * 100), _label(entry.name, entry.count)))
        elif entry.live > 0:
            weight = round(entry.points * 100 * entry.live / entry.count)
            weighed.append((weight, _label(entry.name, entry.live)))
    top = sorted(weighed, key=lambda item: -item[0])[:3]  # stable: ledger order breaks ties
    return ", ".join(label for _, label in top)
