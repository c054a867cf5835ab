"""The report's figures, kept up to date by the scorer instead of computed per page view.

Two tables hold them:

- `report_lead`: per (model, lead), what the lead last counted as in the figures: its tier,
  grade, qualified flag and total, its channel, first source, the systems that know it, its
  deciding outcome, (when decided) its score at its decision point, and its ledger lines.
  Keeping this rather than trusting a caller's "old" values means a lead whose channel, source
  or outcome changed on a pull is subtracted from the group it was really counted in.
- `report_figure`: counters per (model, figure, key): leads, the sum of totals or points (in
  thousandths, so sums stay exact), decided, converted and qualified leads, and rule matches.
  Figures: `tier`, `bracket` (current score, 10-point brackets), `channel`, `source`,
  `conversion` (score at the decision point), `qbc` (converted leads, and those qualified at
  their decision point), `month` (qualified crossings per calendar month, one per lead and
  month, deduplicated through `report_qualified`), `rule` (leads, matches and points per ledger
  line) and `cell` (leads per tier, grade, qualified flag, channel and set of systems, which
  answers the lead list's counts without counting rows).

The scorer calls `apply` in the transaction that writes a chunk's scores, with the chunk's lead
ids; `drop` when models leave the hub file; `forget` runs when a lead is merged into another.
`rebuild` recomputes everything from the store; a store whose summary was never built (just
upgraded) answers `built() == False`, the report is computed from scratch meanwhile, and the
next score run builds it.

Definitions follow `core.pipeline.analytics` (current scores; decided leads scored at their
decision points; a lead's source is the system it first came from).
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.records import LEAD_FIELDS
from core.store.bulk import (
    COPY_FROM,
    Read,
    Serialized,
    any_key,
    insert_rows,
    one_of,
    run_together,
)
from core.store.tables import (
    Activity as ActivityRow,
)
from core.store.tables import (
    Identity,
    Lead,
    Meta,
    Outcome,
    ReportFigure,
    ReportLead,
    ReportQualified,
    Score,
    ScoreHistory,
    table,
)
from scoring.engine import Activity, score_lead
from scoring.model import ScoringModel, segment_matches
from scoring.report import (
    CONVERTED,
    DECIDED,
    NONE_LABEL,
    Bracket,
    Group,
    QualifiedBeforeClose,
    Report,
    TierCount,
    deciding_outcome,
    decision_point,
)

LEAD = table(Lead)
IDENTITY = table(Identity)
OUTCOME = table(Outcome)
ACTIVITY = table(ActivityRow)
SCORE = table(Score)
HISTORY = table(ScoreHistory)
META = table(Meta)
R_LEAD = table(ReportLead)
R_FIGURE = table(ReportFigure)
R_QUALIFIED = table(ReportQualified)

BUILT_KEY = "report_summary"
WIDTH = 10.0
BRACKETS = 10
CHUNK = 1000
COUNTERS = ("leads", "total", "decided", "converted", "qualified", "count")

# leads, total (thousandths), decided, converted, qualified, count (rule matches)
Vector = tuple[int, int, int, int, int, int]


def bracket(score: float) -> int:
    """The 10-point bracket a score falls in, as `scoring.report.brackets` counts it."""
    return min(max(math.floor(score / WIDTH), 0), BRACKETS - 1)


SEP = "\x1f"  # joins the parts of a composite key


_PARSED = 50_000  # distinct ledgers remembered


def _scored(
    conn: Connection, where: Sequence[Any], parsed: dict[str, Serialized]
) -> list[tuple[str, int, dict[str, Any]]]:
    """(model, lead, outputs) of the scores `where` selects; `outputs["rules"]` is the ledger
    as `rules_of` gives it, parsed once per distinct ledger (remembered in `parsed`)."""
    query = sa.select(
        SCORE.c.model, SCORE.c.lead_id, SCORE.c.total, SCORE.c.tier, SCORE.c.grade,
        SCORE.c.qualified, sa.cast(SCORE.c.ledger, sa.Text).label("ledger"),
    ).where(*where)  # fmt: skip
    found = []
    for row in conn.execute(query):
        outputs = row._asdict()
        text = outputs.pop("ledger")
        rules = parsed.get(text)
        if rules is None:
            if len(parsed) >= _PARSED:  # bounds memory
                parsed.clear()
            rules = parsed[text] = Serialized(rules_of(json.loads(text)))
        outputs["rules"] = rules
        found.append((row.model, row.lead_id, outputs))
    return found


def _given(
    scores: Mapping[tuple[str, int], Mapping[Any, Any]],
    names: Sequence[str],
    ids: Sequence[int],
    rules: dict[int, tuple[Any, Serialized]],
) -> list[tuple[str, int, dict[str, Any]]]:
    """`_scored` of the score rows a caller holds (see `Known`), in the same shape. A ledger
    (a list, or its JSON text) is made into rules once per object: rows computed once for many
    leads share theirs: `rules` remembers them, id(ledger) -> (ledger, its rules)."""
    found = []
    for lead_id in ids:
        for name in names:
            row = scores.get((name, lead_id))
            if row is None:
                continue
            outputs = {k: row[k] for k in ("total", "tier", "grade", "qualified")}
            ledger = row["ledger"]
            held = rules.get(id(ledger))
            if held is None:
                if len(rules) >= _PARSED:  # bounds memory
                    rules.clear()
                parsed = json.loads(ledger) if isinstance(ledger, str) else ledger
                held = rules[id(ledger)] = (ledger, Serialized(rules_of(parsed)))
            outputs["rules"] = held[1]
            found.append((name, lead_id, outputs))
    return found


def rules_of(ledger: Sequence[Mapping[str, Any]] | None) -> list[list[Any]]:
    """A score's ledger as [section, kind, name, count, points] lines."""
    return [
        [e["section"], e["kind"], e["name"], e.get("count") or 0, e.get("points") or 0]
        for e in ledger or ()
    ]


def cell_key(
    tier: str | None, grade: str | None, qualified: bool, channel: str | None, systems: str
) -> str:
    """The `cell` a lead is counted in: its tier, grade, qualified flag, channel and the
    systems that know it (comma-separated)."""
    return SEP.join((tier or "", grade or "", str(int(bool(qualified))), channel or "", systems))


def _contributions(row: Mapping[str, Any]) -> Iterable[tuple[str, str, Vector]]:
    """What one report_lead row adds to each figure."""
    yield from _attribute_contributions(row)
    yield from _rule_contributions(row["rules"])


def _attribute_contributions(row: Mapping[str, Any]) -> Iterable[tuple[str, str, Vector]]:
    """What one report_lead row adds to each figure but `rule`."""
    outcome = row["outcome"]
    decided, converted = int(outcome in DECIDED), int(outcome in CONVERTED)
    milli = round(row["total"] * 1000)
    qualified = int(bool(row["qualified"]))
    yield "tier", row["tier"] or NONE_LABEL, (1, milli, 0, 0, qualified, 0)
    yield "bracket", str(bracket(row["total"])), (1, 0, decided, converted, 0, 0)
    yield "channel", row["channel"] or NONE_LABEL, (1, milli, decided, converted, 0, 0)
    yield "source", row["source"] or NONE_LABEL, (1, milli, decided, converted, 0, 0)
    cell = cell_key(row["tier"], row["grade"], row["qualified"], row["channel"], row["systems"])
    yield "cell", cell, (1, 0, 0, 0, 0, 0)
    if row["decided_total"] is not None:
        at_close = int(bool(row["decided_qualified"]))
        yield "conversion", str(bracket(row["decided_total"])), (1, 0, 1, converted, 0, 0)
        yield "qbc", "", (0, 0, 0, converted, converted * at_close, 0)


def _rule_contributions(rules: Iterable[Sequence[Any]] | None) -> Iterable[tuple[str, str, Vector]]:
    """What a report_lead row's ledger lines add to the `rule` figure."""
    for section, kind, name, count, points in rules or ():
        key = SEP.join((section, kind, name))
        yield "rule", key, (1, round(points * 1000), 0, 0, 0, int(count))


def _add_vectors(
    deltas: dict[tuple[str, str, str], list[int]],
    model: str,
    contributions: Iterable[tuple[str, str, Vector]],
    weight: int,
) -> None:
    for figure, key, vector in contributions:
        tally = deltas.setdefault((model, figure, key), [0] * len(COUNTERS))
        for i, value in enumerate(vector):
            if value:
                tally[i] += weight * value


def _add(
    deltas: dict[tuple[str, str, str], list[int]],
    model: str,
    row: Mapping[str, Any],
    sign: int,
) -> None:
    _add_vectors(deltas, model, _contributions(row), sign)


_COUNTED = (
    "tier", "grade", "qualified", "total", "channel", "source", "systems", "outcome",
    "decided_total", "decided_qualified",
)  # fmt: skip  # with "rules": what a report_lead row adds to the figures


_counted_values = operator.itemgetter(*_COUNTED)


class _Moves:
    """Rows entering (+1) and leaving (-1) the figures, counted per distinct value first: a
    row's attributes (a few thousand distinct ones) apart from its ledger lines (one per
    distinct ledger), each of whose contributions is then added once, times its weight."""

    def __init__(self) -> None:
        self.weights: dict[tuple[Any, ...], int] = defaultdict(int)
        self.ledgers: dict[tuple[str, str], int] = defaultdict(int)  # (model, rules' JSON text)
        self.parsed: dict[str, Sequence[Sequence[Any]]] = {}

    def add(self, model: str, row: Mapping[str, Any], sign: int) -> None:
        self.weights[(model, *_counted_values(row))] += sign
        rules = row["rules"]
        if rules:
            text = rules.text if isinstance(rules, Serialized) else json.dumps(rules)
            if text not in self.parsed:
                self.parsed[text] = rules
            self.ledgers[(model, text)] += sign

    def into(self, deltas: dict[tuple[str, str, str], list[int]]) -> None:
        for (model, *values), weight in self.weights.items():
            if weight:
                row = dict(zip(_COUNTED, values, strict=True))
                _add_vectors(deltas, model, _attribute_contributions(row), weight)
        for (model, text), weight in self.ledgers.items():
            if weight:
                _add_vectors(deltas, model, _rule_contributions(self.parsed[text]), weight)


def _write_deltas(
    conn: Connection,
    deltas: Mapping[tuple[str, str, str], Sequence[int]],
    recount: Mapping[str, Any] | None = None,
) -> None:
    """Run `_deltas_writes`."""
    for statement in _deltas_writes(conn.dialect.name, deltas, recount):
        conn.execute(*statement)


def _deltas_writes(
    dialect: str,
    deltas: Mapping[tuple[str, str, str], Sequence[int]],
    recount: Mapping[str, Any] | None = None,
) -> list[Read]:
    """Add `deltas` to the counters, in key order (two writers lock rows in the same order), by
    one upsert, adding to the ones that exist: on PostgreSQL one statement over arrays of the
    counters (executemany sent one statement per counter: a lead's move touches a dozen), which
    also makes `recount` (the parameters of `_RECOUNT`: one lead's row) when given; on SQLite
    one statement run over all the counters, compiled once."""
    moving = sorted((k, v) for k, v in deltas.items() if any(v))
    if dialect == "postgresql":
        rows = [(*key, *vector) for key, vector in moving]
        arrays = {f"a_{name}": [row[i] for row in rows] for i, name in enumerate(_FIGURE_COLUMNS)}
        if recount is not None:
            return [(_UPSERT_ARRAYS_RECOUNTING, {**arrays, **recount})]
        return [(_UPSERT_ARRAYS, arrays)] if moving else []
    if moving:
        counters = [dict(zip(_FIGURE_COLUMNS, (*k, *v), strict=True)) for k, v in moving]
        return [(_UPSERT, counters)]
    return []


_FIGURE_KEY = ("model", "figure", "key")
_FIGURE_COLUMNS = (*_FIGURE_KEY, *COUNTERS)


def _upsert(insert: Any) -> Any:
    return insert.on_conflict_do_update(
        index_elements=list(_FIGURE_KEY),
        set_={c: R_FIGURE.c[c] + insert.excluded[c] for c in COUNTERS},
    )


def _arrays() -> Any:
    """The counters' columns as arrays, one row per counter; the keys as text: a cast to
    VARCHAR(n) would cut a longer key to n characters, where the column refuses it, as a
    statement does."""
    arrays = [
        sa.bindparam(
            f"a_{name}", type_=postgresql.ARRAY(sa.Text if name in _FIGURE_KEY else sa.BigInteger)
        )
        for name in _FIGURE_COLUMNS
    ]
    return sa.func.unnest(*arrays).table_valued(*_FIGURE_COLUMNS).render_derived()


_UPSERT = _upsert(sqlite.insert(R_FIGURE))
_UPSERT_ARRAYS = _upsert(
    postgresql.insert(R_FIGURE).from_select(_FIGURE_COLUMNS, sa.select(_arrays()))
)


# -- what a lead counts as ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Attributes:
    """A lead's attributes the report groups by, and what its decision point needs (`fields`
    are read for decided leads only)."""

    channel: str | None
    fields: Mapping[str, Any]
    created_at: datetime
    source: str | None
    systems: str
    outcome: str | None
    closed_at: datetime | None


def _attributes(
    conn: Connection,
    lead_ids: Sequence[int],
    given: Mapping[int, Mapping[str, Any]] | None = None,
    identified: Sequence[Any] | None = None,
) -> dict[int, _Attributes]:
    """The attributes of `lead_ids`; their fields and `created_at` taken from `given` when the
    caller read them (a lead missing there is gone), their identities and outcomes from
    `identified` (rows of `_identities_and_outcomes`, of these leads or more) when it did."""
    leads: Mapping[int, Mapping[Any, Any]]
    if given is None:
        basics = sa.select(LEAD.c.id, LEAD.c.channel, LEAD.c.created_at).where(
            one_of(conn, LEAD.c.id, lead_ids)
        )
        leads = {row.id: row._mapping for row in conn.execute(basics)}
    else:
        leads = {i: given[i] for i in lead_ids if i in given}
    sources: dict[int, str] = {}
    systems: dict[int, set[str]] = defaultdict(set)
    outcomes: dict[int, list[tuple[str, datetime | None]]] = defaultdict(list)
    known: list[tuple[int, int, str]] = []
    if identified is None:
        query = _identities_and_outcomes(conn.dialect.name)
        identified = conn.execute(query, {"ids": list(lead_ids)}).all()
    for lead_id, identity_id, text, closed_at in identified:
        if lead_id not in leads:
            continue
        if identity_id is None:
            outcomes[lead_id].append((text, closed_at))
        else:
            known.append((identity_id, lead_id, text))
    for _, lead_id, system in sorted(known):  # the first identity is the lead's source
        sources.setdefault(lead_id, system)
        systems[lead_id].add(system)
    decided: dict[int, tuple[str, datetime | None]] = {}
    for lead_id, held in outcomes.items():
        decided[lead_id] = deciding_outcome(held)
    fields: dict[int, dict[str, Any]] = {}
    wanted = [i for i, (status, _) in decided.items() if status in DECIDED and i in leads]
    if given is not None:
        for i in wanted:
            fields[i] = {k: v for k, v in given[i].items() if k != "created_at"}
    elif wanted:
        for row in conn.execute(sa.select(LEAD).where(one_of(conn, LEAD.c.id, wanted))):
            values = {name: getattr(row, name) for name in LEAD_FIELDS}
            values["custom"] = row.custom or {}
            fields[row.id] = values
    found = {}
    for lead_id, lead in leads.items():
        status, closed_at = decided.get(lead_id, (None, None))
        found[lead_id] = _Attributes(
            lead["channel"],
            fields.get(lead_id, _NOTHING),
            lead["created_at"],
            sources.get(lead_id),
            ",".join(sorted(systems[lead_id])),
            status,
            closed_at,
        )
    return found


@functools.cache
def _identities_and_outcomes(dialect: str) -> sa.CompoundSelect[Any]:
    """The identities (id set) and the outcomes (id null) of leads `ids` in one read."""
    outcomes = sa.select(
        OUTCOME.c.lead_id,
        sa.cast(sa.null(), sa.Integer),
        OUTCOME.c.status,
        OUTCOME.c.closed_at,
    ).where(any_key(dialect, OUTCOME.c.lead_id, "ids"))
    identities = sa.select(
        IDENTITY.c.lead_id,
        IDENTITY.c.id,
        IDENTITY.c.system,
        sa.cast(sa.null(), OUTCOME.c.closed_at.type),
    ).where(any_key(dialect, IDENTITY.c.lead_id, "ids"))
    return outcomes.union_all(identities)


def _activities(conn: Connection, lead_ids: Sequence[int]) -> dict[int, list[Activity]]:
    found: dict[int, list[Activity]] = defaultdict(list)
    if not lead_ids:
        return found
    query = sa.select(
        ACTIVITY.c.lead_id, ACTIVITY.c.type, ACTIVITY.c.occurred_at, ACTIVITY.c.properties
    ).where(one_of(conn, ACTIVITY.c.lead_id, lead_ids))
    for lead_id, kind, occurred_at, props in conn.execute(query):
        found[lead_id].append(Activity(kind, occurred_at, MappingProxyType(props or {})))
    return found


def _at_decision(
    model: ScoringModel, attrs: _Attributes, activities: Sequence[Activity]
) -> tuple[float, bool] | None:
    """(total, qualified) of a decided lead scored at its decision point; None when undecided."""
    if attrs.outcome not in DECIDED or not segment_matches(model, attrs.fields):
        return None
    times = [a.occurred_at for a in activities]
    at = decision_point(attrs.outcome, attrs.closed_at, times, attrs.created_at)
    before = [a for a in activities if a.occurred_at <= at]
    result = score_lead(attrs.fields, before, model, at)
    return result.total, result.qualified


_NOTHING: Mapping[Any, Any] = MappingProxyType({})


def _rows(
    conn: Connection,
    models: Sequence[ScoringModel],
    scored: Sequence[tuple[str, int, Mapping[str, Any]]],
    known: Mapping[tuple[str, int], tuple[float, bool] | None] = _NOTHING,
    leads: Mapping[int, Mapping[str, Any]] | None = None,
    identified: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """report_lead rows for (model, lead, outputs), reading the leads' attributes; `known`
    holds scores at the decision point that are known not to have moved (not recomputed),
    `leads` the leads' fields and `created_at` when the caller read them (see `Known`), and
    `identified` the rows of `_identities_and_outcomes` when it read those."""
    by_name = {m.name: m for m in models}
    ids = sorted({lead_id for _, lead_id, _ in scored})
    attrs = _attributes(conn, ids, leads, identified)
    unknown = {i for name, i, _ in scored if (name, i) not in known}
    decided = [i for i in ids if i in unknown and i in attrs and attrs[i].outcome in DECIDED]
    activities = _activities(conn, decided)
    rows = []
    for name, lead_id, outputs in scored:
        found = attrs.get(lead_id)
        if found is None:
            continue
        model = by_name.get(name)
        if (name, lead_id) in known:
            at_close = known[(name, lead_id)]
        else:
            at_close = _at_decision(model, found, activities[lead_id]) if model else None
        rows.append(
            {
                "model": name,
                "lead_id": lead_id,
                "tier": outputs["tier"],
                "grade": outputs["grade"],
                "qualified": bool(outputs["qualified"]),
                "total": float(outputs["total"]),
                "channel": found.channel,
                "source": found.source,
                "systems": found.systems,
                "outcome": found.outcome,
                "decided_total": at_close[0] if at_close else None,
                "decided_qualified": at_close[1] if at_close else None,
                "rules": outputs["rules"],
            }
        )
    return rows


def _stored(conn: Connection, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    by_model: dict[str, list[int]] = defaultdict(list)
    for model, lead_id in keys:
        by_model[model].append(lead_id)
    found = {}
    for model, ids in by_model.items():
        query = sa.select(R_LEAD).where(R_LEAD.c.model == model, R_LEAD.c.lead_id.in_(ids))
        found.update({(r.model, r.lead_id): r._asdict() for r in conn.execute(query)})
    return found


_ROW_KEYS = (
    "tier", "grade", "qualified", "total", "channel", "source", "systems", "outcome",
    "decided_total", "decided_qualified", "rules",
)  # fmt: skip
_VALUES = _ROW_KEYS[:-1]  # all but the ledger lines


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    for key in _VALUES:
        a, b = old[key], new[key]
        if isinstance(a, float) or isinstance(b, float):
            if a is None or b is None or abs(a - b) > 1e-9:
                return False
        elif a != b:
            return False
    return _same_lines(old["rules"], new["rules"])


def _same_lines(a: Sequence[Sequence[Any]] | None, b: Sequence[Sequence[Any]] | None) -> bool:
    """Whether two rows' ledger lines (lists of [section, kind, name, count, points], or None
    for none) are equal."""
    return (a or []) == (b or [])


# -- the hooks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    """What a caller already read in its transaction, so that `apply` does not read it again:
    `scores` per (model, lead), each lead's score row as it now stands (total, tier, grade,
    qualified and ledger; a lead with no entry under a model has no score there), and `leads`
    each lead's fields (`LEAD_FIELDS` and `custom`) with its `created_at`. Both must cover
    every lead `apply` is given, under every model it is given."""

    scores: Mapping[tuple[str, int], Mapping[Any, Any]]
    leads: Mapping[int, Mapping[str, Any]]
    rules: dict[int, tuple[Any, Serialized]] = field(default_factory=dict)  # see `_given`
    # the rows of `identities_read` when the caller read them with its own, in this transaction
    identified: Sequence[Any] | None = None
    # writes of the caller's that `apply` sends with its read of the report rows
    # (`run_together`: on PostgreSQL in one round trip)
    before: Sequence[Read] = ()


def identities_read(dialect: str, lead_ids: Sequence[int]) -> Read:
    """The read of the identities and outcomes of `lead_ids` that `apply` makes, for a caller
    that makes it together with its own (`bulk.run_together`) and gives its rows as
    `Known.identified`. (The report rows are read later, under lock, after the scores are
    written: every writer locks a lead's score row before its report row.)"""
    return (_identities_and_outcomes(dialect), {"ids": list(lead_ids)})


def apply(
    conn: Connection,
    models: Sequence[ScoringModel],
    lead_ids: Sequence[int],
    crossed: Iterable[tuple[str, int]],
    now: datetime,
    settled: Collection[int] = (),
    known: Known | None = None,
    summary_built: bool = False,
) -> None:
    """Bring the figures of `models` up to date for `lead_ids`, in the caller's transaction,
    after it wrote their scores: each lead counts as its score row now says (no row: it leaves
    the figures), with its current channel, source and outcome — those may have moved on a
    pull although the score did not. `crossed` lists the (model, lead) that crossed into
    qualified at `now`. `settled` names leads whose fields, activities and outcomes did not
    move since their figures were last kept, under the same models: their score at the
    decision point is kept as counted, not recomputed. Builds the whole summary first when the
    store has none yet (`summary_built`: the caller read that it has one, in this transaction).
    `known`: the scores and leads the caller read, not read again."""
    before = list(known.before) if known is not None else []
    if not summary_built and not built(conn):
        run_together(conn, before)
        rebuild(conn, models)
        return  # the rebuild read the scores this transaction just wrote
    ids = sorted(set(lead_ids))
    names = [m.name for m in models]
    crossed = list(crossed)
    settled = set(settled)
    parsed: dict[str, Serialized] = {}
    # Moves of all chunks are counted together (many leads share their attributes and ledgers)
    # and the counters written once, in key order.
    moves = _Moves()
    deltas: dict[tuple[str, str, str], list[int]] = {}
    together = None
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        mine = set(chunk)
        together = _apply_chunk(
            conn,
            models,
            names,
            chunk,
            [c for c in crossed if c[1] in mine],
            now,
            settled,
            parsed,
            known,
            moves,
            deltas,
            alone=len(chunk) == len(ids),
            first=before,
        )
        before = []  # sent with the first chunk's read
    if before:
        run_together(conn, before)
    moves.into(deltas)
    _write_deltas(conn, deltas, together)


def _apply_chunk(
    conn: Connection,
    models: Sequence[ScoringModel],
    names: Sequence[str],
    ids: Sequence[int],
    crossed: Sequence[tuple[str, int]],
    now: datetime,
    settled: Collection[int],
    parsed: dict[str, Serialized],
    known: Known | None,
    moves: _Moves,
    deltas: dict[tuple[str, str, str], list[int]],
    alone: bool,
    first: Sequence[Read] = (),
) -> dict[str, Any] | None:
    """Recount the leads `ids`: their report_lead rows are written, their moves added to
    `moves` and their new qualified crossings to `deltas`. Returns, on PostgreSQL, the one row
    to update with the counters (`_write_deltas`' `recount`) when the chunk is `alone` and
    moves one row."""
    # `first`: the caller's writes of these leads' scores, sent with this read (a writer locks a
    # lead's score row before its report row)
    read = (_counted(conn.dialect.name), {"names": list(names), "ids": list(ids)})
    *_, counted = run_together(conn, [*first, read]) if first else [conn.execute(*read)]
    old = {}
    columns: Sequence[str] = ()  # the rows' column names, taken once
    for r in counted:
        columns = columns or r._fields
        row = dict(zip(columns, r, strict=True))
        text = row["rules"]
        rules = parsed.get(text)
        if rules is None:
            if len(parsed) >= _PARSED:  # bounds memory
                parsed.clear()
            rules = parsed[text] = Serialized.parse(text)
        row["rules"] = rules
        old[(r.model, r.lead_id)] = row
    if known is None:
        where = [one_of(conn, SCORE.c.lead_id, ids), SCORE.c.model.in_(names)]
        scored = _scored(conn, where, parsed)
    else:
        scored = _given(known.scores, names, ids, known.rules)
    at_close = {
        key: None
        if row["decided_total"] is None
        else (row["decided_total"], row["decided_qualified"])
        for key, row in old.items()
        if key[1] in settled
    }
    leads = known.leads if known is not None else None
    identified = known.identified if known is not None else None
    rows = _rows(conn, models, scored, at_close, leads, identified)
    new = {(r["model"], r["lead_id"]): r for r in rows}
    inserts, deletes = [], []
    moved: list[tuple[tuple[str, int], dict[str, Any]]] = []
    for key in sorted({*old, *new}):
        before, after = old.get(key), new.get(key)
        if before is not None and after is not None and _same(before, after):
            continue
        if before is not None:
            moves.add(key[0], before, -1)
        if after is not None:
            moves.add(key[0], after, +1)
        if before is None and after is not None:
            inserts.append(after)
        elif before is not None and after is not None:
            moved.append((key, after))
        else:
            deletes.append(key)
    if len(moved) >= COPY_FROM:
        # Many moved rows (a changed model moves them all): deleted and inserted again, by one
        # statement per model and one bulk insert, not one UPDATE per row.
        deletes += [key for key, _ in moved]
        inserts += [after for _, after in moved]
        moved = []
    _delete(conn, deletes)
    if inserts:
        insert_rows(conn, R_LEAD, inserts)
    rows = [
        {"_model": key[0], "_lead_id": key[1], **{k: after[k] for k in _ROW_KEYS}}
        for key, after in moved
    ]
    # On PostgreSQL one lead's row (a webhook's pass) goes with the counters: one round trip
    one = alone and len(rows) == 1 and conn.dialect.name == "postgresql"
    together = rows[0] if one else None
    if rows and together is None:
        conn.execute(_RECOUNT, rows)
    month = f"{now:%Y-%m}"
    _count_crossings(conn, [(m, i, month) for m, i in crossed], deltas)
    return together


def _delete(conn: Connection, keys: Sequence[tuple[str, int]]) -> None:
    """Delete the report_lead rows of (model, lead) `keys`: one statement per model."""
    by_model: dict[str, list[int]] = defaultdict(list)
    for model, lead_id in keys:
        by_model[model].append(lead_id)
    for model, ids in sorted(by_model.items()):
        conn.execute(
            R_LEAD.delete().where(R_LEAD.c.model == model, one_of(conn, R_LEAD.c.lead_id, ids))
        )


@functools.cache
def _counted(dialect: str) -> sa.Select[Any]:
    """What the leads `ids` count as under the models `names` (report_lead rows, their rules as
    JSON text)."""
    columns = [c for c in R_LEAD.c if c.name != "rules"]
    query = sa.select(*columns, sa.cast(R_LEAD.c.rules, sa.Text).label("rules")).where(
        any_key(dialect, R_LEAD.c.model, "names"), any_key(dialect, R_LEAD.c.lead_id, "ids")
    )
    if dialect == "postgresql":  # what they count as now, not at our snapshot
        query = query.order_by(R_LEAD.c.model, R_LEAD.c.lead_id).with_for_update()
    return query


_RECOUNT = (
    R_LEAD.update()
    .where(R_LEAD.c.model == sa.bindparam("_model"), R_LEAD.c.lead_id == sa.bindparam("_lead_id"))
    .values({k: sa.bindparam(k) for k in _ROW_KEYS})
)
_UPSERT_ARRAYS_RECOUNTING = _UPSERT_ARRAYS.add_cte(_RECOUNT.cte("recounted"))


def _count_crossings(
    conn: Connection,
    crossings: Sequence[tuple[str, int, str]],
    deltas: dict[tuple[str, str, str], list[int]],
) -> None:
    """Record qualified crossings, one per (model, lead, month), and count the new ones: those
    the insert stored, in the same statement (`ON CONFLICT DO NOTHING … RETURNING`: one already
    recorded is left as it is, also when another writer recorded it meanwhile)."""
    rows = [{"model": m, "lead_id": i, "month": mo} for m, i, mo in sorted(set(crossings))]
    if not rows:
        return
    for model, month in conn.execute(_recording(conn.dialect.name), rows):
        tally = deltas.setdefault((model, "month", month), [0] * len(COUNTERS))
        tally[0] += 1


@functools.cache
def _recording(dialect: str) -> sa.Insert:
    """`_count_crossings`' statement, built and compiled once: given many rows, SQLAlchemy
    sends them as multi-row INSERTs of a page each ("insertmanyvalues"), their RETURNING rows
    together."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(R_QUALIFIED)
    returning = (R_QUALIFIED.c.model, R_QUALIFIED.c.month)
    statement: sa.Insert = insert.on_conflict_do_nothing().returning(*returning)
    return statement


def drop(conn: Connection, kept: Sequence[str]) -> None:
    """Forget the figures of models no longer in the hub file (their scores are deleted).

    Qualified crossings stay, as the score history they count does."""
    conn.execute(R_LEAD.delete().where(R_LEAD.c.model.not_in(list(kept))))
    conn.execute(
        R_FIGURE.delete().where(R_FIGURE.c.model.not_in(list(kept)), R_FIGURE.c.figure != "month")
    )


def forget(conn: Connection, source_id: int, target_id: int) -> None:
    """Lead `source_id` is being merged into `target_id`: take it out of every figure (its scores
    go; the target is rescored), and move its qualified crossings to the target, counting a
    (lead, month) the target already has once."""
    rows = conn.execute(sa.select(R_LEAD).where(R_LEAD.c.lead_id == source_id)).all()
    deltas: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        _add(deltas, row.model, row._asdict(), -1)
    conn.execute(R_LEAD.delete().where(R_LEAD.c.lead_id == source_id))
    moving = conn.execute(sa.select(R_QUALIFIED).where(R_QUALIFIED.c.lead_id == source_id)).all()
    if moving:
        held = {
            (r.model, r.month)
            for r in conn.execute(sa.select(R_QUALIFIED).where(R_QUALIFIED.c.lead_id == target_id))
        }
        for r in moving:
            if (r.model, r.month) in held:
                tally = deltas.setdefault((r.model, "month", r.month), [0] * len(COUNTERS))
                tally[0] -= 1
        conn.execute(R_QUALIFIED.delete().where(R_QUALIFIED.c.lead_id == source_id))
        fresh = [r for r in moving if (r.model, r.month) not in held]
        if fresh:
            conn.execute(
                R_QUALIFIED.insert(),
                [{"model": r.model, "lead_id": target_id, "month": r.month} for r in fresh],
            )
    _write_deltas(conn, deltas)


# -- from scratch ---------------------------------------------------------------------------------


def built(conn: Connection) -> bool:
    query = sa.select(META.c.value).where(META.c.key == BUILT_KEY)
    return conn.execute(query).scalar_one_or_none() == "1"


def rebuild(conn: Connection, models: Sequence[ScoringModel]) -> None:
    """Recompute every figure from the stored scores, leads, outcomes and score history."""
    conn.execute(R_LEAD.delete())
    conn.execute(R_FIGURE.delete())
    conn.execute(R_QUALIFIED.delete())
    deltas: dict[tuple[str, str, str], list[int]] = {}
    moves = _Moves()
    parsed: dict[str, Serialized] = {}
    last = 0
    while True:
        ids = list(
            conn.execute(
                sa.select(SCORE.c.lead_id)
                .where(SCORE.c.lead_id > last)
                .group_by(SCORE.c.lead_id)
                .order_by(SCORE.c.lead_id)
                .limit(CHUNK)
            ).scalars()
        )
        if not ids:
            break
        last = ids[-1]
        rows = _rows(conn, models, _scored(conn, [one_of(conn, SCORE.c.lead_id, ids)], parsed))
        if rows:
            insert_rows(conn, R_LEAD, rows)
        for row in rows:
            moves.add(row["model"], row, +1)
    moves.into(deltas)
    query = sa.select(HISTORY.c.model, HISTORY.c.lead_id, HISTORY.c.computed_at).where(
        HISTORY.c.event == "qualified"
    )
    crossings = {(r.model, r.lead_id, f"{r.computed_at:%Y-%m}") for r in conn.execute(query)}
    _count_crossings(conn, sorted(crossings), deltas)
    _write_deltas(conn, deltas)
    if conn.execute(META.update().where(META.c.key == BUILT_KEY).values(value="1")).rowcount == 0:
        conn.execute(META.insert().values(key=BUILT_KEY, value="1"))


# -- reading -------------------------------------------------------------------------------------


def figures(conn: Connection, model: str) -> dict[str, dict[str, dict[str, int]]]:
    """figure → key → counters of `model` (a few hundred rows at most)."""
    found: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    query = sa.select(R_FIGURE).where(R_FIGURE.c.model == model)
    for row in conn.execute(query):
        found[row.figure][row.key] = {c: int(getattr(row, c)) for c in COUNTERS}
    return found


def report(conn: Connection, model: ScoringModel) -> Report | None:
    """The report of `model` from the summary; None when nothing is scored under it."""
    found = figures(conn, model.name)
    tiers = {k: v for k, v in found["tier"].items() if v["leads"]}
    leads = sum(v["leads"] for v in tiers.values())
    if not leads:
        return None
    names = [t.name for t in model.tiers]
    names += sorted(t for t in tiers if t not in names)
    tier_rows = []
    for name in names:
        v = tiers.get(name)
        n = v["leads"] if v else 0
        average = v["total"] / 1000 / n if v and n else None
        tier_rows.append(TierCount(name, n, n / leads, average))

    def brackets(figure: str) -> list[Bracket]:
        rows = found[figure]
        result = []
        for i in range(BRACKETS):
            v = rows.get(str(i), {})
            high = min((i + 1) * WIDTH, 100)
            result.append(
                Bracket(
                    i * WIDTH,
                    high,
                    v.get("leads", 0),
                    v.get("decided", 0),
                    v.get("converted", 0),
                )
            )
        return result

    def groups(figure: str) -> list[Group]:
        rows = [
            Group(k, v["leads"], v["total"] / 1000 / v["leads"], v["decided"], v["converted"])
            for k, v in found[figure].items()
            if v["leads"]
        ]
        return sorted(rows, key=lambda g: (-g.leads, g.name))

    qbc = found["qbc"].get("", {})
    months = sorted((k, v["leads"]) for k, v in found["month"].items() if v["leads"])
    return Report(
        leads=leads,
        tiers=tier_rows,
        brackets=brackets("bracket"),
        conversion=brackets("conversion"),
        channels=groups("channel"),
        sources=groups("source"),
        qualified_before_close=QualifiedBeforeClose(
            qbc.get("converted", 0), qbc.get("qualified", 0)
        ),
        qualified_per_month=months,
    )


def count_cells(
    conn: Connection,
    model: str,
    tiers: Sequence[str] = (),
    grades: Sequence[str] = (),
    qualified: bool | None = None,
    channels: Sequence[str] = (),
    sources: Sequence[str] = (),
) -> int:
    """Leads scored under `model` with any of `tiers`, `grades` and `channels`, known to any
    of `sources`, and `qualified` (empty or None: any), from the `cell` counters."""
    total = 0
    for key, v in figures(conn, model)["cell"].items():
        tier, grade, flag, channel, systems = key.split(SEP)
        if tiers and tier not in tiers:
            continue
        if grades and grade not in grades:
            continue
        if qualified is not None and flag != str(int(qualified)):
            continue
        if channels and channel not in channels:
            continue
        if sources and not set(sources) & set(systems.split(",")):
            continue
        total += v["leads"]
    return total


def grades(conn: Connection, model: str) -> set[str]:
    """The grades scored leads hold under `model`."""
    return {
        key.split(SEP)[1]
        for key, v in figures(conn, model)["cell"].items()
        if v["leads"] and key.split(SEP)[1]
    }


@dataclass(frozen=True, slots=True)
class RuleFigure:
    """A ledger line summed over a model's scored leads."""

    section: str
    kind: str
    name: str
    leads: int
    count: int
    points: float


def rules(conn: Connection, model: str) -> list[RuleFigure]:
    """Per ledger line (rule, decay or clamp): leads it fired for, matches and points."""
    found = []
    for key, v in figures(conn, model)["rule"].items():
        if v["leads"]:
            section, kind, name = key.split(SEP)
            found.append(
                RuleFigure(section, kind, name, v["leads"], v["count"], round(v["total"] / 1000, 2))
            )
    return found
