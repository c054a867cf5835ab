"""Pulling: `leadhub sync` (sources into the store) and `leadhub quarantine` (what was refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from core.cli.common import (
    JSON_HELP,
    Tracker,
    console,
    err_console,
    handles_errors,
    print_json,
    progress_bar,
    state,
)
from core.pipeline import pull as pipeline

if TYPE_CHECKING:
    from core.pipeline.pull import PullResult
    from core.store.ingest import PageCounts


@handles_errors
def sync(
    sources: list[str] = typer.Argument(None, help="Source names (default: all enabled)."),
    full: bool = typer.Option(False, "--full", help="Forget cursors and read everything again."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Pull the named sources (or all) into the store."""

    hub, store = state.hub(), state.store()
    names = sources or [n for n, s in hub.sources.items() if s.enabled]
    for name in names:
        hub.source(name)
    results = []
    failed = False
    for name in names:
        # Count and rate; the time left while a stream says how many records it still holds
        # (a CSV file does), for that stream.
        with progress_bar(f"pulling {name}", quiet=as_json) as tracker:

            def progress(
                stream: str, counts: PageCounts, left: int | None, _t: Tracker = tracker
            ) -> None:
                _t.advance(counts.read, left)

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


def _pull_row(result: PullResult) -> dict[str, Any]:
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


def _print_pulls(results: list[PullResult]) -> None:
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


@handles_errors
def quarantine(
    source: str | None = typer.Option(None, "--source", help="Only this source."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
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
