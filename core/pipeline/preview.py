"""What-if: score every lead with a candidate model in memory and compare it with the current one.

    preview(store, hub, candidate_models, *, now=None) -> PreviewReport

Nothing is written: no score, history, outbox or meta row, so a preview can run beside the
scheduler on the live store. Each candidate model is compared with the model of the same name:

- *Current* is what the store holds for that name (each lead's stored tier, qualified flag and
  ledger), i.e. what the CRMs were last sent. *Candidate* is the engine's result as of `now`,
  carrying each lead's stored qualified state over as the score step does, so a lead held by
  `release_below` stays qualified and "newly qualified" means exactly the leads that publishing
  would send a qualified event for.
- A lead the model does not score on one side (no stored score, or outside the candidate's
  segment) is in the `(not scored)` row or column of the tier moves.
- Conversion by score bracket scores the decided leads at their decision points (see
  `core.pipeline.analytics`) under the hub file's model of that name and under the candidate, so
  both columns see the same leads at the same moments and nothing after a sale leaks in.

Example: `preview(store, hub, load_model_file(path), now=utcnow()).to_json()`
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from core.config import HubConfig
from core.pipeline import analytics
from core.pipeline import score as scorer
from core.store.ingest import LEAD
from core.store.store import Store
from core.store.tables import utcnow
from scoring.engine import ScoreResult
from scoring.model import ScoringModel
from scoring.report import NONE_LABEL, Bracket, brackets

SCORE = scorer.SCORE
NOT_SCORED = "(not scored)"
RuleKey = tuple[str, str, str]  # (section, kind, name) of a ledger entry


@dataclass(frozen=True, slots=True)
class LeadChange:
    """A lead whose qualified flag the candidate would flip, with its totals on both sides."""

    lead_id: int
    email: str | None
    total_before: float | None  # stored; None when the current model does not score it
    total_after: float
    tier_before: str | None
    tier_after: str | None


@dataclass(frozen=True, slots=True)
class RuleUse:
    """One ledger line (a rule, a decay step, a clamp) summed over every lead, on both sides.

    `leads` is how many leads it applied to, `count` the activities (or 1 per fit match) it
    counted, `points` what it added in all (negative for decay and penalties).
    """

    section: str
    kind: str
    name: str
    current_leads: int = 0
    current_count: int = 0
    current_points: float = 0.0
    candidate_leads: int = 0
    candidate_count: int = 0
    candidate_points: float = 0.0


@dataclass(frozen=True, slots=True)
class BracketPair:
    """Decided and converted leads in one score bracket under the current and candidate model."""

    low: float
    high: float
    current: Bracket | None  # None when the hub file has no model of this name
    candidate: Bracket


@dataclass
class ModelPreview:
    """The comparison for one candidate model."""

    model: str
    candidate_hash: str
    current_hash: str | None  # the hub file's model of this name; None when it has none
    leads: int  # leads scored on at least one side
    from_tiers: list[str]  # rows of `moves`: current tiers, top first
    to_tiers: list[str]  # columns of `moves`: candidate tiers, top first
    moves: dict[str, dict[str, int]]  # moves[current tier][candidate tier] = leads
    qualified_before: int
    qualified_after: int
    newly_qualified: list[LeadChange]
    no_longer_qualified: list[LeadChange]
    rules: list[RuleUse]
    conversion: list[BracketPair]
    notes: list[str] = field(default_factory=list)

    @property
    def tier_changes(self) -> int:
        """Leads whose tier differs between the two sides."""
        return sum(n for a, row in self.moves.items() for b, n in row.items() if a != b)


@dataclass
class PreviewReport:
    """What publishing the candidate models would change, one `ModelPreview` per model."""

    now: datetime
    leads: int  # leads in the store
    models: list[ModelPreview]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (`json.dumps` takes it as is); rates are added to each bracket."""
        return {"now": self.now.isoformat(), "leads": self.leads, "models": _plain(self.models)}


def preview(
    store: Store,
    hub: HubConfig,
    candidate_models: Sequence[ScoringModel],
    *,
    now: datetime | None = None,
) -> PreviewReport:
    """Score every lead with each candidate model in memory, compared with the stored scores of
    the model of the same name; reads only (see the module docstring)."""
    now = now or utcnow()
    current = {m.name: m for m in hub.models}
    names = [m.name for m in candidate_models]
    tallies = {name: _Tally() for name in names}
    with store.engine.connect() as conn:
        ids = [row.id for row in conn.execute(sa.select(LEAD.c.id).order_by(LEAD.c.id))]
    for start in range(0, len(ids), scorer.CHUNK):
        chunk = ids[start : start + scorer.CHUNK]
        with scorer.collector_paused():  # a chunk is scored as the scorer's are
            with store.engine.connect() as conn:
                fields, acts = scorer.load_inputs(conn, chunk)
                stored = _stored(conn, chunk, names)
            # The stored rows carry `qualified` and `qualified_at`: the hysteresis state.
            results: dict[tuple[int, str], ScoreResult] = {
                (lead_id, model.name): result
                for lead_id, model, result in scorer.evaluate(
                    fields, acts, candidate_models, now, stored
                )
            }
            for lead_id in chunk:
                email = fields[lead_id].get("email")
                for name in names:
                    before, after = stored.get((lead_id, name)), results.get((lead_id, name))
                    tallies[name].add(lead_id, email, before, after, current.get(name))
    decided = _decided(store, [current.get(n) for n in names], candidate_models)
    models = [
        tallies[model.name].finish(model, current.get(model.name), *decided[i])
        for i, model in enumerate(candidate_models)
    ]
    return PreviewReport(now=now, leads=len(ids), models=models)


def _stored(conn: sa.Connection, lead_ids: Sequence[int], names: Sequence[str]) -> dict[Any, Any]:
    query = sa.select(
        SCORE.c.lead_id,
        SCORE.c.model,
        SCORE.c.model_hash,
        SCORE.c.total,
        SCORE.c.tier,
        SCORE.c.qualified,
        SCORE.c.qualified_at,
        SCORE.c.ledger,
    ).where(SCORE.c.lead_id.in_(lead_ids), SCORE.c.model.in_(names))
    return {(r.lead_id, r.model): r for r in conn.execute(query)}


def _decided(
    store: Store,
    currents: Sequence[ScoringModel | None],
    candidates: Sequence[ScoringModel],
) -> list[tuple[list[Bracket] | None, list[Bracket]]]:
    """Per candidate: conversion by bracket of the decided leads under the current model (None
    without one) and under the candidate, in one pass over the decided leads."""
    present = [m for m in currents if m is not None]
    rows = analytics.decided_rows(store, [*present, *candidates])
    now_rows = iter(rows[: len(present)])
    found: list[tuple[list[Bracket] | None, list[Bracket]]] = []
    for model, candidate_rows in zip(currents, rows[len(present) :], strict=True):
        mine = None if model is None else brackets(next(now_rows))
        found.append((mine, brackets(candidate_rows)))
    return found


@dataclass
class _Tally:
    """Everything one candidate's comparison counts, fed a lead at a time."""

    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    stored_tiers: set[str] = field(default_factory=set)
    qualified_before: int = 0
    qualified_after: int = 0
    newly: list[LeadChange] = field(default_factory=list)
    dropped: list[LeadChange] = field(default_factory=list)
    current_rules: dict[RuleKey, list[float]] = field(default_factory=dict)
    candidate_rules: dict[RuleKey, list[float]] = field(default_factory=dict)
    stale: int = 0

    def add(
        self,
        lead_id: int,
        email: str | None,
        before: Any,
        after: ScoreResult | None,
        current: ScoringModel | None,
    ) -> None:
        if before is None and after is None:
            return
        tier_before = NOT_SCORED if before is None else before.tier or NONE_LABEL
        tier_after = NOT_SCORED if after is None else after.tier or NONE_LABEL
        self.moves[(tier_before, tier_after)] += 1
        self.stored_tiers.add(tier_before)
        was = before is not None and before.qualified
        will = after is not None and after.qualified
        self.qualified_before += was
        self.qualified_after += will
        if was != will:
            change = LeadChange(
                lead_id,
                email,
                None if before is None else before.total,
                0.0 if after is None else after.total,
                None if before is None else before.tier,
                None if after is None else after.tier,
            )
            (self.newly if will else self.dropped).append(change)
        if before is not None:
            self.stale += current is not None and before.model_hash != current.content_hash
            _count(self.current_rules, before.ledger or [])
        if after is not None:
            _count(self.candidate_rules, (dataclasses.asdict(e) for e in after.ledger))

    def finish(
        self,
        model: ScoringModel,
        current: ScoringModel | None,
        current_brackets: list[Bracket] | None,
        candidate_brackets: list[Bracket],
    ) -> ModelPreview:
        from_tiers = _ordered(current, {a for a, _ in self.moves})
        to_tiers = _ordered(model, {b for _, b in self.moves})
        moves = {a: {b: self.moves[(a, b)] for b in to_tiers} for a in from_tiers}
        best_first = lambda c: (-c.total_after, c.lead_id)  # noqa: E731
        return ModelPreview(
            model=model.name,
            candidate_hash=model.content_hash,
            current_hash=None if current is None else current.content_hash,
            leads=sum(self.moves.values()),
            from_tiers=from_tiers,
            to_tiers=to_tiers,
            moves=moves,
            qualified_before=self.qualified_before,
            qualified_after=self.qualified_after,
            newly_qualified=sorted(self.newly, key=best_first),
            no_longer_qualified=sorted(self.dropped, key=best_first),
            rules=_rules(current, model, self.current_rules, self.candidate_rules),
            conversion=_pairs(current_brackets, candidate_brackets),
            notes=self._notes(model, current),
        )

    def _notes(self, model: ScoringModel, current: ScoringModel | None) -> list[str]:
        notes = []
        if current is None:
            notes.append(f"the hub file has no model named {model.name!r}: every lead is new to it")
        if self.stale:
            notes.append(
                f"{self.stale} stored score(s) of {model.name!r} were computed with another "
                "version of the model than the hub file's: run `leadhub score` for a fair "
                "comparison"
            )
        return notes


def _pairs(current: list[Bracket] | None, candidate: list[Bracket]) -> list[BracketPair]:
    if current is None:
        return [BracketPair(c.low, c.high, None, c) for c in candidate]
    return [BracketPair(c.low, c.high, p, c) for p, c in zip(current, candidate, strict=True)]


def _count(found: dict[RuleKey, list[float]], entries: Iterable[dict[str, Any]]) -> None:
    for entry in entries:
        key = (entry["section"], entry["kind"], entry["name"])
        tally = found.setdefault(key, [0, 0, 0.0])
        tally[0] += 1
        tally[1] += entry["count"]
        tally[2] += entry["points"]


def _rule_keys(model: ScoringModel | None) -> list[RuleKey]:
    if model is None:
        return []
    fit = [("fit", "rule", r.name) for r in model.fit.rules]
    return fit + [("engagement", "rule", r.name) for r in model.engagement.rules]


def _rules(
    current: ScoringModel | None,
    candidate: ScoringModel,
    before: dict[RuleKey, list[float]],
    after: dict[RuleKey, list[float]],
) -> list[RuleUse]:
    """Every rule of either model (candidate order first), then decay and clamp lines."""
    keys = list(dict.fromkeys([*_rule_keys(candidate), *_rule_keys(current)]))
    keys += sorted(k for k in {*before, *after} if k not in keys)
    uses = []
    for key in keys:
        b, a = before.get(key, [0, 0, 0.0]), after.get(key, [0, 0, 0.0])
        uses.append(
            RuleUse(
                *key,
                current_leads=int(b[0]),
                current_count=int(b[1]),
                current_points=round(b[2], 2),
                candidate_leads=int(a[0]),
                candidate_count=int(a[1]),
                candidate_points=round(a[2], 2),
            )
        )
    return uses


def _ordered(model: ScoringModel | None, seen: set[str]) -> list[str]:
    """The model's tiers top first, then any other tier seen, then the unscored row/column."""
    names = [t.name for t in model.tiers] if model is not None else []
    extra = sorted(seen - {*names, NONE_LABEL, NOT_SCORED})
    tail = [label for label in (NONE_LABEL, NOT_SCORED) if label in seen]
    return [*names, *extra, *tail]


def _plain(value: Any) -> Any:
    if isinstance(value, Bracket):
        return {**dataclasses.asdict(value), "rate": value.rate}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, ModelPreview):
            out["tier_changes"] = value.tier_changes
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
