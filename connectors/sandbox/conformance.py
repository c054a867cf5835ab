"""Request conformance: the vendors' schema facts for the operations the connectors use.

Each vendor's sandbox package declares `OPERATIONS` in its `conformance.py`: one `Operation` per
call the connector (or a neighbouring tool) makes, with the method, the path template, the query
parameters and their enums, and a JSON Schema of the body, all taken from the vendor's official
client's generated models (the client and its version are named in `source`). The sandboxes refuse
a request that breaks them, as the vendor would, and record every request they saw, so the
end-to-end tests can require zero conformance failures from our connectors:

    problems = check_request(OPERATIONS, "POST", "/crm/v3/objects/contacts/batch/update", [], body)
    if problems: return vendor_error(400, problems)

    with recording() as seen:   # every request any sandbox checked while the block ran
        run_the_cycle()
    assert [r for r in seen if r.problems] == []
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator


@dataclass(frozen=True)
class Param:
    """One query parameter: `kind` is "string", "integer", "boolean" or "number"."""

    name: str
    kind: str = "string"
    required: bool = False
    enum: tuple[str, ...] | None = None
    repeated: bool = False
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Operation:
    """One vendor operation: `path` is a template whose `{name}` parts match one segment."""

    name: str
    method: str
    path: str
    query: tuple[Param, ...] = ()
    body: Mapping[str, Any] | None = None
    source: str = ""
    open_query: bool = False  # the vendor accepts query names beyond `query` (e.g. filters)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = re.split(r"(\{[^}]+\})", self.path)
        regex = "".join(
            "[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts
        )
        object.__setattr__(self, "_pattern", re.compile(f"^{regex}/?$"))

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method.upper() and bool(self._pattern.match(path))


@dataclass(frozen=True)
class Checked:
    """A request a sandbox checked, with the problems found (empty when it conforms)."""

    vendor: str
    method: str
    path: str
    operation: str | None
    problems: tuple[str, ...]


def find_operation(operations: Sequence[Operation], method: str, path: str) -> Operation | None:
    """The operation `method path` belongs to; the most specific template wins."""
    found = [op for op in operations if op.matches(method, path)]
    if not found:
        return None
    return max(found, key=lambda op: (op.path.count("/") - op.path.count("{"), len(op.path)))


def _check_value(param: Param, value: str) -> str | None:
    if param.enum is not None and value not in param.enum:
        return f"query {param.name}={value!r} is not one of {', '.join(param.enum)}"
    if param.kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return f"query {param.name}={value!r} is not an integer"
        number: float = int(value)
    elif param.kind == "number":
        try:
            number = float(value)
        except ValueError:
            return f"query {param.name}={value!r} is not a number"
    elif param.kind == "boolean":
        if value.lower() not in {"true", "false"}:
            return f"query {param.name}={value!r} is not true or false"
        return None
    else:
        return None
    if param.minimum is not None and number < param.minimum:
        return f"query {param.name}={value} is below {param.minimum:g}"
    if param.maximum is not None and number > param.maximum:
        return f"query {param.name}={value} is above {param.maximum:g}"
    return None


def check_query(operation: Operation, query: Sequence[tuple[str, str]]) -> list[str]:
    """Problems of the query string `query` (name, value pairs) against `operation`."""
    problems: list[str] = []
    known = {p.name: p for p in operation.query}
    counts: dict[str, int] = {}
    for name, value in query:
        counts[name] = counts.get(name, 0) + 1
        param = known.get(name)
        if param is None:
            if not operation.open_query:
                problems.append(f"query {name} is not a parameter of {operation.name}")
            continue
        values = value.split(",") if param.repeated and param.enum else [value]
        for v in values:
            problem = _check_value(param, v)
            if problem:
                problems.append(problem)
    for name, n in counts.items():
        param = known.get(name)
        if param is not None and n > 1 and not param.repeated:
            problems.append(f"query {name} given {n} times")
    problems += [
        f"query {p.name} is required"
        for p in operation.query
        if p.required and p.name not in counts
    ]
    return problems


def check_body(operation: Operation, body: Any) -> list[str]:
    """Problems of the JSON body against the operation's schema (none when it has no schema)."""
    if operation.body is None:
        return []
    validator = Draft202012Validator(operation.body)
    problems = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(body)"
        problems.append(f"body {where}: {error.message}")
    return problems


def check_request(
    operations: Sequence[Operation],
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    body: Any = None,
    *,
    vendor: str = "",
) -> list[str]:
    """Every problem of one request; a request no operation declares is a problem too.

    The request is recorded (see `recording`) whatever the outcome.
    """
    operation = find_operation(operations, method, path)
    if operation is None:
        problems = [f"{method.upper()} {path} is not an operation the conformance table declares"]
    else:
        problems = check_query(operation, query) + check_body(operation, body)
    _record(
        Checked(
            vendor, method.upper(), path, operation.name if operation else None, tuple(problems)
        )
    )
    return problems


_lock = threading.Lock()
_recorders: list[list[Checked]] = []


def _record(checked: Checked) -> None:
    with _lock:
        for seen in _recorders:
            seen.append(checked)


@contextmanager
def recording() -> Iterator[list[Checked]]:
    """Collect every request the sandboxes of this process check while the block runs."""
    seen: list[Checked] = []
    with _lock:
        _recorders.append(seen)
    try:
        yield seen
    finally:
        with _lock:
            _recorders.remove(seen)
