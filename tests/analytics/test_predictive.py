"""The predictive model on synthetic leads whose outcome follows their title, size, budget and
page views: it must find that, refuse to train on too little, explain each lead, and turn into a
points model file that the scoring engine reads and that ranks leads about as well."""

from __future__ import annotations

import io
import math
import random
from datetime import UTC, datetime, timedelta

import joblib
import pytest

from scoring.engine import Activity, score_lead
from scoring.model import parse_models
from scoring.predictive import (
    Artefact,
    InsufficientData,
    LeadInput,
    lead_features,
    predict,
    train,
)
from scoring.predictive_features import (
    EVENTS,
    MISSING,
    RECENCY,
    CategoricalColumn,
    FeatureSpec,
    NumericColumn,
)
from scoring.predictive_rules import as_rules
from scoring.report import auc

AT = datetime(2026, 6, 1, tzinfo=UTC)
TITLES = {"VP Sales": 2.0, "Director": 1.5, "Analyst": -0.5, "Student": -3.0}
BUDGETS = {"50k+": 1.5, "10k-50k": 0.5, "<10k": -0.5, "Select": 0.0, "": 0.0}


def synthetic(n: int = 800, seed: int = 1) -> list[LeadInput]:
    """Leads whose log-odds of converting is a sum of their title, size, budget and views."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        title = rng.choice(list(TITLES)) if i % 100 else "Intern"  # a rare title
        size = rng.choice([5, 20, 80, 300, 2000]) * rng.uniform(0.7, 1.3)
        budget = rng.choice(list(BUDGETS))
        views = rng.randint(0, 8)
        odds = TITLES.get(title, 0) + (1.0 if size > 100 else -0.5) + BUDGETS[budget]
        odds += 0.7 * min(views, 5) - 2.0
        acts = [
            Activity("page_viewed", AT - timedelta(days=rng.uniform(1, 60))) for _ in range(views)
        ]
        acts.append(Activity("page_viewed", AT + timedelta(days=1)))  # after the decision point
        fields = {
            "email": f"lead{i}@example.com",
            "job_title": title,
            "company_size": round(size),
            "custom": {"budget": budget},
        }
        converted = rng.random() < 1 / (1 + math.exp(-2 * odds))
        rows.append(LeadInput(i, fields, acts, AT, converted))
    return rows


def known_auc(scores: list[float] | list[int], labels: list[bool]) -> float:
    value = auc(scores, labels)
    assert value is not None
    return value


@pytest.fixture(scope="module")
def rows() -> list[LeadInput]:
    return synthetic()


@pytest.fixture(scope="module")
def artefact(rows: list[LeadInput]) -> Artefact:
    return train(rows, now=AT)


def test_logistic_regression_finds_the_signal(artefact: Artefact, rows: list[LeadInput]) -> None:
    assert artefact.cv_auc > 0.9
    assert len(artefact.fold_aucs) == 5 and artefact.algorithm == "logreg"
    assert artefact.outcomes == len(rows) and artefact.converted == sum(
        bool(r.converted) for r in rows
    )
    assert sum(b.leads for b in artefact.calibration) == len(rows)
    for b in artefact.calibration:
        assert b.low <= b.predicted < b.high or b.predicted == b.high == 1
    meta = artefact.metadata()
    assert {"version", "trained_at", "features", "cv_auc", "calibration"} <= set(meta)


def test_gradient_boosting_is_an_option(rows: list[LeadInput]) -> None:
    boosted = train(rows, now=AT, algorithm="gboost")
    assert boosted.cv_auc > 0.85 and boosted.algorithm == "gboost"
    with pytest.raises(ValueError, match="logistic regression"):
        as_rules(boosted)


def test_a_number_that_nearly_every_lead_shares_trains_as_one_bin(rows: list[LeadInput]) -> None:
    # A field at its lowest value for 49 leads in 50 (a rarely set revenue, a count mostly 0):
    # every quantile cut falls on that value, so the column has no edges and one bin.
    mostly_zero = [
        LeadInput(r.lead_id, {**r.fields, "annual_revenue": 0 if i % 50 else 1e6},
                  r.activities, r.at, r.converted)
        for i, r in enumerate(rows)
    ]  # fmt: skip
    trained = train(mostly_zero, now=AT)
    column = next(c for c in trained.spec.columns if c.field == "annual_revenue")
    assert isinstance(column, NumericColumn) and column.edges == ()
    assert trained.cv_auc > 0.9


def test_too_few_outcomes_is_refused_with_a_reason(rows: list[LeadInput]) -> None:
    with pytest.raises(InsufficientData, match=r"only 100 decided outcome\(s\).*at least 500"):
        train(rows[:100], now=AT)
    with pytest.raises(InsufficientData, match="--min-outcomes"):
        train(rows[:100], now=AT)
    one_class = [LeadInput(r.lead_id, r.fields, [], AT, False) for r in rows[:50]]
    with pytest.raises(InsufficientData, match="0 converted and 50 lost"):
        train(one_class, now=AT, min_outcomes=10)


def test_features_bucket_rare_values_and_treat_placeholders_as_missing(
    rows: list[LeadInput],
) -> None:
    spec = FeatureSpec.fit([lead_features(r) for r in rows])
    columns = {c.field: c for c in spec.columns}
    assert "email" not in columns  # identifies a person, says nothing of intent
    title = columns["job_title"]
    assert isinstance(title, CategoricalColumn)
    assert "intern" not in title.levels and set(title.levels) == {t.casefold() for t in TITLES}
    budget = columns["custom.budget"]
    assert isinstance(budget, CategoricalColumn) and "select" not in budget.levels
    assert budget.placeholders == ("Select",)
    assert budget.state({"custom.budget": "Select"}) == budget.state({}) == len(budget.levels) + 1
    assert isinstance(columns["company_size"], NumericColumn)
    assert isinstance(columns[EVENTS + "page_viewed"], NumericColumn)
    assert f"custom.budget={MISSING}" in spec.names
    assert "job_title" not in {
        c.field for c in FeatureSpec.fit([lead_features(r) for r in rows], ["job_title"]).columns
    }


def test_lead_features_ignore_activity_after_the_decision_point() -> None:
    acts = [
        Activity("page_viewed", AT - timedelta(days=3)),
        Activity("email_sent", AT - timedelta(days=1)),  # ours, not the lead's doing
        Activity("meeting_booked", AT + timedelta(hours=1)),
    ]
    raw = lead_features(LeadInput(1, {"custom": {"x": "1"}}, acts, AT))
    assert raw[EVENTS + "page_viewed"] == 1 and EVENTS + "meeting_booked" not in raw
    assert raw[RECENCY] == 3 and raw["custom.x"] == "1"


def test_predict_gives_0_to_100_with_top_factors(artefact: Artefact, rows: list[LeadInput]) -> None:
    predictions = predict(artefact, rows[:50])
    assert all(0 <= p.score <= 100 and p.score == round(100 * p.probability) for p in predictions)
    assert known_auc([p.score for p in predictions], [bool(r.converted) for r in rows[:50]]) > 0.85
    student = LeadInput(
        -1, {"job_title": "Student", "company_size": 5, "custom": {"budget": "<10k"}}, [], AT
    )
    vp = LeadInput(
        -2, {"job_title": "VP Sales", "company_size": 3000, "custom": {"budget": "50k+"}}, [], AT
    )
    low, high = predict(artefact, [student, vp])
    assert low.score < 20 < 60 < high.score
    assert low.factors[0].field == "job_title" and low.factors[0].effect < 0
    assert "job_title: Student" in low.reason
    # No page views at all weighs against even a VP: the factors say so.
    assert [(f.field, f.effect > 0) for f in high.factors] == [
        ("events:page_viewed", False),
        ("job_title", True),
        ("company_size", True),
    ]


def test_artefact_round_trips_through_bytes(artefact: Artefact, rows: list[LeadInput]) -> None:
    loaded = Artefact.from_bytes(artefact.with_version(7).to_bytes())
    assert loaded.version == 7 and loaded.features == artefact.features
    assert [p.score for p in predict(loaded, rows[:20])] == [
        p.score for p in predict(artefact, rows[:20])
    ]
    with pytest.raises(ValueError, match="not a predictive model"):
        Artefact.from_bytes((Artefact.to_bytes.__doc__ and b"") or _joblib_bytes({"x": 1}))


def _joblib_bytes(value: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


def test_as_rules_is_a_model_file_that_ranks_like_the_regression(
    artefact: Artefact, rows: list[LeadInput]
) -> None:
    data = as_rules(artefact, name="calibrated")
    model = parse_models(data)[0]
    assert model.name == "calibrated"
    points = [r.points for r in model.fit.rules] + [r.points for r in model.engagement.rules]
    assert all(float(p).is_integer() for p in points)
    assert {r.field for r in model.fit.rules} >= {"job_title", "company_size", "custom.budget"}
    assert {r.event for r in model.engagement.rules} == {"page_viewed"}
    assert [t.name for t in model.tiers] == ["hot", "warm", "cold"]
    scores = [score_lead(r.fields, r.activities, model, r.at).total for r in rows]
    labels = [bool(r.converted) for r in rows]
    assert known_auc(scores, labels) > artefact.fit_auc - 0.02
    student = score_lead({"job_title": "Student", "custom": {"budget": "Select"}}, [], model, AT)
    vp = score_lead({"job_title": "VP Sales", "company_size": 3000}, [], model, AT)
    assert student.total < vp.total and vp.tier != "cold"


def test_numeric_bins_of_few_distinct_values_are_never_empty() -> None:
    column = NumericColumn.fit("visits", [1.0, 2.0, 3.0] * 30 + [None, None], None)
    assert column.edges == (2.0, 3.0) and column.typical == (1.0, 2.0, 3.0)
    assert column.has_missing and column.fill == 2.0
    skewed = NumericColumn.fit("time", [0.0] * 50 + [float(v) for v in range(1, 51)], None)
    assert all(math.isfinite(t) for t in skewed.typical) and skewed.edges[0] > 0
