"""CLI commands of the write-back path: push scores to destinations, and look at the outbox."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from core.cli.common import (
    JSON_HELP,
    console,
    handles_errors,
    iso,
    print_json,
    progress_bar,
    state,
)
from core.pipeline import outbox

if TYPE_CHECKING:
    from core.pipeline.outbox import PushResult

PREVIEW_ROWS = 20


@handles_errors
def push(
    destinations: list[str] = typer.Argument(None, help="Destination names (default: all)."),
    resend_all: bool = typer.Option(
        False, "--resend-all", help="Send every lead again, even values already accepted."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be sent and how many API calls; send nothing."
    ),
    retry_parked: bool = typer.Option(
        False, "--retry-parked", help="Give parked records a fresh set of attempts."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Send changed scores to the named destinations (or all), in their largest batches."""

    hub, store = state.hub(), state.store()
    names = destinations or list(hub.destinations)
    for name in names:
        hub.destination(name)  # every name is checked before anything is sent
    options = {"resend_all": resend_all, "dry_run": dry_run, "retry_parked": retry_parked}
    results = []
    for name in names:
        if as_json:
            results.append(outbox.push_configured(store, hub, name, **options))
            continue
        with progress_bar(f"pushing {name}") as tracker:
            push_options = {**options, "progress": tracker.update}
            results.append(outbox.push_configured(store, hub, name, **push_options))
    if as_json:
        print_json([_result_dict(r) for r in results])
    else:
        _print_results(results)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _result_dict(result: PushResult) -> dict[str, Any]:
    row: dict[str, Any] = {
        "destination": result.destination,
        "status": "ok" if result.ok else "failed",
        "dry_run": result.dry_run,
        "run_id": result.run_id,
        **{k: getattr(result, k) for k in ("planned", "attempted", "accepted", "created")},
        **{k: getattr(result, k) for k in ("retrying", "parked", "calls", "actions")},
        "rejections": [{"lead_id": i, "reason": r} for i, r in result.rejections],
        "error": result.error,
    }
    if result.dry_run:
        row["records"] = [asdict(item) for item in result.preview]
        row["qualified"] = [asdict(item) for item in result.action_preview]
    return row


def _print_results(results: list[PushResult]) -> None:
    for result in results:
        if result.dry_run:
            _print_preview(result)
    if not any(r.dry_run for r in results):
        table = Table("destination", "status", "sent", "created", "retrying", "parked", "calls")
        for r in results:
            status = "[green]ok[/green]" if r.ok else "[red]failed[/red]"
            table.add_row(r.destination, status, str(r.accepted), str(r.created),
                          str(r.retrying), str(r.parked), str(r.calls))  # fmt: skip
        console.print(table)
    for r in results:
        if r.error:
            console.print(f"[red]{r.destination}:[/red] {r.error}", highlight=False)
        for lead_id, reason in r.rejections[:PREVIEW_ROWS]:
            console.print(f"  lead {lead_id}: {reason}", highlight=False)
        if r.parked:
            console.print(f"{r.parked} record(s) parked: see `leadhub outbox --parked`")


def _print_preview(result: PushResult) -> None:
    actions = f", and {result.actions} on_qualified action(s)" if result.actions else ""
    console.print(
        f"[bold]{result.destination}[/bold] (dry run): would send {result.attempted} record(s)"
        f"{actions} in {result.calls} API call(s)"
    )
    if not result.preview:
        return
    table = Table("lead", "email", "record", "values")
    for item in result.preview[:PREVIEW_ROWS]:
        values = json.dumps(dict(item.values), default=str)
        table.add_row(str(item.lead_id), item.email or "", item.record_id or "(new)", values)
    console.print(table)
    if len(result.preview) > PREVIEW_ROWS:
        console.print(f"… and {len(result.preview) - PREVIEW_ROWS} more (--json lists them all)")


@handles_errors
def outbox_command(
    parked: bool = typer.Option(False, "--parked", help="Only records parked after failures."),
    destination: str | None = typer.Option(None, "--destination", help="Only this destination."),
    as_json: bool = typer.Option(
        False, "--json", help="Print counts and records as JSON (for scripts)."
    ),
) -> None:
    """Records waiting to be written back: pending, retrying (with backoff) and parked."""

    store = state.store()
    states = ["parked"] if parked else ["pending", "retry", "parked"]
    rows = outbox.outbox_rows(store, destination, states=states)
    counts = outbox.outbox_counts(store, destination)
    if as_json:
        print_json({"counts": counts, "records": rows})
        return
    for name, by_state in sorted(counts.items()):
        summary = ", ".join(f"{n} {s}" for s, n in sorted(by_state.items()))
        console.print(f"[bold]{name}[/bold]: {summary}")
    if not rows:
        console.print("nothing parked" if parked else "nothing waiting: every value was delivered")
        return
    table = Table("destination", "lead", "email", "state", "attempts", "next attempt", "last error")
    for r in rows:
        when = iso(r["next_attempt_at"])
        table.add_row(r["destination"], str(r["lead_id"]), r["email"] or "", r["state"],
                      str(r["attempts"]), when, r["last_error"] or "")  # fmt: skip
    console.print(table)
