"""CLI commands that read and compute scores: score, leads, explain, history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from core.cli.main import app, console, handles_errors, print_json, state
from core.errors import ConfigError
from core.pipeline import score as scorer
from core.store import store as store_queries
from scoring.engine import ScoreResult
from scoring.model import ScoringModel


def _model(name: str | None) -> ScoringModel:
    models = state.hub().models
    if not models:
        raise ConfigError(f"{state.hub().path}: no scoring models configured (`scoring:`)")
    if name is None:
        return models[0]
    for model in models:
        if model.name == name:
            return model
    raise ConfigError(f"no model named {name!r} (configured: {', '.join(m.name for m in models)})")


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--as-of: not an ISO 8601 date/time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _tier_style(model: ScoringModel, tier: str | None) -> str:
    for t in model.tiers:
        if t.name == tier and t.color:
            return f"bold {t.color}"
    return ""


@app.command()
@handles_errors
def score(
    full: bool = typer.Option(False, "--full", help="Rescore every lead, not only changed ones."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score leads whose data changed (everyone when a model file changed)."""
    hub, store = state.hub(), state.store()
    if not hub.models:
        raise ConfigError(f"{hub.path}: no scoring models configured (`scoring:`)")
    with console.status("scoring…") as status:
        run = scorer.score(
            store, hub.models, full=full, progress=lambda d, t: status.update(f"scoring {d}/{t}")
        )
    if as_json:
        print_json(run.__dict__)
        return
    rescored = f" (full rescore: {', '.join(run.full_models)})" if run.full_models else ""
    console.print(
        f"scored {run.leads} lead(s){rescored}: {run.changed} changed, {run.events} event(s)"
    )


def _computed_rows(model: ScoringModel, as_of: datetime, top: int | None) -> list[dict[str, Any]]:
    """Scores as of a past moment, from stored data; nothing is written."""
    store = state.store()
    leads = store.leads()
    rows = []
    for start in range(0, len(leads), scorer.CHUNK):
        chunk = [lead["id"] for lead in leads[start : start + scorer.CHUNK]]
        with store.engine.connect() as conn:
            fields, acts = scorer.load_inputs(conn, chunk, until=as_of)
        for lead_id, _m, r in scorer.evaluate(fields, acts, [model], as_of):
            rows.append({"id": lead_id, "email": fields[lead_id]["email"], **_result_dict(r)})
    rows.sort(key=lambda r: (-r["total"], r["id"]))
    return rows[:top] if top else rows


def _result_dict(r: ScoreResult) -> dict[str, Any]:
    return {"model": r.model, **r.outputs()}


@app.command()
@handles_errors
def leads(
    top: int | None = typer.Option(None, "--top", help="Only the best N."),
    model_name: str | None = typer.Option(None, "--model", help="Model (default: the first)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Compute as of this ISO date/time."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Leads ranked by score, with tier, grade and the short reason."""
    hub = state.hub()
    moment = _as_of(as_of)
    model = _model(model_name) if (hub.models or model_name or moment) else None
    if model is None:
        rows = store_queries.ranked_leads(state.store(), "", top)
    elif moment is not None:
        rows = _computed_rows(model, moment, top)
    else:
        rows = store_queries.ranked_leads(state.store(), model.name, top)
    if as_json:
        keys = (
            "email",
            "model",
            "fit",
            "engagement",
            "total",
            "tier",
            "grade",
            "qualified",
            "qualified_at",
            "reason",
            "predictive",
        )
        print_json([{k: r.get(k) for k in keys} for r in rows])
        return
    table = Table(
        "#",
        "email",
        "total",
        "fit",
        "eng.",
        "tier",
        "grade",
        "qualified",
        "reason",
        title=f"leads — model {model.name}" if model else "leads",
    )
    for rank, r in enumerate(rows, 1):
        style = _tier_style(model, r.get("tier")) if model else ""
        table.add_row(
            str(rank),
            r["email"] or f"(lead {r['id']})",
            _num(r.get("total")),
            _num(r.get("fit")),
            _num(r.get("engagement")),
            r.get("tier") or "-",
            r.get("grade") or "-",
            "yes" if r.get("qualified") else "",
            r.get("reason") or "",
            style=style,
        )
    console.print(table)


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


def _lead(email: str) -> dict[str, Any]:
    row = state.store().lead_by_email(email)
    if row is None:
        raise ConfigError(f"no lead with email {email!r}")
    return row


@app.command()
@handles_errors
def explain(
    email: str,
    model_name: str | None = typer.Option(None, "--model"),
    as_of: str | None = typer.Option(None, "--as-of", help="Compute as of this ISO date/time."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The ledger behind a lead's score: every rule that fired, decay and clamps."""
    lead, model = _lead(email), _model(model_name)
    moment = _as_of(as_of) or datetime.now(UTC)
    with state.store().engine.connect() as conn:
        fields, acts = scorer.load_inputs(conn, [lead["id"]], until=moment)
    results = list(scorer.evaluate(fields, acts, [model], moment))
    if not results:
        raise ConfigError(f"{email} is outside the segment of model {model.name!r}")
    r = results[0][2]
    ledger = [scorer.entry_dict(e) for e in r.ledger]
    if as_json:
        print_json({"email": lead["email"], **_result_dict(r), "ledger": ledger})
        return
    table = Table(
        "section", "kind", "rule", "count", "points", title=f"{lead['email']} — {model.name}"
    )
    for e in ledger:
        table.add_row(e["section"], e["kind"], e["name"], str(e["count"]), f"{e['points']:+g}")
    table.add_row("", "", "[bold]total[/bold]", "", f"[bold]{r.total:g}[/bold]")
    console.print(table)
    console.print(
        f"fit {r.fit:g} · engagement {r.engagement:g} · tier {r.tier} · grade {r.grade}"
        f" · {'qualified' if r.qualified else 'not qualified'} — {r.reason}"
    )


@app.command()
@handles_errors
def history(
    email: str,
    model_name: str | None = typer.Option(None, "--model"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Every change of a lead's score, with qualified/released events."""
    lead = _lead(email)
    rows = store_queries.lead_history(state.store(), lead["id"], model_name)
    if as_json:
        print_json(rows)
        return
    table = Table("when", "model", "total", "fit", "eng.", "tier", "grade", "event")
    for h in rows:
        table.add_row(
            f"{h['computed_at']:%Y-%m-%d %H:%M}",
            h["model"],
            _num(h["total"]),
            _num(h["fit"]),
            _num(h["engagement"]),
            h["tier"] or "-",
            h["grade"] or "-",
            h["event"] or "",
        )
    console.print(table if rows else f"no score history for {email}")
