"""The read API under `/api` (mounted by `app.create_app`): response models, queries, routes.

Its routes know nothing of auth: `create_app` puts them behind the credentials dependency.
Every response is a pydantic model, so `/openapi.json` describes exactly what is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from core.config import HubConfig
from core.errors import ConfigError
from core.pipeline import analytics
from core.store import search, summary
from core.store import store as queries
from core.store.ingest import ACTIVITY, IDENTITY, LEAD, OUTCOME
from core.store.search import Matches
from core.store.store import Store
from core.store.tables import Score, table
from scoring.model import ScoringModel
from scoring.report import NONE_LABEL, Report

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
    total: int = Field(
        description="leads matching the filters, over all pages; a lower bound "
        "when `total_exact` is false"
    )
    total_exact: bool = Field(
        True,
        description="false when `total` is a lower bound: a search (`q`) matching more than "
        f"{search.FEW:,} leads together with another filter is counted up to "
        f"{search.FEW + 1:,} only; paging by `offset` or `next` still reaches every lead",
    )
    limit: int
    offset: int
    items: list[LeadSummary]
    next: str | None = Field(
        None, description="pass as `after` for the following page; null on the last page"
    )


class LedgerLine(_Out):
    section: Literal["fit", "engagement", "total"]
    kind: str
    name: str
    count: int
    points: float
    live: int | None = Field(
        None, description="of `count`, how many have not expired (set only when some have)"
    )


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
    "company", "-company",
]  # fmt: skip
SORT_COLUMNS = {
    "total": SCORE.c.total,
    "fit": SCORE.c.fit,
    "engagement": SCORE.c.engagement,
    "predictive": SCORE.c.predictive,
    "qualified_at": SCORE.c.qualified_at,
    "updated_at": LEAD.c.updated_at,
    "email": LEAD.c.email,
    "company": LEAD.c.company,
    "id": LEAD.c.id,
}
LIST_COLUMNS = [
    *(LEAD.c[k] for k in ("id", "email", "first_name", "last_name", "company", "job_title")),
    LEAD.c.channel,
    LEAD.c.updated_at,
    *(SCORE.c[k] for k in ("total", "fit", "engagement", "tier", "grade", "qualified")),
    *(SCORE.c[k] for k in ("qualified_at", "reason", "predictive")),
]


MAX_OFFSET = 10_000_000  # rows skipped by `offset`; deeper than this, page with `after`
KEYSET_SORTS = ("-total", "total", "-fit", "fit", "-engagement", "engagement")


@dataclass(frozen=True)
class LeadFilter:
    """Which leads a list shows; empty means any. `search` is a case-insensitive substring of
    the email, first or last name, full name or company (`core.store.search`; `matches` are the
    leads it finds, once looked up in the store); `sources` match any system that knows the
    lead."""

    tiers: Sequence[str] = ()
    grades: Sequence[str] = ()
    qualified: bool | None = None
    search: str = ""
    sources: Sequence[str] = ()
    channels: Sequence[str] = ()
    matches: Matches | None = None

    def score_conditions(self) -> list[sa.ColumnElement[bool]]:
        """Conditions on the score: a lead never scored under the model matches none."""
        found: list[sa.ColumnElement[bool]] = []
        if self.tiers:
            found.append(SCORE.c.tier.in_(list(self.tiers)))
        if self.grades:
            found.append(SCORE.c.grade.in_([g.upper() for g in self.grades]))
        if self.qualified is not None:
            found.append(SCORE.c.qualified.is_(self.qualified))
        return found

    def lead_conditions(self, lead_id: Any = LEAD.c.id) -> list[sa.ColumnElement[bool]]:
        """Conditions on the lead itself; `lead_id` is the column the source filter probes the
        (system, lead_id) index with, walking the list's order rather than every member."""
        found: list[sa.ColumnElement[bool]] = []
        if self.search.strip():
            if self.matches is None:
                raise ValueError("a search is looked up in the store (`resolved`) before use")
            found.append(self.matches.condition(lead_id))
        if self.sources:
            found.append(
                sa.exists().where(
                    IDENTITY.c.lead_id == lead_id, IDENTITY.c.system.in_(list(self.sources))
                )
            )
        if self.channels:
            found.append(LEAD.c.channel.in_(list(self.channels)))
        return found

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        return [*self.score_conditions(), *self.lead_conditions()]

    @property
    def counted(self) -> bool:
        """Whether the kept counters answer the count (no search)."""
        return not self.search.strip()


def _scored(model: str, where: LeadFilter) -> tuple[Any, list[sa.ColumnElement[bool]]]:
    """The scored leads matching `where` under `model`: (FROM clause, WHERE conditions); the
    lead table is joined only when a condition needs it."""
    on_lead = where.lead_conditions(SCORE.c.lead_id)
    needs_lead = bool(where.channels)
    joined = SCORE.join(LEAD, LEAD.c.id == SCORE.c.lead_id) if needs_lead else SCORE
    return joined, [SCORE.c.model == model, *where.score_conditions(), *on_lead]


def _unscored(model: str) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(SCORE.c.lead_id == LEAD.c.id, SCORE.c.model == model)


def _known_to(sources: Sequence[str]) -> sa.Select[Any]:
    return sa.select(IDENTITY.c.lead_id).where(IDENTITY.c.system.in_(list(sources)))


def resolved(conn: Connection, where: LeadFilter) -> LeadFilter:
    """`where` with its search's matches looked up in the store."""
    if not where.search.strip() or where.matches is not None:
        return where
    return replace(where, matches=search.find(conn, where.search.strip()))


def lead_count(conn: Connection, model: str, where: LeadFilter) -> tuple[int, bool]:
    """(leads matching `where` under `model`, whether that count is exact); unscored leads
    count too when no score filter is set.

    Without a search the scored part comes from the counters the scorer keeps
    (`core.store.summary`), and the unscored part from the lead table minus those. A search
    with more matches than it lists by id, together with other filters, is counted up to
    `search.bound()` only: an exact count would probe the search document of every lead the
    filters keep. Reaching the bound, the count is a lower bound (not exact)."""
    where = resolved(conn, where)
    if where.counted and summary.built(conn):
        grades = [g.upper() for g in where.grades]
        scored = summary.count_cells(
            conn, model, where.tiers, grades, where.qualified, where.channels, where.sources
        )
        if where.score_conditions():
            return scored, True
        everyone = sa.select(sa.func.count()).select_from(LEAD)
        if where.channels:
            everyone = everyone.where(LEAD.c.channel.in_(list(where.channels)))
        if where.sources:
            known = _known_to(where.sources)
            if where.channels:
                everyone = everyone.where(LEAD.c.id.in_(known))
            else:  # from the (system, lead_id) index alone
                everyone = sa.select(sa.func.count(sa.distinct(IDENTITY.c.lead_id))).where(
                    IDENTITY.c.system.in_(list(where.sources))
                )
        every_scored = summary.count_cells(
            conn, model, channels=where.channels, sources=where.sources
        )
        return scored + max(0, int(conn.execute(everyone).scalar_one()) - every_scored), True
    only_search = not (where.score_conditions() or where.sources or where.channels)
    if where.matches is not None and only_search:
        return where.matches.count(conn), True
    if not where.score_conditions():  # scored or not: every lead that matches, in one pass
        kept = sa.select(LEAD.c.id).where(*where.lead_conditions())
    else:
        joined, conditions = _scored(model, where)
        kept = sa.select(SCORE.c.lead_id).select_from(joined).where(*conditions)
    if where.matches is not None and where.matches.sparse:
        return where.matches.count_within(conn, kept), True
    if where.matches is not None and where.matches.bounded:
        bound = search.bound()
        query = sa.select(sa.func.count()).select_from(kept.limit(bound).subquery())
        counted = int(conn.execute(query).scalar_one())
        return counted, counted < bound
    query = kept.with_only_columns(sa.func.count(), maintain_column_froms=True)
    return int(conn.execute(query).scalar_one()), True


def _after(sort: str, cursor: str | None) -> tuple[str, float | None, int]:
    """The keyset cursor `after` as (part, value, lead id): part "s" walks scored leads in
    `sort` order, "u" the unscored ones by id."""
    if cursor is None:
        return "s", None, 0
    try:
        part, value, lead_id = cursor.split(":")
        if part not in ("s", "u"):
            raise ValueError(part)
        return part, float(value) if value else None, int(lead_id)
    except ValueError:
        raise HTTPException(422, f"after: {cursor[:40]!r} is not a cursor from `next`") from None


def lead_page(
    store: Store,
    model: str,
    where: LeadFilter,
    sort: str,
    limit: int,
    offset: int = 0,
    after: str | None = None,
) -> tuple[int, bool, list[dict[str, Any]], str | None]:
    """(leads matching `where` under `model`, whether that count is exact (`lead_count`), one
    page of them in `sort` order, the cursor of the next page); a lead never scored under
    `model` matches no score filter and sorts last.

    A page is found from the index alone (lead ids only) and then read: a deep `offset` skips
    index entries, not rows; `after` (the previous page's cursor, for the sorts in
    `KEYSET_SORTS`) skips nothing at all."""
    key = sort.lstrip("-")
    column = SORT_COLUMNS[key]
    descending = sort.startswith("-")
    order = column.desc() if descending else column.asc()
    if column.nullable:
        order = order.nulls_last()
    with store.engine.connect() as conn:
        where = resolved(conn, where)
        count, exact = lead_count(conn, model, where)
        if column.table is not SCORE:
            ids = _lead_sorted_ids(model, where, order, limit, offset)
            rows = _read(conn, model, [int(r[0]) for r in conn.execute(ids)])
            return count, exact, rows, None
        part, value, last = _after(sort, after)
        found: list[int] = []
        cursor: str | None = None
        if part == "s":
            joined, conditions = _scored(model, where)
            query = (
                sa.select(SCORE.c.lead_id, column)
                .select_from(joined)
                .where(*conditions)
                .order_by(order, SCORE.c.lead_id)
                .limit(limit)
            )
            if after is None:
                page = list(conn.execute(query.offset(offset)))
            else:  # two index range seeks: the rest of the cursor's value, then beyond it
                page = list(conn.execute(query.where(column == value, SCORE.c.lead_id > last)))
                if len(page) < limit:
                    beyond = column < value if descending else column > value
                    page += list(conn.execute(query.where(beyond).limit(limit - len(page))))
            found = [r[0] for r in page]
            if page and sort in KEYSET_SORTS:
                cursor = f"s:{page[-1][1]!r}:{page[-1][0]}"
        if len(found) < limit and not where.score_conditions():
            tail = sa.select(LEAD.c.id).where(_unscored(model), *where.lead_conditions())
            tail = tail.order_by(LEAD.c.id).limit(limit - len(found))
            if part == "u":
                tail = tail.where(LEAD.c.id > last)
            elif after is None and not found:
                joined, conditions = _scored(model, where)
                scored = sa.select(sa.func.count()).select_from(joined).where(*conditions)
                tail = tail.offset(max(0, offset - int(conn.execute(scored).scalar_one())))
            rest = list(conn.execute(tail).scalars())
            found += rest
            if rest and sort in KEYSET_SORTS:
                cursor = f"u::{rest[-1]}"
        if len(found) < limit:
            cursor = None
        return count, exact, _read(conn, model, found), cursor


def _lead_sorted_ids(
    model: str, where: LeadFilter, order: sa.ColumnElement[Any], limit: int, offset: int
) -> sa.Select[Any]:
    """Ids of one page sorted by a lead column."""
    if where.score_conditions():
        joined = LEAD.join(SCORE, SCORE.c.lead_id == LEAD.c.id)
        query = sa.select(LEAD.c.id).select_from(joined).where(*_scored(model, where)[1])
    else:
        query = sa.select(LEAD.c.id).where(*where.lead_conditions())
    return query.order_by(order, LEAD.c.id).limit(limit).offset(offset)


def _read(conn: Connection, model: str, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The list columns of `ids`, in the order given."""
    if not ids:
        return []
    joined = LEAD.outerjoin(SCORE, sa.and_(SCORE.c.lead_id == LEAD.c.id, SCORE.c.model == model))
    query = sa.select(*LIST_COLUMNS).select_from(joined).where(LEAD.c.id.in_(list(ids)))
    rows = {r.id: r._asdict() for r in conn.execute(query)}
    return [rows[i] for i in ids if i in rows]


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


@dataclass(frozen=True)
class FilterOptions:
    """The values a lead-list filter offers: those present in the store."""

    grades: list[str]
    sources: list[str]
    channels: list[str]


def _distinct(conn: Connection, table: str, column: str) -> list[str]:
    """The distinct non-null values of an indexed column, one index probe per value (a loose
    index scan) rather than a read of every row."""
    query = f"""
        WITH RECURSIVE found(v) AS (
            SELECT min({column}) FROM {table}
            UNION ALL
            SELECT (SELECT min({column}) FROM {table} WHERE {column} > found.v)
            FROM found WHERE found.v IS NOT NULL
        )
        SELECT v FROM found WHERE v IS NOT NULL"""
    return [str(v) for v in conn.execute(sa.text(query)).scalars()]


def filter_options(store: Store, model: str) -> FilterOptions:
    """Distinct grades under `model` (from the kept counters once built), identity systems and
    channels."""
    with store.engine.connect() as conn:
        if summary.built(conn):
            grades = sorted(summary.grades(conn, model))
        else:
            query = sa.select(SCORE.c.grade).where(
                SCORE.c.model == model, SCORE.c.grade.is_not(None)
            )
            grades = sorted(str(v) for v in conn.execute(query.distinct()).scalars())
        sources = sorted(_distinct(conn, "identity", "system"))
        channels = sorted(_distinct(conn, "lead", "channel"))
    return FilterOptions(grades, sources, channels)


@dataclass(frozen=True)
class RuleStat:
    """A ledger line summed over the leads scored under a model."""

    section: str
    kind: str
    name: str
    leads: int  # leads it fired for
    count: int  # matches counted, over those leads
    points: float


def rule_stats(store: Store, model: str) -> list[RuleStat]:
    """Per ledger line (rule, decay or clamp): leads it fired for, matches and points in total,
    from the figures the scorer keeps (`core.store.summary`) once built."""
    with store.engine.connect() as conn:
        if summary.built(conn):
            return [
                RuleStat(r.section, r.kind, r.name, r.leads, r.count, r.points)
                for r in summary.rules(conn, model)
            ]
    return rule_stats_from_scratch(store, model)


def rule_stats_from_scratch(store: Store, model: str) -> list[RuleStat]:
    """`rule_stats` summed by the database over every JSON ledger under `model`."""
    if store.dialect == "postgresql":
        query = """
            SELECT e->>'section', e->>'kind', e->>'name', COUNT(*),
                   SUM((e->>'count')::numeric), SUM((e->>'points')::numeric)
            FROM score, json_array_elements(score.ledger) AS e
            WHERE score.model = :model GROUP BY 1, 2, 3"""
    else:
        query = """
            SELECT json_extract(e.value, '$.section'), json_extract(e.value, '$.kind'),
                   json_extract(e.value, '$.name'), COUNT(*),
                   SUM(json_extract(e.value, '$.count')), SUM(json_extract(e.value, '$.points'))
            FROM score, json_each(score.ledger) AS e
            WHERE score.model = :model GROUP BY 1, 2, 3"""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(query), {"model": model}).all()
    return [
        RuleStat(str(s), str(k), str(n), int(leads), int(count or 0), round(float(pts or 0), 2))
        for s, k, n, leads, count, pts in rows
    ]


@dataclass(frozen=True)
class TierStat:
    tier: str | None
    leads: int
    qualified: int
    average: float


def tier_stats(store: Store, model: str) -> list[TierStat]:
    """Leads, qualified leads and the average total per stored tier under `model`, from the
    kept figures once built."""
    with store.engine.connect() as conn:
        if summary.built(conn):
            tiers = summary.figures(conn, model)["tier"]
            return [
                TierStat(
                    None if name == NONE_LABEL else name,
                    v["leads"],
                    v["qualified"],
                    v["total"] / 1000 / v["leads"],
                )
                for name, v in tiers.items()
                if v["leads"]
            ]
    return tier_stats_from_scratch(store, model)


def tier_stats_from_scratch(store: Store, model: str) -> list[TierStat]:
    """`tier_stats` grouped by the database over every score under `model`."""
    query = (
        sa.select(
            SCORE.c.tier,
            sa.func.count(),
            sa.func.sum(sa.case((SCORE.c.qualified.is_(True), 1), else_=0)),
            sa.func.avg(SCORE.c.total),
        )
        .where(SCORE.c.model == model)
        .group_by(SCORE.c.tier)
    )
    with store.engine.connect() as conn:
        return [
            TierStat(tier, int(n), int(q or 0), float(avg or 0))
            for tier, n, q, avg in conn.execute(query)
        ]


def lead_activity(store: Store, lead_id: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(activities of a lead, the newest `limit` of them, newest first)."""
    where = ACTIVITY.c.lead_id == lead_id
    newest = sa.select(ACTIVITY).where(where)
    newest = newest.order_by(ACTIVITY.c.occurred_at.desc(), ACTIVITY.c.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).where(where)).scalar_one()
        return int(total), [r._asdict() for r in conn.execute(newest)]


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
    q: str = Query(
        "",
        max_length=200,
        description="Part of the email, first, last or full name, or company, in any case "
        "(as the database folds it: A-Z only on SQLite), `%` and `_` literal; `total` is "
        "exact unless `total_exact` says otherwise.",
    ),
    source: list[str] = Query([], description="Only leads known to these sources (repeat)."),
    channel: list[str] = Query([], description="Only these channels (repeat)."),
    sort: LeadSort = Query("-total", description="Sort key; a leading `-` sorts descending."),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(
        0, ge=0, le=MAX_OFFSET, description=f"Leads to skip (at most {MAX_OFFSET:,})."
    ),
    after: str | None = Query(
        None,
        max_length=100,
        description="The `next` of the previous page: the page after it, however deep "
        f"(sorts {', '.join(KEYSET_SORTS)}); `offset` is then ignored.",
    ),
) -> LeadList:
    """Leads with their score under one model, filtered, sorted and one page at a time."""
    name = ctx.model(model).name
    where = LeadFilter(tier, grade, qualified, q, source, channel)
    if after is not None and sort not in KEYSET_SORTS:
        raise HTTPException(422, f"after: works with the sorts {', '.join(KEYSET_SORTS)}")
    total, exact, rows, cursor = lead_page(ctx.store, name, where, sort, limit, offset, after)
    colors = tier_colors(ctx.hub)
    items = [LeadSummary(**r, tier_color=colors.get((name, r["tier"]))) for r in rows]
    return LeadList(
        model=name,
        total=total,
        total_exact=exact,
        limit=limit,
        offset=offset,
        items=items,
        next=cursor,
    )


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
