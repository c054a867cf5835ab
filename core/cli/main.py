"""The `leadhub` command line (Typer + rich). Exit codes: 0 ok, 1 failure, 2 bad usage or config."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from core.config import HubConfig, load_hub
from core.errors import LeadhubError
from core.settings import Settings
from core.store.store import Store

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class State:
    settings: Settings = field(default_factory=Settings)
    _store: Store | None = None
    _hub: HubConfig | None = None

    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.database_url)
        return self._store

    def hub(self) -> HubConfig:
        if self._hub is None:
            self._hub = load_hub(Path(self.settings.config))
        return self._hub


state = State()


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn leadhub errors into a red message and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LeadhubError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


@app.callback()
def main(
    config: Path | None = typer.Option(None, "--config", "-c", help="Hub file (LEADHUB_CONFIG)."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Store URL (LEADHUB_DATABASE_URL)."
    ),
    log_level: str | None = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING…"),
) -> None:
    """Pull leads and activity, score them, push scores back to CRMs."""
    overrides: dict[str, Any] = {}
    if config is not None:
        overrides["config"] = config
    if database_url is not None:
        overrides["database_url"] = database_url
    if log_level is not None:
        overrides["log_level"] = log_level
    # Exported so that the job modules and worker processes this command starts see the same hub.
    for key, value in overrides.items():
        os.environ[f"LEADHUB_{key.upper()}"] = str(value)
    state.settings = Settings(**overrides)
    state._store = None
    state._hub = None
    _setup_logging(state.settings.log_level)


def _setup_logging(level: str) -> None:
    from core.logs import make_handler

    logger = logging.getLogger("leadhub")
    logger.setLevel(level.upper())
    if not logger.handlers:
        logger.addHandler(make_handler("text"))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# -- set-up --------------------------------------------------------------------------------------


@app.command()
@handles_errors
def init(
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write the files."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Write a commented example hub file, model file and example CSV data."""
    from core.cli.examples import write_examples

    written = write_examples(directory, force=force)
    for path in written:
        console.print(f"wrote {path}")
    console.print("next: [bold]leadhub check[/bold], then [bold]leadhub sync[/bold]")


@app.command()
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
    from core.store import db

    store = state.store()
    console.print(f"database at revision {db.current_revision(store.engine)}")


# -- sync ----------------------------------------------------------------------------------------


@app.command()
@handles_errors
def sync(
    sources: list[str] = typer.Argument(None, help="Source names (default: all enabled)."),
    full: bool = typer.Option(False, "--full", help="Forget cursors and read everything again."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Pull the named sources (or all) into the store."""
    from core.pipeline import pull as pipeline

    hub, store = state.hub(), state.store()
    names = sources or [n for n, s in hub.sources.items() if s.enabled]
    for name in names:
        hub.source(name)
    results = []
    failed = False
    for name in names:
        with console.status(f"pulling {name}…", spinner="dots") as status:

            def progress(stream: str, counts: Any, _s: Any = status, _n: str = name) -> None:
                _s.update(f"pulling {_n}: {stream} (+{counts.read} records)")

            result = pipeline.pull(
                store, hub, name, full=full, progress=None if as_json else progress
            )
        results.append(result)
        failed = failed or not result.ok
    if as_json:
        print_json([_pull_row(r) for r in results])
    else:
        _print_pulls(results)
    if failed:
        raise typer.Exit(1)


def _pull_row(result: Any) -> dict[str, Any]:
    c = result.counts
    return {
        "source": result.source,
        "run_id": result.run_id,
        "status": "ok" if result.ok else "failed",
        "read": c.read,
        "created": c.created,
        "updated": c.updated,
        "unchanged": c.unchanged,
        "quarantined": c.quarantined,
        "error": result.error,
    }


def _print_pulls(results: list[Any]) -> None:
    table = Table("source", "status", "read", "created", "updated", "unchanged", "quarantined")
    for r in results:
        row = _pull_row(r)
        status = "[green]ok[/green]" if r.ok else "[red]failed[/red]"
        table.add_row(r.source, status, *(str(row[k]) for k in list(row)[3:8]))
    console.print(table)
    for r in results:
        if r.error:
            err_console.print(f"[red]{r.source}:[/red] {r.error}", highlight=False)
        if r.counts.quarantined:
            console.print(f"{r.counts.quarantined} record(s) quarantined: see `leadhub quarantine`")


@app.command()
@handles_errors
def quarantine(
    source: str | None = typer.Option(None, "--source", help="Only this source."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Records that failed validation, with where they came from and why."""
    rows = state.store().quarantine(source)
    if as_json:
        print_json(
            [
                {k: r[k] for k in ("source", "stream", "record_ref", "reason", "raw", "created_at")}
                for r in rows
            ]
        )
        return
    table = Table("source", "stream", "record", "reason")
    for r in rows:
        table.add_row(r["source"], r["stream"], r["record_ref"], r["reason"])
    console.print(table if rows else "nothing in quarantine")


@app.command()
@handles_errors
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each source, scoring and destination: last run, counts, next run, parked, dead letters."""
    from core.cli.jobs import show_status

    show_status(as_json)


# Command modules register themselves on `app`; imported last so they can import from here.
from core.cli import (  # noqa: E402, F401
    analytics,
    bench,
    demo,
    jobs,
    push,
    scores,
    serve,
)
