"""Score a lead from per-rule tallies instead of its activities: the set-based path.

A full rescore counts, in the database and in one pass, what each engagement rule keeps per
lead: the matches within the rule's window after its per-day cap (`kept`), and how many of those
are also within `expire_after_days` (`live`). Everything a score needs follows from those two
numbers and the lead's last activity, with the same arithmetic as `scoring.engine` (whose decay,
clamp, tier, grade and qualified steps are reused here), because the most recent activities are
the ones a rule keeps:

- `limit` keeps the `limit` most recent of the kept ones: `min(kept, limit)`;
- the live ones are the most recent of those: `min(min(kept, limit), live)`.

Half-life weighting needs each activity's age, so a model with `half_life_days` is not
`tallyable` and stays on the per-lead engine. Fit rules are tested once per distinct value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from scoring.compiled import CompiledModel, cents, compile_model
from scoring.engine import (
    LedgerEntry,
    QualifiedState,
    ScoreResult,
    _clamp,
    _decay,
    _Fading,
    _grade,
    _label,
    _qualify,
    _reason,
    _tier,
)
from scoring.model import ScoringModel

Tallies = Mapping[int, tuple[int, int]]  # engagement rule index -> (kept, live)


def tallyable(model: ScoringModel) -> bool:
    """Whether the model's scores follow from per-rule tallies (no half-life weighting)."""
    return model.engagement.decay.half_life_days is None


class TallyScorer:
    """Scores leads of one model from tallies; remembers fit results per distinct value."""

    def __init__(self, model: ScoringModel) -> None:
        if not tallyable(model):
            raise ValueError(f"model {model.name!r}: half-life decay needs the per-lead engine")
        self.compiled: CompiledModel = compile_model(model)
        self._fit_memo: list[dict[tuple[type, Any], bool]] = [{} for _ in self.compiled.fit]

    def _fit(
        self, fields: Mapping[str, Any], ledger: list[LedgerEntry], reasons: list[tuple[int, str]]
    ) -> int:
        fit = 0
        for rule, memo in zip(self.compiled.fit, self._fit_memo, strict=True):
            value = rule.get(fields)
            key = (value.__class__, value)  # 1, 1.0 and True compare equal but test apart
            try:
                hit = memo.get(key)
            except TypeError:  # a list (multi-select custom field): test it as is
                hit = rule.test(value)
            else:
                if hit is None:
                    hit = memo[key] = rule.test(value)
            if hit:
                fit += rule.cents
                ledger.append(LedgerEntry("fit", "rule", rule.name, 1, rule.cents / 100))
                if rule.cents > 0:
                    reasons.append((rule.cents, rule.name))
        return _clamp(fit, self.compiled.fit_bounds, "fit", "Fit", ledger)

    def score(
        self,
        fields: Mapping[str, Any],
        tallies: Tallies,
        last_ts: float | None,
        now: datetime,
        previous: QualifiedState | None = None,
    ) -> ScoreResult:
        """The lead's score as of `now` (aware UTC), `last_ts` its last activity's timestamp."""
        compiled = self.compiled
        ledger: list[LedgerEntry] = []
        reasons: list[tuple[int, str]] = []
        fit = self._fit(fields, ledger, reasons)
        raw = 0
        fading = _Fading()
        for i, (kept, live) in sorted(tallies.items()):
            rule = compiled.engagement[i]
            count = kept if rule.limit is None else min(kept, rule.limit)
            if count <= 0:
                continue
            points = cents(rule.points * count)
            raw += points
            ledger.append(LedgerEntry("engagement", "rule", rule.name, count, points / 100))
            if rule.fades:
                alive = count
                if compiled.expire is not None:
                    alive = min(count, live)
                    if alive < count:
                        fading.expired_count += count - alive
                        fading.expired += points - cents(rule.points * alive)
                if alive:
                    reasons.append((cents(rule.points * alive), _label(rule.name, alive)))
        inactive = now.timestamp() - (-math.inf if last_ts is None else last_ts)
        decayed = _decay(compiled, raw, fading, inactive, ledger)
        engagement = _clamp(decayed, compiled.engagement_bounds, "engagement", "Engagement", ledger)
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
            reason=_reason(reasons),
        )
