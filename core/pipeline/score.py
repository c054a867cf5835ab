"""The score step: rescore dirty leads (or everyone when a model changed) in chunks.

Reads each chunk's leads, activities and previous scores in a few queries, runs the pure engine,
and writes only what changed: the score row, a `score_history` row when an output moved (with the
qualified/released event), and nothing at all for leads whose outputs stayed the same.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.pipeline.tallies import LeadTallies, Lookahead, RulePlan, few_of, ranges
from core.records import LEAD_FIELDS
from core.settings import Settings
from core.store import summary
from core.store.bulk import (
    COPY_FROM,
    Read,
    Serialized,
    any_key,
    copy_rows,
    driver_cursor,
    insert_rows,
    key_batches,
    one_of,
    run_together,
    update_rows,
)
from core.store.db import analyze_grown
from core.store.ingest import ACTIVITY, HISTORY, LEAD, PageCounts
from core.store.store import META, SYNC_RUN, Store
from core.store.tables import PredictiveModel, Score, table, utcnow
from scoring.engine import (
    Activity,
    LedgerEntry,
    QualifiedState,
    ScoreResult,
    _as_utc,
    score_lead,
)
from scoring.model import ScoringModel, segment_matches
from scoring.tallied import tallyable

if TYPE_CHECKING:
    from scoring.predictive import Artefact, Prediction

SCORE = table(Score)
PREDICTIVE = table(PredictiveModel)
CHUNK = 1000
# (lead, model) pairs per set-based range: bounds memory (a range's rows), not queries
FULL_CHUNK = 20_000
# Tables a rescore fills: their statistics are refreshed as they grow (see `analyze_grown`), or
# PostgreSQL goes on reading a million-row report_lead with the plan made for an empty one.
SCORED_TABLES = ("score", "score_history", "report_lead", "report_qualified", "report_figure")
OUTPUTS = ("fit", "engagement", "total", "tier", "grade", "qualified", "qualified_at", "reason")
log = logging.getLogger("leadhub.scorer")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass
class ScoreRun:
    leads: int = 0
    changed: int = 0
    events: int = 0
    full_models: list[str] = field(default_factory=list)


def _hash_key(model: ScoringModel) -> str:
    return f"model_hash:{model.name}"


def changed_models(store: Store, models: Sequence[ScoringModel]) -> list[ScoringModel]:
    """Models whose content hash differs from the one last scored with (new models included)."""
    return [m for m in models if store.get_meta(_hash_key(m)) != m.content_hash]


def changed_models_in(
    meta: Mapping[str, str], models: Sequence[ScoringModel]
) -> list[ScoringModel]:
    """`changed_models` given the stored meta values."""
    return [m for m in models if meta.get(_hash_key(m)) != m.content_hash]


def _score_dirty(
    conn: Connection,
    models: Sequence[ScoringModel],
    now: datetime,
    artefact: Artefact | None,
    run: ScoreRun,
    progress: Callable[[int, int], None] | None,
    summary_built: bool = False,
    taken: Sequence[Any] | None = None,
) -> ScoreRun:
    """The incremental pass: the dirty leads through the engine, chunk by chunk, on one
    connection whose transaction (begun by the caller's meta read) goes on; a pass of one
    chunk (one lead after a webhook) is a single transaction, run record included, and
    touches only that lead's rows through indexes: a handful of round trips whatever the
    store's size. `taken`: the first chunk's rows, when the caller claimed them (`_claim`).

    On PostgreSQL these transactions commit without waiting for the WAL flush: a crash can
    lose only whole transactions, and a lost one leaves its leads dirty, to be scored again.
    """
    started = utcnow()
    total = 0
    if progress:
        query = sa.select(sa.func.count()).select_from(LEAD).where(LEAD.c.dirty.is_(True))
        total = conn.execute(query).scalar_one() + len(taken or ())
    while True:
        try:
            taken = _take_dirty(conn) if taken is None else sorted(taken, key=lambda r: r.id)
            chunk = [row.id for row in taken]
            done = len(chunk) < CHUNK

            def finish(changed: int, leads: int = len(chunk), done: bool = done) -> list[Read]:
                """The run record, when this is the last chunk: sent with the report's read."""
                if not done:
                    return []
                record = _run_record(started, run.leads + leads, run.changed + changed)
                return [(_RUN_RECORD, record)]

            if chunk:
                changed, events = _score_chunk(
                    conn,
                    chunk,
                    models,
                    now,
                    artefact,
                    summary_built=summary_built,
                    leads=taken,
                    finish=finish,
                )
                summary_built = True  # if it was not, the chunk built it
                run.leads += len(chunk)
                run.changed += changed
                run.events += events
            elif done:  # no lead to score: the run record alone
                conn.execute(_RUN_RECORD, _run_record(started, run.leads, run.changed))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        taken = None
        if progress and chunk:
            progress(run.leads, max(total, run.leads))
        if done:
            return run


def _take_dirty(conn: Connection) -> list[Any]:
    """Clear the dirty flag of the next chunk of dirty leads (lowest ids first) and return
    their rows (lowest ids first), in one statement. Clearing first means a pull that marks a
    lead dirty while we score it waits for our row lock and marks it again after we commit: no
    change is ever missed. The outer `IS NOT false` (which no index serves, unlike `IS true`)
    makes a concurrent pass skip the leads this one took, and leaves PostgreSQL one scan of the
    dirty index, whose `true` side holds an entry for every lead ever marked until a VACUUM,
    and primary-key lookups for the rest. On PostgreSQL the same statement turns off the wait for
    the WAL flush for this transaction (`set_config(..., true)` is `SET LOCAL`)."""
    rows = conn.execute(_claim(conn.dialect.name)).all()
    return sorted(rows, key=lambda row: row.id)


@functools.cache
def _claim(dialect: str) -> sa.Update:
    """`_take_dirty`'s statement, built once: building it took longer than running it."""
    ids = sa.select(LEAD.c.id).where(LEAD.c.dirty.is_(True)).order_by(LEAD.c.id).limit(CHUNK)
    query = LEAD.update().where(LEAD.c.id.in_(ids.scalar_subquery()), LEAD.c.dirty.is_not(False))
    if dialect == "postgresql":
        no_flush = sa.select(sa.func.set_config("synchronous_commit", "off", True))
        query = query.where(no_flush.scalar_subquery().is_not(None))
    return query.values(dirty=False).returning(*LEAD.c)


_VERSION_KEY = "(latest predictive version)"  # not a meta key: the read's row for it


_RUN_COLUMNS = (
    "kind", "target", "started_at", "finished_at", "status", "read", "created", "updated",
    "unchanged", "quarantined", "error",
)  # fmt: skip
_RUN_RECORD = SYNC_RUN.insert().values({c: sa.bindparam(c) for c in _RUN_COLUMNS})


def _run_record(started: datetime, read: int, updated: int) -> dict[str, Any]:
    """The incremental pass's sync_run row (every column given: `run_together` sends it)."""
    return {
        "kind": "score",
        "target": "all",
        "started_at": started,
        "finished_at": utcnow(),
        "status": "ok",
        "read": read,
        "created": 0,
        "updated": updated,
        "unchanged": read - updated,
        "quarantined": 0,
        "error": None,
    }


@functools.cache
def _meta_read(keys: tuple[str, ...]) -> sa.CompoundSelect[Any]:
    """The meta values `score` reads (the models' hashes among them) and the latest predictive
    version in one read, which the incremental pass continues in its first transaction."""
    latest = sa.select(
        sa.literal(_VERSION_KEY, sa.String),
        sa.cast(sa.func.max(PREDICTIVE.c.version), sa.String),
    )
    query = sa.select(META.c.key, META.c.value).where(
        META.c.key.in_([*keys, PREDICTIVE_KEY, MODELS_KEY, summary.BUILT_KEY])
    )
    return query.union_all(latest)


def score(
    store: Store,
    models: Sequence[ScoringModel],
    *,
    full: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreRun:
    """Rescore dirty leads; a changed model file (new hash) or `full` rescores everyone."""
    now = now or utcnow()
    run = ScoreRun()
    with store.engine.connect() as conn:
        read = _meta_read(tuple(_hash_key(m) for m in models))
        taken = None
        if full:
            meta: dict[str, str] = {key: value for key, value in conn.execute(read)}
        else:
            # The first dirty leads are claimed with the meta read (on PostgreSQL in one round
            # trip: the webhook's pass is mostly round trips); if the models turn out changed,
            # the rollback below gives them back.
            rows, taken = run_together(conn, [(read, {}), (_claim(conn.dialect.name), {})])
            meta = {key: value for key, value in rows}
        latest_version = meta.pop(_VERSION_KEY, None)
        artefact = _latest_artefact(store, int(latest_version) if latest_version else None)
        version = str(artefact.version) if artefact else ""
        new_predictor = meta.get(PREDICTIVE_KEY) != version and artefact is not None
        stale = list(models) if (full or new_predictor) else changed_models_in(meta, models)
        names = ",".join(sorted(m.name for m in models))
        if not stale and meta.get(MODELS_KEY) == names and meta.get(PREDICTIVE_KEY) == version:
            built = meta.get(summary.BUILT_KEY) == "1"
            return _score_dirty(conn, models, now, artefact, run, progress, built, taken)
        conn.rollback()
    run.full_models = [m.name for m in stale]
    # Under models scored before, a lead whose score and inputs stay the same keeps its figures.
    remodelled = bool(changed_models_in(meta, models))
    run_id = store.start_run("score", "all")
    with store.engine.connect() as conn:
        query = sa.select(LEAD.c.id).order_by(LEAD.c.id)
        if not stale:
            query = query.where(LEAD.c.dirty.is_(True))
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        with driver_cursor(conn) as cursor:
            cursor.execute(sql)
            ids = [row[0] for row in cursor.fetchall()]
    counts = PageCounts(read=len(ids))
    tallied = [m for m in models if tallyable(m)] if stale and artefact is None else []
    if tallied:
        _score_all_tallied(store, ids, models, tallied, now, run, progress, remodelled)
    for start in range(0, len(ids) if not tallied else 0, CHUNK):
        chunk = ids[start : start + CHUNK]
        with store.begin() as conn:
            # Clearing first means a pull that marks a lead dirty while we score it waits for our
            # row lock and marks it again after we commit: no change is ever missed.
            clear = LEAD.update().where(LEAD.c.id.in_(chunk), LEAD.c.dirty.is_(True))
            dirty = _cleared(conn, clear)
            moved = None if remodelled or not stale else dirty
            changed, events = _score_chunk(conn, chunk, models, now, artefact, moved)
            analyze_grown(conn, SCORED_TABLES)
        run.leads += len(chunk)
        run.changed += changed
        run.events += events
        if progress:
            progress(run.leads, len(ids))
    with store.begin() as conn:
        for model in models:
            store.set_meta(_hash_key(model), model.content_hash, conn)
        store.set_meta(PREDICTIVE_KEY, version, conn)
        names = ",".join(sorted(m.name for m in models))
        if store.get_meta(MODELS_KEY) != names:  # a scan of every score: only when models change
            _drop_removed_models(conn, models)
            store.set_meta(MODELS_KEY, names, conn)
    counts.updated, counts.unchanged = run.changed, run.leads - run.changed
    store.finish_run(run_id, counts, "ok")
    return run


def _score_all_tallied(
    store: Store,
    ids: Sequence[int],
    models: Sequence[ScoringModel],
    tallied: Sequence[ScoringModel],
    now: datetime,
    run: ScoreRun,
    progress: Callable[[int, int], None] | None,
    remodelled: bool = True,
) -> None:
    """Every lead in `ids`: `tallied` models set-based, the others through the engine, range
    by range, each range in a transaction of its own.

    Unless `remodelled` (a model is new or changed), the report's figures are recounted only
    for leads whose score changed or that were dirty. On PostgreSQL the ranges are shared out
    among `score_connections` connections (`core.settings.Settings`), each on a thread of
    its own, once the first range has committed (it builds the report's summary when the store
    has none). While one thread's range is with the server (its tallies read, its rows
    copied in, its commit), another's leads are scored in Python: the two take turns at the
    interpreter and the server works on the other core. The ranges hold disjoint leads; the
    report's shared counters are locked in key order by each (see `summary.apply`)."""
    rest = [m for m in models if m not in tallied]
    spans = _Spans(ids, range_leads(models), run, progress)
    with store.engine.connect() as conn, conn.begin():
        analyze_grown(conn, ("activity",))
    scoring = _RangeScoring(store, tallied, rest, now, remodelled)
    connections = _connections(store, len(spans.spans))
    if connections == 1:
        _score_spans_ahead(scoring, spans)
    else:
        _score_spans_together(scoring, spans, connections)
    if store.dialect == "postgresql":  # with `rest`, every lead's rows were rewritten too
        vacuum(store, len(ids), spans.rewritten + (len(ids) if rest else 0))


def range_leads(models: Sequence[ScoringModel]) -> int:
    """Leads per range of a full rescore under `models`: a range holds each lead's rows under
    every model (its scores, history and report rows), so more models make shorter ranges."""
    return max(1, FULL_CHUNK // len(models))


def _connections(store: Store, spans: int) -> int:
    """How many connections score the ranges of a full rescore: one on SQLite (one writer at
    a time), else the `score_connections` setting, at most one per range after the first."""
    if store.dialect != "postgresql":
        return 1
    return max(1, min(Settings().score_connections, spans - 1))


class _Spans:
    """The ranges of a full rescore, handed out in order to the threads that score them, and
    what they did: the run's counters and the progress are kept under one lock."""

    def __init__(
        self,
        ids: Sequence[int],
        size: int,
        run: ScoreRun,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.ids = ids
        self.spans = list(ranges(ids, size))
        self.run = run
        self.rewritten = 0  # rows rewritten (see `vacuum`)
        self._progress = progress
        self._next = 0  # the next range to hand out
        self._start = 0  # where its leads start in `ids`
        self._lock = threading.Lock()
        self.failed = threading.Event()  # a thread failed: the others take no more ranges

    def take(self) -> tuple[int, int, Sequence[int]] | None:
        """The next range to score: (low, high, its lead ids); None when all are taken."""
        with self._lock:
            if self.failed.is_set() or self._next == len(self.spans):
                return None
            low, high, size = self.spans[self._next]
            start = self._start
            self._next += 1
            self._start += size
        return low, high, self.ids[start : start + size]

    def done(self, leads: int, changed: int, events: int, rewritten: int) -> None:
        with self._lock:
            self.run.leads += leads
            self.run.changed += changed
            self.run.events += events
            self.rewritten += rewritten
            if self._progress:
                self._progress(self.run.leads, len(self.ids))


@dataclass(frozen=True, slots=True)
class _RangeScoring:
    """What each range of a full rescore is scored with: `tallied` models set-based, `rest`
    through the engine, at `now`; `remodelled`: a model is new or changed (every lead of a
    range is scored, not only those whose inputs moved)."""

    store: Store
    tallied: Sequence[ScoringModel]
    rest: Sequence[ScoringModel]
    now: datetime
    remodelled: bool

    def plan(self) -> RulePlan:
        """A plan of the `tallied` models (load it on the connection that scores with it)."""
        return RulePlan(self.tallied, _as_utc(self.now))

    def score(
        self,
        conn: Connection,
        plan: RulePlan,
        span: tuple[int, int, Sequence[int]],
        candidates: Collection[int] | None,
    ) -> tuple[int, int, int]:
        """Score one range in one transaction: its dirty flags cleared, then its leads scored
        under the plan's models (and `rest` through the engine). (changed, events, rows
        rewritten)."""
        low, high, chunk = span
        rest, now = self.rest, self.now
        with conn.begin():
            clear = LEAD.update().where(LEAD.c.id.between(low, high), LEAD.c.dirty.is_(True))
            dirty = _cleared(conn, clear)
            # Every page that marked a lead cleared here has committed (later ones wait for its
            # row): its activities count, their signatures matched now.
            plan.refresh(conn)
            moved = None if self.remodelled else dirty
            # a lead whose outputs changed under models of both paths counts once
            leads: set[int] | None = set() if rest else None
            changed, events, written = _score_range(
                conn, plan, low, high, now, moved, candidates, leads
            )
            for start in range(0, len(chunk) if rest else 0, CHUNK):
                part = list(chunk[start : start + CHUNK])
                events += _score_chunk(conn, part, rest, now, None, moved, moved_leads=leads)[1]
            changed = changed if leads is None else len(leads)
        with conn.begin():
            analyze_grown(conn, SCORED_TABLES)
        return changed, events, written + len(dirty)


def _score_spans_ahead(scoring: _RangeScoring, spans: _Spans) -> None:
    """The ranges one after another on one connection. Under the models the scores were
    computed with, which leads to score is found a range ahead, on another connection
    (`Lookahead`)."""
    plan = scoring.plan()
    with scoring.store.engine.connect() as conn:
        with conn.begin():
            plan.load(conn)
        ahead = pending = None
        try:
            span = spans.take()
            if not scoring.remodelled and span is not None:
                ahead = Lookahead(scoring.store.engine, plan)
                pending = ahead.submit(span[0], span[1])
            while span is not None:
                following = spans.take()
                candidates = pending.result() if pending is not None else None
                if ahead is not None and following is not None:
                    pending = ahead.submit(following[0], following[1])
                spans.done(len(span[2]), *scoring.score(conn, plan, span, candidates))
                span = following
        finally:
            if ahead is not None:
                ahead.close()
            with conn.begin():
                plan.drop(conn)


def _score_spans_together(scoring: _RangeScoring, spans: _Spans, connections: int) -> None:
    """The ranges shared out among `connections` connections, a thread each (this one and
    `connections - 1` more), each with its own plan (its matches are a temporary table of its
    connection). The others start when this thread's first range has committed. The first
    error stops them all from taking another range, and is raised once they have ended."""
    opened = threading.Event()
    errors: list[BaseException] = []

    def score_spans(first: bool) -> None:
        try:
            if not first:
                opened.wait()
            span = spans.take()
            if span is None:
                return
            plan = scoring.plan()
            with scoring.store.engine.connect() as conn:
                with conn.begin():
                    plan.load(conn)
                try:
                    while span is not None:
                        spans.done(len(span[2]), *scoring.score(conn, plan, span, None))
                        opened.set()
                        span = spans.take()
                finally:
                    with conn.begin():
                        plan.drop(conn)
        except BaseException as error:
            errors.append(error)
            spans.failed.set()
        finally:
            opened.set()

    helpers = [
        threading.Thread(target=score_spans, args=(False,), name=f"leadhub-score-{n}")
        for n in range(1, connections)
    ]
    for helper in helpers:
        helper.start()
    try:
        score_spans(True)
    finally:
        for helper in helpers:
            helper.join()
    if errors:
        raise errors[0]


_pauses = 0  # scoring passes holding the collector off, in all threads
_pauses_lock = threading.Lock()
_resume = False  # whether the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a range of leads is scored (around
    `_score_range` and `_score_chunk`, as their decorator, and around the what-if's chunks).

    A range builds a few hundred thousand containers (rows, ledgers, report rows) that live
    until it ends and are freed by reference counting. Each one that survives a young
    collection is scanned again by the older ones, and the full collections that their numbers
    trigger scan every object in the process: a quarter to a third of a full rescore's time
    went to that. The few cycles a range makes are collected when the collector resumes, at
    the range's end. Process-wide, as the collector is: the first of concurrent passes pauses
    it, the last resumes it, and only when it was on when the first began."""
    global _pauses, _resume
    with _pauses_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


VACUUMED = ("lead", "score", "report_lead")
REWRITTEN_KEY = "rows_rewritten_since_vacuum"
REWRITTEN = 0.1  # of the leads: rows rewritten by full rescores since the last VACUUM


def vacuum(store: Store, leads: int, rewritten: int) -> bool:
    """PostgreSQL, after a full rescore: fresh statistics for the lookups that follow, and the
    old versions of the lead, score and report rows it rewrote (every `dirty` flag it cleared,
    every score and report row it changed) cleared from their tables and indexes, which no
    autovacuum is assumed to do. Without it the next incremental pass reads past a million
    dead entries of the dirty index, and (after a model change) of the report rows' index:
    9.4 ms instead of 5.6 ms a pass at 1M leads.

    `rewritten`: the rows this pass rewrote, of `leads`. The daily decay
    pass rewrites a few percent of the scores; vacuuming every index of a million scores for
    those would cost more than the pass. The rows full rescores rewrote are kept count of
    (in meta) until they reach a tenth of the leads: that pass vacuums. Whether it vacuumed."""
    pending = int(store.get_meta(REWRITTEN_KEY) or 0) + rewritten
    if pending < REWRITTEN * leads:
        store.set_meta(REWRITTEN_KEY, str(pending))
        return False
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM (ANALYZE) {', '.join(VACUUMED)}"))
    store.set_meta(REWRITTEN_KEY, "0")
    return True


def _cleared(conn: Connection, clear: sa.Update) -> set[int]:
    """Run `clear` (an UPDATE of dirty leads) setting `dirty` false: the ids it cleared, read in
    the same statement, so a lead marked dirty meanwhile is either cleared and listed, or not
    cleared."""
    return set(conn.execute(clear.values(dirty=False).returning(LEAD.c.id)).scalars())


def _lead_fields(
    conn: Connection,
    low: int,
    high: int,
    created: dict[int, datetime] | None = None,
    only: Sequence[int] | None = None,
) -> dict[int, dict[str, Any]]:
    """The fields of the leads with ids in [low, high] (`only`: of those ids); `custom` parsed
    once per distinct text. Each lead's `created_at` goes into `created` when given."""
    columns = [LEAD.c[name] for name in LEAD_FIELDS]
    query = sa.select(LEAD.c.id, LEAD.c.created_at, sa.cast(LEAD.c.custom, sa.Text), *columns)
    parsed: dict[str | None, Any] = {None: {}}
    fields = {}
    for row in _by_range_or_ids(conn, query, LEAD.c.id, low, high, only):
        raw = row[2]
        custom = parsed.get(raw)
        if custom is None:
            custom = parsed[raw] = json.loads(raw) or {}
        values = dict(zip(LEAD_FIELDS, row[3:], strict=True))
        values["custom"] = custom
        fields[row[0]] = values
        if created is not None:
            created[row[0]] = row[1]
    return fields


def _by_range_or_ids(
    conn: Connection,
    query: sa.Select[Any],
    column: sa.ColumnElement[Any],
    low: int,
    high: int,
    only: Sequence[int] | None,
) -> Iterator[Any]:
    """The rows of `query` whose `column` is in [low, high], or (`only`) one of those ids: by
    the range when they are most of it, else in batches of ids."""
    if only is None or not few_of(only, low, high):
        wanted = None if only is None else set(only)
        for row in conn.execute(query.where(column.between(low, high))).all():
            if wanted is None or row._mapping[column] in wanted:
                yield row
        return
    for batch in key_batches(conn, sorted(only)):
        yield from conn.execute(query.where(one_of(conn, column, batch))).all()


_PREVIOUS_COLUMNS = ("id", "lead_id", "model", "model_hash", *OUTPUTS, "predictive", "inputs")


@collector_paused()
def _score_range(
    conn: Connection,
    plan: RulePlan,
    low: int,
    high: int,
    now: datetime,
    dirty: Collection[int] | None = None,
    candidates: Collection[int] | None = None,
    moved_leads: set[int] | None = None,
) -> tuple[int, int, int]:
    """Score the leads with ids in [low, high] under the plan's models, from their tallies.

    A score is computed once per distinct input and compared with the stored one as a tuple;
    only the changed ones become rows. `dirty`: see `_keep_figures`. `candidates` (with
    `dirty`): the range's leads that would not score as stored (`RulePlan.candidates`), when
    the caller found them. Returns `_tally`'s figures (the leads whose outputs changed also go
    into `moved_leads`) and the number of score rows written or deleted.
    """
    created: dict[int, datetime] = {}
    only = None
    if dirty is None:
        tallies = plan.tallies(conn, low, high)
    else:
        # The models are those the scores were computed under: a lead is left out when it is
        # not dirty (its fields, activities and outcomes did not move) and each model holds its
        # score from the same inputs (inactivity step and tallies, see `RulePlan.inputs`), under
        # the model's present hash and without a predictive score: scoring it again would give
        # what is stored (the qualified state too: scored again from its own state, a lead
        # keeps it). The database compares; the stored scores of the leads left out are never
        # read. A lead outside a model's segment has no score there, and is left out too
        # unless dirty: its fields decide the segment, and a move of theirs marks it. (No score
        # outlives its lead: the foreign key holds on both databases, and a merge deletes the
        # merged lead's scores.)
        if candidates is None:
            candidates = plan.candidates(conn, low, high)
        only = sorted({*candidates, *dirty})
        tallies = plan.tallies(conn, low, high, only) if only else {}
    fields = _lead_fields(conn, low, high, created, only)
    names = {m.name for m in plan.models}
    query = sa.select(
        *(SCORE.c[k] for k in _PREVIOUS_COLUMNS), sa.cast(SCORE.c.ledger, sa.Text).label("ledger")
    ).where(SCORE.c.model.in_(names))
    rows_read = _by_range_or_ids(conn, query, SCORE.c.lead_id, low, high, only)
    previous = {(r.lead_id, r.model): r for r in rows_read}
    empty = LeadTallies("", None)
    changes: list[ScoreChange] = []
    stored: dict[int, tuple[Any, ...]] = {}  # id(result) -> what the score row holds
    rows: dict[int, dict[str, Any]] = {}  # id(result) -> its score row, but for the lead
    current: dict[tuple[str, int], Mapping[Any, Any]] = {}  # the score rows once written
    outputs: dict[int, tuple[Any, ...]] = {}  # id(result) -> its outputs, normalised
    stored_outputs: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # as read -> normalised
    for scorer in plan.scorers:
        scorer.forget()
    for lead_id, values in fields.items():
        lead = tallies.get(lead_id, empty)
        last = lead.last
        for m, model in enumerate(plan.models):
            scorer = plan.scorers[m]
            prev = previous.pop((lead_id, model.name), None)
            if scorer.segmented and not segment_matches(model, values):
                if prev is not None:
                    changes.append(ScoreChange(lead_id, model.name, prev, None, None))
                continue
            step = plan.step(m, last)
            state = QualifiedState(prev.qualified, prev.qualified_at) if prev else None
            text = lead.text
            inputs = plan.inputs(m, text, step)
            result = scorer.score_key(
                scorer.fit_key(values),
                text,
                lambda m=m, text=text: plan.parse(text).get(m, ()),  # type: ignore[misc]
                step,
                plan.now,
                state,
            )
            kept = stored.get(id(result))
            if kept is None:
                ledger = Serialized([entry_dict(e) for e in result.ledger])
                rows[id(result)] = _score_row(0, result, now, ledger=ledger, inputs=inputs)
                outputs[id(result)] = _normed(tuple(rows[id(result)][k] for k in OUTPUTS))
                kept = stored[id(result)] = (
                    result.model_hash,
                    result.fit,
                    result.engagement,
                    result.total,
                    result.tier,
                    result.grade,
                    result.qualified,
                    result.qualified_at,
                    result.reason,
                    None,
                    inputs,
                    ledger.text,
                )
            if prev is not None and tuple(prev[3:]) == kept:
                current[(model.name, lead_id)] = prev._mapping
                continue
            moved = True
            if prev is not None:
                # outputs compared normalised, each distinct stored one normalised once
                before = stored_outputs.get(raw := tuple(prev[_OUTPUTS_AT]))
                if before is None:
                    before = stored_outputs[raw] = _normed(raw)
                moved = before != outputs[id(result)]
                if not moved and not _moved_besides_outputs(prev, rows[id(result)]):
                    current[(model.name, lead_id)] = prev._mapping
                    continue
            current[(model.name, lead_id)] = rows[id(result)]
            # the row computed once for all leads with this input (`write_changes` gives it
            # each lead's id)
            row = rows[id(result)]
            hist = _history_row(lead_id, result, now) if moved else None
            changes.append(ScoreChange(lead_id, model.name, prev, row, hist))
    # Scores of leads gone from the range (merged away) go too.
    changes += [ScoreChange(k[0], k[1], p, None, None) for k, p in previous.items()]
    write_changes(conn, changes)
    tally, written = _tally(changes, moved_leads), len(changes)
    # Once written, the rows (and the stored ones they replace) go: the figures need only
    # which leads moved and their history. A range's memory peaks while its figures are kept.
    changes = [ScoreChange(c.lead_id, c.model, None, None, c.history) for c in changes]
    for lead_id, values in fields.items():  # scored: the fields are the figures' now
        values["created_at"] = created[lead_id]
    known = summary.Known(current, fields)
    _keep_figures(conn, plan.models, list(fields), changes, now, dirty, known)
    return (*tally, written)


_OUTPUTS_AT = slice(_PREVIOUS_COLUMNS.index(OUTPUTS[0]), _PREVIOUS_COLUMNS.index(OUTPUTS[-1]) + 1)


def _normed(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_norm(v) for v in values)


def _moved_besides_outputs(prev: Any, row: dict[str, Any]) -> bool:
    """`_differs` but for the outputs, for a previous row whose ledger was read as JSON text
    (not parsed)."""
    keys: Iterable[str] = ("model_hash", "predictive", "inputs")
    if any(_norm(getattr(prev, k)) != _norm(row[k]) for k in keys):
        return True
    ledger = row["ledger"]
    return bool(
        prev.ledger != (ledger.text if isinstance(ledger, Serialized) else json.dumps(ledger))
    )


PREDICTIVE_KEY = "predictive_version"
MODELS_KEY = "scored_models"


_ARTEFACTS: dict[tuple[str, int], Artefact] = {}  # (store url, version): loaded once


def _latest_artefact(store: Store, version: int | None) -> Artefact | None:
    """The latest predictive model (of `version`, the latest stored), loaded from its blob only
    when its version is new."""
    if version is None:
        return None
    artefact = _ARTEFACTS.get((store.url, version))
    if artefact is None:
        artefact = load_artefact(store, version)
        if artefact is not None:
            _ARTEFACTS.clear()
            _ARTEFACTS[(store.url, version)] = artefact
    return artefact


def load_artefact(store: Store, version: int | None = None) -> Artefact | None:
    """The stored predictive model of `version` (default: the latest), or None when none is.

    Without one, the `predictive` output stays empty and scikit-learn (seconds to import) is
    never loaded: `scoring.predictive` (numpy, and scikit-learn to apply a model) is imported
    only once a model is stored.
    """
    query = sa.select(PREDICTIVE.c.artefact).order_by(PREDICTIVE.c.version.desc()).limit(1)
    if version is not None:
        query = query.where(PREDICTIVE.c.version == version)
    with store.engine.connect() as conn:
        data = conn.execute(query).scalar_one_or_none()
    if data is None:
        return None
    from scoring.predictive import Artefact

    return Artefact.from_bytes(data)


def _predictions(
    artefact: Artefact | None,
    fields: dict[int, dict[str, Any]],
    acts: dict[int, list[Activity]],
    now: datetime,
) -> dict[int, Prediction]:
    if artefact is None:
        return {}
    from scoring.predictive import LeadInput, predict

    rows = [LeadInput(i, f, acts.get(i, []), now) for i, f in fields.items()]
    return {p.lead_id: p for p in predict(artefact, rows)}


def _drop_removed_models(conn: Connection, models: Sequence[ScoringModel]) -> None:
    """Scores of models no longer in the file go, and so does their hash: a model put back later
    is new again and scores everyone."""
    names = [m.name for m in models]
    conn.execute(SCORE.delete().where(SCORE.c.model.not_in(names)))
    summary.drop(conn, names)
    kept = [_hash_key(m) for m in models]
    conn.execute(META.delete().where(META.c.key.like("model_hash:%"), META.c.key.not_in(kept)))


def load_inputs(
    conn: Connection,
    lead_ids: Sequence[int],
    until: datetime | None = None,
    created: dict[int, datetime] | None = None,
    leads: Sequence[Any] | None = None,
    read: Sequence[Any] | None = None,
) -> tuple[dict[int, dict[str, Any]], dict[int, list[Activity]]]:
    """Lead fields and activities (up to `until`) of a chunk of leads, in two queries (one when
    the caller read the lead rows, `leads`; none when it also read the activities, `read`: rows
    of `_activities_of`); each lead's `created_at` goes into `created` when given."""
    fields = {}
    if leads is None:
        leads = conn.execute(sa.select(LEAD).where(LEAD.c.id.in_(lead_ids))).all()
    for row in leads:
        values = {name: getattr(row, name) for name in LEAD_FIELDS}
        values["custom"] = row.custom or {}
        fields[row.id] = values
        if created is not None:
            created[row.id] = row.created_at
    acts: dict[int, list[Activity]] = defaultdict(list)
    # Properties come back as JSON text and are parsed once per distinct value: most activities
    # share a handful of property sets (the same URL, form or campaign), so this skips most parsing.
    if read is None:
        query = _activities_of(conn.dialect.name, until is not None)
        read = conn.execute(query, {"ids": list(lead_ids), "until": until}).all()
    parsed: dict[str | None, Mapping[str, Any]] = {None: _EMPTY}
    for lead_id, kind, occurred_at, raw in read:
        props = parsed.get(raw)
        if props is None:
            props = parsed[raw] = MappingProxyType(json.loads(raw) or {})
        acts[lead_id].append(Activity(kind, occurred_at, props))
    return fields, acts


@functools.cache
def _activities_of(dialect: str, until: bool) -> sa.Select[Any]:
    """`load_inputs`' read of activities (of leads `ids`, up to `until`), built once."""
    query = sa.select(
        ACTIVITY.c.lead_id,
        ACTIVITY.c.type,
        ACTIVITY.c.occurred_at,
        sa.cast(ACTIVITY.c.properties, sa.Text),
    ).where(any_key(dialect, ACTIVITY.c.lead_id, "ids"))
    if until:
        query = query.where(ACTIVITY.c.occurred_at <= sa.bindparam("until"))
    return query


def _previous(
    conn: Connection, lead_ids: Sequence[int], read: Sequence[Any] | None = None
) -> dict[tuple[int, str], Any]:
    """The stored scores of `lead_ids` by (lead, model); `read`: the rows of `_scores_of` when
    the caller read them."""
    if read is None:
        read = conn.execute(_scores_of(conn.dialect.name), {"ids": list(lead_ids)}).all()
    return {(r.lead_id, r.model): r for r in read}


@functools.cache
def _scores_of(dialect: str) -> sa.Select[Any]:
    return sa.select(SCORE).where(any_key(dialect, SCORE.c.lead_id, "ids"))


def evaluate(
    fields: dict[int, dict[str, Any]],
    acts: dict[int, list[Activity]],
    models: Sequence[ScoringModel],
    now: datetime,
    previous: dict[tuple[int, str], Any] | None = None,
) -> Iterator[tuple[int, ScoringModel, ScoreResult]]:
    """Run the engine for every (lead, model) whose segment the lead is in."""
    previous = previous or {}
    for lead_id, values in fields.items():
        for model in models:
            if not segment_matches(model, values):
                continue
            prev = previous.get((lead_id, model.name))
            state = QualifiedState(prev.qualified, prev.qualified_at) if prev else None
            yield lead_id, model, score_lead(values, acts.get(lead_id, ()), model, now, state)


@collector_paused()
def _score_chunk(
    conn: Connection,
    chunk: Sequence[int],
    models: Sequence[ScoringModel],
    now: datetime,
    artefact: Artefact | None = None,
    dirty: Collection[int] | None = None,
    summary_built: bool = False,
    leads: Sequence[Any] | None = None,
    finish: Callable[[int], Sequence[Read]] | None = None,
    moved_leads: set[int] | None = None,
) -> tuple[int, int]:
    """Score `chunk` through the engine and keep the report's figures, from what this reads:
    the figures are given the score rows as written and the leads as read (`leads`: the rows
    of the chunk's leads, when the caller read them). `finish`, given how many leads' outputs
    changed, names writes to send with the report's read (the pass's run record). Returns
    `_tally`'s figures; the leads whose outputs changed also go into `moved_leads`."""
    created: dict[int, datetime] = {}
    names = {m.name for m in models}
    identified = None
    if dirty is None:
        # the report recounts exactly `chunk`: its read of the leads' identities and outcomes
        # goes with the scorer's reads, on PostgreSQL in one round trip
        ids = list(chunk)
        reads = [
            (_activities_of(conn.dialect.name, False), {"ids": ids}),
            (_scores_of(conn.dialect.name), {"ids": ids}),
            summary.identities_read(conn.dialect.name, ids),
        ]
        acts_read, scores_read, identified = run_together(conn, reads)
        fields, acts = load_inputs(conn, chunk, created=created, leads=leads, read=acts_read)
        previous = _previous(conn, chunk, scores_read)
    else:
        fields, acts = load_inputs(conn, chunk, created=created, leads=leads)
        previous = _previous(conn, chunk)
    previous = {k: p for k, p in previous.items() if k[1] in names}
    predicted = _predictions(artefact, fields, acts, now)
    changes: list[ScoreChange] = []
    seen: set[tuple[int, str]] = set()
    for lead_id, model, result in evaluate(fields, acts, models, now, previous):
        seen.add((lead_id, model.name))
        row = _score_row(lead_id, result, now, predicted.get(lead_id))
        prev = previous.get((lead_id, model.name))
        if prev is not None and not _differs(prev, row):
            continue
        moved = prev is None or any(_norm(getattr(prev, k)) != _norm(row[k]) for k in OUTPUTS)
        hist = _history_row(lead_id, result, now) if moved else None
        changes.append(ScoreChange(lead_id, model.name, prev, row, hist))
    changes += [
        ScoreChange(k[0], k[1], p, None, None) for k, p in previous.items() if k not in seen
    ]
    # with the report's reads when it recounts exactly `chunk` (one round trip on PostgreSQL)
    pending: list[Read] | None = [] if dirty is None else None
    write_changes(conn, changes, pending)
    tally = _tally(changes, moved_leads)
    scores: dict[tuple[str, int], Mapping[Any, Any]] = {
        (k[1], k[0]): p._mapping for k, p in previous.items()
    }
    for c in changes:
        if c.new is None:
            scores.pop((c.model, c.lead_id), None)
        else:
            scores[(c.model, c.lead_id)] = c.new
    given = {i: {**f, "created_at": created[i]} for i, f in fields.items()}
    # the writes so far go with the report's read, the run record too
    before = [*(pending or ()), *(finish(tally[0]) if finish else ())]
    known = summary.Known(scores, given, identified=identified, before=before)
    _keep_figures(conn, models, chunk, changes, now, dirty, known, summary_built)
    return tally


def _keep_figures(
    conn: Connection,
    models: Sequence[ScoringModel],
    lead_ids: Sequence[int],
    changes: Sequence[ScoreChange],
    now: datetime,
    dirty: Collection[int] | None = None,
    known: summary.Known | None = None,
    summary_built: bool = False,
) -> None:
    """The report's kept figures follow the scores just written, in the same transaction
    (`known`, `summary_built`: see `summary.apply`).

    `dirty`, when given, says the models are the ones the figures were last kept under and
    which of `lead_ids` were dirty (their fields, identities, activities or outcomes may have
    moved): only those and the leads whose score changed are recounted, and only the dirty
    ones are rescored at their decision point. None: every lead of `lead_ids` is recounted.
    """
    crossed = [
        (c.model, c.lead_id)
        for c in changes
        if c.history is not None and c.history["event"] == "qualified"
    ]
    settled: Collection[int] = ()
    if dirty is not None:
        rescored = {c.lead_id for c in changes}
        settled = rescored - set(dirty)
        lead_ids = sorted(rescored | set(dirty))
    summary.apply(conn, models, lead_ids, crossed, now, settled, known, summary_built)


def _tally(changes: Sequence[ScoreChange], moved_leads: set[int] | None = None) -> tuple[int, int]:
    """(leads whose outputs changed, qualified/released events) of a chunk's changes; those
    leads also go into `moved_leads` when given."""
    history = [c.history for c in changes if c.history is not None]
    moved = {h["lead_id"] for h in history}
    if moved_leads is not None:
        moved_leads |= moved
    return len(moved), sum(1 for h in history if h["event"])


@dataclass(frozen=True, slots=True)
class ScoreChange:
    """A lead's score under a model that moved: `old` is the stored row (None: a new score),
    `new` the row to store (None: the lead left the model's segment, the score goes; it may be
    shared by leads scored alike, and is stored under `lead_id`), `history` the score_history
    row when an output changed."""

    lead_id: int
    model: str
    old: Any | None
    new: dict[str, Any] | None
    history: dict[str, Any] | None


def write_changes(
    conn: Connection, changes: Sequence[ScoreChange], pending: list[Read] | None = None
) -> None:
    """Store the changed scores of both scoring paths: the one place score rows are written.
    `pending`: where one lead's update (PostgreSQL, after a webhook) goes instead of being
    run, for the caller to send with its next statement (`run_together`)."""
    # a row may be shared by the leads scored alike: each gets its own lead id here
    inserts = [{**c.new, "lead_id": c.lead_id} for c in changes if c.old is None and c.new]
    updates = []  # each changed row's columns but its key (lead, model), and the row's id
    for c in changes:
        if c.old is not None and c.new is not None:
            update = dict(c.new)
            for key in _KEY:
                update.pop(key, None)
            update["_id"] = c.old.id
            updates.append(update)
    gone = [c.old.id for c in changes if c.new is None and c.old is not None]
    history = [c.history for c in changes if c.history is not None]
    _write(conn, inserts, updates, history, gone, pending)


_KEY = ("lead_id", "model")  # a score row's key, never updated


def _write(
    conn: Connection,
    inserts: list[dict[str, Any]],
    updates: list[dict[str, Any]],
    history: list[dict[str, Any]],
    gone: list[int],
    pending: list[Read] | None = None,
) -> None:
    if inserts:
        insert_rows(conn, SCORE, inserts)
    if len(updates) == len(history) == 1 and conn.dialect.name == "postgresql":
        write = _update_with_history(updates[0], history[0])  # a lead after a webhook
        if pending is None:
            conn.execute(*write)
        else:
            pending.append(write)
        updates, history = [], []
    if updates and conn.dialect.name == "postgresql" and len(updates) >= COPY_FROM:
        _update_by_copy(conn, updates)
    elif updates:
        update_rows(conn, SCORE, updates)
    if history:
        insert_rows(conn, HISTORY, history)
    if gone:
        conn.execute(SCORE.delete().where(SCORE.c.id.in_(gone)))


def _update_with_history(update: dict[str, Any], history: dict[str, Any]) -> Read:
    """PostgreSQL: one score row's update and one history row in one statement (and its
    parameters), the UPDATE in a CTE: one round trip fewer for the pass that rescores one
    lead."""
    columns = tuple(k for k in update if k != "_id")
    params = {f"score_{k}": update[k] for k in columns}
    params["score_id"] = update["_id"]
    params.update({f"history_{k}": v for k, v in history.items()})
    return _update_and_insert(columns, tuple(history)), params


@functools.cache
def _update_and_insert(columns: tuple[str, ...], history: tuple[str, ...]) -> sa.Insert:
    """The statement of `_update_with_history`; the two rows' parameters are named apart."""
    update = SCORE.update().where(SCORE.c.id == sa.bindparam("score_id"))
    moved = update.values({c: sa.bindparam(f"score_{c}") for c in columns}).cte("moved")
    values: dict[str, Any] = {c: sa.bindparam(f"history_{c}") for c in history}
    return HISTORY.insert().values(values).add_cte(moved)


def _update_by_copy(conn: Connection, updates: list[dict[str, Any]]) -> None:
    """PostgreSQL: the new values by COPY into a temporary table, then one UPDATE ... FROM."""
    columns = [k for k in updates[0] if k != "_id"]
    conn.execute(sa.text("CREATE TEMPORARY TABLE score_update AS SELECT * FROM score WITH NO DATA"))
    copy_rows(conn, SCORE, updates, into="score_update", renamed={"_id": "id"})
    assignments = ", ".join(f'"{k}" = u."{k}"' for k in columns)
    conn.execute(
        sa.text(f"UPDATE score SET {assignments} FROM score_update u WHERE score.id = u.id")
    )
    conn.execute(sa.text("DROP TABLE score_update"))


def _score_row(
    lead_id: int,
    r: ScoreResult,
    now: datetime,
    prediction: Prediction | None = None,
    ledger: list[dict[str, Any]] | None = None,
    inputs: str | None = None,
) -> dict[str, Any]:
    """A score row; `inputs` (see `RulePlan.inputs`) only from the set-based path: a row the
    engine writes clears them, so a later full rescore does not take it for unchanged."""
    return {
        "lead_id": lead_id,
        "model": r.model,
        "model_hash": r.model_hash,
        **r.outputs(),
        "ledger": [entry_dict(e) for e in r.ledger] if ledger is None else ledger,
        "predictive": prediction.score if prediction else None,
        "predictive_reason": prediction.reason if prediction else None,
        "inputs": inputs,
        "computed_at": now,
    }


def _history_row(lead_id: int, r: ScoreResult, now: datetime) -> dict[str, Any]:
    outputs = r.outputs()
    del outputs["qualified_at"]  # the crossing itself is the history row's `event`
    return {
        "lead_id": lead_id,
        "model": r.model,
        "model_hash": r.model_hash,
        **outputs,
        "event": r.event,
        "computed_at": now,
    }


def entry_dict(entry: LedgerEntry) -> dict[str, Any]:
    """A ledger line as a score row stores it."""
    return entry.as_dict()


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    return value


def _differs(prev: Any, row: dict[str, Any]) -> bool:
    keys: Iterable[str] = (*OUTPUTS, "model_hash", "ledger", "predictive")
    return any(_norm(getattr(prev, k)) != _norm(row[k]) for k in keys)
