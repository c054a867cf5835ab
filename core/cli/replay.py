"""`leadhub demo --days N`: the synthetic world lived day by day through the pipeline.

The vendor sandboxes hold a world whose people arrive and act over `days` days
(`connectors.sandbox.funnel`). Each source is read once, over HTTP through its real connector;
its records are then handed to the pipeline on the day they happened, as the vendor would have
shown them to a pull that day. Each replayed day runs what the scheduler runs:

    pull (that day's records) → the daily decay pass (score everyone as of the day, which
    takes in what the pulls brought too) → push what changed to every destination

with the day as every stage's clock (`now`), so scores decay with inactivity, leads cross into
qualified and out again, and each crossing creates a follow-up task in the sandbox CRMs.

    result = replay(store, hub, sandboxes, days=90, end=today, progress=bar.advance)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.base.contract import Item, Page, Source, Stream
from core.config import HubConfig
from core.pipeline import score as scorer
from core.pipeline.outbox import open_configured, push
from core.pipeline.pull import open_source, pull_source
from core.records import ActivityRecord, LeadRecord, OutcomeRecord
from core.store.store import Store

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Dated:
    """A record read from a source, and the moment the vendor first showed it."""

    at: datetime
    stream: str
    item: Item


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


class DaySource:
    """A source that shows the records of one day (a Source to `pull_source`), stream by stream
    in the order the connector reads them (`order`)."""

    def __init__(self, name: str, records: Sequence[Dated], order: Sequence[str] = ()) -> None:
        self.name = name
        self._streams: dict[str, list[Item]] = {stream: [] for stream in order}
        for dated in records:
            self._streams.setdefault(dated.stream, []).append(dated.item)

    def streams(self) -> Sequence[Stream]:
        return [_DayStream(name, items) for name, items in self._streams.items() if items]


@dataclass
class _DayStream:
    name: str
    items: list[Item]

    def read(self, cursor: object = None) -> Iterator[Page]:
        yield Page(self.items, None)


def record(source: Source, arrivals: Mapping[str, datetime], start: datetime) -> list[Dated]:
    """Every record of `source` in one read from the beginning, dated: an activity when it
    happened, an outcome when it closed, a lead when its person arrived (records that carry no
    date, and payloads that did not validate, at `start`)."""
    found: list[Dated] = []
    for stream in source.streams():
        for page in stream.read(None):
            found.extend(
                Dated(_when(item, arrivals, start), stream.name, item) for item in page.items
            )
    return found


def _when(item: Item, arrivals: Mapping[str, datetime], start: datetime) -> datetime:
    moment: datetime | None = None
    if isinstance(item, ActivityRecord):
        moment = item.occurred_at
    elif isinstance(item, OutcomeRecord):
        moment = item.closed_at or arrivals.get(item.lead.lower())
    elif isinstance(item, LeadRecord):
        moment = arrivals.get((item.email or "").lower()) or item.updated_at
    return max(moment or start, start)


def replay(
    store: Store,
    hub: HubConfig,
    arrivals: Mapping[str, datetime],
    *,
    days: int,
    end: datetime,
    progress: Callable[[DayResult], None] | None = None,
) -> ReplayResult:
    """Replay the `days` days before `end` through the pipeline: see the module docstring.

    Parameters:
        arrivals: when each person (lowercased email) first appeared in the world.
        progress: called after each day with what it did.
    """
    start = end - days * DAY
    read = {name: record(open_source(hub, name), arrivals, start) for name in hub.sources}
    order = {name: list(dict.fromkeys(d.stream for d in found)) for name, found in read.items()}
    recorded = {name: sorted(found, key=lambda d: d.at) for name, found in read.items()}
    destinations = [open_configured(hub, name) for name in hub.destinations]
    result = ReplayResult(start, end, pulled={name: len(found) for name, found in recorded.items()})
    taken = dict.fromkeys(recorded, 0)
    for n in range(1, days + 1):
        now = start + n * DAY
        day = DayResult(now)
        for name, dated in recorded.items():
            first = taken[name]
            while taken[name] < len(dated) and dated[taken[name]].at < now:
                taken[name] += 1
            todays = dated[first : taken[name]]
            if not todays:
                continue
            day.records += len(todays)
            source = DaySource(name, todays, order[name])
            pulled = pull_source(store, name, source, priority=hub.field_priority)
            if pulled.error:
                day.errors.append(f"pull {name}: {pulled.error}")
        # The day's scoring: the daily decay pass scores everyone as of the day, which takes in
        # what the pulls brought too; then every destination is pushed what changed.
        run = scorer.score(store, hub.models, full=True, now=now)
        day.scored, day.events = run.changed, run.events
        for config, destination in destinations:
            pushed = push(store, config, destination, now=now)
            day.sent += pushed.accepted
            day.tasks += pushed.actions
            if pushed.error:
                day.errors.append(f"push {config.name}: {pushed.error}")
        result.days.append(day)
        if progress:
            progress(day)
    return result
