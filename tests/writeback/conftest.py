"""Seeding for write-back tests: leads, identities, score rows and crossings, inserted directly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from core.pipeline.outbox import DestinationSettings
from core.pipeline.plan import SCORE
from core.store.ingest import HISTORY, IDENTITY, LEAD
from core.store.store import Store
from tests.writeback.recording import RecordingDestination

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def seed_leads(store: Store, n: int, *, system: str | None = "crm", start: int = 0) -> list[int]:
    """`n` leads (lead<i>@example.com); with `system`, each has a record there (`<system>-<i>`)."""
    rows = [
        {"email": f"lead{i}@example.com", "first_name": f"First{i}", "last_name": "Lee",
         "company": f"Co {i}", "custom": {}, "created_at": NOW, "updated_at": NOW, "dirty": False}
        for i in range(start, start + n)
    ]  # fmt: skip
    with store.begin() as conn:
        conn.execute(LEAD.insert(), rows)
        ids = list(
            conn.execute(
                sa.select(LEAD.c.id).where(LEAD.c.email.in_([r["email"] for r in rows]))
                .order_by(LEAD.c.id)
            ).scalars()
        )  # fmt: skip
        if system:
            add_identities(conn, system, ids)
    return ids


def add_identities(conn: Any, system: str, lead_ids: Sequence[int]) -> None:
    conn.execute(
        IDENTITY.insert(),
        [
            {"system": system, "external_id": f"{system}-{lead_id}", "lead_id": lead_id,
             "data": {}, "record_updated_at": NOW, "seen_at": NOW, "deleted": False}
            for lead_id in lead_ids
        ],
    )  # fmt: skip


def set_scores(
    store: Store, lead_ids: Sequence[int], total: float, *, model: str = "default", **extra: Any
) -> None:
    """Give `lead_ids` a current score of `total` under `model` (insert or update)."""
    values = {"fit": total / 2, "engagement": total / 2, "total": total,
              "tier": "hot" if total >= 70 else "cold", "grade": "B2", "qualified": False,
              "qualified_at": None, "reason": f"scored {total}", **extra}  # fmt: skip
    with store.begin() as conn:
        existing = set(
            conn.execute(
                sa.select(SCORE.c.lead_id).where(
                    SCORE.c.model == model, SCORE.c.lead_id.in_(list(lead_ids))
                )
            ).scalars()
        )
        new = [i for i in lead_ids if i not in existing]
        if new:
            conn.execute(
                SCORE.insert(),
                [{"lead_id": i, "model": model, "model_hash": "h", "ledger": [],
                  "computed_at": NOW, **values} for i in new],
            )  # fmt: skip
        if existing:
            conn.execute(
                SCORE.update()
                .where(SCORE.c.model == model, SCORE.c.lead_id.in_(sorted(existing)))
                .values(**values)
            )


def add_event(store: Store, lead_id: int, event: str, *, model: str = "default") -> int:
    """Record a threshold crossing ("qualified" or "released") in score_history."""
    with store.begin() as conn:
        result = conn.execute(
            HISTORY.insert().values(
                lead_id=lead_id, model=model, model_hash="h", fit=0, engagement=0, total=0,
                qualified=event == "qualified", reason="", event=event, computed_at=NOW,
            )
        )  # fmt: skip
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])


def settings(**overrides: Any) -> DestinationSettings:
    base: dict[str, Any] = {
        "name": "crm",
        "connector": "recording",
        "model": "default",
        "fields": {"total": "lead_score", "tier": "lead_tier", "reason": "lead_reason"},
    }
    return DestinationSettings.model_validate({**base, **overrides})


@pytest.fixture
def crm() -> RecordingDestination:
    return RecordingDestination("crm", batch_size=100)
