"""Fit rules: each operator, missing fields, custom fields and the fit clamp (DESIGN §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scoring.model import parse_models
from tests.scoring.helpers import entries, model, score


def fit_of(rule: dict[str, Any], **fields: Any) -> float:
    """The fit of a lead under a model with one 10-point rule."""
    m = model(fit={"rules": [{"name": "r", "points": 10, **rule}]})
    return score(m, **fields).fit


@pytest.mark.parametrize(
    ("rule", "fields", "fit"),
    [
        ({"field": "country", "equals": "US"}, {"country": "us "}, 10),  # case and space
        ({"field": "country", "equals": "US"}, {"country": "USA"}, 0),
        ({"field": "company_size", "equals": 100}, {"company_size": "100"}, 10),
        ({"field": "company_size", "equals": 100}, {"company_size": 100.0}, 10),
        ({"field": "custom.newsletter", "equals": True}, {"custom": {"newsletter": True}}, 10),
        ({"field": "country", "in": ["US", "GB"]}, {"country": "gb"}, 10),
        ({"field": "country", "in": ["US", "GB"]}, {"country": "FR"}, 0),
        ({"field": "country", "not_in": ["US", "GB"]}, {"country": "FR"}, 10),
        ({"field": "country", "not_in": ["US", "GB"]}, {"country": "US"}, 0),
        ({"field": "job_title", "contains": "market"}, {"job_title": "Head of Marketing"}, 10),
        ({"field": "job_title", "contains": "sales"}, {"job_title": "Head of Marketing"}, 0),
        ({"field": "job_title", "matches": r"\bVP\b"}, {"job_title": "VP Sales"}, 10),
        ({"field": "job_title", "matches": r"\bVP\b"}, {"job_title": "vp sales"}, 0),  # regex case
        ({"field": "job_title", "matches": r"(?i)\bvp\b"}, {"job_title": "VP Sales"}, 10),
        ({"field": "company_size", "gt": 100}, {"company_size": 101}, 10),
        ({"field": "company_size", "gt": 100}, {"company_size": 100}, 0),
        ({"field": "company_size", "gte": 100}, {"company_size": 100}, 10),
        ({"field": "company_size", "lt": 10}, {"company_size": 9}, 10),
        ({"field": "company_size", "lt": 10}, {"company_size": 10}, 0),
        ({"field": "company_size", "lte": 10}, {"company_size": 10}, 10),
        ({"field": "annual_revenue", "gte": 1000}, {"annual_revenue": "1,200"}, 10),  # coerced
        ({"field": "annual_revenue", "gte": 1000}, {"annual_revenue": "a lot"}, 0),
        ({"field": "company_size", "gt": 0}, {"company_size": True}, 0),  # a flag is no number
        ({"field": "phone", "exists": True}, {"phone": "+1 555"}, 10),
        ({"field": "phone", "exists": True}, {"phone": "  "}, 0),
        ({"field": "phone", "exists": False}, {"phone": None}, 10),
        ({"field": "phone", "exists": False}, {}, 10),
        ({"field": "phone", "exists": False}, {"phone": "+1 555"}, 0),
        ({"field": "email", "domain_in": ["acme.com"]}, {"email": "Ann@ACME.com"}, 10),
        ({"field": "email", "domain_in": ["acme.com"]}, {"email": "ann@eu.acme.com"}, 10),
        ({"field": "email", "domain_in": ["acme.com"]}, {"email": "ann@notacme.com"}, 0),
        ({"field": "email", "domain_in": "@free_email"}, {"email": "bob@gmail.com"}, 10),
        ({"field": "email", "domain_in": "@free_email"}, {"email": "bob@yahoo.co.uk"}, 10),
        ({"field": "email", "domain_in": "@free_email"}, {"email": "bob@acme.com"}, 0),
        ({"field": "email", "domain_in": "@disposable_email"}, {"email": "x@mailinator.com"}, 10),
    ],
)
def test_operators(rule: dict[str, Any], fields: dict[str, Any], fit: float) -> None:
    assert fit_of(rule, **fields) == fit


@pytest.mark.parametrize(
    "rule",
    [
        {"equals": "x"},
        {"in": ["x"]},
        {"not_in": ["x"]},
        {"contains": "x"},
        {"matches": ".*"},
        {"gt": -1},
        {"lte": 1e9},
        {"exists": True},
        {"domain_in": ["x.com"]},
    ],
)
@pytest.mark.parametrize("value", [None, "", "   ", [], "MISSING"])
def test_a_missing_or_empty_field_never_matches(rule: dict[str, Any], value: Any) -> None:
    fields = {} if value == "MISSING" else {"industry": value}
    assert fit_of({"field": "industry", **rule}, **fields) == 0


def test_list_values_match_when_any_element_does() -> None:
    interests = {"custom": {"interests": ["Analytics", "CRM"]}}
    assert fit_of({"field": "custom.interests", "contains": "crm"}, **interests) == 10
    assert fit_of({"field": "custom.interests", "in": ["crm", "erp"]}, **interests) == 10
    assert fit_of({"field": "custom.interests", "not_in": ["crm"]}, **interests) == 0
    assert fit_of({"field": "custom.interests", "not_in": ["erp"]}, **interests) == 10


def test_custom_fields_by_prefix_and_by_bare_name() -> None:
    lead = {"industry": "retail", "custom": {"budget": "50000", "industry": "software"}}
    assert fit_of({"field": "custom.budget", "gte": 10000}, **lead) == 10
    assert fit_of({"field": "budget", "gte": 10000}, **lead) == 10  # not a lead field: custom
    assert fit_of({"field": "industry", "equals": "software"}, **lead) == 0  # lead field first
    assert fit_of({"field": "custom.industry", "equals": "software"}, **lead) == 10
    assert fit_of({"field": "custom.budget", "gte": 1}, custom=None) == 0


def test_domain_file_resolves_against_the_model_file_directory(tmp_path: Path) -> None:
    (tmp_path / "competitors.txt").write_text("# rivals\nRival.com\n\n@other.io  # acquired\n")
    rule = {"name": "Competitor", "field": "email", "domain_in": "competitors.txt", "points": -30}
    data = {"models": [{"name": "m", "fit": {"rules": [rule]}}]}
    m = parse_models(data, base_dir=tmp_path)[0]
    assert m.fit.rules[0].value == ("other.io", "rival.com")
    assert score(m, email="eve@rival.com").fit == -30
    assert score(m, email="eve@sales.other.io").fit == -30
    assert score(m, email="eve@friend.com").fit == 0


def test_fit_sums_matching_rules_and_records_each_in_the_ledger() -> None:
    m = model(
        fit={
            "rules": [
                {
                    "name": "Decision maker",
                    "field": "job_title",
                    "matches": "(?i)director",
                    "points": 20,
                },
                {"name": "Big", "field": "company_size", "gt": 100, "points": 10},
                {"name": "Free email", "field": "email", "domain_in": "@free_email", "points": -10},
                {"name": "Outside region", "field": "country", "not_in": ["US"], "points": -15},
            ]
        }
    )
    result = score(
        m, job_title="Sales Director", company_size=250, email="d@gmail.com", country="US"
    )
    assert result.fit == 20
    assert entries(result, "rule") == {
        "Decision maker": (1, 20),
        "Big": (1, 10),
        "Free email": (1, -10),
    }


def test_fit_is_clamped_and_the_clamp_is_in_the_ledger() -> None:
    rules = [
        {"name": "A", "field": "country", "exists": True, "points": 40},
        {"name": "B", "field": "industry", "exists": True, "points": 30},
        {"name": "C", "field": "phone", "exists": True, "points": -90},
    ]
    m = model(fit={"min": -20, "max": 60, "rules": rules})
    high = score(m, country="US", industry="saas")
    assert high.fit == 60
    assert entries(high, "clamp") == {"Fit max 60": (1, -10)}
    low = score(m, phone="555")
    assert low.fit == -20
    assert entries(low, "clamp") == {"Fit min -20": (1, 70)}
    assert low.total == -20


def test_fractional_points_round_to_cents() -> None:
    rules = [{"name": f"r{i}", "field": "country", "exists": True, "points": 0.1} for i in range(3)]
    result = score(model(fit={"rules": rules}), country="US")
    assert result.fit == 0.3
    assert result.total == 0.3
