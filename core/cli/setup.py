"""Setting up: `leadhub init` (example files), `leadhub check` (validate them), `leadhub db`."""

from __future__ import annotations

from pathlib import Path

import typer

from core.cli.common import console, handles_errors, state
from core.cli.examples import write_examples
from core.store import db

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
def check() -> None:
    """Validate the hub file and model file; exit 2 with every problem listed."""
    hub = state.hub()
    console.print(
        f"[green]ok[/green] {hub.path}: {len(hub.sources)} source(s), "
        f"{len(hub.destinations)} destination(s), {len(hub.models)} model(s)"
    )


@db_app.command("upgrade")
@handles_errors
def db_upgrade() -> None:
    """Apply pending schema migrations (also done automatically on start)."""
    store = state.store()
    console.print(f"database at revision {db.current_revision(store.engine)}")
