"""A scoring model compiled into plain callables, once per content hash.

Scoring a million leads must not re-parse a regex or re-read a rule per lead: `compile_model`
turns a `ScoringModel` into tuples of callables and integer cents, cached by the model's hash.
An engagement rule's match is computed once per distinct activity signature (type, url, the
properties the rules look at) and remembered, not once per activity.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scoring.model import EngagementRule, Qualification, ScoringModel
from scoring.operators import (
    FieldGetter,
    ValueTest,
    expected_value_test,
    field_getter,
    is_blank,
    value_test,
)

DAY = 86400.0
_MEMO_SIZE = 100_000  # distinct activity signatures remembered per model
_CACHE_SIZE = 64  # compiled models kept


def cents(points: float) -> int:
    """Points as integer cents: sums stay exact and outputs round to 2 decimals."""
    return round(points * 100)


def _opt_cents(points: float | None) -> int | None:
    return None if points is None else cents(points)


def _bounds(low: float | None, high: float | None) -> tuple[int | None, int | None]:
    return _opt_cents(low), _opt_cents(high)


@dataclass(frozen=True, slots=True)
class Qualifier:
    """The `qualified:` conditions in cents; `grade` means "at least this grade"."""

    total: int | None
    fit: int | None
    engagement: int | None
    grade: str | None
    release_below: int | None

    @classmethod
    def of(cls, rule: Qualification | None) -> Qualifier | None:
        if rule is None:
            return None
        return cls(
            _opt_cents(rule.total),
            _opt_cents(rule.fit),
            _opt_cents(rule.engagement),
            rule.grade,
            _opt_cents(rule.release_below),
        )


Thresholds = tuple[tuple[str, int], ...]  # (grade letter or digit, cents), best first


@dataclass(frozen=True, slots=True)
class FitCheck:
    """A fit rule: read the field, test it, add `cents`."""

    name: str
    cents: int
    get: FieldGetter
    test: ValueTest


@dataclass(frozen=True, slots=True)
class EngagementCheck:
    """An engagement rule: what it matches and how its matches are counted."""

    name: str
    points: float
    limit: int | None
    per_day: int | None
    window: float | None  # seconds
    fades: bool  # positive points: subject to expiry and half-life
    url: re.Pattern[str] | None
    where: tuple[tuple[str, ValueTest], ...]

    @classmethod
    def of(cls, rule: EngagementRule) -> EngagementCheck:
        return cls(
            name=rule.name,
            points=rule.points,
            limit=rule.limit,
            per_day=rule.limit_per_day,
            window=None if rule.window_days is None else rule.window_days * DAY,
            fades=rule.points > 0,
            url=None if rule.url is None else re.compile(fnmatch.translate(rule.url), re.I),
            where=tuple((key, expected_value_test(v)) for key, v in rule.where.items()),
        )

    def matches(self, properties: Mapping[str, Any]) -> bool:
        if self.url is not None:
            url = properties.get("url")
            if is_blank(url) or self.url.match(str(url)) is None:
                return False
        return all(test(properties.get(key)) for key, test in self.where)


@dataclass(frozen=True, slots=True)
class EventRules:
    """The engagement rules of one activity type, and what their match depends on."""

    rules: tuple[int, ...]
    plain: bool  # no url or where: every activity of the type matches every rule
    uses_url: bool
    keys: tuple[str, ...]


class CompiledModel:
    """A model as tuples of callables and cents; build it with `compile_model`."""

    def __init__(self, model: ScoringModel) -> None:
        self.name = model.name
        self.hash = model.content_hash
        self.fit = tuple(
            FitCheck(r.name, cents(r.points), field_getter(r.field), value_test(r.op, r.value))
            for r in model.fit.rules
        )
        self.fit_bounds = _bounds(model.fit.min, model.fit.max)
        self.engagement = tuple(EngagementCheck.of(r) for r in model.engagement.rules)
        self.engagement_bounds = _bounds(model.engagement.min, model.engagement.max)
        self.total_bounds = _bounds(model.min, model.max)
        decay = model.engagement.decay
        self.expire = None if decay.expire_after_days is None else decay.expire_after_days * DAY
        self.half_life = None if decay.half_life_days is None else decay.half_life_days * DAY
        self.expire_days = decay.expire_after_days
        self.half_life_days = decay.half_life_days
        # Deepest first, so the first step reached is the one that applies.
        steps = reversed(decay.inactivity)
        self.inactivity = tuple((s.days * DAY, cents(s.minus), s.days) for s in steps)
        self.events = self._index_events(model.engagement.rules)
        self.tiers = tuple((t.name, t.color, _opt_cents(t.min)) for t in model.tiers)
        self.grades: tuple[Thresholds, Thresholds] | None = None
        if model.grade is not None:
            letters = tuple((k, cents(v)) for k, v in sorted(model.grade.fit.items()))
            digits = tuple((k, cents(v)) for k, v in sorted(model.grade.engagement.items()))
            self.grades = (letters, digits)
        self.qualifier = Qualifier.of(model.qualified)
        self._memo: dict[tuple[Any, ...], tuple[int, ...]] = {}

    def _index_events(self, rules: tuple[EngagementRule, ...]) -> dict[str, EventRules]:
        by_type: dict[str, list[int]] = {}
        for i, rule in enumerate(rules):
            by_type.setdefault(rule.event, []).append(i)
        events = {}
        for kind, indexes in by_type.items():
            uses_url = any(rules[i].url is not None for i in indexes)
            keys = tuple(sorted({k for i in indexes for k in rules[i].where}))
            events[kind] = EventRules(tuple(indexes), not uses_url and not keys, uses_url, keys)
        return events

    def rules_for(self, kind: str, properties: Mapping[str, Any]) -> tuple[int, ...]:
        """Indexes of the engagement rules an activity matches."""
        event = self.events.get(kind)
        if event is None:
            return ()
        if event.plain:
            return event.rules
        url = properties.get("url") if event.uses_url else None
        signature = (kind, url, *map(properties.get, event.keys))
        try:
            hit = self._memo.get(signature)
        except TypeError:  # an unhashable property value (a list): match without the memo
            return self._match(event, properties)
        if hit is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            hit = self._memo[signature] = self._match(event, properties)
        return hit

    def _match(self, event: EventRules, properties: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(i for i in event.rules if self.engagement[i].matches(properties))


_COMPILED: dict[str, CompiledModel] = {}


def compile_model(model: ScoringModel) -> CompiledModel:
    """The compiled form of `model`, built once per content hash."""
    compiled = _COMPILED.get(model.content_hash)
    if compiled is None:
        if len(_COMPILED) >= _CACHE_SIZE:
            _COMPILED.clear()
        compiled = _COMPILED[model.content_hash] = CompiledModel(model)
    return compiled
