"""Checks of meaning: each model below has the right shape and does nothing or harm when scored."""

from __future__ import annotations

from typing import Any

from core.records import ACTIVITY_TYPES, LEAD_FIELDS
from scoring.validate import Problem, check_models, did_you_mean
from tests.scoring.helpers import act, model, score


def problems(**spec: Any) -> list[Problem]:
    return check_models([model(**spec)], events=ACTIVITY_TYPES, fields=LEAD_FIELDS)


def errors(**spec: Any) -> dict[str, str]:
    return {p.key: p.message for p in problems(**spec) if p.severity == "error"}


def test_a_sound_model_has_no_problems() -> None:
    spec = {
        "fit": {
            "max": 60,
            "rules": [{"name": "Size", "field": "company_size", "gt": 100, "points": 10}],
        },
        "engagement": {
            "rules": [{"name": "Webinar", "event": "webinar_attended", "points": 15}],
            "decay": {"inactivity": [{"days": 30, "minus": 15}, {"days": 60, "minus": 30}]},
        },
        "tiers": [{"name": "hot", "min": 70}, {"name": "cold"}],
        "qualified": {"total": 70},
        "max": 100,
    }
    assert problems(**spec) == []


def test_an_unknown_event_type_is_named_with_the_type_it_resembles() -> None:
    spec = {
        "engagement": {"rules": [{"name": "Webinar", "event": "webinar_atended", "points": 15}]}
    }
    # The rule never fires: the scorer sees no activity of that type.
    assert score(model(**spec), [act("webinar_attended", 1)]).engagement == 0
    message = errors(**spec)["models[0].engagement.rules[0] (Webinar).event"]
    assert "unknown event type 'webinar_atended' (did you mean 'webinar_attended'?)" in message


def test_custom_event_types_are_allowed() -> None:
    spec = {
        "engagement": {"rules": [{"name": "Call", "event": "custom:call_completed", "points": 5}]}
    }
    assert problems(**spec) == []


def test_a_misspelt_field_is_an_error_and_an_unknown_one_a_warning() -> None:
    rules = [
        {"name": "Size", "field": "compnay_size", "gt": 100, "points": 10},
        {"name": "Budget", "field": "budget", "equals": "big", "points": 5},
        {"name": "Explicit", "field": "custom.budget", "equals": "big", "points": 5},
    ]
    # The misspelt rule never matches a lead that has the field it meant.
    assert score(model(fit={"rules": rules[:1]}), company_size=500).fit == 0
    found = problems(fit={"rules": rules}, segment={"contry": "US"})
    by_key = {p.key: p for p in found}
    assert set(by_key) == {
        "models[0].fit.rules[0] (Size).field",
        "models[0].fit.rules[1] (Budget).field",
        "models[0].segment.contry",
    }
    size = by_key["models[0].fit.rules[0] (Size).field"]
    assert size.severity == "error" and "did you mean 'company_size'?" in size.message
    assert by_key["models[0].segment.contry"].severity == "error"
    assert "did you mean 'country'?" in by_key["models[0].segment.contry"].message
    assert by_key["models[0].fit.rules[1] (Budget).field"].severity == "warning"


def test_a_negative_cap_is_an_error_for_each_section() -> None:
    spec = {"fit": {"max": -1}, "engagement": {"max": -10}, "max": -5}
    # What the check prevents: a lead with no activity at all gets engagement -10.
    assert score(model(engagement={"max": -10})).engagement == -10
    assert set(errors(**spec)) == {
        "models[0].fit.max",
        "models[0].engagement.max",
        "models[0].max",
    }


def test_a_lowest_tier_with_a_min_leaves_a_gap_unless_the_total_has_that_floor() -> None:
    tiers = [{"name": "hot", "min": 70}, {"name": "cold", "min": 10}]
    assert score(model(tiers=tiers)).tier is None  # a lead at 0 gets no tier
    assert "no tier catches totals below 10" in errors(tiers=tiers)["models[0].tiers[1] (cold).min"]
    assert errors(tiers=tiers, min=10) == {}


def test_decay_steps_that_do_not_grow_are_named() -> None:
    steps = [{"days": 30, "minus": 15}, {"days": 60, "minus": 30}, {"days": 90, "minus": 30}]
    found = errors(engagement={"decay": {"inactivity": steps}})
    assert list(found) == ["models[0].engagement.decay.inactivity[2].minus"]
    assert (
        "30 after 90 days is not more than the 30 after 60 days"
        in found["models[0].engagement.decay.inactivity[2].minus"]
    )


def test_an_unreachable_qualification_is_an_error() -> None:
    found = errors(max=100, qualified={"total": 120}, engagement={"max": 40})
    assert found == {"models[0].qualified.total": "120 is above `max` (100): no lead can qualify"}


def test_keys_carry_the_prefix_and_the_file() -> None:
    [found] = check_models(
        [model(engagement={"max": -1})],
        events=ACTIVITY_TYPES,
        fields=LEAD_FIELDS,
        prefix="scoring.",
        file="m.yaml",
    )
    assert found.key == "scoring.models[0].engagement.max"
    assert str(found).startswith("m.yaml: scoring.models[0].engagement.max: -1 is below zero")


def test_did_you_mean_only_suggests_close_names() -> None:
    assert did_you_mean("sorces", ["sources", "scoring"]) == " (did you mean 'sources'?)"
    assert did_you_mean("zzz", ["sources", "scoring"]) == ""
