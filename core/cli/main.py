"""The `leadhub` command line (Typer + rich). Exit codes: 0 ok, 1 failure, 2 bad usage or config."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from core.cli import analytics, bench, demo, jobs, model, push, scores, serve, setup, sync
from core.cli.common import setup_logging, state
from core.settings import Settings

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


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
    setup_logging(state.settings.log_level)


# Every command, in the order `leadhub --help` lists them.
COMMANDS: tuple[tuple[str | None, Callable[..., None]], ...] = (
    (None, setup.init),
    (None, setup.check),
    (None, sync.sync),
    (None, sync.quarantine),
    (None, jobs.status),
    (None, scores.score),
    (None, scores.leads),
    (None, scores.explain),
    (None, scores.history),
    (None, analytics.report),
    (None, analytics.backtest),
    (None, analytics.train),
    ("preview", model.preview_command),
    (None, model.publish),
    (None, bench.bench),
    (None, demo.sandbox),
    (None, demo.demo),
    (None, jobs.worker),
    (None, jobs.scheduler),
    (None, jobs.run),
    (None, push.push),
    ("outbox", push.outbox_command),
    (None, serve.serve),
)
for name, command in COMMANDS:
    app.command(name)(command)
app.add_typer(setup.db_app, name="db")
app.add_typer(jobs.dlq_app, name="dlq")
