"""`leadhub leads`: the ranked leads, read without loading the scorer, SQLAlchemy or Alembic.

The common case (the stored scores, a store at the current schema, a hub file whose `scoring:`
plainly names its models) is answered from the model names and the database driver alone. Any
other (`--as-of`, a store to create or migrate, a hub file to explain) goes to the full path in
`core.cli.scores`, which opens the store and validates the hub file as every command does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from core.cli import terminal
from core.cli.terminal import JSON_HELP, command_module, console, handles_errors, print_json
from core.store import reader

JSON_KEYS = (
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


@dataclass(frozen=True)
class ModelView:
    """What the listing needs of a model: its name and each tier's colour."""

    name: str
    colors: Mapping[str, str] = field(default_factory=dict)

    def style(self, tier: str | None) -> str:
        color = self.colors.get(tier) if tier else None
        return f"bold {color}" if color else ""


Ranked = tuple[ModelView | None, list[dict[str, Any]]]


@handles_errors
def leads(
    top: int | None = typer.Option(None, "--top", help="Only the best N."),
    model_name: str | None = typer.Option(None, "--model", help="Model (default: the first)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Compute as of this ISO date/time."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Leads ranked by score, with tier, grade and the short reason."""

    found = None if as_of is not None else stored_ranking(model_name, top)
    if found is None:
        found = command_module("scores").ranked(model_name, as_of, top)
    model, rows = found
    if as_json:
        print_json([{k: r.get(k) for k in JSON_KEYS} for r in rows])
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
        table.add_row(
            str(rank),
            r["email"] or f"(lead {r['id']})",
            number(r.get("total")),
            number(r.get("fit")),
            number(r.get("engagement")),
            r.get("tier") or "-",
            r.get("grade") or "-",
            "yes" if r.get("qualified") else "",
            r.get("reason") or "",
            style=model.style(r.get("tier")) if model else "",
        )
    console.print(table)


def number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


def stored_ranking(model_name: str | None, top: int | None) -> Ranked | None:
    """The stored scores, best first, read directly; None when the full path must answer."""
    models = configured_models(terminal.invocation.config)
    if models is None:
        return None
    if model_name is None:
        model = models[0] if models else None
    else:
        model = next((m for m in models if m.name == model_name), None)
        if model is None:  # the full path names the models there are
            return None
    rows = reader.ranked_leads(terminal.invocation.database_url, model.name if model else "", top)
    return None if rows is None else (model, rows)


def configured_models(hub_file: Path) -> list[ModelView] | None:
    """The models the hub file's `scoring:` names, in order, read without validating them.

    None when that is not plain (unreadable files, `${VAR}`, unexpected shapes): the full
    reader, which validates the hub file and says what is wrong, is used then.
    """
    hub = _yaml(hub_file)
    if not isinstance(hub, dict):
        return None
    scoring = hub.get("scoring")
    if scoring is None:
        return []
    if isinstance(scoring, str):
        if "${" in scoring:
            return None
        scoring = _yaml(hub_file.parent / scoring)
    if not isinstance(scoring, dict) or not isinstance(scoring.get("models"), list):
        return None
    models = []
    for entry in scoring["models"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return None
        colors = {}
        for tier in entry.get("tiers") or ():
            if not isinstance(tier, dict) or not isinstance(tier.get("name"), str):
                return None
            color = tier.get("color")
            if color is not None and not isinstance(color, str):
                return None
            if color:
                colors[tier["name"]] = color
        models.append(ModelView(entry["name"], colors))
    return models


def _yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
