"""Bulk writes store exactly what an INSERT or UPDATE statement through SQLAlchemy stores.

The oracle is SQLAlchemy's own statement path: the same rows written through it (a batch under
the bulk threshold takes it) and through the bulk path (COPY on PostgreSQL, the driver's
executemany on SQLite) must read back the same, down to the stored text of times and JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from core.store.bulk import COPY_FROM, Serialized, insert_rows, update_rows
from core.store.ingest import LEAD
from core.store.store import Store
from core.store.tables import Score, table

SCORE = table(Score)
NOW = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)
LEDGER = [{"section": "fit", "kind": "rule", "name": "VP \u00e9", "count": 1, "points": 12.5}]


def score_rows(lead_ids: list[int], model: str, shared: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "lead_id": lead_id,
            "model": model,
            "model_hash": "h",
            "fit": 12.5,
            "engagement": -3.25,
            "total": 9.25,
            "tier": None if i % 3 == 0 else "warm",
            "grade": "B2",
            "qualified": i % 2 == 0,
            "qualified_at": NOW - timedelta(days=i) if i % 2 == 0 else None,
            "reason": "VP é",
            "ledger": shared if i % 4 else [],
            "predictive": None,
            "predictive_reason": None,
            "computed_at": NOW,
        }
        for i, lead_id in enumerate(lead_ids)
    ]


def stored(store: Store, model: str) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (times and JSON as text), and as SQLAlchemy reads
    them back."""
    columns = [c for c in SCORE.c if c.name not in ("id", "model")]
    raw = [sa.cast(c, sa.Text) for c in columns]
    query = sa.select(*raw, *columns).where(SCORE.c.model == model).order_by(SCORE.c.lead_id)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def test_bulk_inserts_and_updates_store_what_statements_store(store: Store) -> None:
    n = COPY_FROM + 50
    with store.begin() as conn:
        conn.execute(
            LEAD.insert(),
            [{"email": f"x{i}@y.com", "custom": {}, "created_at": NOW, "updated_at": NOW}
             for i in range(n)],
        )  # fmt: skip
        ids = [r.id for r in conn.execute(sa.select(LEAD.c.id).order_by(LEAD.c.id))]
    shared = Serialized(LEDGER)
    with store.begin() as conn:
        plain = score_rows(ids, "by_statement", LEDGER)
        for start in range(0, n, 50):  # under the threshold: SQLAlchemy's statements
            conn.execute(SCORE.insert(), plain[start : start + 50])
        insert_rows(conn, SCORE, score_rows(ids, "in_bulk", shared))
    assert stored(store, "in_bulk") == stored(store, "by_statement")

    with store.engine.connect() as conn:
        keys = dict(conn.execute(sa.select(SCORE.c.id, SCORE.c.model)).all())
    changed = {"total": 1.5, "tier": "hot", "qualified_at": NOW, "ledger": shared}
    with store.begin() as conn:
        for model, ledger in (("by_statement", LEDGER), ("in_bulk", shared)):
            rows = [{**changed, "ledger": ledger, "_id": i} for i, m in keys.items() if m == model]
            if model == "by_statement":
                for start in range(0, len(rows), 50):
                    update_rows(conn, SCORE, rows[start : start + 50])
            else:
                update_rows(conn, SCORE, rows)
    after = stored(store, "in_bulk")
    assert after == stored(store, "by_statement")
    with store.engine.connect() as conn:
        got = conn.execute(
            sa.select(SCORE.c.ledger, SCORE.c.qualified_at, SCORE.c.total).where(
                SCORE.c.model == "in_bulk"
            )
        ).all()
    assert {(tuple(map(str, r.ledger)), r.qualified_at, r.total) for r in got} == {
        (tuple(map(str, LEDGER)), NOW, 1.5)
    }
