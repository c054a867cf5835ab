"""The home page's highlights (`latest`: indexed SQL) are those `highlights` finds by reading the
whole history in Python (the reference): the same crossing, and the same decay as long as it is
among the newest score changes; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.pipeline.highlights import highlights, latest
from core.pipeline.plan import SCORE
from core.store.ingest import ACTIVITY, HISTORY, LEAD
from core.store.store import Store

START = datetime(2026, 1, 1, tzinfo=UTC)


def lived(store: Store, seed: int, leads: int = 40) -> None:
    """Leads with score histories that rise, cross into qualified, fall back (released) or decay
    quietly, with activities between some of their scores; current scores match the last row."""
    rng = random.Random(seed)
    with store.begin() as conn:
        for i in range(1, leads + 1):
            conn.execute(
                LEAD.insert().values(
                    id=i, email=f"p{i}@x.example", custom={}, created_at=START, updated_at=START
                )
            )
            at, total, qualified = START, 0.0, False
            for step in range(rng.randrange(1, 7)):
                at += timedelta(days=rng.randrange(0, 3), hours=rng.randrange(0, 24))
                total = max(0.0, total + rng.choice((-30, -15, -5, 5, 20, 40)))
                now_qualified = total >= 50
                event = None
                if now_qualified != qualified:
                    event = "qualified" if now_qualified else "released"
                qualified = now_qualified
                conn.execute(
                    HISTORY.insert().values(
                        lead_id=i, model="m", model_hash="h", total=total, qualified=qualified,
                        event=event, computed_at=at,
                    )
                )  # fmt: skip
                if rng.random() < 0.4:  # an activity since this score, before the next one
                    conn.execute(
                        ACTIVITY.insert().values(
                            source="t", external_id=f"{i}-{step}", lead_id=i, type="page_viewed",
                            occurred_at=at + timedelta(minutes=rng.choice((0, 1, 30))),
                            properties={},
                        )
                    )  # fmt: skip
            conn.execute(
                SCORE.insert().values(
                    lead_id=i, model="m", model_hash="h", total=total, qualified=qualified,
                    reason="", ledger=[], computed_at=at,
                )
            )  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_latest_finds_what_the_whole_history_shows(store: Store, seed: int) -> None:
    lived(store, seed)
    reference = highlights(store, "m")
    found = latest(store, "m")
    assert found.crossed == reference.crossed
    assert found.decayed == reference.decayed
    assert reference.crossed is not None or reference.decayed is not None


def test_a_decay_is_sought_among_the_newest_changes_only(store: Store) -> None:
    lived(store, 3)
    reference = highlights(store, "m")
    assert reference.decayed is not None
    with store.engine.connect() as conn:
        ids = list(conn.execute(sa.select(HISTORY.c.id).order_by(HISTORY.c.id.desc())).scalars())
        row = conn.execute(
            sa.select(HISTORY.c.id).where(
                HISTORY.c.lead_id == reference.decayed.lead_id,
                HISTORY.c.computed_at == reference.decayed.at,
            )
        ).scalar_one()
    newer = ids.index(row)  # changes written after the decay's
    assert latest(store, "m", recent=newer + 1).decayed == reference.decayed
    assert latest(store, "m", recent=newer).decayed != reference.decayed


def test_a_crossing_of_a_lead_still_qualified_comes_first(store: Store) -> None:
    """Lead 1 crossed on day 1 and is still qualified; lead 2 crossed on day 5 and was released
    on day 6: lead 1's crossing is the one to look at, though lead 2's is newer."""
    day = [START + timedelta(days=d) for d in range(7)]
    rows = [  # lead, total, qualified, event, day
        (1, 60.0, True, "qualified", 1),
        (2, 10.0, False, None, 2),
        (2, 70.0, True, "qualified", 5),
        (2, 20.0, False, "released", 6),
    ]
    with store.begin() as conn:
        for i in (1, 2):
            conn.execute(
                LEAD.insert().values(
                    id=i, email=f"p{i}@x.example", custom={}, created_at=START, updated_at=START
                )
            )
        for lead, total, qualified, event, d in rows:
            conn.execute(
                HISTORY.insert().values(
                    lead_id=lead, model="m", model_hash="h", total=total, qualified=qualified,
                    event=event, computed_at=day[d],
                )
            )  # fmt: skip
        for lead, total, qualified in ((1, 60.0, True), (2, 20.0, False)):
            conn.execute(
                SCORE.insert().values(
                    lead_id=lead, model="m", model_hash="h", total=total, qualified=qualified,
                    reason="", ledger=[], computed_at=day[6],
                )
            )  # fmt: skip
    crossed = latest(store, "m").crossed
    assert crossed is not None and (crossed.lead_id, crossed.at) == (1, day[1])
    assert (crossed.before, crossed.after) == (0.0, 60.0)
    assert crossed == highlights(store, "m").crossed
    released = latest(store, "m").decayed  # no activity between day 5 and day 6: quiet
    assert released is not None and (released.lead_id, released.event) == (2, "released")
    assert (released.before, released.after, released.since) == (70.0, 20.0, day[5])
