"""`leadhub bench`: every benchmark section, printed as tables and written as JSON.

Sections: 1 pull throughput, 2 full rescore vs one GROUP BY scan, 3 incremental rescore,
4 push efficiency, 5 webhook latency, 6 peak memory. A section whose parts are not installed
reports why instead of a figure.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = {
    "small": {"leads": 100_000, "per_lead": 10, "pull_records": 20_000, "webhooks": 200},
    "large": {"leads": 1_000_000, "per_lead": 10, "pull_records": 1_000_000, "webhooks": 200},
}


def machine() -> dict[str, Any]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def rescore_section(size: str, pg_url: str | None) -> list[dict[str, Any]]:
    from bench.rescore import as_dict, run

    spec = SIZES[size]
    rows = []
    with tempfile.TemporaryDirectory(prefix="leadhub-bench-") as tmp:
        rows.append(
            as_dict(run(f"sqlite:///{Path(tmp) / 'bench.db'}", spec["leads"], spec["per_lead"]))
        )
    if pg_url:
        from bench.pg import fresh_schema

        with fresh_schema(pg_url) as url:
            rows.append(as_dict(run(url, spec["leads"], spec["per_lead"])))
    return rows


def run_all(
    size: str,
    pg_url: str | None,
    sections: list[str] | None = None,
    echo: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """Run the chosen sections (default: all); `echo(section, result)` after each."""
    registry: dict[str, Callable[[], Any]] = {
        "rescore": lambda: rescore_section(size, pg_url),
    }
    for name, loader in _optional_sections(size).items():
        registry[name] = loader
    result: dict[str, Any] = {"size": size, "machine": machine(), "sections": {}}
    for name, fn in registry.items():
        if sections and name not in sections:
            continue
        try:
            value = fn()
        except ModuleNotFoundError as exc:
            value = {"skipped": f"not available: {exc.name} is not installed"}
        result["sections"][name] = value
        if echo:
            echo(name, value)
    return result


def _optional_sections(size: str) -> dict[str, Callable[[], Any]]:
    """Sections that need the vendor sandboxes; each imports what it needs when run."""
    spec = SIZES[size]

    def pull() -> Any:
        from bench.pull import run as pull_run

        return pull_run(spec["pull_records"])

    def push() -> Any:
        from bench.push import run as push_run

        return push_run()

    def webhook() -> Any:
        from bench.webhook import run as webhook_run

        return webhook_run(spec["webhooks"])

    return {"pull": pull, "push": push, "webhook": webhook}


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
