"""A fitted logistic regression as a points model file that people can read and edit.

The regression's log-odds are a sum over fields, so each field becomes rules whose points are its
contribution in log-odds, times one scale for the whole model, rounded to whole points:

- a categorical field: `equals` per common value, `not_in` for any other value, `exists: false`
  (and `in` the placeholders met in training) for a missing one. The field's least favourable
  state gets 0 points, so most points are positive; a state no training lead was in (say, no
  lead lacked the field) gets the field's average;
- a numeric field: cumulative thresholds at its training quintiles (`gte` when more is better,
  `lt` when less is), each rule adding the step between two neighbouring bins, and `exists: false`
  for a missing value;
- an activity count: a rule for the first activity (limit 1) and one per activity up to about the
  90th percentile of the count (limit), fitted through the first and that last count;
- the days since the last activity: inactivity decay steps at its quintiles, when the model says
  staleness hurts.

The scale puts the 99th percentile of the training leads at about `budget` points (the rules'
zero is a lead in every field's least favourable state). Tiers and the qualified
threshold are placed where the regression puts a 60 % / 30 % / 50 % chance of converting, so a tier
reads as a probability.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scoring.predictive import Artefact, logit
from scoring.predictive_features import (
    EVENTS,
    RECENCY,
    CategoricalColumn,
    NumericColumn,
    field_label,
)

HOT, WARM, QUALIFIED, RELEASE = 0.6, 0.3, 0.5, 0.4
Rule = dict[str, Any]


class _Field:
    """One feature column group: its state contributions (log-odds) and how to write its rules."""

    def __init__(self, column: CategoricalColumn | NumericColumn, weights: np.ndarray) -> None:
        self.column = column
        self.weights = weights
        if isinstance(column, CategoricalColumn) and any(column.counts):
            # A state no training lead was in has an untrained weight: give it the average.
            counts = np.array(column.counts, dtype=float)
            average = float(np.dot(weights, counts) / counts.sum())
            self.weights = np.where(counts > 0, weights, average)

    def numeric(self, value: float | None) -> float:
        assert isinstance(self.column, NumericColumn)
        column = self.column
        columns = column.transform(column.fill if value is None else value)
        if column.has_missing:
            columns.append(1.0 if value is None else 0.0)
        return float(np.dot(self.weights, columns))

    def reference(self) -> float:
        """The contribution the rules count as zero points."""
        column = self.column
        if isinstance(column, CategoricalColumn):
            return float(min(self.weights))
        if column.field.startswith(EVENTS):
            return self.numeric(0)
        bins = [self.numeric(v) for v in column.typical]
        return bins[0] if column.field == RECENCY or bins[-1] >= bins[0] else bins[-1]


def _limit(column: NumericColumn) -> int:
    return max(1, round(column.cap))


def as_rules(artefact: Artefact, *, name: str = "predictive-rules", budget: float = 100) -> dict:
    """A `{models: [...]}` dict for `parse_models`, from a logistic-regression artefact."""
    if artefact.algorithm != "logreg":
        raise ValueError(
            f"--as-rules needs a logistic regression (this model is {artefact.algorithm}): "
            f"train with --algorithm logreg"
        )
    estimator = artefact.estimator
    coef = np.asarray(estimator.coef_[0], dtype=float)
    fields = [
        _Field(column, coef[start:stop])
        for column, (start, stop) in zip(artefact.spec.columns, artefact.spec.slices, strict=True)
    ]
    base = float(estimator.intercept_[0]) + sum(f.reference() for f in fields)
    spread = artefact.logit_range[1] - base
    scale = budget / spread if spread > 0 else 1.0

    def points(p: float) -> int:
        return round(scale * (logit(p) - base))

    fit: list[Rule] = []
    engagement: list[Rule] = []
    inactivity: list[dict[str, float]] = []
    for f in fields:
        if isinstance(f.column, CategoricalColumn):
            fit.extend(_categorical_rules(f, f.column, scale))
        elif f.column.field.startswith(EVENTS):
            engagement.extend(_event_rules(f, f.column, scale))
        elif f.column.field == RECENCY:
            inactivity = _inactivity(f, f.column, scale)
        else:
            fit.extend(_numeric_rules(f, f.column, scale))
    hot, warm = points(HOT), points(WARM)
    model: dict[str, Any] = {
        "name": name,
        "description": _description(artefact, scale),
        "fit": {"rules": fit},
        "engagement": {"rules": engagement},
        "tiers": [
            {"name": "hot", "min": max(hot, warm + 1), "color": "#d7301f"},
            {"name": "warm", "min": warm, "color": "#fc8d59"},
            {"name": "cold", "color": "#4575b4"},
        ],
        "qualified": {"total": points(QUALIFIED), "release_below": points(RELEASE)},
    }
    if inactivity:
        model["engagement"]["decay"] = {"inactivity": inactivity}
    return {"models": [model]}


def _description(artefact: Artefact, scale: float) -> str:
    return (
        f"Calibrated by `leadhub train --as-rules` on {artefact.outcomes} decided leads "
        f"({artefact.converted} converted) on {artefact.trained_at:%Y-%m-%d} from predictive "
        f"model v{artefact.version} (5-fold AUC {artefact.cv_auc:.3f}). About {scale:.1f} points "
        f"per unit of log-odds: hot is about a {HOT:.0%} chance of converting, warm {WARM:.0%}, "
        f"qualified {QUALIFIED:.0%}."
    )


def _categorical_rules(f: _Field, column: CategoricalColumn, scale: float) -> list[Rule]:
    label = field_label(column.field)
    ref = f.reference()
    pts = [round(scale * (w - ref)) for w in f.weights]
    rules: list[Rule] = []
    for value, p in zip(column.labels, pts, strict=False):
        if p:
            rules.append(_rule(f"{label} is {value}", column.field, "equals", value, p))
    other, missing = pts[-2], pts[-1]
    if other:
        known = [*column.labels, *column.placeholders]
        rule_op, operand = ("not_in", known) if known else ("exists", True)
        rules.append(_rule(f"{label} is another value", column.field, rule_op, operand, other))
    if missing:
        rules.append(_rule(f"{label} not given", column.field, "exists", False, missing))
        if column.placeholders:
            where = f"{label} is {'/'.join(column.placeholders)}"
            rules.append(_rule(where, column.field, "in", list(column.placeholders), missing))
    return rules


def _numeric_rules(f: _Field, column: NumericColumn, scale: float) -> list[Rule]:
    label = field_label(column.field)
    ref = f.reference()
    totals = [round(scale * (f.numeric(v) - ref)) for v in column.typical]
    rules: list[Rule] = []
    if totals[-1] >= totals[0]:  # more is better: each threshold adds its step
        for i, edge in enumerate(column.edges, start=1):
            if totals[i] != totals[i - 1]:
                name = f"{label} at least {_num(edge)}"
                rules.append(_rule(name, column.field, "gte", edge, totals[i] - totals[i - 1]))
    else:  # less is better: each threshold below adds its step
        for i, edge in enumerate(column.edges, start=1):
            if totals[i - 1] != totals[i]:
                name = f"{label} below {_num(edge)}"
                rules.append(_rule(name, column.field, "lt", edge, totals[i - 1] - totals[i]))
    if column.has_missing:
        missing = round(scale * (f.numeric(None) - ref))
        if missing:
            rules.append(_rule(f"{label} not given", column.field, "exists", False, missing))
    return rules


def _event_rules(f: _Field, column: NumericColumn, scale: float) -> list[Rule]:
    kind = column.field.removeprefix(EVENTS)
    limit = _limit(column)
    zero = f.numeric(0)
    first = round(scale * (f.numeric(1) - zero))
    if limit == 1:
        return [_event(f"{kind}", kind, first, 1)] if first else []
    upto = round(scale * (f.numeric(limit) - zero))
    each = round((upto - first) / (limit - 1))
    rules = []
    if first - each:
        rules.append(_event(f"First {kind}", kind, first - each, 1))
    if each:
        rules.append(_event(f"{kind} (each, up to {limit})", kind, each, limit))
    return rules


def _inactivity(f: _Field, column: NumericColumn, scale: float) -> list[dict[str, float]]:
    fresh = f.numeric(column.typical[0])
    steps = []
    for i, days in enumerate(column.edges, start=1):
        minus = round(scale * (fresh - f.numeric(column.typical[i])))
        if minus > 0:
            steps.append({"days": days, "minus": minus})  # edges ascend: steps do too
    return steps


def _rule(name: str, field: str, op: str, operand: Any, points: int) -> Rule:
    return {"name": name, "field": field, op: operand, "points": points}


def _event(name: str, kind: str, points: int, limit: int) -> Rule:
    return {"name": name, "event": kind, "points": points, "limit": limit}


def _num(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else str(value)
