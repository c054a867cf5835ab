"""Reports, backtests and the predictive model on stored data: the I/O around `scoring.report` and
`scoring.predictive`.

Decision points keep the future out of every score. A lead whose outcome is decided (won,
converted or lost) on a known date is looked at just before that date: activities from then on
are left out, so nothing the sale itself caused leaks into the score. A lead whose outcome has no
close date, or is still open, is looked at as of its last activity (or, without any, when it was
stored). `horizon_days` moves each decision point that many days earlier ("would we have seen it
coming a month ahead?").

A lead with several outcomes is decided by its earliest won or converted one, else its earliest
lost one, else it is open.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.errors import ConfigError
from core.pipeline import score as scorer
from core.store import summary
from core.store.ingest import HISTORY, IDENTITY, LEAD, OUTCOME
from core.store.store import Store
from core.store.tables import PredictiveModel, Score, table, utcnow
from scoring.engine import Activity, score_lead
from scoring.model import ScoringModel, segment_matches
from scoring.predictive import Algorithm, Artefact, LeadInput, train
from scoring.report import (
    CONVERTED,
    DECIDED,
    Backtest,
    LeadRow,
    Report,
    backtest,
    build_report,
    deciding_outcome,
    decision_point,
)

PREDICTIVE = table(PredictiveModel)
SCORE = table(Score)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A lead as it stood at its decision point `at`: fields, and activities up to `at`."""

    lead_id: int
    fields: dict[str, Any]
    activities: list[Activity]
    at: datetime
    outcome: str | None
    source: str | None


def _outcomes(conn: Connection) -> dict[int, tuple[str, datetime | None]]:
    rows: dict[int, list[tuple[str, datetime | None]]] = {}
    for lead_id, status, closed_at in conn.execute(
        sa.select(OUTCOME.c.lead_id, OUTCOME.c.status, OUTCOME.c.closed_at)
    ):
        rows.setdefault(lead_id, []).append((status, closed_at))
    return {lead_id: deciding_outcome(found) for lead_id, found in rows.items()}


def _sources(conn: Connection) -> dict[int, str]:
    """The system each lead first came from."""
    found: dict[int, str] = {}
    query = sa.select(IDENTITY.c.lead_id, IDENTITY.c.system).order_by(IDENTITY.c.id)
    for lead_id, system in conn.execute(query):
        found.setdefault(lead_id, system)
    return found


def snapshots(
    store: Store, *, decided_only: bool = True, horizon_days: float = 0
) -> Iterator[Snapshot]:
    """Every lead (or every decided lead) at its decision point, a chunk of leads at a time."""
    with store.engine.connect() as conn:
        outcomes = _outcomes(conn)
        sources = _sources(conn)
        stored = dict(conn.execute(sa.select(LEAD.c.id, LEAD.c.created_at)).all())
    if decided_only:
        ids = sorted(i for i, (status, _) in outcomes.items() if status in DECIDED)
    else:
        ids = sorted(stored)
    for start in range(0, len(ids), scorer.CHUNK):
        chunk = ids[start : start + scorer.CHUNK]
        with store.engine.connect() as conn:
            fields, acts = scorer.load_inputs(conn, chunk)
        for lead_id in chunk:
            status, closed_at = outcomes.get(lead_id, (None, None))
            mine = acts.get(lead_id, [])
            times = [a.occurred_at for a in mine]
            at = decision_point(status, closed_at, times, stored[lead_id], horizon_days)
            before = [a for a in mine if a.occurred_at <= at]
            yield Snapshot(lead_id, fields[lead_id], before, at, status, sources.get(lead_id))


def score_snapshot(snapshot: Snapshot, model: ScoringModel) -> LeadRow | None:
    """The snapshot scored by `model` at its decision point; None outside the model's segment."""
    if not segment_matches(model, snapshot.fields):
        return None
    result = score_lead(snapshot.fields, snapshot.activities, model, snapshot.at)
    return LeadRow(
        lead_id=snapshot.lead_id,
        score=result.total,
        tier=result.tier,
        qualified=result.qualified,
        channel=snapshot.fields.get("channel"),
        source=snapshot.source,
        outcome=snapshot.outcome,
        at=snapshot.at,
    )


def decided_rows(
    store: Store, models: Sequence[ScoringModel], horizon_days: float = 0
) -> list[list[LeadRow]]:
    """For each model, its decided leads scored at their decision points (one pass over leads)."""
    found: list[list[LeadRow]] = [[] for _ in models]
    for snapshot in snapshots(store, horizon_days=horizon_days):
        for rows, model in zip(found, models, strict=True):
            row = score_snapshot(snapshot, model)
            if row is not None:
                rows.append(row)
    return found


def run_backtests(
    store: Store,
    models: Sequence[ScoringModel],
    *,
    horizon_days: float = 0,
    target_precision: float | None = None,
    monthly_volume: float | None = None,
) -> list[Backtest]:
    """One backtest per model, on the same decided leads at the same decision points."""
    return [
        backtest(model.name, rows, target_precision=target_precision, monthly_volume=monthly_volume)
        for model, rows in zip(models, decided_rows(store, models, horizon_days), strict=True)
    ]


def current_rows(store: Store, model: ScoringModel) -> list[LeadRow]:
    """Every lead's stored score under `model`, with its channel, source and outcome."""
    query = (
        sa.select(SCORE.c.lead_id, SCORE.c.total, SCORE.c.tier, SCORE.c.qualified, LEAD.c.channel)
        .select_from(SCORE.join(LEAD, LEAD.c.id == SCORE.c.lead_id))
        .where(SCORE.c.model == model.name)
        .order_by(SCORE.c.lead_id)
    )
    with store.engine.connect() as conn:
        outcomes = _outcomes(conn)
        sources = _sources(conn)
        return [
            LeadRow(
                lead_id=r.lead_id,
                score=r.total,
                tier=r.tier,
                qualified=r.qualified,
                channel=r.channel,
                source=sources.get(r.lead_id),
                outcome=outcomes.get(r.lead_id, (None, None))[0],
            )
            for r in conn.execute(query)
        ]


def qualified_moments(store: Store, model: ScoringModel) -> list[datetime]:
    """When leads crossed into qualified under `model`: one moment per lead and month."""
    query = (
        sa.select(HISTORY.c.lead_id, HISTORY.c.computed_at)
        .where(HISTORY.c.model == model.name, HISTORY.c.event == "qualified")
        .order_by(HISTORY.c.computed_at)
    )
    seen: dict[tuple[int, str], datetime] = {}
    with store.engine.connect() as conn:
        for lead_id, moment in conn.execute(query):
            seen.setdefault((lead_id, f"{moment:%Y-%m}"), moment)
    return list(seen.values())


def report(store: Store, model: ScoringModel) -> Report:
    """The report of `model` from the figures the scorer keeps (`core.store.summary`): a few
    hundred counters, whatever the size of the store. Until a score run has built them, the
    report is computed from scratch."""
    with store.engine.connect() as conn:
        if summary.built(conn):
            found = summary.report(conn, model)
            if found is None:
                raise ConfigError(
                    f"no stored scores under model {model.name!r} yet: run `leadhub score`"
                )
            return found
    return report_from_scratch(store, model)


def report_from_scratch(store: Store, model: ScoringModel) -> Report:
    """The report of `model` computed from every stored score, lead, outcome and activity:
    current stored scores, and decided leads at their decision points."""
    current = current_rows(store, model)
    if not current:
        raise ConfigError(f"no stored scores under model {model.name!r} yet: run `leadhub score`")
    decided = decided_rows(store, [model])[0]
    return build_report(
        current, decided, qualified_moments(store, model), [t.name for t in model.tiers]
    )


# -- the predictive model ----------------------------------------------------------------------


def training_inputs(store: Store, horizon_days: float = 0) -> list[LeadInput]:
    """Every decided lead as of its decision point, labelled converted or not."""
    return [
        LeadInput(s.lead_id, s.fields, s.activities, s.at, s.outcome in CONVERTED)
        for s in snapshots(store, horizon_days=horizon_days)
    ]


def train_model(
    store: Store,
    inputs: Sequence[LeadInput],
    *,
    algorithm: Algorithm = "logreg",
    min_outcomes: int = 500,
    exclude: Sequence[str] = (),
    now: datetime | None = None,
) -> Artefact:
    """Train on `inputs`, store the model as the next version; InsufficientData stores nothing."""
    artefact = train(
        inputs,
        now=now or utcnow(),
        algorithm=algorithm,
        min_outcomes=min_outcomes,
        exclude=exclude,
    )
    return save_artefact(store, artefact)


def save_artefact(store: Store, artefact: Artefact) -> Artefact:
    """Store `artefact` as the next version; returns it stamped with that version."""
    with store.begin() as conn:
        latest = conn.execute(sa.select(sa.func.max(PREDICTIVE.c.version))).scalar()
        versioned = artefact.with_version((latest or 0) + 1)
        conn.execute(
            PREDICTIVE.insert().values(
                version=versioned.version,
                algorithm=versioned.algorithm,
                trained_at=versioned.trained_at,
                outcomes=versioned.outcomes,
                cv_auc=versioned.cv_auc,
                meta=versioned.metadata(),
                artefact=versioned.to_bytes(),
            )
        )
    return versioned
