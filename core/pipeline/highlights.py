"""What to look at in a store that has lived a while: the leads whose histories tell the story.

- the leads that **crossed into qualified** (those still qualified first, the most recent crossing
  first): the moment destinations with `on_qualified` create a follow-up task;
- a lead that **decayed**: its total fell with no activity since its previous score, so time
  alone took the points (a release from qualified first, then the biggest fall);
- the **tier shares** of the current scores.

`leadhub demo` closes on them (`highlights`, which reads the model's whole history); the
dashboard's home page links the best crossing and decay found by `latest`, a few indexed queries
whatever the store's size: the crossing is the same, the decay is sought among the newest
`RECENT` score changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.pipeline.plan import SCORE
from core.store.ingest import ACTIVITY, HISTORY, LEAD
from core.store.store import Store


@dataclass(frozen=True)
class Moment:
    """One lead's notable moment: `total` went from `before` to `after` at `at`."""

    lead_id: int
    email: str | None
    at: datetime
    before: float
    after: float
    event: str | None
    since: datetime | None = None  # when the lead's previous score was written


@dataclass
class Highlights:
    crossings: list[Moment] = field(default_factory=list)  # best first: see `_crossings`
    decayed: Moment | None = None
    tiers: dict[str, int] = field(default_factory=dict)  # tier -> current leads

    @property
    def crossed(self) -> Moment | None:
        return self.crossings[0] if self.crossings else None

    @property
    def leads(self) -> int:
        return sum(self.tiers.values())


def highlights(store: Store, model: str) -> Highlights:
    """The highlights of `model`'s scores: see the module docstring."""
    with store.engine.connect() as conn:
        tiers: dict[Any, Any] = dict(
            conn.execute(
                sa.select(SCORE.c.tier, sa.func.count())
                .where(SCORE.c.model == model)
                .group_by(SCORE.c.tier)
            ).all()
        )
        history = conn.execute(
            sa.select(HISTORY.c.lead_id, HISTORY.c.computed_at, HISTORY.c.total, HISTORY.c.event)
            .where(HISTORY.c.model == model)
            .order_by(HISTORY.c.lead_id, HISTORY.c.computed_at, HISTORY.c.id)
        ).all()
        qualified_now = set(
            conn.execute(
                sa.select(SCORE.c.lead_id).where(SCORE.c.model == model, SCORE.c.qualified)
            ).scalars()
        )
        emails = dict(conn.execute(sa.select(LEAD.c.id, LEAD.c.email)).all())
        active: dict[int, list[datetime]] = {}
        for lead_id, moment in conn.execute(sa.select(ACTIVITY.c.lead_id, ACTIVITY.c.occurred_at)):
            active.setdefault(lead_id, []).append(moment)
    return Highlights(
        _crossings(history, qualified_now, emails),
        _decayed(history, emails, active),
        {str(k or ""): int(v) for k, v in tiers.items()},
    )


def _moments(history: Sequence[Any], emails: dict[int, str | None]) -> list[Moment]:
    found: list[Moment] = []
    previous: Any = None
    for row in history:
        same = previous is not None and previous.lead_id == row.lead_id
        before, since = (previous.total, previous.computed_at) if same else (0, None)
        found.append(Moment(row.lead_id, emails.get(row.lead_id), row.computed_at, float(before),
                            float(row.total), row.event, since))  # fmt: skip
        previous = row
    return found


def _crossings(
    history: Sequence[Any], qualified_now: set[int], emails: dict[int, str | None]
) -> list[Moment]:
    """Every crossing into qualified: of leads still qualified first, the most recent first."""
    crossings = [m for m in _moments(history, emails) if m.event == "qualified"]
    return sorted(crossings, key=lambda m: (m.lead_id in qualified_now, m.at, m.lead_id),
                  reverse=True)  # fmt: skip


def _decayed(
    history: Sequence[Any], emails: dict[int, str | None], active: dict[int, list[datetime]]
) -> Moment | None:
    """The biggest fall of a total with no activity since the lead's previous score (time alone
    took the points), a release from qualified first."""

    def quiet(m: Moment) -> bool:
        return m.since is not None and not any(
            m.since < a <= m.at for a in active.get(m.lead_id, ())
        )

    falls = [m for m in _moments(history, emails) if m.after < m.before and quiet(m)]
    return max(
        falls,
        key=lambda m: (m.event == "released", m.before - m.after, m.at, m.lead_id),
        default=None,
    )


RECENT = 10_000  # newest score changes of a model in which `latest` seeks a decay


def latest(store: Store, model: str, recent: int = RECENT) -> Highlights:
    """The home page's highlights of `model`: the best crossing into qualified as `highlights`
    finds it (through the index on model, event and time), and the decay `highlights` would
    find among the model's newest `recent` score changes; `tiers` is left empty."""
    with store.engine.connect() as conn:
        crossing = (
            sa.select(HISTORY.c.id, HISTORY.c.lead_id, HISTORY.c.computed_at, HISTORY.c.total)
            .where(HISTORY.c.model == model, HISTORY.c.event == "qualified")
            .order_by(HISTORY.c.computed_at.desc(), HISTORY.c.lead_id.desc())
            .limit(1)
        )
        still = sa.exists().where(
            SCORE.c.lead_id == HISTORY.c.lead_id, SCORE.c.model == model, SCORE.c.qualified
        )
        row = conn.execute(crossing.where(still)).first() or conn.execute(crossing).first()
        crossings = []
        if row is not None:
            previous = conn.execute(
                sa.select(HISTORY.c.total, HISTORY.c.computed_at)
                .where(
                    HISTORY.c.lead_id == row.lead_id,
                    HISTORY.c.model == model,
                    sa.tuple_(HISTORY.c.computed_at, HISTORY.c.id)
                    < sa.tuple_(sa.literal(row.computed_at, HISTORY.c.computed_at.type), row.id),
                )
                .order_by(HISTORY.c.computed_at.desc(), HISTORY.c.id.desc())
                .limit(1)
            ).first()
            before, since = (previous.total, previous.computed_at) if previous else (0, None)
            email = _email(conn, row.lead_id)
            moment = (row.lead_id, email, row.computed_at, float(before), float(row.total))
            crossings.append(Moment(*moment, "qualified", since))
        decayed = _decayed_recently(conn, model, recent)
    return Highlights(crossings, decayed)


def _decayed_recently(conn: Connection, model: str, recent: int) -> Moment | None:
    """`_decayed` among the newest `recent` score changes of `model`: their leads' histories
    give each change its previous score; the falls are then checked for activity in the order
    `_decayed` ranks them, stopping at the first quiet one."""
    # SQLite: `model || ''`, so that it walks the history backwards by id rather than pick the
    # index that starts with the model and sort the model's whole history
    sqlite = conn.dialect.name == "sqlite"
    of_model = HISTORY.c.model + "" if sqlite else HISTORY.c.model
    newest = conn.execute(
        sa.select(HISTORY.c.id, HISTORY.c.lead_id)
        .where(of_model == model)
        .order_by(HISTORY.c.id.desc())
        .limit(recent)
    ).all()
    wanted = {row.id for row in newest}
    # the leads as a list (a subquery has PostgreSQL hash the whole history), on PostgreSQL as
    # one array parameter rather than thousands of parameters
    leads = sorted({row.lead_id for row in newest})
    listed = (
        HISTORY.c.lead_id.in_(leads)
        if sqlite
        else HISTORY.c.lead_id == sa.any_(sa.literal(leads, sa.ARRAY(sa.Integer)))
    )
    # the times as the driver gives them (a string on SQLite), made moments only for the falls
    raw = sa.type_coerce(HISTORY.c.computed_at, sa.String if sqlite else sa.DateTime)
    columns = (HISTORY.c.id, HISTORY.c.lead_id, raw.label("computed_at"), HISTORY.c.total)
    history = conn.execute(
        sa.select(*columns, HISTORY.c.event)
        .where(HISTORY.c.model == model, listed)
        .order_by(HISTORY.c.lead_id, HISTORY.c.computed_at, HISTORY.c.id)
    ).all()
    falls = []
    for previous, row in itertools.pairwise(history):
        if row.id in wanted and previous.lead_id == row.lead_id and row.total < previous.total:
            moved = (row.computed_at, float(previous.total), float(row.total), row.event)
            falls.append(Moment(row.lead_id, None, *moved, previous.computed_at))
    falls = [replace(m, at=_utc(m.at), since=_utc(m.since)) for m in falls]
    falls.sort(key=lambda m: (m.event == "released", m.before - m.after, m.at, m.lead_id))
    for fall in reversed(falls):
        busy = sa.exists().where(
            ACTIVITY.c.lead_id == fall.lead_id,
            ACTIVITY.c.occurred_at > fall.since,
            ACTIVITY.c.occurred_at <= fall.at,
        )
        if not conn.execute(sa.select(busy)).scalar():
            return replace(fall, email=_email(conn, fall.lead_id))
    return None


def _utc(moment: Any) -> Any:
    """A stored time read raw (an ISO string on SQLite, a naive datetime on PostgreSQL) as the
    UTC datetime the table's type gives."""
    if moment is None:
        return None
    found = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def _email(conn: Connection, lead_id: int) -> str | None:
    email = conn.execute(sa.select(LEAD.c.email).where(LEAD.c.id == lead_id)).scalar()
    return None if email is None else str(email)
