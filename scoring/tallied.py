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

from collections.abc import Callable, Hashable, Mapping
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
    outputs,
)
from scoring.model import ScoringModel
from scoring.operators import domain_of


def tallyable(model: ScoringModel) -> bool:
    """Whether the model's scores follow from per-rule tallies (no half-life weighting)."""
    return model.engagement.decay.half_life_days is None


TallyKey = tuple[tuple[int, int, int], ...]  # (rule index, kept, live), in rule order
FitKey = tuple[tuple[bool, ...], ...]  # per field the fit rules read, their hits


class TallyScorer:
    """Scores leads of one model from tallies; fit tests run once per distinct value, and a
    score is computed once per distinct input (fit hits, tallies, inactivity step, state)."""

    def __init__(self, model: ScoringModel) -> None:
        if not tallyable(model):
            raise ValueError(f"model {model.name!r}: half-life decay needs the per-lead engine")
        self.compiled: CompiledModel = compile_model(model)
        self.segmented = bool(model.segment)
        # Fit rules grouped by the field they read: one lookup per field and lead. A group of
        # domain_in rules only depends on a text value's domain: remembered per domain.
        by_field: dict[str, list[int]] = {}
        for i, rule in enumerate(model.fit.rules):
            by_field.setdefault(rule.field, []).append(i)
        self._groups: list[
            tuple[
                Callable[[Mapping[str, Any]], Any],
                tuple[Callable[[Any], bool], ...],
                bool,
                dict[Any, tuple[bool, ...]],
            ]
        ] = [
            (
                self.compiled.fit[indexes[0]].get,
                tuple(self.compiled.fit[i].test for i in indexes),
                all(model.fit.rules[i].op == "domain_in" for i in indexes),
                {},
            )
            for indexes in by_field.values()
        ]
        self._fit_order = [i for indexes in by_field.values() for i in indexes]
        self._memo: dict[tuple[Any, ...], ScoreResult] = {}
        # The inactivity steps, deepest first, as seconds of inactivity.
        self.steps = tuple(after for after, _, _ in self.compiled.inactivity)

    def forget(self) -> None:
        """Drop remembered scores (bounds memory between ranges of leads)."""
        self._memo.clear()

    def fit_key(self, fields: Mapping[str, Any]) -> FitKey:
        """Which fit rules the lead's fields satisfy, per field the rules read."""
        hits = []
        for get, tests, by_domain, memo in self._groups:
            value = get(fields)
            if by_domain and isinstance(value, str):
                key: Any = domain_of(value)
            else:
                key = (value.__class__, value)  # 1, 1.0 and True compare equal but test apart
            try:
                hit = memo.get(key)
            except TypeError:  # a list (multi-select custom field): test it as is
                hit = tuple(test(value) for test in tests)
            else:
                if hit is None:
                    hit = memo[key] = tuple(test(value) for test in tests)
            hits.append(hit)
        return tuple(hits)

    def score_key(
        self,
        fit_key: FitKey,
        tallies_key: Hashable,
        tallies: Callable[[], TallyKey],
        step: int | None,
        now: datetime,
        previous: QualifiedState | None,
    ) -> ScoreResult:
        """The score of a lead with these fit hits and tallies (`tallies_key` names them;
        `tallies()` gives them when not yet scored), whose inactivity reaches `steps[step]`
        (None: no step; a lead without activity reaches the deepest)."""
        state = None if previous is None else (previous.qualified, previous.qualified_at)
        key = (fit_key, tallies_key, step, state)
        result = self._memo.get(key)
        if result is None:
            inactive = -1.0 if step is None else self.steps[step]
            result = self._score(fit_key, tallies(), inactive, now, previous)
            self._memo[key] = result
        return result

    def _score(
        self,
        fit_key: FitKey,
        tallies: TallyKey,
        inactive: float,
        now: datetime,
        previous: QualifiedState | None,
    ) -> ScoreResult:
        compiled = self.compiled
        ledger: list[LedgerEntry] = []
        fit = 0
        hits = [False] * len(compiled.fit)
        for i, hit in zip(self._fit_order, (h for group in fit_key for h in group), strict=True):
            hits[i] = hit
        for rule, hit in zip(compiled.fit, hits, strict=True):
            if hit:
                fit += rule.cents
                ledger.append(LedgerEntry("fit", "rule", rule.name, 1, rule.cents / 100))
        fit = _clamp(fit, compiled.fit_bounds, "fit", "Fit", ledger)
        raw = 0
        fading = _Fading()
        for i, kept, live in tallies:
            check = compiled.engagement[i]
            count = kept if check.limit is None else min(kept, check.limit)
            if count <= 0:
                continue
            points = cents(check.points * count)
            raw += points
            alive = count
            if check.fades and compiled.expire is not None:
                alive = min(count, live)
                if alive < count:
                    fading.expired_count += count - alive
                    fading.expired += points - cents(check.points * alive)
            ledger.append(
                LedgerEntry(
                    "engagement",
                    "rule",
                    check.name,
                    count,
                    points / 100,
                    None if alive == count else alive,
                )
            )
        decayed = _decay(compiled, raw, fading, inactive, ledger)
        engagement = _clamp(decayed, compiled.engagement_bounds, "engagement", "Engagement", ledger)
        return outputs(compiled, fit, engagement, now, previous, ledger)
