"""The scoring-model file: YAML validated into frozen pydantic models (semantics: DESIGN §4).

    ModelFile
    └── models: [ScoringModel]          names unique
        ├── segment                     {field: value | [values]}; {} scores everyone
        ├── fit: FitSection             min, max, rules: [FitRule] (one operator each)
        ├── engagement: EngagementSection
        │   ├── rules: [EngagementRule] event, url, where, points, limit, limit_per_day, window_days
        │   └── decay: Decay            inactivity steps, half_life_days, expire_after_days
        ├── min, max                    clamp of the total
        ├── tiers: [Tier]               descending `min`; a tier without `min` is last
        ├── grade: Grade                fit {A, B, C} and engagement {1, 2, 3} thresholds
        └── qualified: Qualification    total, fit, engagement, grade, release_below

Every failure is a `ModelError` whose message names the place, e.g.
`models[0].fit.rules[2] (Decision maker): matches: invalid regex '(': missing ), ...`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scoring.operators import FIT_OPERATORS, check_operand, is_scalar, segment_test

GRADE_LETTERS = ("A", "B", "C")
GRADE_DIGITS = ("1", "2", "3")


class ModelError(ValueError):
    """A model file is invalid; `problems` lists each place and what is wrong with it."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Bounds(_Frozen):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _min_not_above_max(self) -> _Bounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


# --- fit ---------------------------------------------------------------------------------------


class FitRule(_Frozen):
    """`{name, field, <operator>: operand, points}`; stored as `op` and `value`."""

    name: str = Field(min_length=1)
    field: str = Field(min_length=1)
    op: Literal[
        "equals", "in", "not_in", "contains", "matches", "gt", "gte", "lt", "lte", "exists",
        "domain_in",
    ]  # fmt: skip
    value: Any
    points: float

    @model_validator(mode="before")
    @classmethod
    def _one_operator(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        if "op" in data:  # already in stored form (a dump being validated again)
            op = data["op"]
            rest = {k: v for k, v in data.items() if k != "value"}
        else:
            op = _pick_operator(data)
            rest = {k: v for k, v in data.items() if k != op}
        if op not in FIT_OPERATORS:
            return data  # the Literal reports it
        base_dir = (info.context or {}).get("base_dir")
        return {
            **rest,
            "op": op,
            "value": check_operand(op, data.get(op, data.get("value")), base_dir),
        }


def _pick_operator(data: dict[str, Any]) -> str:
    keys = set(data) - {"name", "field", "points"}
    unknown = sorted(keys - set(FIT_OPERATORS))
    allowed = ", ".join(FIT_OPERATORS)
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"unknown operator {names} (use one of: {allowed})")
    ops = [op for op in FIT_OPERATORS if op in keys]
    if len(ops) != 1:
        got = ", ".join(ops) or "none"
        raise ValueError(f"a rule needs exactly one operator, got {got} (one of: {allowed})")
    return ops[0]


class FitSection(_Bounds):
    rules: tuple[FitRule, ...] = ()


# --- engagement --------------------------------------------------------------------------------


class EngagementRule(_Frozen):
    """Counts a lead's activities of type `event` (optionally by url glob and properties)."""

    name: str = Field(min_length=1)
    event: str = Field(min_length=1)
    url: str | None = Field(default=None, min_length=1)
    where: dict[str, Any] = Field(default_factory=dict)
    points: float
    limit: int | None = Field(default=None, ge=1)
    limit_per_day: int | None = Field(default=None, ge=1)
    window_days: float | None = Field(default=None, gt=0)

    @field_validator("where")
    @classmethod
    def _expected_values(cls, where: dict[str, Any]) -> dict[str, Any]:
        return _check_expected(where, "where")


class InactivityStep(_Frozen):
    days: float = Field(gt=0)
    minus: float = Field(ge=0)


class Decay(_Frozen):
    """How engagement fades: subtract by inactivity, weigh by age, and/or drop old activity."""

    inactivity: tuple[InactivityStep, ...] = ()
    half_life_days: float | None = Field(default=None, gt=0)
    expire_after_days: float | None = Field(default=None, gt=0)

    @field_validator("inactivity")
    @classmethod
    def _ascending(cls, steps: tuple[InactivityStep, ...]) -> tuple[InactivityStep, ...]:
        days = [s.days for s in steps]
        if any(a >= b for a, b in itertools.pairwise(days)):
            raise ValueError(f"steps must be in ascending `days` order without repeats: {days}")
        return steps


class EngagementSection(_Bounds):
    rules: tuple[EngagementRule, ...] = ()
    decay: Decay = Field(default_factory=Decay)


# --- outputs -----------------------------------------------------------------------------------


class Tier(_Frozen):
    name: str = Field(min_length=1)
    min: float | None = None
    color: str | None = None


class Grade(_Frozen):
    """Thresholds: the letter comes from fit (A > B > C, else D), the digit from engagement."""

    fit: dict[str, float] = Field(default_factory=dict)
    engagement: dict[str, float] = Field(default_factory=dict)

    @field_validator("fit", "engagement", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _descending(self) -> Grade:
        for section, keys in (("fit", GRADE_LETTERS), ("engagement", GRADE_DIGITS)):
            thresholds: dict[str, float] = getattr(self, section)
            unknown = sorted(set(thresholds) - set(keys))
            if unknown:
                raise ValueError(f"{section}: unknown grade {unknown} (use {', '.join(keys)})")
            given = [(k, thresholds[k]) for k in keys if k in thresholds]
            for (hi, a), (lo, b) in itertools.pairwise(given):
                if a <= b:
                    raise ValueError(f"{section}: {hi} ({a:g}) must be above {lo} ({b:g})")
        return self


class Qualification(_Frozen):
    """Every given condition must hold; once qualified, stay so until total < release_below."""

    total: float | None = None
    fit: float | None = None
    engagement: float | None = None
    grade: str | None = Field(default=None, pattern=r"^[A-D][1-4]$")  # "at least this grade"
    release_below: float | None = None

    @field_validator("grade", mode="before")
    @classmethod
    def _upper(cls, grade: Any) -> Any:
        return grade.strip().upper() if isinstance(grade, str) else grade

    @model_validator(mode="after")
    def _consistent(self) -> Qualification:
        if all(v is None for v in (self.total, self.fit, self.engagement, self.grade)):
            raise ValueError("needs at least one condition: total, fit, engagement or grade")
        if (
            self.release_below is not None
            and self.total is not None
            and self.release_below > self.total
        ):
            raise ValueError(
                f"release_below ({self.release_below:g}) must not be above total ({self.total:g})"
            )
        return self


class ScoringModel(_Bounds):
    """One scoring model; `content_hash` stamps every score it produces."""

    name: str = Field(min_length=1)
    description: str | None = None
    segment: dict[str, Any] = Field(default_factory=dict)
    fit: FitSection = Field(default_factory=FitSection)
    engagement: EngagementSection = Field(default_factory=EngagementSection)
    tiers: tuple[Tier, ...] = ()
    grade: Grade | None = None
    qualified: Qualification | None = None

    @field_validator("segment")
    @classmethod
    def _segment_values(cls, segment: dict[str, Any]) -> dict[str, Any]:
        return _check_expected(segment, "segment")

    @field_validator("tiers")
    @classmethod
    def _tiers_descending(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tier name in {names}")
        for i, tier in enumerate(tiers):
            if tier.min is None and i != len(tiers) - 1:
                raise ValueError(
                    f"tier {tier.name} has no `min`, so it catches the rest: put it last"
                )
        ranked = [t for t in tiers if t.min is not None]
        for upper, lower in itertools.pairwise(ranked):
            assert upper.min is not None and lower.min is not None
            if upper.min <= lower.min:
                raise ValueError(
                    f"tiers go from the top down: {upper.name} (min {upper.min:g}) must be above "
                    f"{lower.name} (min {lower.min:g})"
                )
        return tiers

    @model_validator(mode="after")
    def _grade_for_qualified(self) -> ScoringModel:
        if self.qualified and self.qualified.grade and self.grade is None:
            raise ValueError("qualified.grade needs a `grade:` block with thresholds")
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with `update`, its content hash is computed afresh (not the cached one)."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("content_hash", None)
        return copied

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the validated model (domain files resolved)."""
        canonical = json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class ModelFile(_Frozen):
    """A model file: `models:` with one or more uniquely named models."""

    models: tuple[ScoringModel, ...]

    @field_validator("models", mode="before")
    @classmethod
    def _not_empty(cls, models: Any) -> Any:
        # Checked before the items, so that a file whose models all fail does not also read "empty".
        if isinstance(models, (list, tuple)) and not models:
            raise ValueError("needs at least one model")
        return models

    @model_validator(mode="after")
    def _unique_names(self) -> ModelFile:
        first: dict[str, int] = {}
        for i, model in enumerate(self.models):
            if model.name in first:
                raise ValueError(
                    f"models[{i}].name: duplicate model name {model.name!r} "
                    f"(also models[{first[model.name]}])"
                )
            first[model.name] = i
        return self


def _check_expected(entries: dict[str, Any], where: str) -> dict[str, Any]:
    for key, value in entries.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or not all(map(is_scalar, values)):
            raise ValueError(f"{where}.{key}: expected a value or a non-empty list of values")
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in entries.items()}


# --- loading -----------------------------------------------------------------------------------


def parse_models(
    data: Any, base_dir: Path | None = None, source: str = "<inline>"
) -> list[ScoringModel]:
    """Validate a `{models: [...]}` mapping; file paths in rules resolve against `base_dir`."""
    if not isinstance(data, dict):
        raise ModelError(source, ["expected a mapping with `models:`"])
    try:
        parsed = ModelFile.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ModelError(source, [_describe(err, data) for err in exc.errors()]) from None
    return list(parsed.models)


def load_model_file(path: Path) -> list[ScoringModel]:
    """Read and validate a YAML model file (raises ModelError, or OSError if unreadable)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelError(str(path), [yaml_problem(exc)]) from None
    return parse_models(data, base_dir=path.parent, source=str(path))


def yaml_problem(exc: yaml.YAMLError) -> str:
    """`line 12, column 5: invalid YAML: <problem> (<context> at line 11)` for a parse error.

    PyYAML counts lines and columns from 0 and names the stream `<unicode string>` when it was
    given text; people count from 1 and want their file named, which the caller does.
    """
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"invalid YAML: {exc}"
    mark = exc.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context} at line {exc.context_mark.line + 1})"
    elif exc.context:
        text += f" ({exc.context})"
    return text


def segment_matches(model: ScoringModel, fields: Mapping[str, Any]) -> bool:
    """Whether a lead is in the model's segment (every entry holds; `{}` matches everyone)."""
    test = _SEGMENTS.get(model.content_hash)
    if test is None:
        test = _SEGMENTS[model.content_hash] = segment_test(model.segment)
    return test(fields)


# Compiled once per model content: the scorer asks this for every lead and model.
_SEGMENTS: dict[str, Callable[[Mapping[str, Any]], bool]] = {}


def _describe(err: Any, data: Any) -> str:
    """`models[0].fit.rules[2] (Decision maker): <message>` from a pydantic error and the input."""
    parts: list[str] = []
    label_at, label = -1, ""
    node = data
    loc = err["loc"]
    for i, key in enumerate(loc):
        if isinstance(key, int):
            parts.append(f"[{key}]")
            node = node[key] if isinstance(node, list) and -len(node) <= key < len(node) else None
            if (
                isinstance(node, dict)
                and isinstance(node.get("name"), str)
                and node["name"].strip()
            ):
                label_at, label = len(parts), f" ({node['name']})"
        elif isinstance(node, dict) and key in node:
            parts.append(f".{key}" if parts else key)
            node = node[key]
        elif i == len(loc) - 1 and err["type"] in ("missing", "extra_forbidden"):
            parts.append(f".{key}" if parts else str(key))
    if label_at >= 0:
        parts.insert(label_at, label)
    message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    message = message.replace("a valid tuple", "a list")  # YAML users write lists
    where = "".join(parts)
    return f"{where}: {message}" if where else message
