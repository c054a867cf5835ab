"""`leadhub bench`: speed, API efficiency and memory figures (see bench/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from core.cli.common import console, handles_errors, progress_bar


def _show(section: str, value: Any) -> None:
    rows = value if isinstance(value, list) else [value]
    if not rows or not isinstance(rows[0], dict):
        console.print(f"[bold]{section}[/bold]: {value}")
        return
    table = Table(*rows[0].keys(), title=section)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row.values()))
    console.print(table)


@handles_errors
def bench(
    size: str = typer.Option("small", "--size", help="small (minutes) or large (1M leads)."),
    json_file: Path | None = typer.Option(None, "--json", help="Also write the figures here."),
    section: list[str] = typer.Option(
        None,
        "--section",
        help="Only these sections (rescore, pull, push, webhook, memory, dashboard, soak; repeat).",
    ),
    postgres: str | None = typer.Option(
        None,
        "--postgres",
        envvar="LEADHUB_BENCH_DATABASE_URL",
        help="Also measure on this PostgreSQL (a throwaway schema is used).",
    ),
    redis: str | None = typer.Option(
        None,
        "--redis",
        envvar="LEADHUB_BENCH_REDIS_URL",
        help="The soak's broker: a Redis database of its own (it is flushed).",
    ),
) -> None:
    """Measure pull throughput, rescore time, push efficiency, webhook latency and memory."""
    from bench.run import SECTIONS, SIZES, run_all, write_json

    if size not in SIZES:
        raise typer.BadParameter(f"--size must be one of {', '.join(SIZES)}")
    unknown = [s for s in section or [] if s not in SECTIONS]
    if unknown:
        raise typer.BadParameter(f"unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})")
    chosen = [s for s in SECTIONS if not section or s in section]
    # Sections are the steps: count, rate and time left across them; each table is printed above
    # the bar as its section ends. Only on a terminal, as every progress bar.
    with progress_bar("bench", total=len(chosen), rate_over=24 * 3600) as tracker:

        def done(name: str, value: Any) -> None:
            _show(name, value)
            tracker.advance(1)

        result = run_all(
            size,
            postgres,
            section or None,
            echo=done,
            starting=tracker.describe,
            redis_url=redis,
        )
    total = sum(result["seconds"].values())
    console.print(f"{len(result['seconds'])} section(s) in {total:.0f} s")
    if json_file:
        write_json(result, json_file)
        console.print(f"figures written to {json_file}")
