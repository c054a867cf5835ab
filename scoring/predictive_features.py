"""The predictive model's columns: what a lead's raw values become, learnt from training rows.

- A field is numeric when at least 95 % of its given values read as numbers: held between its
  1st and 99th percentiles, it becomes a standardized column, a standardized log1p column too
  when no value is negative (so a linear model can bend: the 10th visit counts less than the
  first), and a `(missing)` flag when some leads lack it (they take the training median).
- Any other field is categorical: one column per value given by at least `max(10, n / 500)` leads
  (compared ignoring case; at most 30), one for `(other)` and one for `(missing)`. Blank cells and
  placeholders such as `Select` count as missing.
- Activity counts (`events:<type>`) are numeric with absent meaning zero; the days since the last
  inbound activity (`days_since_last_activity`) is numeric and missing for leads with none.
- A field given by almost no lead, or with a single value everywhere, is left out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

EVENTS = "events:"
RECENCY = "days_since_last_activity"
MISSING = "(missing)"
OTHER = "(other)"
MAX_LEVELS = 30
NUMERIC_SHARE = 0.95
BINS = 10  # quantile bins of a numeric field, for points rules
PLACEHOLDERS = frozenset(
    {"select", "--select--", "-- select --", "please select", "choose one", "n/a", "na", "null",
     "none", "nan", "-", "--"}
)  # fmt: skip


def is_missing(value: Any) -> bool:
    """None, NaN, a blank string or a placeholder such as `Select`."""
    return _cell(value)[0]


def as_number(value: Any) -> float | None:
    """A number from an int, float or numeric text ("1,200"); None otherwise (booleans too)."""
    return _cell(value)[1]


def norm_text(value: Any) -> str:
    """The text a categorical level is compared by: trimmed, ignoring case."""
    return _cell(value)[2]


def _cell(value: Any) -> tuple[bool, float | None, str]:
    try:
        return _classify(value)
    except TypeError:  # unhashable, e.g. a multi-select list: compare its text
        return _classify(str(value))


@lru_cache(maxsize=65_536)
def _classify(value: Any) -> tuple[bool, float | None, str]:
    """(missing, number, text) of a cell; cached because the same values repeat across leads."""
    if value is None or isinstance(value, bool):
        return value is None, None, "" if value is None else str(value).casefold()
    if isinstance(value, (int, float)):
        finite = math.isfinite(value)
        return not finite, float(value) if finite else None, str(value)
    text = str(value).strip()
    folded = text.casefold()
    if not text or folded in PLACEHOLDERS:
        return True, None, folded
    try:
        number: float | None = float(text.replace(",", ""))
    except ValueError:
        number = None
    return False, number if number is not None and math.isfinite(number) else None, folded


def field_label(name: str) -> str:
    """How a feature's field reads in an explanation or a rule name."""
    if name.startswith("custom."):
        return name.removeprefix("custom.")
    if name.startswith(EVENTS):
        return f"{name.removeprefix(EVENTS)} activities"
    if name == RECENCY:
        return "days since last activity"
    return name


@dataclass(frozen=True)
class NumericColumn:
    field: str
    fill: float  # the training median of given values
    clip: tuple[float, float]  # the 1st and 99th percentiles: outliers are held to them
    linear: tuple[float, float]  # (mean, std) of the clipped values
    log: tuple[float, float] | None  # (mean, std) of log1p(clipped) when no value is negative
    has_missing: bool
    default: float | None  # the value of an absent field (0 for activity counts)
    edges: tuple[float, ...]  # raw-value quintile cuts (for points rules)
    typical: tuple[float, ...]  # the median raw value between each pair of cuts
    cap: float  # the 90th percentile of the positive values (for points rules)

    @property
    def names(self) -> list[str]:
        return [
            self.field,
            *([f"log1p({self.field})"] if self.log else []),
            *([f"{self.field}={MISSING}"] if self.has_missing else []),
        ]

    def value(self, raw: dict[str, Any]) -> float | None:
        given = raw.get(self.field)
        number = None if is_missing(given) else as_number(given)
        return self.default if number is None else number

    def transform(self, value: float) -> list[float]:
        """The standardized columns of a given raw number (without the missing flag)."""
        held = min(max(value, self.clip[0]), self.clip[1])
        out = [(held - self.linear[0]) / self.linear[1]]
        if self.log:
            out.append((math.log1p(max(held, 0.0)) - self.log[0]) / self.log[1])
        return out

    def encode(self, raws: Sequence[dict[str, Any]]) -> np.ndarray:
        values = [self.value(r) for r in raws]
        out = np.zeros((len(raws), len(self.names)))
        width = 2 if self.log else 1
        out[:, :width] = [self.transform(self.fill if v is None else v) for v in values]
        if self.has_missing:
            out[:, width] = [v is None for v in values]
        return out

    @classmethod
    def fit(
        cls, name: str, numbers: Sequence[float | None], default: float | None
    ) -> NumericColumn:
        given = np.array([v for v in numbers if v is not None], dtype=float)
        fill = float(np.median(given))
        low, high = (float(q) for q in np.quantile(given, [0.01, 0.99]))
        held = np.clip(
            np.array([fill if v is None else v for v in numbers], dtype=float), low, high
        )
        logged = np.log1p(np.maximum(held, 0)) if low >= 0 else None
        edges = _edges(given)
        bins = np.searchsorted(np.array(edges), given, side="right")
        positive = given[given > 0]
        return cls(
            field=name,
            fill=fill,
            clip=(low, high),
            linear=(float(held.mean()), float(held.std()) or 1.0),
            log=None if logged is None else (float(logged.mean()), float(logged.std()) or 1.0),
            has_missing=any(v is None for v in numbers),
            default=default,
            edges=edges,
            typical=tuple(float(np.median(given[bins == b])) for b in range(len(edges) + 1)),
            cap=float(np.quantile(positive if positive.size else given, 0.9)),
        )


@dataclass(frozen=True)
class CategoricalColumn:
    field: str
    levels: tuple[str, ...]  # compared ignoring case
    labels: tuple[str, ...]  # each level as most often written
    placeholders: tuple[str, ...]  # placeholder spellings met in training
    counts: tuple[int, ...] = ()  # training leads per level, then `(other)`, then `(missing)`

    @property
    def names(self) -> list[str]:
        return [f"{self.field}={label}" for label in (*self.labels, OTHER, MISSING)]

    def state(self, raw: dict[str, Any]) -> int:
        """The index of the lead's level; then `(other)`, then `(missing)`."""
        value = raw.get(self.field)
        if is_missing(value):
            return len(self.levels) + 1
        text = norm_text(value)
        return self.levels.index(text) if text in self.levels else len(self.levels)

    def encode(self, raws: Sequence[dict[str, Any]]) -> np.ndarray:
        out = np.zeros((len(raws), len(self.levels) + 2))
        out[np.arange(len(raws)), [self.state(r) for r in raws]] = 1.0
        return out

    @classmethod
    def fit(cls, name: str, values: list[Any], min_count: int) -> CategoricalColumn | None:
        spellings = Counter(v if isinstance(v, str) else str(v) for v in values if v is not None)
        counts: Counter[str] = Counter()
        written: dict[str, tuple[int, str]] = {}  # level -> (count, spelling) of its top spelling
        placeholders = set()
        for spelling, n in spellings.items():
            if is_missing(spelling):
                if spelling.strip():
                    placeholders.add(spelling.strip())
                continue
            level = norm_text(spelling)
            counts[level] += n
            if n > written.get(level, (0, ""))[0]:
                written[level] = (n, spelling.strip())
        if len(counts) > max(50, len(values) // 2):
            return None  # an identifier, not a category
        kept = [k for k, n in counts.most_common(MAX_LEVELS) if n >= min_count]
        given = sum(counts.values())
        return cls(
            field=name,
            levels=tuple(kept),
            labels=tuple(written[k][1] for k in kept),
            placeholders=tuple(sorted(placeholders)),
            counts=(
                *(counts[k] for k in kept),
                given - sum(counts[k] for k in kept),
                len(values) - given,
            ),
        )


def _edges(given: np.ndarray) -> tuple[float, ...]:
    """Quantile cuts (values that occur, to 2 decimals) such that every bin holds some value."""
    cuts = np.quantile(given, np.linspace(0, 1, BINS + 1)[1:-1], method="inverted_cdf")
    edges = sorted({round(float(c), 2) for c in cuts} - {round(float(given.min()), 2)})
    edges = [e for e in edges if e > given.min()]
    if not edges:  # nearly every value is the minimum: one bin
        return ()
    uppers = [*edges[1:], math.inf]
    return tuple(
        e for e, upper in zip(edges, uppers, strict=True) if ((given >= e) & (given < upper)).any()
    )


Column = NumericColumn | CategoricalColumn


@dataclass(frozen=True)
class FeatureSpec:
    """The columns learnt from training rows; `baseline` is the training mean of each column."""

    columns: tuple[Column, ...]
    baseline: tuple[float, ...] = ()

    @property
    def names(self) -> list[str]:
        return [n for c in self.columns for n in c.names]

    @property
    def slices(self) -> list[tuple[int, int]]:
        found, start = [], 0
        for column in self.columns:
            found.append((start, start + len(column.names)))
            start += len(column.names)
        return found

    def matrix(self, raws: Sequence[dict[str, Any]]) -> np.ndarray:
        if not self.columns:
            return np.zeros((len(raws), 0))
        return np.hstack([c.encode(raws) for c in self.columns])

    def with_baseline(self, means: Iterable[float]) -> FeatureSpec:
        return replace(self, baseline=tuple(float(m) for m in means))

    @classmethod
    def fit(cls, raws: Sequence[dict[str, Any]], exclude: Iterable[str] = ()) -> FeatureSpec:
        """Learn the columns of every field the rows carry, except `exclude`."""
        skip = set(exclude)
        names = sorted({k for r in raws for k in r} - skip)
        min_count = max(10, len(raws) // 500)
        columns = [_fit_column(name, raws, min_count) for name in names]
        return cls(tuple(c for c in columns if c is not None))


def _fit_column(name: str, raws: Sequence[dict[str, Any]], min_count: int) -> Column | None:
    values = [r.get(name) for r in raws]
    given = [v for v in values if not is_missing(v)]
    if len(given) < min_count:
        return None
    numbers = [as_number(v) for v in values]
    parsed = sum(n is not None for n in numbers)
    if name.startswith(EVENTS) or name == RECENCY or parsed >= NUMERIC_SHARE * len(given):
        default = 0.0 if name.startswith(EVENTS) else None
        filled = [default if n is None else n for n in numbers]
        if len(set(filled)) == 1:
            return None  # the same value everywhere says nothing
        return NumericColumn.fit(name, filled, default)
    categorical = CategoricalColumn.fit(name, values, min_count)
    if categorical is None or (len(categorical.levels) <= 1 and len(given) == len(values)):
        return None
    return categorical


def describe_value(column: Column, raw: dict[str, Any]) -> str:
    """A lead's value of a column's field, as an explanation shows it."""
    if isinstance(column, CategoricalColumn):
        value = raw.get(column.field)
        return MISSING if is_missing(value) else str(value).strip()
    number = column.value(raw)
    return MISSING if number is None else f"{number:g}"
