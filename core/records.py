"""The normalized records that cross the connector boundary.

A connector turns each vendor payload into one of these; validation happens here, so a bad payload
is quarantined with a reason naming the field instead of reaching the store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ACTIVITY_TYPES = frozenset(
    {
        "ad_form_submitted",
        "form_submitted",
        "page_viewed",
        "email_sent",
        "email_delivered",
        "email_opened",
        "email_clicked",
        "email_bounced",
        "unsubscribed",
        "spam_reported",
        "webinar_registered",
        "webinar_attended",
        "meeting_booked",
        "meeting_cancelled",
    }
)
OUTCOME_STATUSES = ("open", "converted", "won", "lost")

# Fields of a lead that the store keeps as columns (everything else goes to `custom`).
LEAD_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "industry",
    "company_size",
    "annual_revenue",
    "country",
    "city",
    "channel",
    "product_interest",
)


def normalize_email(value: str | None) -> str | None:
    """The identity key: lowercased and trimmed; empty becomes None."""
    if value is None:
        return None
    value = value.strip().lower()
    return value or None


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value.strip() if isinstance(value, str) else value


def _to_utc(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError) as exc:  # pydantic reports only ValueError as invalid
            raise ValueError(f"not an epoch in range: {value!r:.40}") from exc
    if isinstance(value, str):
        text = value.replace("Z", "+00:00") if value.endswith("Z") else value
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 date/time: {value!r}") from exc
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _to_number(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.replace(",", "").replace("_", "")
        try:
            number = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {value!r}") from exc
        if not number.is_finite():  # `Infinity` would overflow int(), `sNaN` any comparison
            raise ValueError(f"not a finite number: {value!r}")
        return int(number) if number == number.to_integral_value() else float(number)
    return value


OptStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptNumber = Annotated[float | None, BeforeValidator(_to_number)]
OptInt = Annotated[int | None, BeforeValidator(_to_number)]
UtcDatetime = Annotated[datetime, BeforeValidator(_to_utc)]
OptUtcDatetime = Annotated[datetime | None, BeforeValidator(_to_utc)]


def _check_email(value: str | None) -> str | None:
    value = normalize_email(value)
    if value is None:
        return None
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or " " in value or domain.startswith("."):
        raise ValueError(f"not an email address: {value!r}")
    return value


# NUL and lone surrogates: PostgreSQL refuses NUL in text and JSON, UTF-8 cannot encode a lone
# surrogate (JSON's "\ud800" escape makes one), so either would stop a whole page from saving.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with NUL and lone surrogates in its text (nested included) replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return storable(data)


class LeadRecord(_Record):
    """A person as one source knows them."""

    external_id: str = Field(min_length=1, max_length=255)  # the store's column
    email: OptStr = Field(default=None, max_length=320)  # the store's column
    phone: OptStr = None
    first_name: OptStr = None
    last_name: OptStr = None
    company: OptStr = None
    job_title: OptStr = None
    industry: OptStr = None
    company_size: OptInt = None
    annual_revenue: OptNumber = None
    country: OptStr = None
    city: OptStr = None
    channel: OptStr = None
    product_interest: OptStr = None
    custom: dict[str, Any] = Field(default_factory=dict)
    updated_at: OptUtcDatetime = None
    deleted: bool = False

    _email = field_validator("email")(_check_email)

    def fields(self) -> dict[str, Any]:
        """The lead-field values this record carries (None for the ones it does not)."""
        return {name: getattr(self, name) for name in LEAD_FIELDS}


class ActivityRecord(_Record):
    """Something a lead did, keyed by an id unique within its source."""

    external_id: str = Field(min_length=1, max_length=255)  # the store's column
    lead: str = Field(
        min_length=1, max_length=320, description="the lead's external id in this source, or email"
    )
    type: str = Field(max_length=100)  # the store's column
    occurred_at: UtcDatetime
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value in ACTIVITY_TYPES or (value.startswith("custom:") and len(value) > 7):
            return value
        raise ValueError(f"unknown activity type {value!r} (use one of the set or custom:<name>)")


class OutcomeRecord(_Record):
    """What became of a lead in a CRM: feeds reports, backtests and the predictive model."""

    external_id: str = Field(min_length=1, max_length=255)  # the store's column
    lead: str = Field(min_length=1, max_length=320)  # an external id or an email
    status: Literal["open", "converted", "won", "lost"]
    closed_at: OptUtcDatetime = None
    amount: OptNumber = None


Record = LeadRecord | ActivityRecord | OutcomeRecord


def describe_validation_error(exc: ValidationError) -> str:
    """`field: message; field: message` — short enough for a quarantine row or a log line."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
