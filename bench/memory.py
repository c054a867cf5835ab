"""Peak memory: of the rescore, and of a pull of many records (which must stream).

Each measured part runs in a fresh process (`isolated`), so its peak RSS is its own. The pull
reads from the fastest vendor sandbox (served by this process) or, when that many records would
take a sandbox too long to serve, from generated CSV files; `via` says which. RSS is sampled
after every stored page: `growth_mb` is the peak over the RSS before the pull, and
`growth_after_10pct_mb` the peak over the RSS once a tenth of the records were in — near zero
when the pull streams, proportional to the records when it holds them.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
# Above this many records, a generated CSV file: the sandboxes serve about 1,500 records/s once
# they hold 100,000 (their listings are not indexed), which would take most of a small run.
SANDBOX_LIMIT = 50_000
ROW_KEYS = ("part", "records", "via", "seconds", "baseline_mb", "peak_mb", "growth_mb",
            "growth_after_10pct_mb", "status")  # fmt: skip


def isolated(target: Any, *args: Any) -> Any:
    """`target(*args)` in a fresh (spawned) process; its result. `target` must be importable."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(target, *args).result()


def rss_mb() -> float:
    """This process's resident set now (Linux `/proc`), else its peak so far."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_mb()


def peak_mb() -> float:
    """This process's peak resident set: Linux's VmHWM, which (unlike `ru_maxrss`) starts
    afresh in a spawned process instead of carrying its parent's peak across exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def pull_in_child(hub_file: str, source_name: str, db_url: str, expected: int) -> dict[str, Any]:
    """Pull `source_name` of the hub file into `db_url`, sampling RSS after every page."""
    from core.config import load_hub
    from core.pipeline.pull import pull
    from core.store.ingest import PageCounts
    from core.store.store import Store

    hub = load_hub(Path(hub_file))
    store = Store(db_url)
    baseline = rss_mb()
    sampled = _Samples(baseline, expected)

    def progress(_stream: str, counts: PageCounts, _left: int | None) -> None:
        sampled.add(counts.read, rss_mb())

    started = time.perf_counter()
    result = pull(store, hub, source_name, progress=progress)
    seconds = time.perf_counter() - started
    store.close()
    peak = max(sampled.peak, peak_mb())
    tenth = sampled.at_tenth if sampled.at_tenth is not None else baseline
    return {
        "records": result.counts.read,
        "seconds": round(seconds, 2),
        "baseline_mb": round(baseline, 1),
        "peak_mb": round(peak, 1),
        "growth_mb": round(peak - baseline, 1),
        "growth_after_10pct_mb": round(peak - tenth, 1),
        "status": result.error or "ok",
    }


class _Samples:
    """RSS after each page: the peak, and the value once a tenth of `expected` records were in."""

    def __init__(self, baseline: float, expected: int) -> None:
        self.peak, self.expected = baseline, expected
        self.read = 0
        self.at_tenth: float | None = None

    def add(self, records: int, rss: float) -> None:
        self.read += records
        self.peak = max(self.peak, rss)
        if self.at_tenth is None and self.read >= self.expected / 10:
            self.at_tenth = rss


def pull_memory(records: int, vendor: str | None) -> dict[str, Any]:
    """RSS of pulling about `records` records from `vendor`'s sandbox (or a CSV file)."""
    if vendor is None or records > SANDBOX_LIMIT:
        return _csv_pull(records)
    from bench.pull import SEED, people_for
    from bench.sandboxes import hub_config, sandbox_hub
    from connectors.sandbox.world import World

    world = World.build(seed=SEED, people=people_for(vendor, records))
    with sandbox_hub(world, [vendor]) as hub, hub_config(hub.base, [vendor]) as (config, tmp):
        name = next(iter(config.sources))
        figures = isolated(
            pull_in_child, str(config.path), name, f"sqlite:///{tmp / 'memory.db'}", records
        )
    return {"via": f"{vendor} sandbox", **figures}


def _csv_pull(records: int) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="leadhub-bench-") as tmp:
        folder = Path(tmp)
        write_csv(folder, records)
        hub_file = folder / "leadhub.yaml"
        body = {"sources": {"files": {"connector": "csv", "leads": "leads.csv",
                                      "activities": "activities.csv"}}}  # fmt: skip
        hub_file.write_text(yaml.safe_dump(body), encoding="utf-8")
        figures = isolated(
            pull_in_child, str(hub_file), "files", f"sqlite:///{folder / 'memory.db'}", records
        )
    return {"via": "generated CSV files", **figures}


def write_csv(folder: Path, records: int) -> None:
    """`records` rows: a tenth leads, the rest their activities."""
    leads = max(1, records // 10)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with (folder / "leads.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["external_id", "email", "job_title", "company_size", "country"])
        for i in range(leads):
            writer.writerow([f"L{i}", f"lead{i}@company{i % 997}.com", "Analyst", i % 500, "US"])
    with (folder / "activities.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["external_id", "lead", "type", "occurred_at", "url"])
        for n in range(records - leads):
            when = (start - timedelta(minutes=n % 100_000)).isoformat()
            writer.writerow([f"A{n}", f"lead{n % leads}@company{(n % leads) % 997}.com",
                             "page_viewed", when, "https://example.com/pricing"])  # fmt: skip


def run(records: int, vendor: str | None, rescore: Any = None) -> list[dict[str, Any]]:
    """The pull's row, and the rescore's peak when the rescore section measured one."""
    rows = []
    for figures in rescore if isinstance(rescore, list) else []:
        rows.append(
            _row(
                f"rescore ({figures.get('backend')})",
                records=figures.get("activities"),
                via=f"{figures.get('leads')} leads",
                seconds=figures.get("full_rescore_seconds"),
                peak_mb=figures.get("peak_rss_mb"),
                status="ok",
            )
        )
    if not rows:
        rows.append(_row("rescore", status="run with the rescore section for its peak"))
    try:
        rows.append(_row("pull", **pull_memory(records, vendor)))
    except Exception as exc:  # reported in the table, like every other section's failures
        rows.append(_row("pull", records=records, status=f"failed: {type(exc).__name__}: {exc}"))
    return rows


def _row(part: str, **values: Any) -> dict[str, Any]:
    return {key: values.get(key) for key in ROW_KEYS} | {"part": part}
