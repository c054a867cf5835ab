"""The dashboard: server-rendered pages (Jinja2) with inline SVG charts, no JavaScript or build.

    /             score distribution in tier colours, top leads, conversion by score bracket and
                  average score by channel (the conversion figures once outcomes exist)
    /leads/{id}   a lead's score and ledger per model, its score-history chart and outcomes

`create_app` puts these pages behind the same credentials as the API. Chart geometry is worked
out here; the templates only draw it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from core.errors import ConfigError
from core.web.api import (
    HistoryPoint,
    LeadFilter,
    WebContext,
    context,
    lead_detail,
    lead_page,
    model_report,
    tier_colors,
)
from scoring.model import ScoringModel
from scoring.report import NONE_LABEL, Bracket, Report

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
PALETTE = ("#d7301f", "#fc8d59", "#fdae61", "#91bfdb", "#4575b4", "#313695")
NEUTRAL = "#9aa5b1"
TOP = 20
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,30}")

pages = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


# -- colours -----------------------------------------------------------------------------------


def safe_color(value: str | None, fallback: str = NEUTRAL) -> str:
    """`value` when it is a hex colour or a colour name, else `fallback` (it lands in markup)."""
    return value if value and _COLOR.fullmatch(value) else fallback


def tier_palette(model: ScoringModel) -> dict[str, str]:
    """Tier name → its colour from the model file, or one of a default ramp (hot to cold)."""
    return {
        t.name: safe_color(t.color, PALETTE[min(i, len(PALETTE) - 1)])
        for i, t in enumerate(model.tiers)
    }


def tier_of(model: ScoringModel, score: float) -> str | None:
    """The tier a score falls in (the first whose `min` it reaches, top tier first)."""
    return next((t.name for t in model.tiers if t.min is None or score >= t.min), None)


# -- chart geometry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    color: str
    label: str
    value: str
    title: str


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    base: float
    columns: list[Column]


def column_chart(
    values: list[tuple[str, float, str, str, str]], width: int = 560, height: int = 220
) -> ColumnChart:
    """Columns from (label, value, shown value, colour, tooltip), scaled to the largest value."""
    base, top, gap = height - 28.0, 22.0, 6.0
    step = width / max(len(values), 1)
    biggest = max((v for _, v, *_ in values), default=0) or 1
    columns = []
    for i, (label, value, shown, color, title) in enumerate(values):
        h = (base - top) * value / biggest
        columns.append(
            Column(i * step + gap / 2, base - h, step - gap, h, color, label, shown, title)
        )
    return ColumnChart(width, height, base, columns)


@dataclass(frozen=True)
class LinePoint:
    x: float
    y: float
    title: str
    event: str | None


@dataclass
class LineChart:
    width: int
    height: int
    path: str = ""
    points: list[LinePoint] = field(default_factory=list)
    guides: list[tuple[float, str, str]] = field(default_factory=list)  # y, colour, label
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # colour, tier ≥ threshold
    left: float = 40
    right: float = 0


def history_chart(
    model: ScoringModel,
    history: list[HistoryPoint],
    until: datetime,
    width: int = 640,
    height: int = 240,
) -> LineChart:
    """The total as a step line from its first change to `until` (a score holds until the next
    change), on a true time axis, with a dashed guide at each tier's threshold."""
    chart = LineChart(width, height, right=width - 14.0)
    dated = [(h, h.computed_at) for h in history if h.computed_at is not None][-200:]
    if not dated:
        return chart
    top, bottom = 12.0, height - 26.0
    low = min(0.0, *(h.total for h, _ in dated))
    high = max(100.0, *(h.total for h, _ in dated))
    first, end = dated[0][1], max(until, dated[-1][1])
    span = (end - first).total_seconds() or 1.0

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    for h, at in dated:
        x = chart.left + (chart.right - chart.left) * (at - first).total_seconds() / span
        title = f"{at:%Y-%m-%d %H:%M} · {h.total:g} · {h.tier or '-'} {h.grade or ''}"
        chart.points.append(LinePoint(x, y_of(h.total), title, h.event))
    steps = [f"H{p.x:.1f} V{p.y:.1f}" for p in chart.points[1:]]
    start = chart.points[0]
    chart.path = " ".join([f"M{start.x:.1f},{start.y:.1f}", *steps, f"H{chart.right:.1f}"])
    colors = tier_palette(model)
    chart.guides = [(y_of(low), NEUTRAL, f"{low:g}"), (y_of(high), NEUTRAL, f"{high:g}")]
    thresholds = [(t.name, t.min) for t in model.tiers if t.min is not None]
    chart.guides += [(y_of(least), colors[name], f"{least:g}") for name, least in thresholds]
    chart.legend = [(colors[name], f"{name} ≥ {least:g}") for name, least in thresholds]
    chart.x_labels = [(chart.left, f"{first:%Y-%m-%d}"), (chart.right, f"{end:%Y-%m-%d}")]
    return chart


# -- the overview ------------------------------------------------------------------------------


def score_columns(model: ScoringModel, brackets: list[Bracket]) -> ColumnChart:
    """Leads per 10-point bracket, each column in the colour of the tier its middle falls in."""
    colors = tier_palette(model)
    return column_chart(
        [
            (
                f"{b.low:g}",
                b.leads,
                str(b.leads) if b.leads else "",
                colors.get(tier_of(model, (b.low + b.high) / 2) or "", NEUTRAL),
                f"{b.low:g} to {b.high:g}: {b.leads} leads",
            )
            for b in brackets
        ]
    )


def conversion_columns(brackets: list[Bracket]) -> ColumnChart:
    """Converted / decided per score bracket (scores as of each lead's decision point)."""
    return column_chart(
        [
            (
                f"{b.low:g}",
                b.rate or 0.0,
                f"{b.rate:.0%} of {b.decided}" if b.rate is not None else "",
                "#2b8a3e",
                f"{b.low:g} to {b.high:g}: {b.converted} of {b.decided} decided converted",
            )
            for b in brackets
        ]
    )


def overview(ctx: WebContext, model: ScoringModel) -> dict[str, Any]:
    """What the overview page shows for `model`."""
    report: Report | None = None
    problem: str | None = None
    try:
        report = model_report(ctx.store, model)
    except ConfigError as exc:
        problem = str(exc)
    count, rows = lead_page(ctx.store, model.name, LeadFilter(), "-total", TOP, 0)
    qualified, _ = lead_page(ctx.store, model.name, LeadFilter(qualified=True), "id", 1, 0)
    colors = tier_palette(model)
    data: dict[str, Any] = {
        "model": model,
        "problem": problem,
        "report": report,
        "leads_total": count,
        "qualified": qualified,
        "top": rows,
        "colors": colors,
    }
    if report is not None:
        decided = sum(b.decided for b in report.conversion)
        converted = sum(b.converted for b in report.conversion)
        biggest = max((g.average for g in report.channels), default=0) or 1
        data |= {
            "tiers": [t for t in report.tiers if t.leads or t.tier != NONE_LABEL],
            "scores": score_columns(model, report.brackets),
            "decided": decided,
            "converted": converted,
            "conversion": conversion_columns(report.conversion) if decided else None,
            "channel_scale": 100 / max(biggest, 100),
        }
    return data


def _base(ctx: WebContext) -> dict[str, Any]:
    """What every page's header shows."""
    return {"models": [m.name for m in ctx.hub.models], "now": datetime.now().astimezone()}


@pages.get("/")
def index(
    request: Request, ctx: WebContext = Depends(context), model: str | None = Query(None)
) -> HTMLResponse:
    """The overview of one scoring model (the first by default)."""
    base = _base(ctx)
    if not ctx.hub.models:
        return TEMPLATES.TemplateResponse(request, "empty.html", base)
    chosen = ctx.model(model)
    return TEMPLATES.TemplateResponse(request, "index.html", base | overview(ctx, chosen))


@pages.get("/leads/{lead_id}")
def lead(request: Request, lead_id: int, ctx: WebContext = Depends(context)) -> HTMLResponse:
    """One lead: scores, ledgers, history charts and outcomes."""
    detail = lead_detail(ctx.store, ctx.hub, lead_id)
    base = _base(ctx)
    if detail is None:
        return TEMPLATES.TemplateResponse(
            request, "missing.html", base | {"lead_id": lead_id}, status_code=404
        )
    by_name = {m.name: m for m in ctx.hub.models}
    colors = {k: safe_color(v) for k, v in tier_colors(ctx.hub).items()}
    charts = {
        s.model: history_chart(
            by_name[s.model], [h for h in detail.history if h.model == s.model], base["now"]
        )
        for s in detail.scores
        if s.model in by_name
    }
    return TEMPLATES.TemplateResponse(
        request, "lead.html", base | {"lead": detail, "charts": charts, "colors": colors}
    )
