"""The read API under `/api` (mounted by `app.create_app`): response models, queries, routes.

Its routes know nothing of auth: `create_app` puts them behind the credentials dependency.
Every response is a pydantic model, so `/openapi.json` describes exactly what is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from core.config import HubConfig
from core.errors import ConfigError
from core.pipeline import analytics
from core.store import store as queries
from core.store.ingest import LEAD, OUTCOME
from core.store.store import Store
from core.store.tables import Score, table
from scoring.model import ScoringModel
from scoring.report import Report

SCORE = table(Score)


@dataclass(frozen=True)
class WebContext:
    """The store and hub every route reads (`app.state.leadhub`)."""

    store: Store
    hub: HubConfig

    def model(self, name: str | None) -> ScoringModel:
        """The named model, or the hub's first; 404 naming the configured ones otherwise."""
        models = self.hub.models
        found = [m for m in models if m.name == name] if name else models[:1]
        if not found:
            known = ", ".join(m.name for m in models) or "none"
            raise HTTPException(404, f"no scoring model {name or ''!r} (configured: {known})")
        return found[0]


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.leadhub
    return ctx


# -- response models ---------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LeadSummary(_Out):
    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    job_title: str | None
    channel: str | None
    total: float | None = Field(description="null when the lead is not scored under the model")
    fit: float | None
    engagement: float | None
    tier: str | None
    tier_color: str | None = None
    grade: str | None
    qualified: bool | None
    qualified_at: datetime | None
    reason: str | None
    predictive: float | None


class LeadList(_Out):
    model: str
    total: int = Field(description="leads matching the filters, over all pages")
    limit: int
    offset: int
    items: list[LeadSummary]


class LedgerLine(_Out):
    section: Literal["fit", "engagement", "total"]
    kind: str
    name: str
    count: int
    points: float


class ModelScore(_Out):
    model: str
    total: float
    fit: float
    engagement: float
    tier: str | None
    tier_color: str | None = None
    grade: str | None
    qualified: bool
    qualified_at: datetime | None
    reason: str
    ledger: list[LedgerLine] = Field(description="its points add up to `total`")
    predictive: float | None
    predictive_reason: str | None
    computed_at: datetime | None


class HistoryPoint(_Out):
    model: str
    total: float
    fit: float
    engagement: float
    tier: str | None
    grade: str | None
    qualified: bool
    event: str | None = Field(description="qualified or released when a threshold was crossed")
    computed_at: datetime | None


class OutcomeOut(_Out):
    source: str
    status: str
    closed_at: datetime | None
    amount: float | None


class LeadDetail(_Out):
    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    job_title: str | None
    industry: str | None
    company_size: int | None
    country: str | None
    city: str | None
    channel: str | None
    created_at: datetime | None
    updated_at: datetime | None
    scores: list[ModelScore]
    history: list[HistoryPoint]
    outcomes: list[OutcomeOut]


class TierShare(_Out):
    tier: str
    color: str | None = None
    leads: int
    share: float
    average: float | None


class BracketOut(_Out):
    low: float
    high: float
    leads: int
    decided: int
    converted: int
    rate: float | None = Field(description="converted / decided; null when none is decided")


class GroupOut(_Out):
    name: str
    leads: int
    average: float
    decided: int
    converted: int
    rate: float | None


class QualifiedBeforeCloseOut(_Out):
    converted: int
    qualified: int
    share: float | None


class MonthCount(BaseModel):
    month: str = Field(description="YYYY-MM")
    count: int


class ReportOut(_Out):
    model: str
    leads: int
    tiers: list[TierShare]
    brackets: list[BracketOut] = Field(description="current scores, 10-point brackets")
    conversion: list[BracketOut] = Field(description="decided leads scored at decision points")
    channels: list[GroupOut]
    sources: list[GroupOut]
    qualified_before_close: QualifiedBeforeCloseOut
    qualified_per_month: list[MonthCount]


def model_report(store: Store, model: ScoringModel) -> Report:
    """The report of `model` (`analytics`); ConfigError when nothing is scored under it."""
    return analytics.report(store, model)


def report_out(model: ScoringModel, report: Report) -> ReportOut:
    colors = {t.name: t.color for t in model.tiers}
    return ReportOut.model_validate(
        {
            "model": model.name,
            "leads": report.leads,
            "tiers": [
                TierShare.model_validate(t).model_copy(update={"color": colors.get(t.tier)})
                for t in report.tiers
            ],
            "brackets": report.brackets,
            "conversion": report.conversion,
            "channels": report.channels,
            "sources": report.sources,
            "qualified_before_close": report.qualified_before_close,
            "qualified_per_month": [
                MonthCount(month=m, count=c) for m, c in report.qualified_per_month
            ],
        }
    )


# -- queries -----------------------------------------------------------------------------------

LeadSort = Literal[
    "-total", "total", "-fit", "fit", "-engagement", "engagement", "-predictive", "predictive",
    "-qualified_at", "qualified_at", "-updated_at", "updated_at", "email", "-email", "id", "-id",
]  # fmt: skip
SORT_COLUMNS = {
    "total": SCORE.c.total,
    "fit": SCORE.c.fit,
    "engagement": SCORE.c.engagement,
    "predictive": SCORE.c.predictive,
    "qualified_at": SCORE.c.qualified_at,
    "updated_at": LEAD.c.updated_at,
    "email": LEAD.c.email,
    "id": LEAD.c.id,
}
LIST_COLUMNS = [
    *(LEAD.c[k] for k in ("id", "email", "first_name", "last_name", "company", "job_title")),
    LEAD.c.channel,
    *(SCORE.c[k] for k in ("total", "fit", "engagement", "tier", "grade", "qualified")),
    *(SCORE.c[k] for k in ("qualified_at", "reason", "predictive")),
]


@dataclass(frozen=True)
class LeadFilter:
    tiers: Sequence[str] = ()
    grades: Sequence[str] = ()
    qualified: bool | None = None


def lead_page(
    store: Store, model: str, where: LeadFilter, sort: str, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """(leads matching `where` under `model`, one page of them in `sort` order); a lead never
    scored under `model` matches no filter and sorts last."""
    joined = LEAD.outerjoin(SCORE, sa.and_(SCORE.c.lead_id == LEAD.c.id, SCORE.c.model == model))
    conditions = []
    if where.tiers:
        conditions.append(SCORE.c.tier.in_(list(where.tiers)))
    if where.grades:
        conditions.append(SCORE.c.grade.in_([g.upper() for g in where.grades]))
    if where.qualified is not None:
        conditions.append(SCORE.c.qualified.is_(where.qualified))
    column = SORT_COLUMNS[sort.lstrip("-")]
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    page = sa.select(*LIST_COLUMNS).select_from(joined).where(*conditions)
    page = page.order_by(order, LEAD.c.id).limit(limit).offset(offset)
    count = sa.select(sa.func.count()).select_from(joined).where(*conditions)
    with store.engine.connect() as conn:
        return int(conn.execute(count).scalar_one()), [r._asdict() for r in conn.execute(page)]


def lead_detail(store: Store, hub: HubConfig, lead_id: int) -> LeadDetail | None:
    """Everything the API and the lead page show about one lead; None when there is none."""
    found = store.leads([lead_id])
    if not found:
        return None
    with store.engine.connect() as conn:
        outcomes = conn.execute(
            sa.select(OUTCOME).where(OUTCOME.c.lead_id == lead_id).order_by(OUTCOME.c.id)
        ).all()
    colors = tier_colors(hub)
    scores = [
        ModelScore.model_validate({**s, "tier_color": colors.get((s["model"], s["tier"]))})
        for s in queries.lead_scores(store, lead_id)
    ]
    return LeadDetail.model_validate(
        {
            **found[0],
            "scores": scores,
            "history": queries.lead_history(store, lead_id),
            "outcomes": [o._asdict() for o in outcomes],
        }
    )


def tier_colors(hub: HubConfig) -> dict[tuple[str, str | None], str | None]:
    """(model, tier) → the tier's colour from the model file."""
    return {(m.name, t.name): t.color for m in hub.models for t in m.tiers}


# -- routes ------------------------------------------------------------------------------------


class Problem(BaseModel):
    """The body of every error answer (FastAPI's `HTTPException`)."""

    detail: str


api = APIRouter(prefix="/api", tags=["api"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such lead or model."}
}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong credentials."}
}


@api.get("/leads", response_model=LeadList, responses=NOT_FOUND)
def list_leads(
    ctx: WebContext = Depends(context),
    model: str | None = Query(None, description="Scoring model (default: the first)."),
    tier: list[str] = Query([], description="Only these tiers (repeat for several)."),
    grade: list[str] = Query([], description="Only these grades, e.g. A1 (repeat)."),
    qualified: bool | None = Query(None, description="Only qualified (true) or not (false)."),
    sort: LeadSort = Query("-total", description="Sort key; a leading `-` sorts descending."),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> LeadList:
    """Leads with their score under one model, filtered, sorted and one page at a time."""
    name = ctx.model(model).name
    where = LeadFilter(tier, grade, qualified)
    total, rows = lead_page(ctx.store, name, where, sort, limit, offset)
    colors = tier_colors(ctx.hub)
    items = [LeadSummary(**r, tier_color=colors.get((name, r["tier"]))) for r in rows]
    return LeadList(model=name, total=total, limit=limit, offset=offset, items=items)


@api.get("/leads/{lead_id}", response_model=LeadDetail, responses=NOT_FOUND)
def get_lead(lead_id: int, ctx: WebContext = Depends(context)) -> LeadDetail:
    """One lead: its fields, its score and ledger under each model, history and outcomes."""
    detail = lead_detail(ctx.store, ctx.hub, lead_id)
    if detail is None:
        raise HTTPException(404, f"no lead with id {lead_id}")
    return detail


@api.get("/report", response_model=ReportOut, responses=NOT_FOUND)
def get_report(
    ctx: WebContext = Depends(context),
    model: str | None = Query(None, description="Scoring model (default: the first)."),
) -> ReportOut:
    """Tiers, score brackets, conversion by bracket, channels and sources of one model."""
    chosen = ctx.model(model)
    try:
        return report_out(chosen, model_report(ctx.store, chosen))
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None
