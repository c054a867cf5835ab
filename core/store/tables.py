"""The store's tables (SQLModel). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC on every backend and gives back aware UTC datetimes."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a SQLModel class (for executemany batches)."""
    return cast(sa.Table, model.__table__)  # type: ignore[attr-defined]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _json() -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


class Lead(SQLModel, table=True):
    """One person, joined across systems by normalized email."""

    __table_args__ = (sa.Index("ix_lead_channel", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, unique=True, max_length=320)
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    industry: str | None = None
    company_size: int | None = None
    annual_revenue: float | None = None
    country: str | None = None
    city: str | None = None
    channel: str | None = None
    product_interest: str | None = None
    custom: dict[str, Any] = _json()
    created_at: datetime | None = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=False)
    dirty: bool = Field(default=True, index=True)


class Identity(SQLModel, table=True):
    """A lead as one system knows it: the fields that system gave, and when."""

    __table_args__ = (
        sa.UniqueConstraint("system", "external_id"),
        sa.Index("ix_identity_system_lead", "system", "lead_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=100)
    external_id: str = Field(max_length=255)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    data: dict[str, Any] = _json()
    record_updated_at: datetime | None = _ts()
    seen_at: datetime | None = _ts(nullable=False)
    deleted: bool = False


class ActivitySignature(SQLModel, table=True):
    """A distinct (type, properties) pair of activities, so scoring matches rules once per
    signature instead of parsing properties once per activity. `digest` keys the pair."""

    __tablename__ = "activity_signature"

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(max_length=64, unique=True, index=True)
    type: str = Field(max_length=100)
    properties: dict[str, Any] = _json()


class Activity(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("source", "external_id"),
        sa.Index("ix_activity_lead_time", "lead_id", "occurred_at"),
        # The full rescore's per-day counts of the capped rules' signatures (migration 0010).
        sa.Index("ix_activity_signature_lead", "signature_id", "lead_id", "occurred_at"),
        # Rows not yet given a signature (new, changed, or stored before signatures existed).
        sa.Index(
            "ix_activity_unsigned",
            "id",
            sqlite_where=sa.text("signature_id IS NULL"),
            postgresql_where=sa.text("signature_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100)
    external_id: str = Field(max_length=255)
    lead_id: int = Field(foreign_key="lead.id")
    type: str = Field(max_length=100)
    occurred_at: datetime | None = _ts(nullable=False)
    properties: dict[str, Any] = _json()
    signature_id: int | None = None  # activity_signature.id


class Outcome(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100)
    external_id: str = Field(max_length=255)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    status: str = Field(max_length=20)
    closed_at: datetime | None = _ts()
    amount: float | None = None


class Score(SQLModel, table=True):
    """The current score of a lead under one model."""

    __table_args__ = (
        sa.UniqueConstraint("lead_id", "model"),
        # the lead list: best first under a model, and each filter in that order
        sa.Index("ix_score_model_total", "model", sa.text("total DESC"), "lead_id"),
        sa.Index("ix_score_model_tier_total", "model", "tier", sa.text("total DESC"), "lead_id"),
        sa.Index("ix_score_model_grade_total", "model", "grade", sa.text("total DESC"), "lead_id"),
        sa.Index(
            "ix_score_model_qualified_total", "model", "qualified", sa.text("total DESC"), "lead_id"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # the unique (lead_id, model) serves lookups by lead (migration 0011)
    lead_id: int = Field(foreign_key="lead.id")
    model: str = Field(max_length=100)
    model_hash: str = Field(max_length=64)
    fit: float = 0
    engagement: float = 0
    total: float = 0
    tier: str | None = None
    grade: str | None = None
    qualified: bool = False
    qualified_at: datetime | None = _ts()
    reason: str = ""
    ledger: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    predictive: float | None = None  # 0..100 from the latest trained model, when there is one
    predictive_reason: str | None = None
    # what the full rescore computed this score from (see migration 0009); None: the engine's
    inputs: str | None = Field(default=None, sa_type=sa.Text)
    next_change_at: datetime | None = _ts(index=True)
    computed_at: datetime | None = _ts(nullable=False)


class ScoreHistory(SQLModel, table=True):
    """A row each time a lead's outputs under a model change; `event` marks threshold crossings."""

    __tablename__ = "score_history"
    __table_args__ = (
        sa.Index("ix_score_history_lead_model", "lead_id", "model"),
        # the latest crossings of a model, newest first (the dashboard's "what to look at")
        sa.Index("ix_score_history_model_event", "model", "event", "computed_at", "lead_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id")
    model: str = Field(max_length=100)
    model_hash: str = Field(max_length=64)
    fit: float = 0
    engagement: float = 0
    total: float = 0
    tier: str | None = None
    grade: str | None = None
    qualified: bool = False
    reason: str = ""
    event: str | None = Field(default=None, max_length=20)
    computed_at: datetime | None = _ts(nullable=False)


class SyncState(SQLModel, table=True):
    """The cursor of one source stream, saved in the same transaction as the page it follows."""

    __tablename__ = "sync_state"

    source: str = Field(primary_key=True, max_length=100)
    stream: str = Field(primary_key=True, max_length=100)
    cursor: dict[str, Any] = _json()
    updated_at: datetime | None = _ts(nullable=False)


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default="pull", max_length=20)
    target: str = Field(max_length=100, index=True)
    started_at: datetime | None = _ts(nullable=False)
    finished_at: datetime | None = _ts()
    status: str = Field(default="running", max_length=20)
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    error: str | None = None


class Quarantine(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100, index=True)
    stream: str = Field(max_length=100)
    record_ref: str = Field(default="", max_length=255)
    raw: str = ""
    reason: str = ""
    created_at: datetime | None = _ts(nullable=False)


class Meta(SQLModel, table=True):
    """Small key/value facts of the hub, e.g. the hash of each model last scored with."""

    key: str = Field(primary_key=True, max_length=200)
    value: str = ""


class Outbox(SQLModel, table=True):
    """Write-back state per destination and lead: the values to write, the last values accepted,
    and delivery: pending → sent, or retry (with backoff), or parked with the vendor's reason."""

    __table_args__ = (
        sa.UniqueConstraint("destination", "lead_id"),
        sa.Index("ix_outbox_destination_state", "destination", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    destination: str = Field(max_length=100)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    desired: dict[str, Any] = _json()
    sent: dict[str, Any] | None = Field(
        default=None, sa_type=sa.JSON(none_as_null=True), nullable=True
    )
    state: str = Field(default="pending", max_length=20)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = None
    # The score_history id of the last qualified crossing `on_qualified` acted on for this lead.
    qualified_event_id: int | None = None
    updated_at: datetime | None = _ts(nullable=False)


class PredictiveModel(SQLModel, table=True):
    """A trained predictive model (`leadhub train`): metadata columns plus the joblib artefact.
    The highest version is the one that predicts."""

    __tablename__ = "predictive_model"

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(unique=True)
    algorithm: str = Field(max_length=20)
    trained_at: datetime | None = _ts(nullable=False)
    outcomes: int = 0
    cv_auc: float = 0
    meta: dict[str, Any] = _json()
    artefact: bytes = Field(sa_type=sa.LargeBinary, nullable=False)


class ReportLead(SQLModel, table=True):
    """What a lead last counted as in its model's report figures (`core.store.summary`)."""

    __tablename__ = "report_lead"

    model: str = Field(primary_key=True, max_length=100)
    lead_id: int = Field(primary_key=True, index=True)
    tier: str | None = None
    grade: str | None = None
    qualified: bool = False
    total: float = 0
    channel: str | None = None
    source: str | None = Field(default=None, max_length=100)
    systems: str = ""  # every system that knows the lead, comma-separated
    outcome: str | None = Field(default=None, max_length=20)
    decided_total: float | None = None  # the score at its decision point, when decided
    decided_qualified: bool | None = None
    rules: list[list[Any]] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)


class ReportFigure(SQLModel, table=True):
    """A counter of a model's report: leads, totals or points (in thousandths), decided,
    converted and qualified leads, and rule matches per key of one figure
    (`core.store.summary`)."""

    __tablename__ = "report_figure"

    model: str = Field(primary_key=True, max_length=100)
    figure: str = Field(primary_key=True, max_length=20)
    key: str = Field(primary_key=True, max_length=400)
    leads: int = 0
    total: int = Field(default=0, sa_type=sa.BigInteger)
    decided: int = 0
    converted: int = 0
    qualified: int = 0
    count: int = Field(default=0, sa_type=sa.BigInteger)  # rule matches, for `rule` lines


class ReportQualified(SQLModel, table=True):
    """The months a lead crossed into qualified under a model (each counted once)."""

    __tablename__ = "report_qualified"

    model: str = Field(primary_key=True, max_length=100)
    lead_id: int = Field(primary_key=True, index=True)
    month: str = Field(primary_key=True, max_length=7)
