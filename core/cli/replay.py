"""`leadhub demo --days N`: the synthetic world lived day by day through the pipeline.

The vendor sandboxes hold a world whose people arrive and act over `days` days
(`connectors.sandbox.funnel`), behind a clock: each sandbox shows only what had happened by its
clock (records made by then, statuses as of then, modification stamps at the day of the change).
Each replayed day moves the clock to the day's end and runs what the scheduler runs:

    an incremental pull of every source over HTTP through its real connector (its cursors
    carried from the day before) → the daily decay pass (score everyone as of the day, which
    takes in what the pulls brought too) → push what changed to every destination

with the day as every stage's clock (`now`), so scores decay with inactivity, leads cross into
qualified and out again, and each crossing creates a follow-up task in the sandbox CRMs.

    result = replay(store, hub, sandboxes.advance, days=90, end=today, progress=bar.advance)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.base.contract import Destination, Source
from connectors.base.settings import DestinationSettings
from core.config import HubConfig
from core.pipeline import score as scorer
from core.pipeline.outbox import open_configured, push
from core.pipeline.pull import open_source, pull_source
from core.store.store import Store

DAY = timedelta(days=1)


@dataclass
class DayResult:
    """What one replayed day did."""

    day: datetime
    records: int = 0
    scored: int = 0
    events: int = 0
    sent: int = 0
    tasks: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class ReplayResult:
    start: datetime
    end: datetime
    days: list[DayResult] = field(default_factory=list)
    pulled: dict[str, int] = field(default_factory=dict)  # source -> records handed over

    @property
    def records(self) -> int:
        return sum(d.records for d in self.days)

    @property
    def events(self) -> int:
        return sum(d.events for d in self.days)

    @property
    def sent(self) -> int:
        return sum(d.sent for d in self.days)

    @property
    def tasks(self) -> int:
        return sum(d.tasks for d in self.days)

    @property
    def errors(self) -> list[str]:
        return [e for d in self.days for e in d.errors]


def replay(
    store: Store,
    hub: HubConfig,
    advance: Callable[[datetime | None], None],
    *,
    days: int,
    end: datetime,
    progress: Callable[[DayResult], None] | None = None,
) -> ReplayResult:
    """Replay the `days` days before `end` through the pipeline: see the module docstring.

    Parameters:
        advance: sets the sandboxes' clock (None: real time again, once the replay is over).
        progress: called after each day with what it did.
    """
    start = end - days * DAY
    clock = {"now": start}
    advance(start)
    sources = {name: open_source(hub, name, lambda: clock["now"].timestamp())
               for name in hub.sources}  # fmt: skip
    destinations = [open_configured(hub, name) for name in hub.destinations]
    result = ReplayResult(start, end, pulled=dict.fromkeys(sources, 0))
    try:
        for n in range(1, days + 1):
            clock["now"] = now = start + n * DAY
            advance(now)
            result.days.append(_day(store, hub, sources, destinations, now, result))
            if progress:
                progress(result.days[-1])
    finally:
        advance(None)
    return result


def _day(
    store: Store,
    hub: HubConfig,
    sources: dict[str, Source],
    destinations: list[tuple[DestinationSettings, Destination]],
    now: datetime,
    result: ReplayResult,
) -> DayResult:
    """One day: every source pulled from its cursor, everyone scored as of `now`, then every
    destination pushed what changed."""
    day = DayResult(now)
    for name, source in sources.items():
        pulled = pull_source(store, name, source, priority=hub.field_priority)
        day.records += pulled.counts.read
        result.pulled[name] += pulled.counts.read
        if pulled.error:
            day.errors.append(f"pull {name}: {pulled.error}")
    # The daily decay pass scores everyone as of the day, which takes in what the pulls brought
    # too; then every destination is pushed what changed.
    run = scorer.score(store, hub.models, full=True, now=now)
    day.scored, day.events = run.changed, run.events
    for config, destination in destinations:
        pushed = push(store, config, destination, now=now)
        day.sent += pushed.accepted
        day.tasks += pushed.actions
        if pushed.error:
            day.errors.append(f"push {config.name}: {pushed.error}")
    return day
