"""The vendor sandboxes as the benchmarks use them: served over real HTTP, requests counted.

    with sandbox_hub(world, ["mailchimp"]) as hub:
        pull_source(store, name, source)        # against hub.base
        hub.counter.total                       # requests the sandbox answered

A vendor is benchmarked when its sandbox (`connectors.<vendor>.sandbox.create_app`) and its
connector are installed and its hub-file blocks load; otherwise `missing(vendor)` says why, and
the section prints that instead of a figure.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette

from connectors.sandbox.hub import VENDORS, load_sandbox, vendor_routes
from connectors.sandbox.world import World
from core.config import HubConfig, load_hub

MODEL_FILE = Path(__file__).resolve().parent.parent / "scoring" / "examples" / "default.yaml"
TEST_ONLY = "/__sandbox"  # the sandboxes' own inspection routes: not vendor API calls


class RequestCounter:
    """ASGI middleware that counts the vendor API requests reaching the wrapped app.

    Counted on the sandbox side, so every request the connector makes shows — retries, paging,
    lookups — whatever the connector thinks it did.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.by_method: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()  # "POST /mailchimp/3.0/lists/{id}": 2
        self.seconds = 0.0  # spent inside the sandbox app: the sandbox's share of a run

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or TEST_ONLY in scope["path"]:
            await self.app(scope, receive, send)
            return
        self.by_method[scope["method"]] += 1
        self.by_route[f"{scope['method']} {route_of(scope['path'])}"] += 1
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds += time.perf_counter() - started

    @property
    def total(self) -> int:
        return sum(self.by_method.values())

    @property
    def writes(self) -> int:
        return sum(n for method, n in self.by_method.items() if method != "GET")

    def reset(self) -> None:
        self.by_method.clear()
        self.by_route.clear()
        self.seconds = 0.0


def route_of(path: str) -> str:
    """`path` with its ids (segments holding a digit, 6 characters or more) as `{id}`."""
    parts = path.split("/")
    return "/".join("{id}" if len(p) >= 6 and any(c.isdigit() for c in p) else p for p in parts)


def routes_summary(counter: RequestCounter, top: int = 3) -> str:
    """The most used routes without the vendor's mount, e.g. `POST /3.0/lists/{id}: 2`."""

    def short(route: str) -> str:
        method, _, path = route.partition(" ")
        mount, _, below = path.lstrip("/").partition("/")
        return f"{method} /{below}" if mount in VENDORS else route  # else at the host root

    return ", ".join(f"{short(route)}: {n}" for route, n in counter.by_route.most_common(top))


@dataclass
class SandboxHub:
    """Served sandboxes: `base` URL, the request counter, each vendor's sandbox app."""

    base: str
    counter: RequestCounter
    apps: dict[str, Any] = field(default_factory=dict)


def installed() -> list[str]:
    """Vendors whose sandbox is installed, in the hub's order."""
    return [v for v in VENDORS if _create_app(v) is not None]


def _create_app(vendor: str) -> Any:
    try:
        return load_sandbox(vendor)
    except Exception:  # a sandbox that fails to import is reported as missing, not fatal
        logging.getLogger("leadhub.bench").exception("sandbox %s failed to import", vendor)
        return None


def missing(vendor: str) -> str | None:
    """Why `vendor` cannot be benchmarked, or None when it can."""
    if _create_app(vendor) is None:
        return "sandbox not installed"
    from connectors.base import load_connectors

    if vendor not in load_connectors():
        return "connector not installed"
    return None


@contextmanager
def sandbox_hub(
    world: World, vendors: Sequence[str], options: Mapping[str, dict[str, Any]] | None = None
) -> Iterator[SandboxHub]:
    """Serve `vendors`' sandboxes over `world`, each at `/<vendor>`, behind one RequestCounter."""
    from connectors.sandbox.server import serve

    apps = {v: _create_app(v)(world, **(options or {}).get(v, {})) for v in vendors}
    routes = [route for v, a in apps.items() for route in vendor_routes(v, a)]
    counter = RequestCounter(Starlette(routes=routes))
    with serve(counter) as base:
        yield SandboxHub(base, counter, apps)


@contextmanager
def hub_config(
    base: str,
    vendors: Sequence[str],
    *,
    sources: Mapping[str, dict[str, Any]] | None = None,
    destinations: Mapping[str, dict[str, Any]] | None = None,
) -> Iterator[tuple[HubConfig, Path]]:
    """A hub file (in a temporary directory) with `vendors`' demo blocks pointing at `base`.

    `sources`/`destinations` add keys to the blocks of those names (e.g. a verify token).
    Yields the loaded hub and the directory, where the benchmark keeps its store.
    """
    from connectors.sandbox.demo import hub_blocks

    src, dst = hub_blocks(base, list(vendors))
    for name, extra in (sources or {}).items():
        src[name] = {**src[name], **extra}
    for name, extra in (destinations or {}).items():
        dst[name] = {**dst[name], **extra}
    with tempfile.TemporaryDirectory(prefix="leadhub-bench-") as tmp:
        path = Path(tmp) / "leadhub.yaml"
        body = {"sources": src, "destinations": dst, "scoring": str(MODEL_FILE)}
        path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
        yield load_hub(path), Path(tmp)


def per_thousand(count: int, records: int) -> float | None:
    return round(1000 * count / records, 2) if records else None
