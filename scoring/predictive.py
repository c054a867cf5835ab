"""Predictive scoring: a scikit-learn model trained on the hub's own outcomes. Pure: no I/O.

    LeadInput (fields, activities, decision point, converted?)
      → lead_features   fields (custom ones as `custom.<key>`), activity counts and recency as of
                        the decision point
      → FeatureSpec     learnt from the training rows (`scoring.predictive_features`):
                        numeric columns (outliers held to the 1st/99th percentile, linear and
                        log1p, median-imputed with a missing flag, standardized) and categorical
                        ones (one-hot; rare values bucketed as `(other)`; blank and `Select`-style
                        placeholders as `(missing)`)
      → train           5-fold stratified CV AUC and a calibration table, then a fit on every row
      → Artefact        estimator + spec + metadata, versioned, serialized to bytes
      → predict         0..100 (the probability in percent) with the top factors of each lead

`scoring.predictive_rules.as_rules` turns a logistic-regression artefact into a points model file.
Factors are log-odds effects: how much a lead's value of a field moves its log-odds from the
average training lead (the field's columns set to their training mean).
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np

from scoring.engine import OUTBOUND_TYPES, Activity
from scoring.predictive_features import (
    EVENTS,
    RECENCY,
    FeatureSpec,
    describe_value,
    field_label,
)

Algorithm = Literal["logreg", "gboost"]
ALGORITHMS: tuple[Algorithm, ...] = ("logreg", "gboost")
FORMAT = 1
DEFAULT_MIN_OUTCOMES = 500
# Fields that name a person rather than describe a lead; never features.
IDENTIFIERS = frozenset({"email", "phone", "first_name", "last_name", "company"})


class InsufficientData(ValueError):
    """Too few decided outcomes (or too few of one class) to train an honest model."""


@dataclass(frozen=True, slots=True)
class LeadInput:
    """A lead as of its decision point `at`; `converted` is the label (None to predict)."""

    lead_id: int
    fields: Mapping[str, Any]
    activities: Sequence[Activity]
    at: datetime
    converted: bool | None = None


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Leads whose out-of-fold probability fell in [low, high), and how many converted."""

    low: float
    high: float
    leads: int
    predicted: float
    observed: float


@dataclass(frozen=True, slots=True)
class Factor:
    field: str
    value: str
    effect: float  # log-odds, relative to the average training lead

    def __str__(self) -> str:
        return f"{field_label(self.field)}: {self.value} ({self.effect:+.2f})"


@dataclass(frozen=True, slots=True)
class Prediction:
    lead_id: int
    score: int  # 0..100: the probability of converting, in percent
    probability: float
    factors: tuple[Factor, ...]

    @property
    def reason(self) -> str:
        return "; ".join(str(f) for f in self.factors)


@dataclass(frozen=True)
class Artefact:
    """A trained model with what it needs to predict and to explain itself."""

    algorithm: Algorithm
    trained_at: datetime
    outcomes: int
    converted: int
    cv_auc: float
    fold_aucs: tuple[float, ...]
    calibration: tuple[CalibrationBin, ...]
    spec: FeatureSpec
    estimator: Any
    version: int = 0
    format: int = FORMAT
    exclude: tuple[str, ...] = field(default=())
    # The 1st and 99th percentiles of the training leads' log-odds (to scale points rules).
    logit_range: tuple[float, float] = (0.0, 0.0)
    fit_auc: float = 0.0  # on the training rows themselves: what a points version is held to

    @property
    def features(self) -> list[str]:
        return self.spec.names

    def with_version(self, version: int) -> Artefact:
        return replace(self, version=version)

    def metadata(self) -> dict[str, Any]:
        """Everything but the estimator, as JSON-ready values."""
        return {
            "version": self.version,
            "format": self.format,
            "algorithm": self.algorithm,
            "trained_at": self.trained_at.isoformat(),
            "outcomes": self.outcomes,
            "converted": self.converted,
            "cv_auc": round(self.cv_auc, 4),
            "fit_auc": round(self.fit_auc, 4),
            "fold_aucs": [round(a, 4) for a in self.fold_aucs],
            "calibration": [
                {
                    "low": b.low,
                    "high": b.high,
                    "leads": b.leads,
                    "predicted": round(b.predicted, 4),
                    "observed": round(b.observed, 4),
                }
                for b in self.calibration
            ],
            "features": self.features,
            "exclude": list(self.exclude),
        }

    def to_bytes(self) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=3)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> Artefact:
        """Load an artefact this hub stored (joblib: only ever load your own bytes)."""
        import joblib

        loaded = joblib.load(io.BytesIO(data))
        if not isinstance(loaded, Artefact) or loaded.format != FORMAT:
            raise ValueError("not a predictive model artefact of this leadhub version; run train")
        return loaded


def lead_features(row: LeadInput) -> dict[str, Any]:
    """The raw feature values of one lead: fields (custom ones as `custom.<key>`), the count of
    each activity type and the days since the last inbound activity, as of `row.at`."""
    raw: dict[str, Any] = {}
    for key, value in row.fields.items():
        if key == "custom":
            for name, item in (value or {}).items():
                raw[f"custom.{name}"] = item
        elif key not in IDENTIFIERS:
            raw[key] = value
    seen = [a for a in row.activities if a.occurred_at <= row.at]
    for kind, count in Counter(a.type for a in seen).items():
        raw[EVENTS + kind] = count
    inbound = [a.occurred_at for a in seen if a.type not in OUTBOUND_TYPES]
    if inbound:
        raw[RECENCY] = (row.at - max(inbound)).total_seconds() / 86400
    return raw


def _estimator(algorithm: Algorithm, seed: int) -> Any:
    # scikit-learn takes seconds to import: only the commands that train or predict pay for it
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if algorithm == "logreg":
        return LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=1000)
    if algorithm == "gboost":
        return HistGradientBoostingClassifier(
            max_iter=300,
            learning_rate=0.05,
            max_leaf_nodes=15,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    raise ValueError(f"unknown algorithm {algorithm!r} (use one of: {', '.join(ALGORITHMS)})")


def check_enough(labels: Sequence[bool], min_outcomes: int, folds: int) -> None:
    """Raise InsufficientData unless there are `min_outcomes` labels and `folds` of each class."""
    converted = sum(labels)
    if len(labels) < min_outcomes:
        raise InsufficientData(
            f"only {len(labels)} decided outcome(s) (won, converted or lost); training needs at "
            f"least {min_outcomes} so that the model learns from your history rather than noise. "
            f"Sync outcomes from your CRM (or an outcomes CSV) and try again, or lower the "
            f"minimum with --min-outcomes."
        )
    if min(converted, len(labels) - converted) < folds:
        raise InsufficientData(
            f"{converted} converted and {len(labels) - converted} lost lead(s): each needs at "
            f"least {folds} for {folds}-fold cross-validation"
        )


def train(
    rows: Sequence[LeadInput],
    *,
    now: datetime,
    algorithm: Algorithm = "logreg",
    min_outcomes: int = DEFAULT_MIN_OUTCOMES,
    exclude: Sequence[str] = (),
    folds: int = 5,
    seed: int = 0,
) -> Artefact:
    """Cross-validate, then fit on every row. Raises InsufficientData below `min_outcomes`.

    Example: `train(rows, now=datetime.now(UTC)).cv_auc`
    """
    from sklearn.metrics import roc_auc_score

    labels = [bool(r.converted) for r in rows if r.converted is not None]
    check_enough(labels, min_outcomes, folds)
    _estimator(algorithm, seed)  # an unknown algorithm fails before any work
    labelled = [r for r in rows if r.converted is not None]
    raws = [lead_features(r) for r in labelled]
    y = np.array(labels, dtype=int)
    skip = frozenset(exclude)
    fold_aucs, oof = _cross_validate(raws, y, algorithm, folds, seed, skip)
    spec = FeatureSpec.fit(raws, skip)
    matrix = spec.matrix(raws)
    estimator = _estimator(algorithm, seed).fit(matrix, y)
    logits = estimator.decision_function(matrix)
    low, high = np.quantile(logits, [0.01, 0.99])
    return Artefact(
        algorithm=algorithm,
        trained_at=now,
        outcomes=len(y),
        converted=int(y.sum()),
        cv_auc=float(np.mean(fold_aucs)),
        fold_aucs=tuple(fold_aucs),
        calibration=calibration(oof, y),
        spec=spec.with_baseline(matrix.mean(axis=0)),
        estimator=estimator,
        exclude=tuple(sorted(skip)),
        logit_range=(float(low), float(high)),
        fit_auc=float(roc_auc_score(y, logits)),
    )


def _cross_validate(
    raws: Sequence[dict[str, Any]],
    y: np.ndarray,
    algorithm: Algorithm,
    folds: int,
    seed: int,
    exclude: frozenset[str],
) -> tuple[list[float], np.ndarray]:
    """Fold AUCs and out-of-fold probabilities; the features are learnt inside each fold."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros(len(y))
    aucs = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
        spec = FeatureSpec.fit([raws[i] for i in train_idx], exclude)
        model = _estimator(algorithm, seed).fit(
            spec.matrix([raws[i] for i in train_idx]), y[train_idx]
        )
        oof[test_idx] = model.predict_proba(spec.matrix([raws[i] for i in test_idx]))[:, 1]
        aucs.append(float(roc_auc_score(y[test_idx], oof[test_idx])))
    return aucs, oof


def calibration(
    probabilities: np.ndarray, y: np.ndarray, bins: int = 10
) -> tuple[CalibrationBin, ...]:
    """Mean predicted probability against the observed rate, per tenth of probability."""
    found = []
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    for b in range(bins):
        members = index == b
        if members.any():
            found.append(
                CalibrationBin(
                    low=b / bins,
                    high=(b + 1) / bins,
                    leads=int(members.sum()),
                    predicted=float(probabilities[members].mean()),
                    observed=float(y[members].mean()),
                )
            )
    return tuple(found)


def predict(artefact: Artefact, rows: Sequence[LeadInput], top: int = 3) -> list[Prediction]:
    """Each lead's 0..100 score and its `top` factors by size of effect."""
    if not rows:
        return []
    spec = artefact.spec
    raws = [lead_features(r) for r in rows]
    matrix = spec.matrix(raws)
    probabilities = artefact.estimator.predict_proba(matrix)[:, 1]
    effects = _effects(artefact, matrix)
    predictions = []
    for i, row in enumerate(rows):
        order = np.argsort(-np.abs(effects[i]), kind="stable")[:top]
        factors = tuple(
            Factor(
                spec.columns[g].field,
                describe_value(spec.columns[g], raws[i]),
                round(float(effects[i, g]), 4),
            )
            for g in order
            if abs(effects[i, g]) >= 0.005
        )
        p = float(probabilities[i])
        predictions.append(Prediction(row.lead_id, round(100 * p), p, factors))
    return predictions


def _effects(artefact: Artefact, matrix: np.ndarray) -> np.ndarray:
    """(leads x fields) log-odds change from setting each field's columns to the training mean."""
    estimator = artefact.estimator
    spec = artefact.spec
    full = estimator.decision_function(matrix)
    effects = np.zeros((matrix.shape[0], len(spec.columns)))
    for g, (start, stop) in enumerate(spec.slices):
        occluded = matrix.copy()
        occluded[:, start:stop] = spec.baseline[start:stop]
        effects[:, g] = full - estimator.decision_function(occluded)
    return effects


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
