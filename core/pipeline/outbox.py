"""The outbox: pushing what each destination should hold, and reading what waits.

`plan` (in `core.pipeline.plan`) marks pending every lead whose mapped outputs changed; `push`
plans, then sends pending leads in batches of the destination's `batch_size` and applies each
record's outcome:

- ok       → `sent = desired`, state `sent`. An id returned for a new record is stored as an
             identity (system: the block's `system`, default the destination's name), so the
             next push is an update.
- retry    → attempts + 1 and an exponential backoff; parked after `max_attempts`.
- rejected → parked with the vendor's reason (`leadhub outbox --parked`; `push --retry-parked`).

A parked record whose values change is tried again with the new values.

Delivery is at least once: a crash between sending a batch and recording its outcomes leaves the
batch pending, and the next push sends that batch again. This is safe only because destination
writes are idempotent — they set values on a record by its id (or by email when creating), so
writing the same values twice leaves the same record.

Sending and recording batches is `core.pipeline.delivery`; threshold actions (`on_qualified:`) are
`core.pipeline.actions` and run after the writes; the hub-file block is `connectors.base.settings`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connectors.base.contract import Destination
from connectors.base.registry import open_destination, validate_destination
from connectors.base.settings import DestinationSettings, OnQualifiedSettings
from core.config import HubConfig
from core.errors import ConfigError, HTTPError, LeadhubError
from core.pipeline import actions, delivery
from core.pipeline.delivery import PushResult
from core.pipeline.plan import OUTBOX, STATES, PlanResult, mapped_values, plan
from core.store.ingest import LEAD, PageCounts
from core.store.store import Store
from core.store.tables import utcnow

__all__ = [
    "STATES",
    "DestinationSettings",
    "OnQualifiedSettings",
    "PlanResult",
    "PushResult",
    "mapped_values",
    "open_configured",
    "open_destination",
    "outbox_counts",
    "outbox_rows",
    "plan",
    "push",
    "push_configured",
    "validate_destination",
]

log = logging.getLogger("leadhub.outbox")


# -- push ----------------------------------------------------------------------------------------


def push(
    store: Store,
    destination_cfg: DestinationSettings,
    destination: Destination,
    *,
    resend_all: bool = False,
    dry_run: bool = False,
    retry_parked: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PushResult:
    """Plan, then send what is due to `destination` in batches of its `batch_size`.

    Parameters:
        resend_all: send every lead again, even values the destination already accepted.
        dry_run: plan (refresh the desired values) but send nothing and record no outcome or
            run; `preview`, `action_preview` and `calls` say what would be sent and how many API
            calls it would take.
        retry_parked: give parked records a fresh set of attempts.
        now: the clock (tests).
        progress: called after each batch with (records sent, records planned).

    A vendor failure (auth, rate limit, outage) ends the push with `exception` (and `error`, its
    text) set and a `failed` run; anything else is re-raised after the run is recorded as failed.
    """
    cfg, now = destination_cfg, now or utcnow()
    actions.check(cfg, destination)
    result = PushResult(cfg.name, dry_run=dry_run)
    result.planned = plan(store, cfg, now=now).pending
    if dry_run:
        delivery.preview(store, cfg, destination, result, now, resend_all, retry_parked)
        actions.act(store, cfg, destination, result, now, dry_run=True)
        return result
    result.run_id = store.start_run("push", cfg.name)
    try:
        delivery.requeue(store, cfg, now, resend_all, retry_parked)
        delivery.send(store, cfg, destination, result, now, progress)
        if result.ok:
            actions.act(store, cfg, destination, result, now)
    except LeadhubError as exc:
        result.fail(exc, f"{cfg.name}: {exc}" if isinstance(exc, HTTPError) else str(exc))
        log.error("push %s failed: %s", cfg.name, exc)
    except Exception as exc:
        _finish(store, cfg, result, f"{type(exc).__name__}: {exc}")
        raise
    _finish(store, cfg, result, result.error)
    return result


def _finish(store: Store, cfg: DestinationSettings, result: PushResult, error: str | None) -> None:
    assert result.run_id is not None
    parked = outbox_counts(store, cfg.name).get(cfg.name, {}).get("parked", 0)
    counts = PageCounts(
        read=result.attempted,
        created=result.created,
        updated=result.accepted - result.created,
        unchanged=0,
        quarantined=parked,
    )
    store.finish_run(result.run_id, counts, "failed" if error else "ok", error)


# -- reads and the configured entry point ----------------------------------------------------------


def outbox_counts(store: Store, destination: str | None = None) -> dict[str, dict[str, int]]:
    """Rows per state for each destination, e.g. `{"hubspot": {"sent": 950, "parked": 3}}`."""
    query = sa.select(OUTBOX.c.destination, OUTBOX.c.state, sa.func.count()).group_by(
        OUTBOX.c.destination, OUTBOX.c.state
    )
    if destination:
        query = query.where(OUTBOX.c.destination == destination)
    counts: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for dest, state, n in conn.execute(query):
            counts.setdefault(dest, {})[state] = int(n)
    return counts


def outbox_rows(
    store: Store,
    destination: str | None = None,
    *,
    states: Sequence[str] = ("pending", "retry", "parked"),
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Outbox rows in `states` (not yet delivered, by default) with the lead's email."""
    query = (
        sa.select(OUTBOX.c.destination, OUTBOX.c.lead_id, LEAD.c.email, OUTBOX.c.state,
                  OUTBOX.c.attempts, OUTBOX.c.next_attempt_at, OUTBOX.c.last_error,
                  OUTBOX.c.desired, OUTBOX.c.sent, OUTBOX.c.updated_at)
        .select_from(OUTBOX.join(LEAD, LEAD.c.id == OUTBOX.c.lead_id))
        .where(OUTBOX.c.state.in_(list(states)))
        .order_by(OUTBOX.c.destination, OUTBOX.c.lead_id)
        .limit(limit)
    )  # fmt: skip
    if destination:
        query = query.where(OUTBOX.c.destination == destination)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def open_configured(hub: HubConfig, name: str) -> tuple[DestinationSettings, Destination]:
    """The validated block of the destination `name` in the hub file, and the destination."""
    cfg = hub.destination(name).settings
    if cfg is None:
        raise ConfigError(f"destinations.{name}: not validated")
    if hub.models and cfg.model not in {m.name for m in hub.models}:
        known = ", ".join(m.name for m in hub.models)
        raise ConfigError(f"destinations.{name}.model: no scoring model {cfg.model!r} ({known})")
    return cfg, open_destination(cfg, hub.base_dir)


def push_configured(store: Store, hub: HubConfig, name: str, **options: Any) -> PushResult:
    """Push the destination named `name` in the hub file (`options` as for `push`)."""
    return push(store, *open_configured(hub, name), **options)
