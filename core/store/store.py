"""The store: one object per database, every query the rest of the hub needs.

Page writes (upserts, identity resolution) are in `ingest`; this module opens the database,
applies migrations, and keeps cursors, runs, quarantine and read queries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import tenacity
from sqlalchemy.engine import Connection, Engine

from connectors.base.contract import Invalid
from core.records import ActivityRecord, LeadRecord, OutcomeRecord, normalize_email
from core.store import db
from core.store.ingest import HISTORY, IDENTITY, LEAD, QUARANTINE, Ingest, PageCounts
from core.store.tables import Meta, Score, SyncRun, SyncState, table, utcnow

log = logging.getLogger("leadhub.store")
PAGE_TABLES = ("lead", "identity", "activity", "activity_signature", "outcome")
SYNC_STATE = table(SyncState)
SYNC_RUN = table(SyncRun)
META = table(Meta)


@dataclass(frozen=True)
class RunSummary:
    id: int
    kind: str
    target: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    read: int
    created: int
    updated: int
    unchanged: int
    quarantined: int
    error: str | None


# PostgreSQL's SQLSTATEs for a unique violation, a serialization failure and a deadlock: the codes,
# not the message, which follows the server's lc_messages.
_CONFLICT_STATES = {"23505", "40001", "40P01"}


def _is_write_conflict(exc: BaseException) -> bool:
    """A deadlock, serialization failure or unique-key race that a retry of the page resolves.

    The race: two writers (a pull and a webhook delivery, or two pulls) store the same new record;
    each read before the other committed, so the second insert violates the unique key
    (`identity_system_external_id_key`, `lead.email`, …). Written again, the page finds the row.
    """
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _CONFLICT_STATES:
        return True
    if isinstance(exc, sa.exc.IntegrityError):
        return "unique" in str(orig).lower() or "duplicate key" in str(orig).lower()
    if isinstance(exc, sa.exc.OperationalError):
        text = str(orig).lower()
        return any(k in text for k in ("deadlock", "could not serialize", "database is locked"))
    return False


class Store:
    """Open (and migrate) the database at `url`."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = db.create_engine(url)
        if migrate:
            db.upgrade(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # -- cursors and pages ---------------------------------------------------------------------

    def get_cursor(self, source: str, stream: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(SYNC_STATE.c.cursor).where(
                    SYNC_STATE.c.source == source, SYNC_STATE.c.stream == stream
                )
            ).first()
        return dict(row.cursor) if row else None

    def reset_cursors(self, source: str) -> None:
        with self.begin() as conn:
            conn.execute(SYNC_STATE.delete().where(SYNC_STATE.c.source == source))

    def save_page(
        self,
        source: str,
        stream: str,
        items: Sequence[Any],
        cursor: Mapping[str, Any] | None,
        priority: Mapping[str, Sequence[str]] | None = None,
    ) -> PageCounts:
        """Store one page and its cursor in one transaction; returns what changed.

        Two pulls that meet on the same new leads can deadlock or race on a unique email; the
        database rolls one back, and the page is simply written again (it is idempotent).
        """
        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_write_conflict),
            stop=tenacity.stop_after_attempt(8),
            wait=tenacity.wait_random_exponential(multiplier=0.05, max=1),
            reraise=True,
        ):
            with attempt:
                counts = self._save_page_once(source, stream, items, cursor, priority)
        self._refresh_statistics()
        return counts

    def _refresh_statistics(self) -> None:
        """After a page: fresh statistics for the tables pages fill, once one has doubled (see
        `db.analyze_grown`); the page is stored whatever happens here."""
        if self.dialect != "postgresql":
            return
        try:
            with self.begin() as conn:
                db.analyze_grown(conn, PAGE_TABLES)
        except sa.exc.DBAPIError as exc:
            log.warning("statistics not refreshed after a page: %s", exc.orig)

    def _save_page_once(
        self,
        source: str,
        stream: str,
        items: Sequence[Any],
        cursor: Mapping[str, Any] | None,
        priority: Mapping[str, Sequence[str]] | None,
    ) -> PageCounts:
        with self.begin() as conn:
            ingest = Ingest(conn, priority)
            counts = PageCounts()
            counts.add(ingest.leads(source, [i for i in items if isinstance(i, LeadRecord)]))
            acts = [i for i in items if isinstance(i, ActivityRecord)]
            counts.add(ingest.activities(source, acts))
            outs = [i for i in items if isinstance(i, OutcomeRecord)]
            counts.add(ingest.outcomes(source, outs))
            bad = [i for i in items if isinstance(i, Invalid)]
            counts.quarantined += ingest.quarantine(source, stream, bad)
            counts.read += len(bad)
            if cursor is not None:
                self._save_cursor(conn, source, stream, dict(cursor))
        return counts

    def _save_cursor(
        self, conn: Connection, source: str, stream: str, cursor: dict[str, Any]
    ) -> None:
        updated = conn.execute(
            SYNC_STATE.update()
            .where(SYNC_STATE.c.source == source, SYNC_STATE.c.stream == stream)
            .values(cursor=cursor, updated_at=utcnow())
        )
        if updated.rowcount == 0:
            conn.execute(
                SYNC_STATE.insert().values(
                    source=source, stream=stream, cursor=cursor, updated_at=utcnow()
                )
            )

    # -- runs ----------------------------------------------------------------------------------

    def start_run(self, kind: str, target: str) -> int:
        with self.begin() as conn:
            result = conn.execute(
                SYNC_RUN.insert().values(
                    kind=kind, target=target, started_at=utcnow(), status="running"
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def finish_run(
        self, run_id: int, counts: PageCounts, status: str, error: str | None = None
    ) -> None:
        with self.begin() as conn:
            conn.execute(
                SYNC_RUN.update()
                .where(SYNC_RUN.c.id == run_id)
                .values(
                    finished_at=utcnow(),
                    status=status,
                    read=counts.read,
                    created=counts.created,
                    updated=counts.updated,
                    unchanged=counts.unchanged,
                    quarantined=counts.quarantined,
                    error=error,
                )
            )

    def get_run(self, run_id: int) -> RunSummary:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(SYNC_RUN).where(SYNC_RUN.c.id == run_id)).one()
        return RunSummary(**row._asdict())

    def last_runs(self) -> list[RunSummary]:
        """The most recent run of each (kind, target)."""
        latest = (
            sa.select(sa.func.max(SYNC_RUN.c.id)).group_by(SYNC_RUN.c.kind, SYNC_RUN.c.target)
        ).scalar_subquery()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(SYNC_RUN).where(SYNC_RUN.c.id.in_(latest)).order_by(SYNC_RUN.c.target)
            )
            return [RunSummary(**r._asdict()) for r in rows]

    # -- reads ---------------------------------------------------------------------------------

    def quarantine(self, source: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        query = sa.select(QUARANTINE).order_by(QUARANTINE.c.id.desc()).limit(limit)
        if source:
            query = query.where(QUARANTINE.c.source == source)
        with self.engine.connect() as conn:
            return [dict(r._asdict()) for r in conn.execute(query)]

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())

    def leads(self, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        query = sa.select(LEAD).order_by(LEAD.c.id)
        if ids is not None:
            query = query.where(LEAD.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            return [dict(r._asdict()) for r in conn.execute(query)]

    def lead_by_email(self, email: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(LEAD).where(LEAD.c.email == normalize_email(email))
            ).first()
        return dict(row._asdict()) if row else None

    def identities(self, lead_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(IDENTITY).where(IDENTITY.c.lead_id == lead_id))
            return [dict(r._asdict()) for r in rows]

    # -- meta ----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(META.c.value).where(META.c.key == key)
            ).scalar_one_or_none()

    def set_meta(self, key: str, value: str, conn: Connection | None = None) -> None:
        if conn is None:
            with self.begin() as own:
                self.set_meta(key, value, own)
            return
        if conn.execute(META.update().where(META.c.key == key).values(value=value)).rowcount == 0:
            conn.execute(META.insert().values(key=key, value=value))


def _score_table() -> sa.Table:
    return table(Score)


def ranked_leads(store: Store, model: str, top: int | None = None) -> list[dict[str, Any]]:
    """Leads with their score under `model`, best first; leads never scored come last."""
    score = _score_table()
    query = (
        sa.select(
            LEAD.c.id,
            LEAD.c.email,
            LEAD.c.first_name,
            LEAD.c.last_name,
            LEAD.c.company,
            LEAD.c.job_title,
            score.c.model,
            score.c.fit,
            score.c.engagement,
            score.c.total,
            score.c.tier,
            score.c.grade,
            score.c.qualified,
            score.c.qualified_at,
            score.c.reason,
            score.c.predictive,
        )
        .select_from(
            LEAD.outerjoin(score, sa.and_(score.c.lead_id == LEAD.c.id, score.c.model == model))
        )
        .order_by(score.c.total.desc().nulls_last(), LEAD.c.id)
    )
    if top:
        query = query.limit(top)
    with store.engine.connect() as conn:
        return [dict(r._asdict()) for r in conn.execute(query)]


def lead_scores(store: Store, lead_id: int) -> list[dict[str, Any]]:
    score = _score_table()
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(score).where(score.c.lead_id == lead_id).order_by(score.c.model)
        )
        return [dict(r._asdict()) for r in rows]


def lead_history(store: Store, lead_id: int, model: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(HISTORY).where(HISTORY.c.lead_id == lead_id).order_by(HISTORY.c.id)
    if model:
        query = query.where(HISTORY.c.model == model)
    with store.engine.connect() as conn:
        return [dict(r._asdict()) for r in conn.execute(query)]
