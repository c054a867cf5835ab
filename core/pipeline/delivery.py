"""Delivery: send what is due in batches, and record each record's outcome.

Each batch is read, written and recorded on its own: `record_outcomes` applies a batch's outcomes
(outbox rows and the identities of created records) in one transaction. A crash after a write and
before its recording leaves the batch due, and the next push sends it again (see `outbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.base.contract import Destination, QualifiedItem, WriteItem, WriteOutcome
from connectors.base.settings import DestinationSettings
from core.errors import LeadhubError, RateLimited, TransientError
from core.pipeline.plan import OUTBOX, record_id_of
from core.store.ingest import IDENTITY, LEAD
from core.store.store import Store

MAX_BACKOFF = timedelta(hours=6)


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
    error: str | None = None  # what stopped the push, for display
    exception: LeadhubError | None = None  # the same, as raised (its type says retry or not)

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, exception: LeadhubError, error: str) -> None:
        """Record what stopped the push; the first failure is the one kept."""
        if self.exception is None:
            self.exception, self.error = exception, error


@dataclass(frozen=True)
class _Due:
    item: WriteItem
    attempts: int


def due_clause(now: datetime, resend_all: bool = False, retry_parked: bool = False) -> Any:
    state = OUTBOX.c.state
    waited = sa.or_(OUTBOX.c.next_attempt_at.is_(None), OUTBOX.c.next_attempt_at <= now)
    due = [state == "pending", sa.and_(state == "retry", waited)]
    if resend_all:
        due.append(state.in_(("sent", "retry")))
    if retry_parked:
        due.append(state == "parked")
    return sa.or_(*due)


def requeue(
    store: Store, cfg: DestinationSettings, now: datetime, resend_all: bool, retry_parked: bool
) -> None:
    mine = OUTBOX.c.destination == cfg.name
    with store.begin() as conn:
        if resend_all:
            conn.execute(
                OUTBOX.update()
                .where(mine, OUTBOX.c.state.in_(("sent", "retry")))
                .values(state="pending", next_attempt_at=None, updated_at=now)
            )
        if retry_parked:
            conn.execute(
                OUTBOX.update()
                .where(mine, OUTBOX.c.state == "parked")
                .values(state="pending", attempts=0, next_attempt_at=None, updated_at=now)
            )


def due_batch(
    store: Store, cfg: DestinationSettings, where: Any, after: int, size: int
) -> list[_Due]:
    record_id = record_id_of(cfg.identity_system)
    lead_columns = [LEAD.c[f] for f in cfg.lead_fields]
    query = (
        sa.select(OUTBOX.c.lead_id, OUTBOX.c.desired, OUTBOX.c.attempts,
                  record_id.label("record_id"), LEAD.c.email.label("lead_email"), *lead_columns)
        .select_from(OUTBOX.join(LEAD, LEAD.c.id == OUTBOX.c.lead_id))
        .where(OUTBOX.c.destination == cfg.name, OUTBOX.c.lead_id > after, where)
        .order_by(OUTBOX.c.lead_id)
        .limit(size)
    )  # fmt: skip
    if cfg.mode == "update":
        query = query.where(record_id.is_not(None))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
        gone = _deleted_ids(conn, cfg.identity_system, [r.lead_id for r in rows if not r.record_id])
    due = []
    for row in rows:
        values = row._mapping
        lead_fields = (
            {} if row.record_id else {cfg.lead_fields[f]: values[f] for f in cfg.lead_fields}
        )
        item = WriteItem(row.lead_id, row.record_id, row.desired, lead_fields, row.lead_email,
                         tuple(gone.get(row.lead_id, ())))  # fmt: skip
        due.append(_Due(item, row.attempts))
    return due


def _deleted_ids(conn: Connection, system: str, lead_ids: Sequence[int]) -> dict[int, list[str]]:
    """The records each lead had in `system` that a pull saw deleted there."""
    if not lead_ids:
        return {}
    found: dict[int, list[str]] = {}
    query = (
        sa.select(IDENTITY.c.lead_id, IDENTITY.c.external_id)
        .where(IDENTITY.c.system == system, IDENTITY.c.deleted.is_(True),
               IDENTITY.c.lead_id.in_(lead_ids))
        .order_by(IDENTITY.c.external_id)
    )  # fmt: skip
    for lead_id, external_id in conn.execute(query):
        found.setdefault(lead_id, []).append(str(external_id))
    return found


def preview(
    store: Store,
    cfg: DestinationSettings,
    destination: Destination,
    result: PushResult,
    now: datetime,
    resend_all: bool,
    retry_parked: bool,
) -> None:
    after, where = 0, due_clause(now, resend_all, retry_parked)
    while batch := due_batch(store, cfg, where, after, destination.batch_size):
        result.preview.extend(d.item for d in batch)
        result.attempted += len(batch)
        result.calls += 1
        after = batch[-1].item.lead_id


def send(
    store: Store,
    cfg: DestinationSettings,
    destination: Destination,
    result: PushResult,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    after, where = 0, due_clause(now)
    prepared = False
    while batch := due_batch(store, cfg, where, after, destination.batch_size):
        after = batch[-1].item.lead_id
        if not prepared:
            destination.prepare()
            prepared = True
        items = [d.item for d in batch]
        try:
            outcomes = destination.write(items)
        except (RateLimited, TransientError) as exc:  # the vendor is struggling: stop, retry later
            outcomes = [WriteOutcome(i.lead_id, "retry", reason=str(exc)) for i in items]
            result.fail(exc, f"{cfg.name}: {exc}")
        result.calls += 1
        result.attempted += len(items)
        record_outcomes(store, cfg, batch, outcomes, now, result)
        if progress:
            progress(result.attempted, max(result.planned, result.attempted))
        if result.error:
            return


def record_outcomes(
    store: Store,
    cfg: DestinationSettings,
    batch: Sequence[_Due],
    outcomes: Sequence[WriteOutcome],
    now: datetime,
    result: PushResult,
) -> None:
    """Apply one batch's outcomes in one transaction (outbox rows and new identities)."""
    by_lead = {o.lead_id: o for o in outcomes}
    missing = "the destination returned no result for this record"
    ids = [d.item.lead_id for d in batch]
    accepted, failed, created = [], [], []
    with store.begin() as conn:
        desired_now = dict(
            conn.execute(
                sa.select(OUTBOX.c.lead_id, OUTBOX.c.desired).where(
                    OUTBOX.c.destination == cfg.name, OUTBOX.c.lead_id.in_(ids)
                )
            ).all()
        )
        for due in batch:
            item = due.item
            outcome = by_lead.get(item.lead_id) or WriteOutcome(
                item.lead_id, "retry", reason=missing
            )
            key = {"_dest": cfg.name, "_lead": item.lead_id, "updated_at": now}
            if outcome.status == "ok":
                # Values may have changed since this batch was read: then it stays pending.
                state = "sent" if desired_now.get(item.lead_id) == item.values else "pending"
                accepted.append({**key, "sent": dict(item.values), "state": state})
                if outcome.record_id and not item.record_id:
                    created.append((item.lead_id, outcome.record_id))
            else:
                failed.append({**key, **_failure(cfg, due, outcome, now, result)})
        _update_rows(conn, accepted, ("sent", "state", "updated_at"), reset=True)
        _update_rows(
            conn, failed, ("state", "attempts", "next_attempt_at", "last_error", "updated_at")
        )
        result.created += _store_identities(conn, cfg.identity_system, created, now)
    result.accepted += len(accepted)


def _failure(
    cfg: DestinationSettings, due: _Due, outcome: WriteOutcome, now: datetime, result: PushResult
) -> dict[str, Any]:
    attempts = due.attempts + 1
    reason = (outcome.reason or outcome.status)[:2000]
    if outcome.status == "retry" and attempts < cfg.max_attempts:
        result.retrying += 1
        delay = min(timedelta(seconds=cfg.backoff_seconds * 2 ** (attempts - 1)), MAX_BACKOFF)
        return {"state": "retry", "attempts": attempts, "next_attempt_at": now + delay,
                "last_error": reason}  # fmt: skip
    if outcome.status == "retry":
        reason = f"gave up after {attempts} attempts: {reason}"
    result.parked += 1
    result.rejections.append((due.item.lead_id, reason))
    return {"state": "parked", "attempts": attempts, "next_attempt_at": None, "last_error": reason}


def _update_rows(
    conn: Connection, rows: list[dict[str, Any]], columns: Sequence[str], reset: bool = False
) -> None:
    if not rows:
        return
    values: dict[str, Any] = {c: sa.bindparam(c) for c in columns}
    if reset:
        values.update(attempts=0, next_attempt_at=None, last_error=None)
    conn.execute(
        OUTBOX.update()
        .where(
            OUTBOX.c.destination == sa.bindparam("_dest"), OUTBOX.c.lead_id == sa.bindparam("_lead")
        )
        .values(values),
        rows,
    )


def _store_identities(
    conn: Connection, system: str, created: Sequence[tuple[int, str]], now: datetime
) -> int:
    """Remember the ids of records the destination created, so that the next push updates them."""
    if not created:
        return 0
    known = set(
        conn.execute(
            sa.select(IDENTITY.c.external_id).where(
                IDENTITY.c.system == system, IDENTITY.c.external_id.in_([r for _, r in created])
            )
        ).scalars()
    )
    rows = []
    for lead_id, record_id in created:
        if record_id not in known:  # a resent batch returns ids already stored
            known.add(record_id)
            rows.append(
                {"system": system, "external_id": record_id, "lead_id": lead_id, "data": {},
                 "record_updated_at": None, "seen_at": now, "deleted": False}
            )  # fmt: skip
    if rows:
        conn.execute(IDENTITY.insert(), rows)
    return len(created)
