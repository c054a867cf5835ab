"""CLI commands that read and compute scores: score, explain, history, and `leads` when it
cannot read the stored scores directly (`core.cli.leads`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from core.cli.common import (
    JSON_HELP,
    console,
    handles_errors,
    hub_model,
    iso,
    print_json,
    progress_bar,
    state,
)
from core.cli.leads import ModelView, Ranked, number
from core.errors import ConfigError
from core.pipeline import score as scorer
from core.store import store as store_queries
from scoring.engine import QualifiedState, ScoreResult
from scoring.model import ScoringModel

if TYPE_CHECKING:
    from scoring.engine import LedgerEntry, QualifiedState, ScoreResult
    from scoring.model import ScoringModel


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"--as-of: not an ISO 8601 date/time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@handles_errors
def score(
    full: bool = typer.Option(False, "--full", help="Rescore every lead, not only changed ones."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score leads whose data changed (everyone when a model file changed)."""

    hub, store = state.hub(), state.store()
    if not hub.models:
        raise ConfigError(f"{hub.path}: no scoring models configured (`scoring:`)")
    with progress_bar("scoring", quiet=as_json) as tracker:
        run = scorer.score(store, hub.models, full=full, progress=tracker.update)
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
    return {"model": r.model, **r.outputs(), "qualified_at": _qualified_at(r)}


def _qualified_at(r: ScoreResult) -> datetime | None:
    """When the lead qualified, as the score history knows it.

    A score computed here for display crosses the threshold "now" only in this computation:
    the engine stamps that moment, which is not when the lead qualified, so it is left out.
    """
    return r.qualified_at if r.qualified and r.event != "qualified" else None


def _qualified_state(lead_id: int, model: str, moment: datetime) -> QualifiedState | None:
    """The lead's qualified state as of `moment`, from its score history (None: no history)."""

    found = None
    for h in store_queries.lead_history(state.store(), lead_id, model):
        at = h["computed_at"]
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        if at > moment:
            break
        if h["event"] == "qualified":
            found = QualifiedState(True, at)
        elif h["event"] == "released":
            found = QualifiedState(False, None)
    return found


def ranked(model_name: str | None, as_of: str | None, top: int | None) -> Ranked:
    """`leadhub leads` through the store and the validated hub file: scores as stored, or as of
    a past moment."""

    hub = state.hub()
    moment = _as_of(as_of)
    model = hub_model(model_name) if (hub.models or model_name or moment) else None
    if model is None:
        rows = store_queries.ranked_leads(state.store(), "", top)
    elif moment is not None:
        rows = _computed_rows(model, moment, top)
    else:
        rows = store_queries.ranked_leads(state.store(), model.name, top)
    if model is None:
        return None, rows
    return ModelView(model.name, {t.name: t.color for t in model.tiers if t.color}), rows


def _lead(email: str) -> dict[str, Any]:
    row = state.store().lead_by_email(email)
    if row is None:
        raise ConfigError(f"no lead with email {email!r}")
    return row


@handles_errors
def explain(
    email: str,
    model_name: str | None = typer.Option(None, "--model"),
    as_of: str | None = typer.Option(None, "--as-of", help="Compute as of this ISO date/time."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The ledger behind a lead's score: every rule that fired, decay and clamps."""

    lead, model = _lead(email), hub_model(model_name)
    moment = _as_of(as_of) or datetime.now(UTC)
    with state.store().engine.connect() as conn:
        fields, acts = scorer.load_inputs(conn, [lead["id"]], until=moment)
    before = _qualified_state(lead["id"], model.name, moment)
    previous = {(lead["id"], model.name): before} if before else None
    results = list(scorer.evaluate(fields, acts, [model], moment, previous))
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
    for entry, e in zip(r.ledger, ledger, strict=True):
        name = e["name"] + _decay_note(model, entry)
        count = str(e["count"]) + (f" ({entry.live} live)" if entry.live is not None else "")
        table.add_row(e["section"], e["kind"], name, count, f"{e['points']:+g}")
    table.add_row("", "", "[bold]total[/bold]", "", f"[bold]{r.total:g}[/bold]")
    console.print(table)
    parts = [f"fit {r.fit:g}", f"engagement {r.engagement:g}"]
    parts += [f"tier {r.tier}"] if r.tier else []
    parts += [f"grade {r.grade}"] if r.grade else []  # no grade configured: nothing to show
    qualified_at = _qualified_at(r)
    if r.qualified:
        parts.append(f"qualified since {iso(qualified_at)}" if qualified_at else "qualified")
    else:
        parts.append("not qualified")
    console.print(" · ".join(parts) + (f" — {r.reason}" if r.reason else ""), highlight=False)


def _decay_note(model: ScoringModel, entry: LedgerEntry) -> str:
    """For an inactivity step that took less than its `minus`: that decay stopped at zero."""
    match = re.fullmatch(r"Inactive (\S+)\+ days", entry.name)
    if entry.kind != "decay" or match is None:
        return ""
    step = next(
        (s for s in model.engagement.decay.inactivity if f"{s.days:g}" == match.group(1)), None
    )
    if step is None or -entry.points >= step.minus:
        return ""
    return f" (the -{step.minus:g} step, cut at zero: decay stops at zero engagement)"


@handles_errors
def history(
    email: str,
    model_name: str | None = typer.Option(None, "--model"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
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
            iso(h["computed_at"]),
            h["model"],
            number(h["total"]),
            number(h["fit"]),
            number(h["engagement"]),
            h["tier"] or "-",
            h["grade"] or "-",
            h["event"] or "",
        )
    console.print(table if rows else f"no score history for {email}")
