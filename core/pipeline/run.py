"""The one path from leads to CRMs: take leads in, score what changed, push to every destination.

    pull(source) ─┐
                  ├─▶ score_changed ──▶ push(destination), for each destination
    Leads(…) ─────┘   (leads a webhook handed over: one page without a cursor)

`run` goes the whole way in this process (`leadhub demo`, an embedded webhook, tests, the bench);
`run_configured` does the same for what the hub file names. The jobs take the same steps one per
actor: `pull` → `score_changed` → `push_configured`, so a webhook's leads that `take_leads` stored
reach the CRMs by the same code whichever way they travel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.base.contract import Destination, Item, Source
from connectors.base.settings import DestinationSettings
from core.config import HubConfig
from core.pipeline import score as scorer
from core.pipeline.delivery import PushResult
from core.pipeline.outbox import open_configured, push
from core.pipeline.pull import PullResult, open_source, pull_source
from core.store.ingest import PageCounts
from core.store.store import Store
from scoring.model import ScoringModel

log = logging.getLogger("leadhub.pipeline")
Priority = Mapping[str, Sequence[str]]
WEBHOOK_STREAM = "leads"


@dataclass(frozen=True)
class Leads:
    """Leads handed over outside a pull (a webhook delivery), from the source named `source`."""

    source: str
    items: Sequence[Item]
    stream: str = WEBHOOK_STREAM


@dataclass
class RunResult:
    """What one run did: each pull, the leads taken in, the scoring, each push."""

    pulls: list[PullResult] = field(default_factory=list)
    taken: PageCounts | None = None
    scored: scorer.ScoreRun | None = None
    pushes: list[PushResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.pulls) and all(p.ok for p in self.pushes)


def take_leads(store: Store, leads: Leads, priority: Priority | None = None) -> PageCounts:
    """Store leads handed over as one page without a cursor (they upsert on their ids)."""
    return store.save_page(leads.source, leads.stream, leads.items, None, priority)


def score_changed(
    store: Store, models: Sequence[ScoringModel], *, full: bool = False
) -> scorer.ScoreRun | None:
    """Score the leads that changed (every lead with `full`); None when no model is configured."""
    return scorer.score(store, models, full=full) if models else None


def run(
    store: Store,
    models: Sequence[ScoringModel],
    destinations: Sequence[tuple[DestinationSettings, Destination]] = (),
    *,
    sources: Sequence[tuple[str, Source]] = (),
    leads: Leads | None = None,
    priority: Priority | None = None,
) -> RunResult:
    """Pull `sources` and take `leads` in, score what changed, push to each destination.

    A failed pull or push is in the result (with its exception); the rest of the run goes on.
    """
    result = RunResult()
    for name, source in sources:
        result.pulls.append(pull_source(store, name, source, priority=priority))
    if leads is not None:
        result.taken = take_leads(store, leads, priority)
    result.scored = score_changed(store, models)
    for config, destination in destinations:
        result.pushes.append(_logged(push(store, config, destination)))
    return result


def run_configured(
    store: Store, hub: HubConfig, *, sources: Sequence[str] = (), leads: Leads | None = None
) -> RunResult:
    """`run` for the hub file's sources named in `sources`, its models and every destination."""
    return run(
        store,
        hub.models,
        [open_configured(hub, name) for name in hub.destinations],
        sources=[(name, open_source(hub, name)) for name in sources],
        leads=leads,
        priority=hub.field_priority,
    )


def leads_handler(
    store: Store,
    models: Sequence[ScoringModel],
    destinations: Sequence[tuple[DestinationSettings, Destination]] = (),
    *,
    priority: Priority | None = None,
) -> Callable[[str, Sequence[Item]], None]:
    """A webhook's `handle_leads` that runs the whole path in this process, one delivery at a
    time (embedded serving, tests, the bench)."""
    lock = threading.Lock()

    def handle_leads(source_name: str, items: Sequence[Item]) -> None:
        with lock:
            run(store, models, destinations, leads=Leads(source_name, items), priority=priority)

    return handle_leads


def _logged(result: PushResult) -> PushResult:
    if not result.ok:
        log.error("push to %s failed: %s", result.destination, result.error)
    return result
