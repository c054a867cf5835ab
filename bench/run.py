"""`leadhub bench`: every benchmark section, printed as tables and written as JSON.

Sections: 1 pull throughput, 2 full rescore vs one GROUP BY scan, 3 incremental rescore,
4 push efficiency, 5 webhook latency, 6 peak memory, 7 dashboard and read API latency, 8 the soak of
the team setup (PostgreSQL and Redis needed). A section whose parts are not installed reports why
instead of a figure.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, int]] = {
    "small": {"leads": 100_000, "per_lead": 10, "pull_records": 10_000, "push_leads": 1000,
              "webhooks": 200, "memory_records": 100_000, "dashboard_leads": 100_000},
    "large": {"leads": 1_000_000, "per_lead": 10, "pull_records": 100_000, "push_leads": 1000,
              "webhooks": 200, "memory_records": 1_000_000, "dashboard_leads": 1_000_000},
}  # fmt: skip
SECTIONS = ("rescore", "pull", "push", "webhook", "memory", "dashboard", "soak")  # all there are


def machine() -> dict[str, Any]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def rescore_section(size: str, pg_url: str | None) -> list[dict[str, Any]]:
    """Each backend in a process of its own, so `peak_rss_mb` is the rescore's alone."""
    from bench.memory import isolated
    from bench.rescore import IMPORT_LEADS, as_dict, import_seconds, run

    spec = SIZES[size]
    imported = min(spec["leads"], IMPORT_LEADS)
    rows = []

    def measure(url: str, import_url: str) -> dict[str, Any]:
        row = as_dict(isolated(run, url, spec["leads"], spec["per_lead"]))
        seconds = isolated(import_seconds, import_url, imported, spec["per_lead"])
        return row | {"import_leads": imported, "import_seconds": round(seconds, 2)}

    with tempfile.TemporaryDirectory(prefix="leadhub-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows.append(measure(url, f"sqlite:///{Path(tmp) / 'import.db'}"))
    if pg_url:
        from bench.pg import fresh_schema

        with fresh_schema(pg_url) as url, fresh_schema(pg_url, "import") as import_url:
            rows.append(measure(url, import_url))
    return rows


def dashboard_section(size: str, pg_url: str | None) -> list[dict[str, Any]]:
    """The dashboard's pages timed on a store of the size's `dashboard_leads`, per backend."""
    from bench.dashboard import run

    spec = SIZES[size]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="leadhub-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows += _page_rows(run(url, spec["dashboard_leads"], spec["per_lead"]))
    if pg_url:
        from bench.pg import fresh_schema

        with fresh_schema(pg_url) as url:
            rows += _page_rows(run(url, spec["dashboard_leads"], spec["per_lead"]))
    return rows


def _page_rows(figures: Any) -> list[dict[str, Any]]:
    load = {
        "backend": figures.backend,
        "leads": figures.leads,
        "activities": figures.activities,
        "page": f"(load {figures.load_seconds} s, full rescore {figures.rescore_seconds} s)",
        "median_ms": None,
        "max_ms": None,
        "status": None,
    }
    return [load, *(asdict(p) for p in figures.pages)]


def run_all(
    size: str,
    pg_url: str | None,
    sections: list[str] | None = None,
    echo: Callable[[str, Any], None] | None = None,
    starting: Callable[[str], None] | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """Run the chosen sections (default: all); `starting(section)` before each and
    `echo(section, result)` after it."""
    registry: dict[str, Callable[[], Any]] = {
        "rescore": lambda: rescore_section(size, pg_url),
        "dashboard": lambda: dashboard_section(size, pg_url),
    }
    result: dict[str, Any] = {"size": size, "machine": machine(), "sections": {}, "seconds": {}}
    for name, loader in _optional_sections(size, result["sections"]).items():
        registry[name] = loader
    registry["soak"] = lambda: _soak(pg_url, redis_url)
    for name, fn in registry.items():
        if sections and name not in sections:
            continue
        if starting:
            starting(name)
        started = time.perf_counter()
        try:
            value = fn()
        except ModuleNotFoundError as exc:
            value = {"skipped": f"not available: {exc.name} is not installed"}
        result["sections"][name] = value
        result["seconds"][name] = round(time.perf_counter() - started, 1)
        if echo:
            echo(name, value)
    return result


def _optional_sections(size: str, done: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """Sections that need the vendor sandboxes; each imports what it needs when run.

    `done` holds the sections already run: the memory section reuses the rescore's peak and
    pulls from the vendor the pull section found fastest.
    """
    spec = SIZES[size]

    def pull() -> Any:
        from bench.pull import run as pull_run

        return pull_run(spec["pull_records"])

    def push() -> Any:
        from bench.push import run as push_run

        return push_run(spec["push_leads"])

    def webhook() -> Any:
        from bench.webhook import run as webhook_run

        return webhook_run(spec["webhooks"])

    def memory() -> Any:
        from bench.memory import run as memory_run
        from bench.pull import fastest

        pulled = done.get("pull")
        vendor = fastest(pulled) if isinstance(pulled, list) else None
        return memory_run(spec["memory_records"], vendor or "mailchimp", done.get("rescore"))

    return {"pull": pull, "push": push, "webhook": webhook, "memory": memory}


def _soak(pg_url: str | None, redis_url: str | None) -> Any:
    from bench.soak import run as soak_run

    return soak_run(pg_url, redis_url)


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
