"""Changing the scoring model: `leadhub preview` (what would change) and `leadhub publish`.

`publish` writes the candidate over the model file the hub file's `scoring:` names (the hub file
itself is not touched, so its comments and layout stay as they are); the file it replaces is kept
beside it as `<name>.previous`. The next score run sees a new content hash and rescores everyone.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import typer
import yaml
from rich.table import Table

from core.cli.common import console, handles_errors, heading, print_json, read_model_file, state
from core.config import interpolate
from core.errors import ConfigError
from core.pipeline.preview import LeadChange, ModelPreview, preview
from scoring.model import ModelError, ScoringModel, parse_models
from scoring.report import Bracket

SHOWN = 10  # leads listed per (un)qualified table; --json lists them all


@handles_errors
def preview_command(
    model_file: Path = typer.Argument(..., help="The candidate model file."),
    model_name: str | None = typer.Option(
        None, "--model", help="Preview only this model of the file (default: every model)."
    ),
    top: int = typer.Option(SHOWN, "--top", min=0, help="Leads listed per (un)qualified table."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print the comparison as JSON: per model the tier moves matrix, qualified counts, "
        "every newly and no longer qualified lead, rule use and conversion by bracket.",
    ),
) -> None:
    """Score every lead with a candidate model, writing nothing, and compare with the current."""
    candidates = _pick(read_model_file(model_file), model_name, model_file)
    started = time.perf_counter()
    result = preview(state.store(), state.hub(), candidates)
    seconds = time.perf_counter() - started
    if as_json:
        print_json(result.to_json())
        return
    for found in result.models:
        _print_model(found, top)
    console.print(f"[dim]{result.leads} leads previewed in {seconds:.2f} s; nothing written[/dim]")


def _pick(models: list[ScoringModel], name: str | None, path: Path) -> list[ScoringModel]:
    if name is None:
        return models
    chosen = [m for m in models if m.name == name]
    if not chosen:
        known = ", ".join(m.name for m in models)
        raise ConfigError(f"{path}: no model named {name!r} (the file has: {known})")
    return chosen


def _print_model(p: ModelPreview, top: int) -> None:
    heading(f"[bold]{p.model}[/bold]: candidate against the stored scores")
    for note in p.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    moves = Table("now \\ candidate", *p.to_tiers, title=f"tier moves ({p.tier_changes} change)")
    for tier in p.from_tiers:
        cells = [
            (f"[bold]{n}[/bold]" if tier == to and n else str(n)) if n else "[dim]0[/dim]"
            for to, n in p.moves[tier].items()
        ]
        moves.add_row(tier, *cells)
    console.print(moves)
    console.print(f"qualified: {p.qualified_before} now, {p.qualified_after} with the candidate")
    for title, leads in (
        ("newly qualified", p.newly_qualified),
        ("no longer qualified", p.no_longer_qualified),
    ):
        _print_changes(f"{title}: {len(leads)}", leads, top)
    rules = Table(
        "section", "rule", "leads now", "leads candidate", "points now", "points candidate",
        title="rules: leads they apply to and points awarded",
    )  # fmt: skip
    for r in p.rules:
        name = r.name if r.kind == "rule" else f"[dim]{r.kind}:[/dim] {r.name}"
        rules.add_row(
            r.section, name, str(r.current_leads), str(r.candidate_leads),
            f"{r.current_points:g}", f"{r.candidate_points:g}",
        )  # fmt: skip
    console.print(rules)
    conversion = Table(
        "score", "decided now", "converted now", "rate now",
        "decided candidate", "converted candidate", "rate candidate",
        title="conversion by score (decided leads scored just before their outcome)",
    )  # fmt: skip
    for b in p.conversion:
        now = [_dash(b.current, "decided"), _dash(b.current, "converted"), _rate(b.current)]
        c = b.candidate
        conversion.add_row(
            f"{b.low:g}-{b.high:g}", *now, str(c.decided), str(c.converted), _rate(c)
        )
    console.print(conversion)


def _print_changes(title: str, leads: list[LeadChange], top: int) -> None:
    if not leads:
        console.print(f"{title}")
        return
    table = Table("lead", "email", "total now", "total candidate", "tier now", "tier candidate",
                  title=title + (f" (first {top})" if len(leads) > top else ""))  # fmt: skip
    for c in leads[:top]:
        before = "-" if c.total_before is None else f"{c.total_before:g}"
        table.add_row(str(c.lead_id), c.email or "", before, f"{c.total_after:g}",
                      c.tier_before or "-", c.tier_after or "-")  # fmt: skip
    console.print(table)


def _dash(bracket: Bracket | None, name: str) -> str:
    return "-" if bracket is None else str(getattr(bracket, name))


def _rate(bracket: Bracket | None) -> str:
    value = None if bracket is None else bracket.rate
    return "-" if value is None else f"{value:.1%}"


# -- publish -------------------------------------------------------------------------------------


@handles_errors
def publish(
    model_file: Path = typer.Argument(..., help="The model file to make current."),
) -> None:
    """Make a model file current: copy it over the file the hub file's `scoring:` names."""
    hub = state.hub()
    target = _model_path(hub.path)
    text = _read(model_file)
    models = _validate(text, model_file, target)
    for dest in hub.destinations.values():
        wanted = dest.settings.model if dest.settings else None
        if wanted is not None and wanted not in {m.name for m in models}:
            raise ConfigError(
                f"{model_file}: destinations.{dest.name} writes the outputs of model "
                f"{wanted!r}, which this file does not define; add it or change the destination"
            )
    if target.exists() and target.read_text(encoding="utf-8") == text:
        console.print(f"{target} already holds this model file; nothing to publish")
        return
    kept = _replace(target, text)
    names = ", ".join(m.name for m in models)
    console.print(f"published {model_file} to {target} (models: {names})")
    if kept is not None:
        console.print(f"the previous version is kept in {kept}")
    console.print("next: [bold]leadhub score[/bold] rescores every lead with it (so does the "
                  "scheduler's next score job)")  # fmt: skip


def _model_path(hub_path: Path) -> Path:
    """The model file the hub file's `scoring:` names (relative to the hub file)."""
    raw = yaml.safe_load(hub_path.read_text(encoding="utf-8")) or {}
    scoring = raw.get("scoring") if isinstance(raw, dict) else None
    if not isinstance(scoring, str):
        raise ConfigError(
            f"{hub_path}: `scoring:` must name a model file for `leadhub publish` to replace "
            "(e.g. `scoring: models.yaml`); move inline models into such a file first"
        )
    return hub_path.parent / str(interpolate(scoring, "scoring"))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read model file {path}: {exc.strerror}") from None


def _validate(text: str, source: Path, target: Path) -> list[ScoringModel]:
    """The file's models, with paths in rules resolved where the file will live."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    try:
        return parse_models(data, base_dir=target.parent, source=str(source))
    except ModelError as exc:
        raise ConfigError(str(exc)) from None


def _replace(target: Path, text: str) -> Path | None:
    """Write `text` to `target` atomically; the old file is kept as `<name>.previous`."""
    kept = None
    if target.exists():
        kept = target.with_name(target.name + ".previous")
        kept.write_bytes(target.read_bytes())
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, target)
    return kept
