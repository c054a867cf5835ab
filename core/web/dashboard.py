"""The dashboard: server-rendered pages (Jinja2) with inline SVG charts, no JavaScript or build.

    /             score distribution in tier colours, top leads, conversion by score bracket and
                  average score by channel (the conversion figures once outcomes exist)
    /leads        every lead: search, filters, sort and paging as query parameters
    /leads/{id}   a lead's score and ledger per model, its score-history chart, its activity
                  timeline and outcomes
    /models/{name}  a model's rules with how many leads each fired for and the points awarded,
                  its tier distribution and thresholds
    /whatif       paste or upload a model file (POST) to see what publishing it would change:
                  tier moves, (un)qualified leads, rule use, conversion by bracket

`create_app` puts these pages behind the same credentials as the API. Chart geometry is worked
out here; the templates only draw it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from core.errors import ConfigError
from core.pipeline.highlights import latest
from core.pipeline.preview import NOT_SCORED, PreviewReport, preview
from core.store.tables import utcnow
from core.web.api import (
    HistoryPoint,
    LeadFilter,
    WebContext,
    context,
    filter_options,
    lead_activity,
    lead_count,
    lead_detail,
    lead_page,
    model_report,
    rule_stats,
    tier_colors,
    tier_stats,
)
from scoring.compiled import compile_model
from scoring.model import ModelError, ScoringModel, parse_models
from scoring.report import NONE_LABEL, Bracket, Report

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
PALETTE = ("#d7301f", "#fc8d59", "#fdae61", "#91bfdb", "#4575b4", "#313695")
NEUTRAL = "#9aa5b1"
MISSING = "\u2013"  # an en dash stands for a value that is not there
TOP = 20
PAGE_SIZES = (25, 50, 100)
MAX_PAGE = 1_000_000  # beyond it the offset means nothing; the route answers 422
TIMELINE = 100  # activities shown on a lead page, newest first
MAX_MODEL_FILE = 1_000_000  # bytes of a what-if request; a model file is a few kilobytes
SHOWN_CHANGES = 50  # newly / no longer qualified leads listed per model
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


# -- numbers as shown -------------------------------------------------------------------------


def number(value: float | None, digits: int = 0) -> str:
    """`value` rounded to `digits`, never "-0" (a small negative average rounds to 0)."""
    if value is None or math.isnan(value):
        return MISSING
    shown = f"{value:.{digits}f}"
    return shown[1:] if shown.startswith("-") and float(shown) == 0 else shown


def percent(share: float | None) -> str:
    """A share as a whole percentage; "<1%" or ">99%" rather than a 0% or 100% that is not."""
    if share is None:
        return MISSING
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 <= share < 1:
        return ">99%"
    return f"{share:.0%}"


TEMPLATES.env.filters["number"] = number
TEMPLATES.env.filters["percent"] = percent


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
    anchor: str = "middle"  # of the value above the column

    @property
    def value_x(self) -> float:
        """Where the value text is anchored: the first column's starts at its left edge and
        the last one's ends at its right edge, so a label wider than its column stays inside
        the chart instead of being cut off at the border."""
        if self.anchor == "start":
            return self.x
        if self.anchor == "end":
            return self.x + self.width
        return self.x + self.width / 2


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
    last = len(values) - 1
    for i, (label, value, shown, color, title) in enumerate(values):
        h = (base - top) * value / biggest
        anchor = "start" if i == 0 and last else ("end" if i == last and last else "middle")
        columns.append(
            Column(i * step + gap / 2, base - h, step - gap, h, color, label, shown, title, anchor)
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
                f"{percent(b.rate)} of {b.decided}" if b.rate is not None else "",
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
    count, _, rows, _ = lead_page(ctx.store, model.name, LeadFilter(), "-total", TOP, 0)
    with ctx.store.engine.connect() as conn:  # no search: both counts are exact
        qualified, _ = lead_count(conn, model.name, LeadFilter(qualified=True))
    colors = tier_palette(model)
    data: dict[str, Any] = {
        "model": model,
        "problem": problem,
        "report": report,
        "leads_total": count,
        "qualified": qualified,
        "top": rows,
        "colors": colors,
        "highlights": latest(ctx.store, model.name),
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
    count, activity = lead_activity(ctx.store, lead_id, TIMELINE)
    return TEMPLATES.TemplateResponse(
        request,
        "lead.html",
        base
        | {
            "lead": detail,
            "charts": charts,
            "colors": colors,
            "timeline": timeline(ctx.hub.models, activity),
            "activity_total": count,
        },
    )


SHOWN_PROPERTIES = ("url", "form", "campaign", "subject", "email", "title", "name")


@dataclass(frozen=True)
class Moment:
    """One activity on a lead's timeline and the engagement rules it matches."""

    at: datetime | None
    type: str
    source: str
    properties: list[tuple[str, str]]
    rules: list[tuple[str, str, float]]  # model, rule, points per match


def timeline(models: list[ScoringModel], activity: list[dict[str, Any]]) -> list[Moment]:
    """Activities newest first, the properties that say what happened, and the rules each one
    matches (the points a rule gives per match; its limits and decay are in the ledger)."""
    compiled = [(m.name, compile_model(m)) for m in models]
    moments = []
    for a in activity:
        props = a["properties"] if isinstance(a["properties"], dict) else {}
        shown = [(k, str(props[k])) for k in SHOWN_PROPERTIES if props.get(k) not in (None, "")]
        rules = [
            (name, c.engagement[i].name, c.engagement[i].points)
            for name, c in compiled
            for i in c.rules_for(a["type"], props)
        ]
        moments.append(Moment(a["occurred_at"], a["type"], a["source"], shown, rules))
    return moments


# -- the lead list -----------------------------------------------------------------------------

ListSort = Literal["score", "fit", "engagement", "email", "company", "updated", "qualified"]
SORTS: dict[str, str] = {
    "score": "total",
    "fit": "fit",
    "engagement": "engagement",
    "email": "email",
    "company": "company",
    "updated": "updated_at",
    "qualified": "qualified_at",
}
_GRADE = re.compile(r"[A-Da-d][1-4]")


@dataclass(frozen=True)
class ListQuery:
    """The lead list's query parameters as given, and links that change some of them."""

    params: dict[str, str | list[str]]

    def link(self, **changes: str | int | None) -> str:
        """/leads with these parameters changed (None drops one), the others kept; a change
        of anything but the page goes back to page 1."""
        merged = dict(self.params)
        if any(k != "page" for k in changes):
            merged.pop("page", None)
        for key, value in changes.items():
            if value is None or value == "":
                merged.pop(key, None)
            else:
                merged[key] = str(value)
        return "/leads" + ("?" + urlencode(merged, doseq=True) if merged else "")

    def sort_link(self, key: str, current: str, order: str) -> str:
        """The header link of a column: its own order flipped when it is the current sort."""
        flipped = "asc" if order == "desc" else "desc"
        first = "asc" if key in ("email", "company") else "desc"
        return self.link(sort=key, order=flipped if key == current else first)


def _values(name: str, given: list[str], limit: int = 100) -> list[str]:
    """The non-empty values of a repeated parameter (an "any" option sends an empty one)."""
    values = [v.strip() for v in given if v.strip()]
    if len(values) > 20 or any(len(v) > limit for v in values):
        raise HTTPException(422, f"{name}: at most 20 values of up to {limit} characters")
    return values


@pages.get("/leads")
def leads(
    request: Request,
    ctx: WebContext = Depends(context),
    model: str | None = Query(None, max_length=100),
    q: str = Query("", max_length=200),
    tier: list[str] = Query([]),
    grade: list[str] = Query([]),
    qualified: Literal["", "yes", "no"] = Query(""),
    source: list[str] = Query([]),
    channel: list[str] = Query([]),
    sort: ListSort = Query("score"),
    order: Literal["desc", "asc"] = Query("desc"),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    size: int = Query(PAGE_SIZES[0], ge=1, le=PAGE_SIZES[-1]),
) -> HTMLResponse:
    """Every lead under one model, searched, filtered, sorted and paged."""
    base = _base(ctx)
    if not ctx.hub.models:
        return TEMPLATES.TemplateResponse(request, "empty.html", base)
    chosen = ctx.model(model)
    tiers, grades = _values("tier", tier), _values("grade", grade)
    known = [t.name for t in chosen.tiers]
    unknown = [t for t in tiers if t not in known]
    if unknown:
        raise HTTPException(
            422, f"tier {unknown[0]!r} is not a tier of model {chosen.name} ({', '.join(known)})"
        )
    bad = [g for g in grades if not _GRADE.fullmatch(g)]
    if bad:
        raise HTTPException(422, f"grade {bad[0]!r} is not a grade (A1 to D4)")
    where = LeadFilter(
        tiers,
        grades,
        {"yes": True, "no": False}.get(qualified),
        q,
        _values("source", source),
        _values("channel", channel),
    )
    key = SORTS[sort] if order == "asc" else f"-{SORTS[sort]}"
    count, exact, rows, _ = lead_page(ctx.store, chosen.name, where, key, size, (page - 1) * size)
    pages_total = max(1, math.ceil(count / size))
    if exact and page > pages_total:
        raise HTTPException(
            422, f"page {page} is past the last page ({pages_total}) of {count} matching leads"
        )
    if not exact and page > 1 and not rows:
        raise HTTPException(422, f"page {page} is past the last of the matching leads")
    given = [(k, v) for k, v in request.query_params.multi_items() if v.strip()]
    params: dict[str, str | list[str]] = {}
    for k, v in given:
        if k in ("tier", "grade", "source", "channel"):
            listed = params.setdefault(k, [])
            assert isinstance(listed, list)
            listed.append(v)
        else:
            params[k] = v
    return TEMPLATES.TemplateResponse(
        request,
        "leads.html",
        base
        | {
            "model": chosen,
            "rows": rows,
            "count": count,
            # a lower bound of `count` leads is shown as "more than count - 1"
            "count_text": f"{count:,}" if exact else f"{count - 1:,}+",
            "page": page,
            # not exact: the pages run on while they are full
            "pages": pages_total if exact else None,
            "more": len(rows) == size,
            "size": size,
            "sizes": PAGE_SIZES,
            "first": (page - 1) * size + 1,
            "query": ListQuery(params),
            "where": where,
            "sort": sort,
            "order": order,
            "options": filter_options(ctx.store, chosen.name),
            "colors": tier_palette(chosen),
            "qualified": qualified,
        },
    )


# -- a model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleLine:
    """A rule of the model (or a decay or clamp line of the ledgers) and what it did."""

    section: str
    kind: str
    name: str
    condition: str
    points: float | None  # per match, as the model says; None for decay and clamp lines
    leads: int
    count: int
    awarded: float


def model_rules(model: ScoringModel, store_stats: list[Any]) -> list[RuleLine]:
    """The model's rules in its order with their firing counts; ledger lines the model no
    longer has (a renamed rule's old scores) and decay or clamp lines come after."""
    stats = {(s.section, s.kind, s.name): s for s in store_stats}
    lines: list[RuleLine] = []

    def add(section: str, name: str, condition: str, points: float) -> None:
        found = stats.pop((section, "rule", name), None)
        lines.append(
            RuleLine(
                section,
                "rule",
                name,
                condition,
                points,
                found.leads if found else 0,
                found.count if found else 0,
                found.points if found else 0.0,
            )
        )

    for fit in model.fit.rules:
        add("fit", fit.name, f"{fit.field} {fit.op} {fit.value!r}", fit.points)
    for rule in model.engagement.rules:
        parts = [rule.event]
        if rule.url:
            parts.append(f"url {rule.url}")
        parts += [f"{k} = {v!r}" for k, v in rule.where.items()]
        if rule.limit:
            parts.append(f"at most {rule.limit}")
        if rule.limit_per_day:
            parts.append(f"at most {rule.limit_per_day} a day")
        if rule.window_days:
            parts.append(f"within {rule.window_days:g} days")
        add("engagement", rule.name, " · ".join(parts), rule.points)
    for s in sorted(stats.values(), key=lambda s: (s.section != "fit", s.kind, s.name)):
        what = "no longer in the model" if s.kind == "rule" else s.kind
        lines.append(RuleLine(s.section, s.kind, s.name, what, None, s.leads, s.count, s.points))
    return lines


@pages.get("/models/{name}")
def model_page(request: Request, name: str, ctx: WebContext = Depends(context)) -> HTMLResponse:
    """A model: thresholds, rules with firing counts and points awarded, tier distribution."""
    chosen = ctx.model(name)
    tiers = {t.tier: t for t in tier_stats(ctx.store, chosen.name)}
    scored = sum(t.leads for t in tiers.values())
    order = [t.name for t in chosen.tiers] + sorted(
        (t for t in tiers if t not in {m.name for m in chosen.tiers}), key=str
    )
    distribution = [
        {
            "tier": t if t is not None else NONE_LABEL,
            "leads": tiers[t].leads if t in tiers else 0,
            "qualified": tiers[t].qualified if t in tiers else 0,
            "share": (tiers[t].leads / scored) if t in tiers and scored else 0.0,
            "average": tiers[t].average if t in tiers else None,
        }
        for t in order
    ]
    return TEMPLATES.TemplateResponse(
        request,
        "model.html",
        _base(ctx)
        | {
            "model": chosen,
            "scored": scored,
            "distribution": distribution,
            "rules": model_rules(chosen, rule_stats(ctx.store, chosen.name)),
            "colors": tier_palette(chosen),
        },
    )


# -- what-if -----------------------------------------------------------------------------------


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields and uploaded files of a form POST, by field name (the first of each).

    An urlencoded form (the pasted text) or multipart/form-data (an upload), read with the
    standard library's MIME parser; a file's bytes are decoded as UTF-8."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(415, f"expected a form (urlencoded or multipart), not {content_type!r}")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes) and name not in fields:
            fields[name] = payload.decode("utf-8", "replace")
    return fields


def candidate_models(text: str, base_dir: Path) -> list[ScoringModel]:
    """The models of a pasted or uploaded model file (`models:` or a single model mapping)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError("the model file", [f"invalid YAML: {exc}"]) from None
    if isinstance(data, dict) and "models" not in data and "name" in data:
        data = {"models": [data]}
    return parse_models(data, base_dir=base_dir, source="the model file")


@dataclass(frozen=True)
class MoveCell:
    leads: int
    same: bool  # on the diagonal: the tier does not change
    up: bool  # to a higher tier than before


def move_matrix(found: Any) -> list[tuple[str, list[MoveCell]]]:
    """The tier-move counts as rows of cells, marking the diagonal and moves up."""
    rank = {t: i for i, t in enumerate(found.to_tiers)}
    rows = []
    for before in found.from_tiers:
        cells = []
        for after in found.to_tiers:
            was = rank.get(before, len(rank)) if before != NOT_SCORED else len(rank) + 1
            cells.append(MoveCell(found.moves[before][after], before == after, rank[after] < was))
        rows.append((before, cells))
    return rows


def _whatif(request: Request, ctx: WebContext, **data: Any) -> HTMLResponse:
    status = data.pop("status", 200)
    page = _base(ctx) | {"text": "", "problems": [], "report": None} | data
    return TEMPLATES.TemplateResponse(request, "whatif.html", page, status_code=status)


@pages.get("/whatif")
def whatif_form(request: Request, ctx: WebContext = Depends(context)) -> HTMLResponse:
    """The what-if form: paste or upload a candidate model file."""
    return _whatif(request, ctx)


@pages.post("/whatif")
async def whatif_run(request: Request, ctx: WebContext = Depends(context)) -> HTMLResponse:
    """Preview a pasted (`model`) or uploaded (`file`) model file against the stored scores;
    nothing is written. A file that does not validate comes back with its problems (422)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_MODEL_FILE:
        raise HTTPException(413, f"a model file of at most {MAX_MODEL_FILE} bytes, please")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_MODEL_FILE:
            raise HTTPException(413, f"a model file of at most {MAX_MODEL_FILE} bytes, please")
    fields = form_fields(request.headers.get("content-type", ""), body)
    text = fields.get("file", "").strip() or fields.get("model", "")
    if not text.strip():
        problems = ["paste a model file or choose one to upload"]
        return _whatif(request, ctx, problems=problems, status=422)
    try:
        models = candidate_models(text, ctx.hub.base_dir)
    except ModelError as exc:
        return _whatif(request, ctx, text=text, problems=exc.problems, status=422)
    report: PreviewReport = await run_in_threadpool(
        preview, ctx.store, ctx.hub, models, now=utcnow()
    )
    colors = {
        name: color for m in (*ctx.hub.models, *models) for name, color in tier_palette(m).items()
    }
    return _whatif(
        request,
        ctx,
        text=text,
        report=report,
        matrices={m.model: move_matrix(m) for m in report.models},
        shown=SHOWN_CHANGES,
        colors=colors,
    )
