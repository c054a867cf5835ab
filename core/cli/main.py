"""The `leadhub` command line (Typer + rich). Exit codes: 0 ok, 1 failure, 2 bad usage or config."""

from __future__ import annotations

from pathlib import Path

import typer
import typer.main
from typer import _click as click  # the click that Typer vendors and TyperGroup subclasses
from typer.core import TyperCommand, TyperGroup

from core.cli.terminal import begin_invocation, command_module

# Every command, in the order `leadhub --help` lists them: (name, module, function, summary).
# A command's module is imported only when that command runs (or its own --help is asked for), so
# `leadhub --help` and a light command do not pay for the web app, the jobs or the analytics.
# tests/core/test_cli_commands.py holds each summary to its function's docstring.
COMMANDS: tuple[tuple[str, str, str, str], ...] = (
    (
        "init",
        "setup",
        "init",
        "Write a commented example hub file, model file and example CSV data.",
    ),
    (
        "check",
        "setup",
        "check",
        "Validate the hub file and model file, shape and meaning; exit 2 naming each "
        "problem's key.",
    ),
    ("sync", "sync", "sync", "Pull the named sources (or all) into the store."),
    (
        "quarantine",
        "sync",
        "quarantine",
        "Records that failed validation, with where they came from and why.",
    ),
    (
        "status",
        "jobs",
        "status",
        "Each source, scoring and destination: last run, counts, next run, parked, dead letters.",
    ),
    (
        "score",
        "scores",
        "score",
        "Score leads whose data changed (everyone when a model file changed).",
    ),
    ("leads", "leads", "leads", "Leads ranked by score, with tier, grade and the short reason."),
    (
        "explain",
        "scores",
        "explain",
        "The ledger behind a lead's score: every rule that fired, decay and clamps.",
    ),
    (
        "history",
        "scores",
        "history",
        "Every change of a lead's score, with qualified/released events.",
    ),
    (
        "report",
        "analytics",
        "report",
        "Scores against outcomes: tiers, brackets, channels, sources, qualified leads per month.",
    ),
    (
        "backtest",
        "analytics",
        "backtest",
        "Score every decided lead as of just before its outcome; AUC, lift, suggested thresholds.",
    ),
    (
        "train",
        "analytics",
        "train",
        "Train the predictive model on decided outcomes; report its 5-fold AUC and calibration.",
    ),
    (
        "preview",
        "model",
        "preview_command",
        "Score every lead with a candidate model, writing nothing, and compare with the current.",
    ),
    (
        "publish",
        "model",
        "publish",
        "Make a model file current: copy it over the file the hub file's `scoring:` names.",
    ),
    (
        "bench",
        "bench",
        "bench",
        "Measure pull throughput, rescore time, push efficiency, webhook latency and memory.",
    ),
    (
        "sandbox",
        "demo",
        "sandbox",
        "Serve every vendor sandbox on one port, each under /<vendor> (Ctrl-C to stop).",
    ),
    (
        "demo",
        "demo",
        "demo",
        "Replay days of a synthetic world through the vendor sandboxes, then show what happened.",
    ),
    ("worker", "jobs", "worker", "Run dramatiq worker processes on Redis (LEADHUB_BROKER_URL)."),
    (
        "scheduler",
        "jobs",
        "scheduler",
        "Enqueue every source's `schedule`; a second copy stands by until the first stops.",
    ),
    (
        "run",
        "jobs",
        "run",
        "All in one process: the scheduler and worker threads (embedded mode, one machine).",
    ),
    (
        "push",
        "push",
        "push",
        "Send changed scores to the named destinations (or all), in their largest batches.",
    ),
    (
        "outbox",
        "push",
        "outbox_command",
        "Records waiting to be written back: pending, retrying (with backoff) and parked.",
    ),
    (
        "serve",
        "serve",
        "serve",
        "Serve /api, the dashboard at /, /metrics, /healthz and /webhooks/facebook.",
    ),
)
GROUPS: tuple[tuple[str, str, str, str], ...] = (
    ("db", "setup", "db_app", "Database maintenance."),
    ("dlq", "jobs", "dlq_app", "Jobs that failed for good: list them, put them back."),
)


class LazyCommands(TyperGroup):
    """The group behind `leadhub`: each command is built from its module when first used.

    While the group's own help is written, a command is only its name and summary, so listing
    them imports none of their modules.
    """

    listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, *_ in COMMANDS + GROUPS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = next((s for s in COMMANDS + GROUPS if s[0] == cmd_name), None)
        if spec is None:
            return None
        name, module_name, attribute, summary = spec
        if self.listing:
            return TyperCommand(name, help=summary, short_help=summary)
        target = getattr(command_module(module_name), attribute)
        if isinstance(target, typer.Typer):
            group: click.Command = typer.main.get_group(target)
            group.name = name
            return group
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        return typer.main.get_command(single)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, cls=LazyCommands)


@app.callback()
def main(
    config: Path | None = typer.Option(None, "--config", "-c", help="Hub file (LEADHUB_CONFIG)."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Store URL (LEADHUB_DATABASE_URL)."
    ),
    log_level: str | None = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING…"),
) -> None:
    """Pull leads and activity, score them, push scores back to CRMs."""

    overrides = {"config": config, "database_url": database_url, "log_level": log_level}
    begin_invocation({key: str(value) for key, value in overrides.items() if value is not None})
