"""CLI commands that run and watch the jobs: worker, scheduler, run, dlq, and the status table."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
from dramatiq.brokers.redis import RedisBroker
from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser
from rich.table import Table

from core import logs, metrics
from core.cli.common import (
    JSON_HELP,
    console,
    err_console,
    handles_errors,
    iso,
    print_json,
    service_failure,
    state,
)
from core.config import HubConfig
from core.errors import ConfigError
from core.jobs import actors, deadletters
from core.jobs import broker as jobs
from core.jobs.locks import LockState, lock_states
from core.jobs.scheduler import HubScheduler, next_run
from core.pipeline.outbox import outbox_counts
from core.store.store import SYNC_RUN, Store

dlq_app = typer.Typer(help="Jobs that failed for good: list them, put them back.")

LOG_FORMAT = typer.Option("text", "--log-format", help="text, or json: one JSON object per line.")
METRICS_PORT = typer.Option(None, "--metrics-port", help="Serve Prometheus /metrics on this port.")


def _export_settings(log_format: str | None = None) -> None:
    """Actors (here or in worker processes) read settings from the environment: pass the CLI's
    overrides on; with `log_format`, also set up logging for a long-running command."""

    settings = state.settings
    os.environ["LEADHUB_CONFIG"] = str(Path(settings.config).resolve())
    os.environ["LEADHUB_DATABASE_URL"] = settings.database_url
    if log_format is None:
        return
    if log_format not in ("text", "json"):
        raise typer.BadParameter(f"--log-format: expected text or json, got {log_format!r}")
    os.environ[logs.LEVEL_ENV] = settings.log_level
    os.environ[logs.FORMAT_ENV] = log_format
    logs.configure(settings.log_level, "json" if log_format == "json" else "text", root=True)


def _queue_names(kinds: str) -> list[str]:
    """`pull,score` → the queues of those kinds of work; a ConfigError names an unknown one."""
    prefix = jobs.load_job_settings().queue
    names = []
    for kind in (k.strip() for k in kinds.split(",") if k.strip()):
        if kind == "other":
            names.append(prefix)
        elif kind in jobs.KINDS:
            names.append(f"{prefix}.{kind}")
        else:
            known = ", ".join([*jobs.KINDS, "other"])
            raise ConfigError(f"--queues: no kind of work {kind!r} (known: {known})")
    return names


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@handles_errors
def worker(
    processes: int = typer.Option(2, "--processes", "-p", help="Worker processes."),
    threads: int = typer.Option(4, "--threads", "-t", help="Threads per process."),
    modules: list[str] = typer.Option(
        [], "--module", "-m", help="Extra module to import in every worker (your own actors)."
    ),
    queues: str | None = typer.Option(
        None,
        "--queues",
        "-Q",
        help="Kinds of work to take, comma-separated: intake, pull, score, push, other (actors "
        "of your own modules). Default: all.",
    ),
    metrics_port: int | None = METRICS_PORT,
    log_format: str = LOG_FORMAT,
) -> None:
    """Run dramatiq worker processes on Redis (LEADHUB_BROKER_URL)."""

    if not state.settings.broker_url:
        raise ConfigError(
            "leadhub worker needs LEADHUB_BROKER_URL=redis://…; on one machine without Redis, "
            "`leadhub run` runs the jobs in-process"
        )
    _export_settings(log_format)
    # Each worker process builds its broker (`configure`), then declares the actors.
    argv = ["core.jobs.broker:configure", "core.jobs.actors", *modules]
    argv += ["--processes", str(processes), "--threads", str(threads)]
    if queues:
        argv += ["--queues", *_queue_names(queues)]
    argv += ["--skip-logging"] if log_format == "json" else []
    with tempfile.TemporaryDirectory(prefix="leadhub-metrics-") as metrics_dir:
        if metrics_port:
            # prometheus_client chooses multiprocess mode when first imported, and this process
            # has imported it already (core.metrics): the workers are spawned, not forked, so
            # that each imports it afresh with the directory set.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            os.environ["LEADHUB_METRICS_PORT"] = str(metrics_port)  # read by core.metrics
            argv += ["--fork-function", "core.metrics:serve_forever", "--use-spawn"]
        # dramatiq's command line is untyped: it takes argparse's namespace, returns an exit code.
        parsed = make_argument_parser().parse_args(argv)  # type: ignore[no-untyped-call]
        code = dramatiq_main(parsed)  # type: ignore[no-untyped-call]
    raise typer.Exit(code or 0)


@handles_errors
def scheduler(log_format: str = LOG_FORMAT) -> None:
    """Enqueue every source's `schedule`; a second copy stands by until the first stops."""
    _export_settings(log_format)

    runtime = jobs.configure_once()
    stop = _stop_on_signals()
    hub_scheduler = HubScheduler(
        Path(state.settings.config),
        jobs.lock_for("scheduler"),
        decay_schedule=runtime.settings.decay_schedule or None,
    )
    hub_scheduler.run(stop)


@handles_errors
def run(
    threads: int = typer.Option(4, "--threads", "-t", help="Worker threads."),
    metrics_port: int | None = METRICS_PORT,
    log_format: str = LOG_FORMAT,
) -> None:
    """All in one process: the scheduler and worker threads (embedded mode, one machine)."""
    _export_settings(log_format)

    state.hub()  # a broken hub file is exit code 2 now, not a log line later
    stop = _stop_on_signals()
    if metrics_port:
        metrics.serve(metrics_port)
    runtime = jobs.configure_once()
    worker_threads = actors.start_worker(threads)
    hub_scheduler = HubScheduler(
        Path(state.settings.config),
        jobs.lock_for("scheduler"),
        decay_schedule=runtime.settings.decay_schedule or None,
    )
    thread = threading.Thread(target=hub_scheduler.run, args=(stop,), name="scheduler")
    thread.start()
    console.print("leadhub running: scheduler and worker threads (Ctrl-C stops)")
    while not stop.wait(1):
        pass
    thread.join()
    worker_threads.stop(timeout=30_000)


# -- dead letters --------------------------------------------------------------------------------


@dlq_app.callback(invoke_without_command=True)
@handles_errors
def dlq(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the jobs that failed for good (retries exhausted, or a permanent error)."""

    if ctx.invoked_subcommand:
        return

    runtime = jobs.configure_once()
    letters = deadletters.list_dead_letters(runtime.broker, jobs.queues(), state.store())
    if as_json:
        print_json([d.as_json() for d in letters])
        return
    if not letters:
        console.print("no dead letters")
        return
    table = Table("id", "job", "failed", "retries", "error")
    for d in letters:
        job = f"{d.actor} {' '.join(map(str, d.args))}".strip()
        table.add_row(d.id[:8], job, iso(d.failed_at), str(d.retries), d.error)
    console.print(table)
    console.print("put one back with `leadhub dlq requeue ID` (an id prefix will do)")


@dlq_app.command("requeue")
@handles_errors
def dlq_requeue(
    ids: list[str] = typer.Argument(..., help="Dead-letter ids (or unique prefixes)."),
) -> None:
    """Put dead letters back on the queue (embedded mode: run them now, in this process)."""

    _export_settings()

    runtime = jobs.configure_once()
    queues = jobs.queues()
    requeued = deadletters.requeue(runtime.broker, queues, state.store(), ids)
    for d in requeued:
        console.print(f"requeued {d.id[:8]} {d.actor} {' '.join(map(str, d.args))}")
    if requeued and not state.settings.broker_url:
        with console.status("running them…"):
            actors.run_until_idle()
        left = {d.id for d in deadletters.list_dead_letters(runtime.broker, queues, state.store())}
        failed = [d for d in requeued if d.id in left]
        for d in failed:
            err_console.print(f"[red]{d.id[:8]} failed again[/red]: see `leadhub dlq`")
        if failed:
            raise typer.Exit(1)


# -- status --------------------------------------------------------------------------------------


def _last_ok(store: Store) -> dict[tuple[str, str], datetime]:
    """When each (kind, target) last finished a successful run."""

    query = (
        sa.select(SYNC_RUN.c.kind, SYNC_RUN.c.target, sa.func.max(SYNC_RUN.c.finished_at))
        .where(SYNC_RUN.c.status == "ok")
        .group_by(SYNC_RUN.c.kind, SYNC_RUN.c.target)
    )
    with store.engine.connect() as conn:
        rows = list(conn.execute(query))
    return {(k, t): _utc(f) for k, t, f in rows if f is not None}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _dead_letters() -> tuple[Counter[tuple[str, str]], str | None, str | None]:
    """Dead letters per (actor, target), who holds the scheduler lock, and why neither could be
    read (a configured broker that does not answer: status still shows the store's side)."""

    try:
        runtime = jobs.configure_once()
        letters = deadletters.list_dead_letters(runtime.broker, jobs.queues(), state.store())
        holder = jobs.lock_for("scheduler").holder()
    except Exception as exc:
        # Without a broker, both live in the store: its failure is the store's, reported as such.
        failure = service_failure(exc) if state.settings.broker_url else None
        if failure is None or "broker" not in failure[0]:
            raise
        return Counter(), None, failure[0]
    return Counter((d.actor, d.target) for d in letters), holder, None


def status_rows(
    store: Store,
    hub: HubConfig,
    now: datetime | None = None,
    dead: Counter[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """One row per source, the score step and each destination: last run and its counts, next
    scheduled run, lag (time since the last successful run), parked records, dead letters.

    `dead` counts dead letters per (actor, target); by default they are read from the broker.
    """
    now = now or datetime.now(UTC)
    runs = {(r.kind, r.target): r for r in store.last_runs()}
    ok = _last_ok(store)
    dead = _dead_letters()[0] if dead is None else dead
    parked = outbox_counts(store)
    targets = [("pull", name) for name in hub.sources] + [("score", "all")]
    targets += [("push", name) for name in hub.destinations]
    rows = []
    for kind, name in targets:
        run, source = runs.get((kind, name)), hub.sources.get(name) if kind == "pull" else None
        schedule = source.schedule if source and source.enabled else None
        last_ok = ok.get((kind, name))
        if kind == "score":
            dead_letters = sum(dead[(a, "")] for a in ("score", "rescore_all", "decay"))
        else:
            dead_letters = dead[(kind, name)]
        rows.append(
            {
                "kind": {"pull": "source", "push": "destination"}.get(kind, kind),
                "name": name,
                "last_run": (run.finished_at or run.started_at) if run else None,
                "result": run.status if run else None,
                "read": run.read if run else 0,
                "created": run.created if run else 0,
                "updated": run.updated if run else 0,
                "quarantined": run.quarantined if run and kind == "pull" else 0,
                "error": run.error if run else None,
                "next_run": next_run(schedule, now) if schedule else None,
                "lag_seconds": round((now - last_ok).total_seconds()) if last_ok else None,
                "parked": parked.get(name, {}).get("parked", 0) if kind == "push" else 0,
                "dead_letters": dead_letters,
            }
        )
    return rows


@handles_errors
def status(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Each source, scoring and destination: last run, counts, next run, parked, dead letters.

    Then the active scheduler, and the locks held (a stale one: its holder stopped renewing it).
    """
    show_status(as_json)


def show_status(as_json: bool = False) -> None:
    """Print the status table (`leadhub status` calls this)."""
    dead, holder, broker_problem = _dead_letters()
    rows = status_rows(state.store(), state.hub(), dead=dead)
    held = [] if broker_problem else _locks()
    if as_json:
        locks = [lock.as_json() for lock in held]
        print_json({"scheduler": holder, "targets": rows, "locks": locks})
        return
    table = Table("", "name", "last run", "result", "read", "new", "upd", "quar.", "next run",
                  "lag", "parked", "dead")  # fmt: skip
    for r in rows:
        colour = {"ok": "green", "failed": "red"}.get(r["result"] or "", "yellow")
        table.add_row(
            r["kind"],
            r["name"],
            _when(r["last_run"]),
            f"[{colour}]{r['result'] or '-'}[/{colour}]",
            *(str(r[k]) for k in ("read", "created", "updated", "quarantined")),
            _when(r["next_run"]),
            _age(r["lag_seconds"]),
            str(r["parked"] or ""),
            f"[red]{r['dead_letters']}[/red]" if r["dead_letters"] else "",
        )
    console.print(table)
    for r in rows:
        if r["result"] == "failed" and r["error"]:
            err_console.print(f"[red]{r['name']}:[/red] {r['error']}", highlight=False)
    if broker_problem:
        err_console.print(
            f"[yellow]{broker_problem}: dead letters and the scheduler are not shown[/yellow]",
            highlight=False,
        )
    else:
        console.print(f"scheduler: {holder or 'not running'}")
    for lock in held:
        what = f"lock {lock.name}: held by {lock.holder}, frees in {lock.expires_in:.0f} s"
        if lock.stale:
            err_console.print(f"[yellow]{what} (stale: its holder stopped renewing)[/yellow]",
                              highlight=False)  # fmt: skip
        else:
            console.print(what, highlight=False)


def _locks() -> list[LockState]:
    """The locks held now (Redis, or the store's leases when embedded), stale ones marked."""
    runtime = jobs.configure_once()
    broker = runtime.broker
    backend = broker.client if isinstance(broker, RedisBroker) else state.store()
    return lock_states(backend, runtime.settings.lock_ttl)


def _when(value: datetime | None) -> str:
    return iso(value)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
