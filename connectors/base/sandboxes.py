"""The vendor sandboxes, as `leadhub demo` and `leadhub sandbox` use them.

Core reaches connector code only through `connectors.base`. The sandboxes are connector code (the
shared world, hub and server in `connectors.sandbox`, each vendor's API in
`connectors.<vendor>.sandbox`), so they are loaded here by module name, the way connectors are
loaded by entry point: core never imports them, and they are not loaded until a sandbox runs.

    with serve_sandboxes(seed=42, people=300, now=today, port=8765) as sandboxes:
        sources, destinations = sandboxes.hub_blocks()
        ...
        sandboxes.landed("hubspot", "ada@example.com")  # "leadhub_score=71, …"
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

SHARED = "connectors.sandbox"

HubBlocks = tuple[dict[str, Any], dict[str, Any]]


def _shared(part: str) -> ModuleType:
    """A module of the shared sandbox package: world, hub, server or demo."""
    return importlib.import_module(f"{SHARED}.{part}")


@dataclass(frozen=True)
class Sandboxes:
    """Every installed vendor sandbox, served over HTTP under `{url}/{vendor}`."""

    url: str
    apps: Mapping[str, Any]  # vendor -> its sandbox app, whose state holds the fake vendor
    world: Any = None  # the synthetic world they serve (`connectors.sandbox.world.World`)

    @property
    def vendors(self) -> list[str]:
        return list(self.apps)

    def hub_blocks(self, *, follow_ups: bool = False) -> HubBlocks:
        """The hub file's `sources:` and `destinations:`, every connector pointed at its sandbox;
        with `follow_ups`, each CRM destination creates a task on every qualified crossing."""
        demo = _shared("demo")
        sources, destinations = demo.hub_blocks(self.url, self.vendors)
        if follow_ups:
            destinations = demo.with_follow_ups(destinations)
        return sources, destinations

    def landed(self, vendor: str, email: str) -> str:
        """What `vendor`'s sandbox now holds for `email` in the fields leadhub writes ("" when
        it has no such record)."""
        value: str = _shared("demo").landed(vendor, self.apps[vendor], email)
        return value

    def tasks(self, vendor: str, email: str) -> list[str]:
        """The subjects of the follow-up tasks leadhub created for `email` in `vendor`'s CRM."""
        found: list[str] = _shared("demo").tasks(vendor, self.apps[vendor], email)
        return found

    def advance(self, to: datetime | None) -> None:
        """Set the sandboxes' clock: from now on they show the world as it stood at `to`
        (records made by then, statuses as of then) and stamp their writes with it; None: the
        whole world, and real time (`connectors.sandbox.world.World.clock`)."""
        self.world.clock = to


@contextmanager
def serve_sandboxes(
    *, seed: int, people: int, now: datetime, port: int | None = None, days: int | None = None
) -> Iterator[Sandboxes]:
    """Build the synthetic world (`seed`, `people`, its activity leading up to `now`) and serve
    every installed sandbox on it at 127.0.0.1:`port` (None or 0: a free port) until the block
    exits.

    With `days`, the world is the funnel (`connectors.sandbox.funnel`): people arrive over the
    `days` before `now` and act day by day, as a replay needs; without, the scattered world."""
    if days is None:
        world = _shared("world").World.build(seed=seed, people=people, now=now)
    else:
        world = _shared("funnel").build_funnel(seed=seed, people=people, now=now, days=days)
    combined, apps = _shared("hub").combined_app(world)
    with _shared("server").serve(combined, port or None) as url:
        yield Sandboxes(url, apps, world)
