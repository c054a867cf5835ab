"""The destination blocks of the hub file: which model's outputs go to which CRM fields, and how.

A block mixes write-back keys (validated here by `DestinationSettings`) with the connector's own
keys (URL, token, …: validated by the connector's settings model), like a source block does:

```yaml
destinations:
  hubspot:
    connector: hubspot
    token: ${HUBSPOT_TOKEN}            # the connector's own setting
    model: default
    fields: {total: lead_score, tier: lead_tier, reason: lead_score_reason}
    lead_fields: {email: email, first_name: firstname}
    mode: upsert
    on_qualified: {subject: "Call {name} ({total})", due_in_days: 1}
```
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.records import LEAD_FIELDS

Output = Literal[
    "total",
    "fit",
    "engagement",
    "tier",
    "grade",
    "qualified",
    "qualified_at",
    "reason",
    "predictive",
]
OUTPUTS: tuple[Output, ...] = get_args(Output)
DEFAULT_FIELDS: dict[Output, str] = {o: o for o in OUTPUTS if o != "predictive"}
TEMPLATE_FIELDS = frozenset({*LEAD_FIELDS, *OUTPUTS, "name"})


class _Template(string.Formatter):
    """`str.format` over plain names only; a missing or empty value renders as ""."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        return kwargs.get(str(key))

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return ""
        try:
            return str(super().format_field(value, format_spec))
        except (TypeError, ValueError):
            return str(value)


def describe(exc: ValidationError, prefix: str) -> list[str]:
    """One line per pydantic error, each naming its path in the hub file.

    Example: `describe(exc, "sources.fb")` → `["sources.fb.page_id: field required"]`.
    """
    lines = []
    for err in exc.errors():
        where = prefix
        for part in err["loc"]:
            where = f"{where}[{part}]" if isinstance(part, int) else _join(where, part)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "field required"
        elif err["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(f"{where}: {msg}")
    return lines


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def render(template: str, context: Mapping[str, Any]) -> str:
    """Fill `{placeholders}` from `context`, e.g. `render("Call {name}", {"name": "Ann"})`."""
    return _Template().vformat(template, (), context)


class OnQualifiedSettings(BaseModel):
    """`on_qualified:` — what the destination does once per qualified crossing.

    Parameters:
        subject: template of the follow-up's subject; `{name}` (full name, else email), every
            lead field (`{company}`, …) and every output (`{total}`, `{tier}`, …) may be used.
        body: template of its description.
        due_in_days: the follow-up is due this many days after the push (null: no due date).

    Connector-specific keys (a task type, a priority, …) are kept as extra settings.
    """

    model_config = ConfigDict(extra="allow")

    subject: str = "Follow up: {name} qualified (score {total:.0f})"
    body: str = "{reason}"
    due_in_days: float | None = Field(default=1, ge=0)

    @field_validator("subject", "body")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc})") from None
        unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; use {{name}}, a lead field or an output"
            )
        return value


class DestinationSettings(BaseModel):
    """The write-back keys of one destination block.

    Parameters:
        connector: the connector that writes (`webhook`, `hubspot`, …).
        model: the scoring model whose outputs are written.
        fields: output → CRM field. Outputs: total, fit, engagement, tier, grade, qualified,
            qualified_at, reason, predictive. Default: the outputs under their own names.
        lead_fields: lead field → CRM field, sent only when a record may be created (upsert).
        mode: `update` writes only to records the CRM already has (an identity in `system`);
            `upsert` also creates missing ones and remembers their new ids.
        sources: only leads seen in these sources go to this destination.
        system: the identity system whose external ids are this CRM's record ids; default the
            destination's name (name it like the source that pulls the same CRM).
        on_qualified: the threshold action, if any.
        max_attempts: retryable failures of a record before it is parked.
        backoff_seconds: delay before the first retry; doubles each attempt, at most 6 hours.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    connector: str
    model: str = "default"
    fields: dict[Output, str] = Field(default_factory=lambda: dict(DEFAULT_FIELDS))
    lead_fields: dict[str, str] = Field(default_factory=dict)
    mode: Literal["update", "upsert"] = "update"
    sources: list[str] | None = None
    system: str | None = None
    on_qualified: OnQualifiedSettings | None = None
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_seconds: float = Field(default=60, gt=0)
    options: Any = Field(default=None, exclude=True)  # the connector's own settings

    @field_validator("fields")
    @classmethod
    def _distinct_fields(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("map at least one output to a CRM field")
        seen: dict[str, str] = {}
        for output, crm_field in value.items():
            if not crm_field:
                raise ValueError(f"{output}: the CRM field name is empty")
            if crm_field in seen:
                raise ValueError(f"{output} and {seen[crm_field]} both write {crm_field!r}")
            seen[crm_field] = output
        return value

    @field_validator("lead_fields")
    @classmethod
    def _known_lead_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(LEAD_FIELDS))
        if unknown:
            raise ValueError(f"unknown lead field {unknown[0]!r} (known: {', '.join(LEAD_FIELDS)})")
        return value

    @field_validator("sources")
    @classmethod
    def _some_sources(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("list at least one source, or leave `sources` out")
        return value

    @property
    def identity_system(self) -> str:
        """Where this CRM's record ids live in the identity table."""
        return self.system or self.name


WRITEBACK_KEYS = frozenset(DestinationSettings.model_fields) - {"name", "options"}
