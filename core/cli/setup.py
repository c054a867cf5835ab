"""Setting up: `leadhub init` (example files), `leadhub check` (validate them), `leadhub db`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from core.cli.common import JSON_HELP, console, err_console, handles_errors, print_json, state
from core.cli.examples import write_examples
from core.config import HubFileError
from core.errors import ConfigError
from core.hubcheck import check_hub
from core.store import db

if TYPE_CHECKING:
    pass

db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")


@handles_errors
def init(
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write the files."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Write a commented example hub file, model file and example CSV data."""
    written = write_examples(directory, force=force)
    for path in written:
        console.print(f"wrote {path}")
    console.print("next: [bold]leadhub check[/bold], then [bold]leadhub sync[/bold]")


@handles_errors
def check(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Validate the hub file and model file, shape and meaning; exit 2 naming each problem's key.

    Meaning: files that do not exist, event types and fields no connector produces, caps below
    zero, tier gaps, decay steps that do not grow, destination fields the model never fills.
    """

    path = state.settings.config
    try:
        hub = state.hub()
    except HubFileError as exc:
        problems = exc.problems
        summary = None
    except ConfigError as exc:
        if not as_json:
            raise
        print_json({"ok": False, "file": str(path), "summary": None, "problems": [
            {"severity": "error", "file": str(path), "key": "", "message": str(exc)}
        ]})  # fmt: skip
        raise typer.Exit(2) from None
    else:
        problems = check_hub(hub)
        summary = {"sources": len(hub.sources), "destinations": len(hub.destinations),
                   "models": len(hub.models)}  # fmt: skip
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        rows = [p.as_dict() for p in problems]
        print_json({"ok": not errors, "file": str(path), "summary": summary, "problems": rows})
    else:
        for p in problems:
            label = "[red]error:[/red]" if p.severity == "error" else "[yellow]warning:[/yellow]"
            err_console.print(f"{label} {p}", highlight=False, markup=True)
        if summary is not None and not errors:
            console.print(
                f"[green]ok[/green] {path}: {summary['sources']} source(s), "
                f"{summary['destinations']} destination(s), {summary['models']} model(s)"
            )
        elif errors:
            err_console.print(f"{path}: {len(errors)} problem(s) to fix", highlight=False)
    if errors:
        raise typer.Exit(2)


@db_app.command("upgrade")
@handles_errors
def db_upgrade() -> None:
    """Apply pending schema migrations (also done automatically on start)."""

    store = state.store()
    console.print(f"database at revision {db.current_revision(store.engine)}")
