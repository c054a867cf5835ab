"""The fit operators: what operand each accepts, and how it compares a value with it.

Shared by fit rules, engagement `where` clauses and model segments, so "US" means the same thing
everywhere:

- text compares case-insensitively after trimming (`matches` is a plain regex: use `(?i)`);
- numbers compare as numbers, and numeric strings ("1,200") are coerced;
- a missing, None or empty value never matches, except `exists: false`;
- a list value (a multi-select custom field) matches when any element does (`not_in`: none does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from scoring.domains import resolve_domains

FIT_OPERATORS = (
    "equals",
    "in",
    "not_in",
    "contains",
    "matches",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "domain_in",
)
NUMERIC_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})

FieldGetter = Callable[[Mapping[str, Any]], Any]
ValueTest = Callable[[Any], bool]

_ABSENT = object()
_SEQUENCES = (list, tuple, set, frozenset)


def field_getter(name: str) -> FieldGetter:
    """Read `name` from lead fields: a top-level field, or `custom.<key>`.

    A bare name that is not a top-level key falls back to `custom`, so a CSV column that landed in
    `custom` can be named directly.
    """
    if name.startswith("custom."):
        key = name.removeprefix("custom.")

        def get_custom(fields: Mapping[str, Any]) -> Any:
            custom = fields.get("custom")
            return custom.get(key) if isinstance(custom, Mapping) else None

        return get_custom

    def get(fields: Mapping[str, Any]) -> Any:
        value = fields.get(name, _ABSENT)
        if value is _ABSENT:
            custom = fields.get("custom")
            return custom.get(name) if isinstance(custom, Mapping) else None
        return value

    return get


def is_blank(value: Any) -> bool:
    """None, a blank string or an empty collection: the field is not given."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (*_SEQUENCES, dict)):
        return not value
    return False


def as_number(value: Any) -> float | None:
    """The value as a finite float, or None (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_text(value: Any) -> str:
    """The value as comparable text: trimmed and case-folded; 100.0 reads as "100"."""
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


def is_scalar(value: Any) -> bool:
    """A value an operand may hold: text, a number or a boolean."""
    return isinstance(value, (str, int, float)) and not (
        isinstance(value, float) and not math.isfinite(value)
    )


def domain_of(value: Any) -> str:
    """The domain of an email address (or the value itself when it has no `@`)."""
    text = as_text(value)
    return text.rpartition("@")[2]


def in_domains(value: Any, domains: Collection[str]) -> bool:
    """Whether the value's domain, or a parent of it (mail.acme.com → acme.com), is listed."""
    domain = domain_of(value)
    while domain:
        if domain in domains:
            return True
        domain = domain.partition(".")[2]
    return False


def check_operand(op: str, operand: Any, base_dir: Path | None) -> Any:
    """The operand of `op`, checked (domain_in: resolved to domains); a ValueError names `op`."""
    if op == "domain_in":
        return resolve_domains(operand, base_dir)
    if op == "matches":
        if not isinstance(operand, str):
            raise ValueError("matches: expected a regular expression")
        try:
            re.compile(operand)
        except re.error as exc:
            raise ValueError(f"matches: invalid regex {operand!r}: {exc}") from None
        return operand
    if op == "exists":
        if not isinstance(operand, bool):
            raise ValueError("exists: expected true or false")
        return operand
    if op in NUMERIC_OPERATORS:
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise ValueError(f"{op}: expected a number, got {operand!r}")
        return float(operand)
    if op in ("in", "not_in"):
        if (
            not isinstance(operand, (list, tuple))
            or not operand
            or not all(map(is_scalar, operand))
        ):
            raise ValueError(f"{op}: expected a non-empty list of values")
        return tuple(operand)
    if not is_scalar(operand):  # equals, contains
        raise ValueError(f"{op}: expected a text, number or boolean value")
    return operand


def _equal_to(operand: Any) -> ValueTest:
    return _one_of([operand])


def _one_of(operands: Collection[Any]) -> ValueTest:
    numbers = {float(x) for x in operands if as_number(x) is not None and not isinstance(x, str)}
    texts = {as_text(x) for x in operands}
    if not numbers:
        return lambda value: as_text(value) in texts
    return lambda value: as_text(value) in texts or as_number(value) in numbers


def _contains(operand: Any) -> ValueTest:
    needle = as_text(operand)
    return lambda value: needle in as_text(value)


def _matches(operand: Any) -> ValueTest:
    pattern = re.compile(operand)
    return lambda value: (
        pattern.search(value if isinstance(value, str) else as_text(value)) is not None
    )


def _compare(op: str, operand: Any) -> ValueTest:
    bound = float(operand)

    def test(value: Any) -> bool:
        number = as_number(value)
        if number is None:
            return False
        if op == "gt":
            return number > bound
        if op == "gte":
            return number >= bound
        if op == "lt":
            return number < bound
        return number <= bound

    return test


def _domain_in(operand: Any) -> ValueTest:
    domains = frozenset(operand)
    return lambda value: in_domains(value, domains)


_SCALAR_TESTS: dict[str, Callable[[Any], ValueTest]] = {
    "equals": _equal_to,
    "in": _one_of,
    "not_in": _one_of,  # negated below
    "contains": _contains,
    "matches": _matches,
    "domain_in": _domain_in,
}


def value_test(op: str, operand: Any) -> ValueTest:
    """A test of one looked-up value against a validated operand (see the module rules)."""
    if op == "exists":
        return (lambda value: not is_blank(value)) if operand else is_blank
    scalar = _compare(op, operand) if op in NUMERIC_OPERATORS else _SCALAR_TESTS[op](operand)
    negate = op == "not_in"

    def test(value: Any) -> bool:
        if is_blank(value):
            return False
        if isinstance(value, _SEQUENCES):
            hit = any(scalar(v) for v in value if not is_blank(v))
        else:
            hit = scalar(value)
        return hit != negate

    return test


def expected_value_test(expected: Any) -> ValueTest:
    """The test of a segment or `where` entry: a value (equals) or a list of values (in)."""
    return (
        value_test("in", expected)
        if isinstance(expected, _SEQUENCES)
        else value_test("equals", expected)
    )


def segment_test(segment: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """Whether lead fields satisfy every `{field: value | [values]}` entry (`{}`: everyone)."""
    checks = [(field_getter(name), expected_value_test(v)) for name, v in segment.items()]
    return lambda fields: all(test(get(fields)) for get, test in checks)
