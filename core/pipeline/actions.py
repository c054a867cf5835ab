"""Threshold actions: a destination's `on_qualified` fires once per qualified crossing.

The scorer writes a `score_history` row with event "qualified" when a lead crosses the model's
threshold and "released" when its total falls below `release_below`. For each lead whose latest
crossing under the destination's model is "qualified" and newer than the one this destination
acted on (kept per lead in `outbox.qualified_event_id`), the push calls `on_qualified` once. A
release followed by a new crossing is a new event, so it fires again.

An action waits until the destination holds the record (the lead's values were accepted once),
so an upsert creates the record before its follow-up task. Outcomes: ok and rejected mark the
event done (a rejection is logged and reported); retry leaves it for the next push. A destination
added to a hub that already has qualified leads acts once on each lead currently qualified.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from connectors.base.contract import Destination, QualifiedActions, QualifiedItem, WriteOutcome
from connectors.base.settings import DestinationSettings, OnQualifiedSettings, render
from core.errors import ConfigError
from core.pipeline.delivery import PushResult
from core.pipeline.plan import (
    OUTBOX,
    SCORE,
    mapped_values,
    record_id_of,
    row_outputs,
    score_outputs,
)
from core.records import LEAD_FIELDS
from core.store.ingest import HISTORY, LEAD
from core.store.store import Store

log = logging.getLogger("leadhub.outbox")


def act(
    store: Store,
    cfg: DestinationSettings,
    destination: Destination,
    result: PushResult,
    now: datetime,
    *,
    dry_run: bool = False,
) -> None:
    """Fire `on_qualified` for every crossing not yet acted on, in batches of `batch_size`.

    One query finds them all (new crossings since the last push: usually few).
    """
    actor = check(cfg, destination)
    if actor is None or cfg.on_qualified is None:
        return
    rows = _due_actions(store, cfg, dry_run)
    for start in range(0, len(rows), destination.batch_size):
        chunk = rows[start : start + destination.batch_size]
        items = [_item(cfg, cfg.on_qualified, row, now) for row in chunk]
        result.calls += 1
        if dry_run:
            result.action_preview.extend(items)
            result.actions += len(items)
            continue
        _record(store, cfg, items, actor.on_qualified(items), result)


def check(cfg: DestinationSettings, destination: Destination) -> QualifiedActions | None:
    """The destination as an actor when the block declares `on_qualified` (else None); a
    ConfigError when it declares one but the connector cannot act."""
    if cfg.on_qualified is None:
        return None
    if not isinstance(destination, QualifiedActions):
        raise ConfigError(
            f"destinations.{cfg.name}.on_qualified: the {cfg.connector} connector has no "
            "threshold actions; remove the setting"
        )
    return destination


def _due_actions(store: Store, cfg: DestinationSettings, dry_run: bool) -> list[Row[Any]]:
    latest = (
        sa.select(HISTORY.c.lead_id, sa.func.max(HISTORY.c.id).label("event_id"))
        .where(HISTORY.c.model == cfg.model, HISTORY.c.event.in_(("qualified", "released")))
        .group_by(HISTORY.c.lead_id)
        .subquery()
    )
    record_id = record_id_of(cfg.identity_system)
    mine = sa.and_(OUTBOX.c.lead_id == latest.c.lead_id, OUTBOX.c.destination == cfg.name)
    scored = sa.and_(SCORE.c.lead_id == OUTBOX.c.lead_id, SCORE.c.model == cfg.model)
    query = (
        sa.select(
            OUTBOX.c.lead_id,
            latest.c.event_id,
            record_id.label("record_id"),
            *(LEAD.c[f] for f in LEAD_FIELDS),
            *score_outputs(),
        )
        .select_from(
            latest.join(HISTORY, HISTORY.c.id == latest.c.event_id)
            .join(OUTBOX, mine)
            .join(LEAD, LEAD.c.id == OUTBOX.c.lead_id)
            .outerjoin(SCORE, scored)
        )
        .where(
            HISTORY.c.event == "qualified",
            sa.or_(
                OUTBOX.c.qualified_event_id.is_(None),
                OUTBOX.c.qualified_event_id < latest.c.event_id,
            ),
        )
        .order_by(OUTBOX.c.lead_id)
    )
    if not dry_run:  # a dry run sends nothing, so it counts records it would have written too
        query = query.where(OUTBOX.c.sent.is_not(None))
    if cfg.mode == "update":
        query = query.where(record_id.is_not(None))
    with store.engine.connect() as conn:
        return list(conn.execute(query).all())


def _item(
    cfg: DestinationSettings, action: OnQualifiedSettings, row: Row[Any], now: datetime
) -> QualifiedItem:
    outputs = row_outputs(row)
    lead = {f: row._mapping[f] for f in LEAD_FIELDS}
    full_name = " ".join(p for p in (lead["first_name"], lead["last_name"]) if p)
    context = {**lead, **outputs, "name": full_name or lead["email"] or f"lead {row.lead_id}"}
    due = now + timedelta(days=action.due_in_days) if action.due_in_days is not None else None
    return QualifiedItem(
        lead_id=row.lead_id,
        record_id=row.record_id,
        event_id=row.event_id,
        email=lead["email"],
        values=mapped_values(outputs, cfg.fields),
        subject=render(action.subject, context),
        body=render(action.body, context),
        due_at=due,
    )


def _record(
    store: Store,
    cfg: DestinationSettings,
    items: Sequence[QualifiedItem],
    outcomes: Sequence[WriteOutcome],
    result: PushResult,
) -> None:
    by_lead = {o.lead_id: o for o in outcomes}
    done = []
    for item in items:
        outcome = by_lead.get(item.lead_id)
        if outcome is None or outcome.status == "retry":
            continue
        if outcome.status == "rejected":
            log.warning("%s: on_qualified for lead %s rejected: %s", cfg.name, item.lead_id,
                        outcome.reason)  # fmt: skip
            result.rejections.append((item.lead_id, f"on_qualified: {outcome.reason}"))
        else:
            result.actions += 1
        done.append({"_lead": item.lead_id, "event_id": item.event_id})
    if done:
        with store.begin() as conn:
            conn.execute(
                OUTBOX.update()
                .where(OUTBOX.c.destination == cfg.name, OUTBOX.c.lead_id == sa.bindparam("_lead"))
                .values(qualified_event_id=sa.bindparam("event_id")),
                done,
            )
