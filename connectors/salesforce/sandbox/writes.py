"""What the sandbox org does with one record write: the checks Salesforce makes, and the change.

Shared by sObject Collections (JSON) and Bulk API 2.0 ingest (CSV). Per-record errors are
`{"statusCode", "message", "fields"}` with Salesforce's codes (shared/api/salesforce.md §4):
MISSING_ARGUMENT, MALFORMED_ID, INVALID_CROSS_REFERENCE_KEY, ENTITY_IS_DELETED,
CANNOT_UPDATE_CONVERTED_LEAD, INVALID_FIELD (no such field), INVALID_FIELD_FOR_INSERT_UPDATE
(read-only or no field-level security), REQUIRED_FIELD_MISSING, STRING_TOO_LONG,
NUMBER_OUTSIDE_VALID_RANGE, INVALID_EMAIL_ADDRESS, DUPLICATE_EXTERNAL_ID.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.salesforce.sandbox.data import (
    BadValue,
    Org,
    Problem,
    Record,
    check_value,
    coerce,
    derive,
    id18,
    problem,
)
from connectors.salesforce.sandbox.schema import PREFIXES, USER_ID

Operation = Literal["insert", "update", "upsert", "delete"]
ID_SHAPE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
DEFAULTS: dict[str, dict[str, Any]] = {
    "Lead": {"Status": "Open - Not Contacted"},
    "Task": {"Status": "Not Started", "Priority": "Normal"},
}
ROLLED_BACK = problem("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all "
                      "records were valid and the request was using AllOrNone header")  # fmt: skip


@dataclass
class Outcome:
    """The result of one record: `apply` makes the change once every check has passed."""

    record_id: str | None = None
    created: bool = False
    errors: list[Problem] = field(default_factory=list)
    apply: Callable[[], None] | None = None
    values: Record = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def json(self, upsert: bool = False) -> dict[str, Any]:
        """The sObject Collections result item."""
        out: dict[str, Any] = {}
        if self.ok:
            out["id"] = self.record_id
        out.update(success=self.ok, errors=self.errors)
        if upsert and self.ok:
            out["created"] = self.created
        return out


def check(
    org: Org,
    obj: str,
    op: Operation,
    values: Record,
    *,
    text: bool = False,
    external_id: str | None = None,
) -> Outcome:
    """Check one write of `values` to `obj` (`text`: CSV strings, where a bad value is a
    per-record error rather than a bad request). Call `outcome.apply()` to make the change."""
    values = dict(values)
    given_id = next((values.pop(k) for k in list(values) if k.lower() == "id"), None)
    if op == "delete":

        def delete(record: Record) -> None:
            record["IsDeleted"] = True
            org.touch(record, by=USER_ID)

        return _existing(org, obj, given_id, "delete", delete)
    errors, changes = _fields(org, obj, values, op, text)
    if op == "upsert":
        assert external_id is not None
        if external_id.lower() == "id":
            op = "update" if given_id else "insert"
        else:
            key = changes.get(org.schema.field(obj, external_id).name)  # type: ignore[union-attr]
            matches = [
                r
                for r in org.records[obj].values()
                if not r["IsDeleted"]
                and org.seen(obj, r) is not None
                and key
                and str(r.get(external_id) or "").casefold() == str(key).casefold()
            ]
            if len(matches) > 1:
                ids = ", ".join(r["Id"] for r in matches)
                return Outcome(errors=[problem("DUPLICATE_EXTERNAL_ID", f"{external_id}: more "
                                               f"than one record found for external id field: "
                                               f"[{ids}]", external_id)])  # fmt: skip
            op, given_id = ("update", matches[0]["Id"]) if matches else ("insert", None)
    if op == "insert":
        if given_id:
            errors.append(problem("INVALID_FIELD_FOR_INSERT_UPDATE",
                                  "cannot specify Id in an insert call", "Id"))  # fmt: skip
        return _insert(org, obj, changes, errors)
    if errors:
        found = _existing(org, obj, given_id, "update", lambda r: None)
        return Outcome(errors=found.errors or errors)

    def change(record: Record) -> None:
        record.update(changes)
        derive(obj, record)
        org.touch(record, by=USER_ID)  # the API's writes are the integration user's

    outcome = _existing(org, obj, given_id, "update", change)
    outcome.values = changes
    return outcome


def _fields(
    org: Org, obj: str, values: Record, op: str, text: bool
) -> tuple[list[Problem], Record]:
    errors: list[Problem] = []
    changes: Record = {}
    unknown, locked = [], []
    for name, value in values.items():
        if name == "attributes" or (text and value == ""):
            continue  # an empty CSV cell leaves the field as it is
        f = org.schema.field(obj, name)
        if f is None:
            unknown.append(name)
            continue
        if not (f.updateable if op == "update" else f.createable or f.updateable):
            locked.append(f.name)
            continue
        try:
            changed = coerce(f, None if text and value == "#N/A" else value)
        except BadValue:
            if not text:
                raise
            errors.append(problem("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label or f.name}: "
                                  f"value not of required type: {value}", f.name))  # fmt: skip
            continue
        wrong = check_value(obj, f, changed)
        if wrong is not None:
            errors.append(wrong)
        changes[f.name] = changed
    if unknown:
        errors.insert(0, problem("INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of "
                                 f"type {obj}", *unknown))  # fmt: skip
    if locked:
        errors.insert(0, problem("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update "
                                 f"fields: {', '.join(locked)}. Please check the security settings "
                                 "of this field and verify that it is read/write for your profile "
                                 "or permission set.", *locked))  # fmt: skip
    return errors, changes


def _existing(
    org: Org, obj: str, given: Any, verb: str, change: Callable[[Record], None]
) -> Outcome:
    if not given:
        return Outcome(errors=[problem("MISSING_ARGUMENT", f"Id not specified in an {verb} call")])
    text = str(given)
    if not ID_SHAPE.fullmatch(text) or not text.startswith(PREFIXES[obj]):
        return Outcome(
            errors=[problem("MALFORMED_ID", f"{obj} ID: id value of incorrect type: {text}", "Id")]
        )
    record = org.records[obj].get(id18(text) if len(text) == 15 else text)
    seen = None if record is None else org.seen(obj, record)
    if record is None or seen is None:
        return Outcome(
            errors=[problem("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
        )
    if record["IsDeleted"]:
        return Outcome(errors=[problem("ENTITY_IS_DELETED", "entity is deleted")])
    if obj == "Lead" and seen["IsConverted"]:
        return Outcome(errors=[problem("CANNOT_UPDATE_CONVERTED_LEAD",
                                       "cannot reference converted lead")])  # fmt: skip
    return Outcome(record["Id"], apply=lambda: change(record))


def _insert(org: Org, obj: str, changes: Record, errors: list[Problem]) -> Outcome:
    values = {**DEFAULTS.get(obj, {}), **changes}
    missing = [f.name for f in org.schema.fields[obj].values()
               if not f.nillable and f.createable and f.type != "boolean"
               and values.get(f.name) in (None, "")]  # fmt: skip
    if missing:
        errors.append(
            problem(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                *missing,
            )
        )
    for name, value in values.items():
        f = org.schema.field(obj, name)
        reference = f is not None and f.type == "reference" and name != "OwnerId"
        if reference and value and org.find(str(value)) is None:
            errors.append(problem("INVALID_CROSS_REFERENCE_KEY",
                                      f"{name}: id value of incorrect type: {value}",
                                      name))  # fmt: skip
    if errors:
        return Outcome(errors=errors)
    new_id = org.new_id(obj)
    outcome = Outcome(new_id, created=True, values=values)

    def create() -> None:
        org.insert(obj, values, record_id=new_id, by=USER_ID)

    outcome.apply = create
    return outcome


def run_all(outcomes: list[Outcome], all_or_none: bool) -> list[Outcome]:
    """Apply every passing outcome, or with `all_or_none` none of them when one fails."""
    if all_or_none and not all(o.ok for o in outcomes):
        return [o if not o.ok else Outcome(errors=[ROLLED_BACK]) for o in outcomes]
    for outcome in outcomes:
        if outcome.ok and outcome.apply is not None:
            outcome.apply()
    return outcomes
