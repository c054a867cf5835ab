"""Planning the outbox: what each destination should hold for each lead.

After scoring, `plan` compares every in-scope lead's mapped outputs (`desired`) with the values the
destination last accepted (`sent`) and marks the leads that differ `pending`; `core.pipeline.push`
sends them. The row helpers here (`mapped_values`, `score_outputs`, `record_id_of`) are shared by
delivery and the `on_qualified` actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from connectors.base.settings import OUTPUTS, DestinationSettings, Output
from core.store.ingest import ACTIVITY, IDENTITY
from core.store.store import Store
from core.store.tables import Outbox, Score, utcnow

OUTBOX = Outbox.metadata.tables["outbox"]
SCORE = Score.metadata.tables["score"]
STATES = ("pending", "sent", "retry", "parked")
CHUNK = 1000


@dataclass
class PlanResult:
    considered: int = 0  # in-scope leads with a score under the destination's model
    pending: int = 0  # leads whose mapped values changed and now wait to be sent


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
