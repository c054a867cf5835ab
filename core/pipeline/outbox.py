"""The outbox: what each destination should hold for each lead, and getting it there.

After scoring, `plan` compares every in-scope lead's mapped outputs (`desired`) with the values the
destination last accepted (`sent`) and marks the leads that differ `pending`. `push` sends pending
leads in batches of the destination's `batch_size` and applies each record's outcome:

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from connectors.base.contract import Destination, QualifiedItem, WriteItem
from connectors.base.registry import open_destination, validate_destination
from connectors.base.settings import OUTPUTS, DestinationSettings, OnQualifiedSettings, Output
from core.errors import ConfigError, HTTPError, LeadhubError
from core.store.ingest import ACTIVITY, IDENTITY, LEAD, PageCounts
from core.store.store import Store
from core.store.tables import Outbox, Score, utcnow

if TYPE_CHECKING:
    from core.config import HubConfig

__all__ = [
    "STATES",
    "DestinationSettings",
    "OnQualifiedSettings",
    "PlanResult",
    "PushResult",
    "mapped_values",
    "open_destination",
    "outbox_counts",
    "outbox_rows",
    "plan",
    "push",
    "push_configured",
    "validate_destination",
]

OUTBOX = Outbox.metadata.tables["outbox"]
SCORE = Score.metadata.tables["score"]
STATES = ("pending", "sent", "retry", "parked")
CHUNK = 1000
log = logging.getLogger("leadhub.outbox")


@dataclass
class PlanResult:
    considered: int = 0  # in-scope leads with a score under the destination's model
    pending: int = 0  # leads whose mapped values changed and now wait to be sent


@dataclass
class PushResult:
    """What one push did (or, on a dry run, would do)."""

    destination: str
    dry_run: bool = False
    run_id: int | None = None
    planned: int = 0  # leads that became pending in this push's planning step
    attempted: int = 0  # records sent (or that would be sent)
    accepted: int = 0
    created: int = 0  # new records whose ids were stored as identities
    retrying: int = 0
    parked: int = 0  # parked by this push
    calls: int = 0  # write and action calls made (or that would be made)
    actions: int = 0  # on_qualified actions done (or due)
    rejections: list[tuple[int, str]] = field(default_factory=list)
    preview: list[WriteItem] = field(default_factory=list)  # dry run: what would be sent
    action_preview: list[QualifiedItem] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# -- mapping -------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


def mapped_values(outputs: Mapping[str, Any], fields: Mapping[Output, str]) -> dict[str, Any]:
    """CRM field → JSON-safe value, e.g. `{"lead_score": 72.0}` for `fields={"total": ...}`."""
    return {crm: _jsonable(outputs.get(output)) for output, crm in fields.items()}


def score_outputs() -> list[sa.ColumnElement[Any]]:
    """The score columns of the outputs this store has, labelled `out_<output>`."""
    return [SCORE.c[o].label(f"out_{o}") for o in OUTPUTS if o in SCORE.c]


def row_outputs(row: Row[Any]) -> dict[str, Any]:
    values = row._mapping
    return {o: values.get(f"out_{o}") for o in OUTPUTS}


def record_id_of(system: str) -> sa.ScalarSelect[Any]:
    """The lead's record id in `system` (correlated on the outbox row's lead)."""
    return (
        sa.select(sa.func.min(IDENTITY.c.external_id))
        .where(
            IDENTITY.c.lead_id == OUTBOX.c.lead_id,
            # Wrapped so that SQLite looks rows up by `lead_id`: on a bare `system = ?` it picks
            # the (system, external_id) index and scans every identity of the system per row.
            sa.func.coalesce(IDENTITY.c.system, "") == system,
            IDENTITY.c.deleted.is_(False),
        )
        .scalar_subquery()
    )


# -- plan ----------------------------------------------------------------------------------------


def plan(
    store: Store, destination: DestinationSettings, *, now: datetime | None = None
) -> PlanResult:
    """Mark pending every in-scope lead whose mapped values differ from the last accepted ones.

    Pages through the model's scores by lead id, CHUNK leads per transaction: one select (scores
    joined with their outbox rows) and one batched insert and update each.
    """
    now = now or utcnow()
    result = PlanResult()
    after = 0
    while True:
        with store.begin() as conn:
            rows = conn.execute(_plan_query(destination, after)).all()
            if not rows:
                return result
            result.pending += _plan_chunk(conn, destination, rows, now)
        result.considered += len(rows)
        after = rows[-1].lead_id


def _plan_query(dest: DestinationSettings, after: int) -> sa.Select[Any]:
    on_row = sa.and_(OUTBOX.c.lead_id == SCORE.c.lead_id, OUTBOX.c.destination == dest.name)
    query = (
        sa.select(
            SCORE.c.lead_id,
            *score_outputs(),
            OUTBOX.c.id.label("outbox_id"),
            OUTBOX.c.desired,
            OUTBOX.c.sent,
            OUTBOX.c.state,
        )
        .select_from(SCORE.outerjoin(OUTBOX, on_row))
        .where(SCORE.c.model == dest.model, SCORE.c.lead_id > after)
        .order_by(SCORE.c.lead_id)
        .limit(CHUNK)
    )
    if dest.mode == "update":
        query = query.where(
            sa.exists().where(
                IDENTITY.c.lead_id == SCORE.c.lead_id,
                IDENTITY.c.system == dest.identity_system,
                IDENTITY.c.deleted.is_(False),
            )
        )
    if dest.sources:
        query = query.where(
            sa.or_(
                sa.exists().where(
                    IDENTITY.c.lead_id == SCORE.c.lead_id, IDENTITY.c.system.in_(dest.sources)
                ),
                sa.exists().where(
                    ACTIVITY.c.lead_id == SCORE.c.lead_id, ACTIVITY.c.source.in_(dest.sources)
                ),
            )
        )
    return query


def _plan_chunk(
    conn: Connection, dest: DestinationSettings, rows: Sequence[Row[Any]], now: datetime
) -> int:
    inserts, updates = [], []
    reset = {"attempts": 0, "next_attempt_at": None, "last_error": None, "updated_at": now}
    for row in rows:
        desired = mapped_values(row_outputs(row), dest.fields)
        if row.outbox_id is None:
            inserts.append(
                {"destination": dest.name, "lead_id": row.lead_id, "desired": desired,
                 "sent": None, "state": "pending", "qualified_event_id": None, **reset}
            )  # fmt: skip
        elif desired != row.desired:
            if desired == row.sent:  # changed back to what the destination already holds
                updates.append({"_id": row.outbox_id, "desired": desired, "state": "sent"})
            elif row.state == "retry":  # keep its backoff; the retry sends the new values
                updates.append({"_id": row.outbox_id, "desired": desired, "state": "retry"})
            else:
                updates.append({"_id": row.outbox_id, "desired": desired, "state": "pending"})
    if inserts:
        conn.execute(OUTBOX.insert(), inserts)
    retrying = [u for u in updates if u["state"] == "retry"]
    settled = [{**u, **reset} for u in updates if u["state"] != "retry"]
    _update_by_id(conn, retrying, ("desired", "state"))
    _update_by_id(conn, settled, ("desired", "state", *reset))
    return len(inserts) + sum(1 for u in updates if u["state"] != "sent")


def _update_by_id(conn: Connection, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    if rows:
        conn.execute(
            OUTBOX.update()
            .where(OUTBOX.c.id == sa.bindparam("_id"))
            .values({c: sa.bindparam(c) for c in columns}),
            [{k: r[k] for k in ("_id", *columns)} for r in rows],
        )


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

    A vendor failure (auth, rate limit, outage) ends the push with `error` set and a `failed`
    run; anything else is re-raised after the run is recorded as failed.
    """
    from core.pipeline import actions as outbox_actions
    from core.pipeline import delivery

    cfg, now = destination_cfg, now or utcnow()
    outbox_actions.check(cfg, destination)
    result = PushResult(cfg.name, dry_run=dry_run)
    result.planned = plan(store, cfg, now=now).pending
    if dry_run:
        delivery.preview(store, cfg, destination, result, now, resend_all, retry_parked)
        outbox_actions.act(store, cfg, destination, result, now, dry_run=True)
        return result
    result.run_id = store.start_run("push", cfg.name)
    try:
        delivery.requeue(store, cfg, now, resend_all, retry_parked)
        delivery.send(store, cfg, destination, result, now, progress)
        if result.ok:
            outbox_actions.act(store, cfg, destination, result, now)
    except LeadhubError as exc:
        result.error = result.error or (
            f"{cfg.name}: {exc}" if isinstance(exc, HTTPError) else str(exc)
        )
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


def push_configured(store: Store, hub: HubConfig, name: str, **options: Any) -> PushResult:
    """Push the destination named `name` in the hub file (`options` as for `push`)."""
    config = hub.destination(name)
    cfg = config.settings
    if cfg is None:
        raise ConfigError(f"destinations.{name}: not validated")
    if hub.models and cfg.model not in {m.name for m in hub.models}:
        known = ", ".join(m.name for m in hub.models)
        raise ConfigError(f"destinations.{name}.model: no scoring model {cfg.model!r} ({known})")
    return push(store, cfg, open_destination(cfg, hub.base_dir), **options)
