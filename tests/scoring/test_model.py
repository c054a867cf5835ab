"""The model file: validation errors that name the place, content hash, loading, segments."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from scoring.model import ModelError, ScoringModel, load_model_file, parse_models, segment_matches

EXAMPLE = Path(__file__).resolve().parents[2] / "scoring" / "examples" / "default.yaml"

BASE: dict[str, Any] = {
    "name": "default",
    "fit": {
        "rules": [
            {"name": "Big", "field": "company_size", "gt": 100, "points": 10},
            {"name": "Free email", "field": "email", "domain_in": "@free_email", "points": -10},
            {
                "name": "Decision maker",
                "field": "job_title",
                "matches": "(?i)director",
                "points": 20,
            },
        ]
    },
    "engagement": {
        "rules": [
            {"name": "Pricing page", "event": "page_viewed", "url": "*/pricing*", "points": 25}
        ],
        "decay": {"inactivity": [{"days": 30, "minus": 15}, {"days": 60, "minus": 30}]},
    },
    "tiers": [{"name": "hot", "min": 70}, {"name": "warm", "min": 40}, {"name": "cold"}],
    "grade": {"fit": {"A": 45, "B": 30, "C": 15}, "engagement": {1: 30, 2: 20, 3: 10}},
    "qualified": {"total": 70, "release_below": 60},
}


def parse(changes: dict[str, Any] | None = None, **top: Any) -> list[ScoringModel]:
    spec = copy.deepcopy(BASE)
    for path, value in (changes or {}).items():
        node: Any = spec
        *parents, last = path.split("/")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return parse_models({"models": [spec], **top})


def error(changes: dict[str, Any]) -> str:
    with pytest.raises(ModelError) as caught:
        parse(changes)
    return str(caught.value)


def test_the_base_model_is_valid() -> None:
    [m] = parse()
    assert m.name == "default"
    assert m.fit.rules[2].op == "matches"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"fit/rules/2/matches": "(director"},
            "models[0].fit.rules[2] (Decision maker): matches: invalid regex '(director'",
        ),
        (
            {"fit/rules/0": {"name": "Big", "field": "company_size", "greater": 100, "points": 10}},
            "models[0].fit.rules[0] (Big): unknown operator 'greater'",
        ),
        (
            {"fit/rules/0": {"name": "Big", "field": "company_size", "points": 10}},
            "models[0].fit.rules[0] (Big): a rule needs exactly one operator, got none",
        ),
        (
            {
                "fit/rules/0": {
                    "name": "Big",
                    "field": "company_size",
                    "gt": 1,
                    "lt": 9,
                    "points": 1,
                }
            },
            "models[0].fit.rules[0] (Big): a rule needs exactly one operator, got gt, lt",
        ),
        ({"fit/rules/0/gt": "many"}, "models[0].fit.rules[0] (Big): gt: expected a number"),
        (
            {"fit/rules/1/domain_in": "@free_mail"},
            "models[0].fit.rules[1] (Free email): domain_in: no built-in list '@free_mail'",
        ),
        (
            {"fit/rules/1/domain_in": "nowhere.txt"},
            "models[0].fit.rules[1] (Free email): domain_in: cannot read domain file",
        ),
        ({"fit/rules/0/points": "ten"}, "models[0].fit.rules[0] (Big).points:"),
        (
            {"engagement/rules/0/lmit": 3},
            "models[0].engagement.rules[0] (Pricing page).lmit: unknown key",
        ),
        ({"engagement/rules/0/limit": 0}, "models[0].engagement.rules[0] (Pricing page).limit:"),
        (
            {"engagement/rules/0/where": {"form": {"id": 1}}},
            "models[0].engagement.rules[0] (Pricing page).where: where.form: expected a value",
        ),
        (
            {"engagement/decay/inactivity": [{"days": 60, "minus": 30}, {"days": 30, "minus": 15}]},
            "(default).engagement.decay.inactivity: steps must be in ascending `days` order",
        ),
        (
            {"engagement/decay/half_life_days": 0},
            "models[0] (default).engagement.decay.half_life_days:",
        ),
        (
            {"tiers": [{"name": "warm", "min": 40}, {"name": "hot", "min": 70}]},
            "models[0] (default).tiers: tiers go from the top down: warm (min 40) must be above",
        ),
        (
            {"tiers": [{"name": "cold"}, {"name": "hot", "min": 70}]},
            "models[0] (default).tiers: tier cold has no `min`, so it catches the rest: put it",
        ),
        ({"tiers/1/colour": "red"}, "models[0].tiers[1] (warm).colour: unknown key"),
        (
            {"grade/fit": {"A": 30, "B": 45}},
            "models[0] (default).grade: fit: A (30) must be above B (45)",
        ),
        (
            {"grade/engagement": {1: 10, 2: 20, 3: 5}},
            "models[0] (default).grade: engagement: 1 (10) must be above 2 (20)",
        ),
        ({"grade/fit": {"A+": 50}}, "models[0] (default).grade: fit: unknown grade ['A+']"),
        ({"qualified": {"release_below": 60}}, "models[0] (default).qualified: needs at least one"),
        (
            {"qualified": {"total": 70, "release_below": 80}},
            "models[0] (default).qualified: release_below (80) must not be above total (70)",
        ),
        ({"qualified/grade": "E5"}, "models[0] (default).qualified.grade:"),
        ({"fit/max": 10, "fit/min": 20}, "models[0] (default).fit: min (20) is above max (10)"),
        ({"segment": {"country": [{"x": 1}]}}, "segment.country: expected a value"),
        ({"name": ""}, "models[0].name: String should have at least 1 character"),
    ],
)
def test_validation_errors_name_the_place(changes: dict[str, Any], message: str) -> None:
    assert message in error(changes)


def test_missing_keys_are_named() -> None:
    spec = copy.deepcopy(BASE)
    del spec["fit"]["rules"][0]["name"]
    with pytest.raises(ModelError) as caught:
        parse_models({"models": [spec]}, source="models.yaml")
    assert str(caught.value).startswith(
        "models.yaml: models[0] (default).fit.rules[0].name: Field required"
    )


def test_qualified_grade_needs_a_grade_block() -> None:
    assert "qualified.grade needs a `grade:` block" in error(
        {"grade": None, "qualified/grade": "B2"}
    )


def test_duplicate_model_names() -> None:
    with pytest.raises(
        ModelError, match=r"models\[1\]\.name: duplicate model name 'default' \(also models\[0\]\)"
    ):
        parse_models({"models": [BASE, BASE]})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ModelError) as caught:
        parse({"fit/rules/0/gt": "x", "engagement/rules/0/limit": -1})
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize("data", [None, [], "models: x", {"models": []}, {"model": [BASE]}])
def test_the_file_must_hold_a_models_list(data: Any) -> None:
    with pytest.raises(ModelError):
        parse_models(data)


def test_load_model_file_reports_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models: [ {name: x, fit: {rules: [{name: R, field: a, matches: '['}]}} ]\n")
    with pytest.raises(
        ModelError,
        match=r"models\.yaml: models\[0\]\.fit\.rules\[0\] \(R\): matches: invalid regex",
    ):
        load_model_file(bad)
    bad.write_text("models: [ {name: x\n")
    with pytest.raises(ModelError, match="invalid YAML"):
        load_model_file(bad)
    with pytest.raises(OSError):
        load_model_file(tmp_path / "missing.yaml")


def test_the_example_model_file_loads() -> None:
    models = load_model_file(EXAMPLE)
    assert [m.name for m in models] == ["default"]
    [m] = models
    assert [t.name for t in m.tiers] == ["hot", "warm", "cold"]
    assert len(m.engagement.decay.inactivity) == 3
    assert "gmail.com" in m.fit.rules[4].value


# --- content hash ------------------------------------------------------------------------------


def test_same_content_same_hash() -> None:
    [a], [b] = parse(), parse()
    assert a.content_hash == b.content_hash
    assert len(a.content_hash) == 64
    # key order, comments, 10 vs 10.0, and whether defaults are spelled out do not matter
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    [c] = parse_models({"models": [{**reordered, "segment": {}, "max": None}]})
    assert c.content_hash == a.content_hash
    [d] = parse({"fit/rules/0/points": 10.0})
    assert d.content_hash == a.content_hash


def test_same_file_same_hash(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(EXAMPLE.read_text())
    assert (
        load_model_file(tmp_path / "m.yaml")[0].content_hash
        == load_model_file(EXAMPLE)[0].content_hash
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"fit/rules/0/points": 11},
        {"fit/rules/0/gt": 101},
        {"engagement/rules/0/url": "*/pricing/*"},
        {"engagement/decay/inactivity/0/minus": 16},
        {"tiers/0/min": 75},
        {"qualified/release_below": 55},
        {"name": "other"},
    ],
)
def test_any_semantic_change_gives_a_new_hash(changes: dict[str, Any]) -> None:
    assert parse(changes)[0].content_hash != parse()[0].content_hash


def test_editing_a_domain_file_gives_a_new_hash(tmp_path: Path) -> None:
    domains = tmp_path / "rivals.txt"
    data = {
        "models": [
            {
                "name": "m",
                "fit": {
                    "rules": [
                        {"name": "R", "field": "email", "domain_in": "rivals.txt", "points": -5}
                    ]
                },
            }
        ]
    }
    domains.write_text("rival.com\n")
    before = parse_models(data, base_dir=tmp_path)[0].content_hash
    domains.write_text("rival.com\nother.com\n")
    assert parse_models(data, base_dir=tmp_path)[0].content_hash != before


def test_model_copy_with_an_update_is_hashed_afresh() -> None:
    [m] = parse()
    stale = m.content_hash
    changed = m.model_copy(update={"max": 50})
    assert changed.content_hash != stale
    assert m.model_copy().content_hash == stale
    assert ScoringModel.model_validate(m.model_dump()).content_hash == stale


# --- segments ----------------------------------------------------------------------------------


def test_segment_matches() -> None:
    [everyone] = parse()
    assert segment_matches(everyone, {})
    [m] = parse(
        {
            "segment": {
                "product_interest": ["enterprise", "Scale"],
                "country": "US",
                "custom.tier": "gold",
            }
        }
    )
    lead = {"product_interest": "scale", "country": "us", "custom": {"tier": "Gold"}}
    assert segment_matches(m, lead)
    assert not segment_matches(m, {**lead, "country": "GB"})
    assert not segment_matches(m, {**lead, "product_interest": None})
    assert not segment_matches(m, {**lead, "custom": {}})
