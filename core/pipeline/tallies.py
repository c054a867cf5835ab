"""Full rescore, set-based: the database counts what each engagement rule keeps, in one pass.

For a range of leads, one aggregate query tests each activity's signature against the
signatures each rule matches (rules are matched once per activity signature, not per activity)
and returns one row per lead: per rule, the matches kept within the rule's window after its
per-day cap and how many of those are also within the model's expiry (as text, which also keys
equal inputs), and the lead's last activity. `scoring.tallied` turns these into scores with the
engine's arithmetic. Plain SQL on both databases: the work is a few GROUP BYs (and, for rules
with a per-day cap, one join) the database does in C; a columnar engine (DuckDB, polars)
would first have to read the same rows out of the database, and would add a dependency.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.store.bulk import driver_cursor
from core.store.signatures import SIGNATURE, load_signatures, sign_activities
from core.store.tables import UTCDateTime
from scoring.engine import OUTBOUND_TYPES
from scoring.model import ScoringModel
from scoring.tallied import TallyScorer

_EPOCH = datetime(1, 1, 2, tzinfo=UTC)  # before any activity: "no window"
_MATCH = sa.Table(
    "score_rule_match",
    sa.MetaData(),
    sa.Column("signature_id", sa.Integer, nullable=False),
    sa.Column("rule", sa.Integer, nullable=False),
    sa.Column("cap", sa.Integer),
    sa.Column("window_from", UTCDateTime, nullable=False),
    sa.Column("live_from", UTCDateTime, nullable=False),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True, slots=True)
class LeadTallies:
    """A lead's tallies as text (`RulePlan.parse` reads it) and its last activity (not our
    sends) as the database gives it back (text on SQLite)."""

    text: str
    last: Any


class RulePlan:
    """The (signature, rule) pairs of every tallyable model, loaded into a temporary table."""

    def __init__(self, models: Sequence[ScoringModel], now: datetime) -> None:
        self.models = list(models)
        self.scorers = [TallyScorer(m) for m in models]
        self.now = now
        self.rules: list[tuple[int, int]] = []  # global rule id -> (model index, rule index)
        self._matched: set[int] = set()  # signature ids matched against the rules
        self._windows: list[list[tuple[int | None, datetime, datetime]]] = []
        self._first: dict[tuple[int, int], int] = {}
        self._aware: list[list[datetime]] = []
        self._naive: list[list[datetime]] = []
        self._text: list[list[str]] = []
        self._thresholds()
        self._parsed: dict[str, dict[int, tuple[tuple[int, int, int], ...]]] = {}
        # global rule id -> (per-day cap, window start, expiry start)
        self._bounds: dict[int, tuple[int | None, datetime, datetime]] = {}
        self._signatures: dict[int, list[int]] = {}  # global rule id -> its signature ids
        self._inputs: dict[tuple[int, str, int | None], str] = {}  # see `inputs`
        self.matches: list[dict[str, Any]] = []  # the temporary table's rows, in insert order

    def _rule_id(self, m: int, i: int) -> int:
        key = (m, i)
        if key not in self._first:
            self._first[key] = len(self.rules)
            self.rules.append(key)
        return self._first[key]

    def load(self, conn: Connection) -> None:
        """Sign unsigned activities, match every signature once, fill the temporary table."""
        self._windows = []
        for scorer in self.scorers:
            compiled = scorer.compiled
            per_rule = []
            for rule in compiled.engagement:
                window = _EPOCH if rule.window is None else self._ago(rule.window)
                live = window
                if rule.fades and compiled.expire is not None:
                    live = max(window, self._ago(compiled.expire))
                per_rule.append((rule.per_day, window, live))
            self._windows.append(per_rule)
        _MATCH.drop(conn, checkfirst=True)
        _MATCH.create(conn)
        self._match_new(conn)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE score_rule_match"))

    def refresh(self, conn: Connection) -> None:
        """Match the signatures stored since `load`: a page pulled while the rescore runs may
        bring activity of a kind never seen before. The new ones are told from the set already
        matched, not by a highest id: on PostgreSQL ids come from a sequence, committed out of
        order."""
        self._match_new(conn)

    def _match_new(self, conn: Connection) -> None:
        sign_activities(conn)
        signatures = load_signatures(conn)
        if self._matched:
            stored = conn.execute(sa.select(SIGNATURE.c.id)).scalars()
            new = sorted(set(stored) - self._matched)
            if not new:
                return
            signatures = load_signatures(conn, new)
        rows = []
        for sig, kind, properties in signatures:
            self._matched.add(sig)
            for m, scorer in enumerate(self.scorers):
                for i in scorer.compiled.rules_for(kind, properties):
                    cap, window, live = self._windows[m][i]
                    self._bounds[self._rule_id(m, i)] = (cap, window, live)
                    self._signatures.setdefault(self._rule_id(m, i), []).append(sig)
                    rows.append(
                        {
                            "signature_id": sig,
                            "rule": self._rule_id(m, i),
                            "cap": cap,
                            "window_from": window,
                            "live_from": live,
                        }
                    )
        if rows:
            conn.execute(_MATCH.insert(), rows)
            self.matches += rows

    def drop(self, conn: Connection) -> None:
        _MATCH.drop(conn, checkfirst=True)

    def _ago(self, seconds: float) -> datetime:
        return self.now - timedelta(seconds=seconds)

    def tallies(
        self, conn: Connection, low: int, high: int, only: Sequence[int] | None = None
    ) -> dict[int, LeadTallies]:
        """The tallies of the leads with ids in [low, high] that have activities up to now
        (`only`: of those, the leads listed).

        Two aggregates over the range's activities: rules without a per-day cap counted per lead
        in one GROUP BY (a column per rule, testing the activity's signature against the rule's
        list: no join; the activities come in lead order from the index, so nothing is sorted),
        and the capped ones per lead, rule and day (a few activity types), joined with the
        matches.
        """
        pg = conn.dialect.name == "postgresql"
        params, counted, texts, where = self._counts(pg, low, high, only)
        # Per lead one row: its tallies as text ("rule:kept:live ..."), which is also the key
        # under which equal inputs share one computed score, and its last activity.
        text = " || ".join(texts) if texts else "''"
        sql = f"SELECT lead_id, {text}, last_at FROM ({counted}) t"
        found: dict[int, LeadTallies] = {}
        queries = [sql, self._capped(pg, where)] if self._any_capped() else [sql]
        rows, *capped = self._read(conn, params, queries)
        extra: dict[int, str] = {}
        for lead_id, rule, kept, live in capped[0] if capped else ():
            if kept > 0:
                extra[lead_id] = f"{extra.get(lead_id, '')}{rule}:{kept}:{live} "
        for lead_id, tallied, last in rows:
            found[lead_id] = LeadTallies(tallied + extra.get(lead_id, ""), last)
        return found

    def candidates(self, conn: Connection, low: int, high: int) -> list[int]:
        """The leads with ids in [low, high] that would not score as stored, because one of the
        plan's models does not hold the lead's score from the same inputs (`inputs`, built here
        in SQL to the same text), under the model's present hash and without a predictive
        score. Under a model with a segment, a lead with no score counts as scored as stored:
        it was outside the segment when last scored under the model's present hash, and stays
        so until its fields move, which marks it dirty. One query (`compare`): the database
        compares, so neither the stored scores nor the other leads' rows are read into Python.
        The leads marked dirty are not told apart: the caller adds those it clears.

        On PostgreSQL without a parallel plan, for the rest of the transaction (the range's,
        when several connections score ranges side by side): its workers would each compute
        the range's whole aggregate, on cores the other connections are busy on."""
        pg = conn.dialect.name == "postgresql"
        sql, params = self.compare(pg, low, high)
        if pg:
            conn.execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))
        return self._ids(conn, sql, params)

    def compare(self, pg: bool, low: int, high: int) -> tuple[str, dict[str, Any]]:
        """`candidates`' query and its parameters, as the plan stands: a `Lookahead` builds it
        here and runs it on a connection of its own."""
        mark = "%({})s" if pg else ":{}"
        params, counted, _texts, where = self._counts(pg, low, high)
        kept: dict[int, tuple[str, str]] = {}  # global rule id -> its (kept, live) columns
        for rule, (cap, window, live) in sorted(self._bounds.items()):
            if cap is None:
                kept[rule] = (f"t.k{rule}", f"t.l{rule}" if live != window else f"t.k{rule}")
            else:
                kept[rule] = (f"c.k{rule}", f"c.l{rule}")
        joins, same = [], []
        for m, model in enumerate(self.models):
            local = sorted((i, kept[g]) for g, (n, i) in enumerate(self.rules) if n == m)
            parts = " || ".join(self._fragment(str(i), k, v) for i, (k, v) in local) or "''"
            params[f"model{m}"], params[f"hash{m}"] = model.name, model.content_hash
            steps = [
                f"WHEN t.last_at <= {mark.format(f'step{m}_{k}')} THEN '{k}'"
                for k in range(len(self.scorers[m].steps))
            ]
            for k, moment in enumerate(self._aware[m]):
                params[f"step{m}_{k}"] = self._moment(moment, pg)
            step = (
                f"CASE WHEN t.last_at IS NULL THEN '0' {' '.join(steps)} ELSE 'None' END"
                if steps
                else "'None'"
            )
            joins.append(
                f"LEFT JOIN score s{m} ON s{m}.lead_id = l.id "
                f"AND s{m}.model = {mark.format(f'model{m}')}"
            )
            # Under a model with a segment, no score means the lead was outside the segment
            # when last scored under this hash; it is still outside unless its fields moved,
            # which marks it dirty (and the caller adds the dirty leads).
            outside = f"WHEN s{m}.id IS NULL THEN 1 " if self.scorers[m].segmented else ""
            same.append(
                f"CASE {outside}WHEN s{m}.model_hash = {mark.format(f'hash{m}')} "
                f"AND s{m}.predictive IS NULL "
                f"AND s{m}.inputs = {step} || '|' || rtrim({parts}, ' ') THEN 1 ELSE 0 END"
            )
        capped = ""
        if self._any_capped():
            # per lead, a column pair per capped rule, summed straight from the per-day counts
            pivot = ", ".join(
                f"SUM(CASE WHEN rule = {r} THEN {_least('n_window', 'cap')} END) AS k{r}, "
                f"SUM(CASE WHEN rule = {r} THEN {_least('n_live', 'cap')} END) AS l{r}"
                for r, (cap, _, _) in sorted(self._bounds.items())
                if cap is not None
            )
            capped = (
                f"LEFT JOIN (SELECT lead_id, {pivot} FROM ({self._per_day(pg, where)}) x "
                "GROUP BY lead_id) c ON c.lead_id = l.id"
            )
        sql = f"""
            SELECT l.id
            FROM lead l
            LEFT JOIN ({counted}) t ON t.lead_id = l.id
            {capped}
            {" ".join(joins)}
            WHERE l.id BETWEEN {mark.format("low")} AND {mark.format("high")}
              AND {" + ".join(same)} < {len(self.models)}
            ORDER BY l.id
        """
        return sql, params

    @staticmethod
    def _ids(conn: Connection, sql: str, params: dict[str, Any]) -> list[int]:
        """The ids `compare`'s query returns, on `conn` (any thread's: nothing of the plan's
        is touched)."""
        (rows,) = _fetch(conn, params, [sql])
        return [row[0] for row in rows]

    def _read(
        self, conn: Connection, params: dict[str, Any], queries: Sequence[str]
    ) -> list[Sequence[Any]]:
        """The rows of each of a range's `queries`, through the driver's cursor: these rows
        need no type processing, and skipping it is a good part of the time on a million
        leads. The texts parsed for the previous range are forgotten (bounds memory)."""
        self._parsed.clear()
        self._inputs.clear()
        return _fetch(conn, params, queries)

    @staticmethod
    def _fragment(name: str, kept: str, live: str) -> str:
        """SQL: a rule's "name:kept:live " when it keeps a match, else empty text."""
        return f"CASE WHEN {kept} > 0 THEN '{name}:' || {kept} || ':' || {live} || ' ' ELSE '' END"

    def _any_capped(self) -> bool:
        return any(cap is not None for cap, _, _ in self._bounds.values())

    def _counts(
        self, pg: bool, low: int, high: int, only: Sequence[int] | None = None
    ) -> tuple[dict[str, Any], str, list[str], str]:
        """(parameters, the per-lead aggregate of the uncapped rules' counts `k<rule>` and
        `l<rule>` and the last activity `last_at`, each uncapped rule's text fragment, the
        condition on the range's activities `a`; `only`: of the leads listed)."""
        mark = "%({})s" if pg else ":{}"
        outbound = ", ".join(f"'{t}'" for t in sorted(OUTBOUND_TYPES))
        params: dict[str, Any] = {"low": low, "high": high, "now": self._moment(self.now, pg)}
        sums, texts = [], []
        for rule, (cap, window, live) in sorted(self._bounds.items()):
            if cap is not None:
                continue
            # per rule: its matches within the window (kept) and within expiry too (live)
            if pg:  # one array: the server hashes it
                params[f"s{rule}"] = list(self._signatures[rule])  # a copy: see `Lookahead`
                matches = f"a.signature_id = ANY({mark.format(f's{rule}')})"
            else:  # integers, written out: SQLite makes the list a temporary index
                matches = f"a.signature_id IN ({', '.join(map(str, self._signatures[rule]))})"
            for name, start in (("k", window), ("l", live)):
                if name == "l" and live == window:
                    continue
                test = matches
                if start != _EPOCH:
                    params[f"{name}{rule}"] = self._moment(start, pg)
                    test += f" AND a.occurred_at >= {mark.format(f'{name}{rule}')}"
                sums.append(f"SUM(CASE WHEN {test} THEN 1 ELSE 0 END) AS {name}{rule}")
            kept, alive = f"k{rule}", f"l{rule}" if live != window else f"k{rule}"
            texts.append(self._fragment(str(rule), kept, alive))
        where = (
            f"a.lead_id BETWEEN {mark.format('low')} AND {mark.format('high')} "
            f"AND a.occurred_at <= {mark.format('now')}"
        )
        if only is not None and few_of(only, low, high):
            # a few leads of the range: their activities through the lead index, not the range's
            if pg:
                params["only"] = list(only)
                where += f" AND a.lead_id = ANY({mark.format('only')})"
            else:
                where += f" AND a.lead_id IN ({', '.join(str(int(i)) for i in only)})"
        counted = f"""
            SELECT a.lead_id AS lead_id, {"".join(f"{x}, " for x in sums)}
                   MAX(CASE WHEN a.type NOT IN ({outbound}) THEN a.occurred_at END) AS last_at
            FROM activity a
            WHERE {where}
            GROUP BY a.lead_id
        """
        return params, counted, texts, where

    def _capped(self, pg: bool, where: str) -> str:
        """Per lead and capped rule: the matches kept within the window after the per-day cap,
        and of those the ones within expiry."""
        return f"""
            SELECT lead_id, rule,
                   SUM({_least("n_window", "cap")}) AS kept, SUM({_least("n_live", "cap")}) AS live
            FROM ({self._per_day(pg, where)}) t
            GROUP BY lead_id, rule
        """

    def _per_day(self, pg: bool, where: str) -> str:
        """Per lead, capped rule and day: the rule's cap and its matches within the window
        (`n_window`) and within expiry (`n_live`)."""
        day = "CAST(a.occurred_at AS DATE)" if pg else "substr(a.occurred_at, 1, 10)"
        # the capped rules' signatures, written out: the rows are read through
        # ix_activity_signature_lead, not every activity of the range again
        capped = sorted(
            {s for r, (cap, _, _) in self._bounds.items() if cap is not None
             for s in self._signatures[r]}
        )  # fmt: skip
        return f"""
            SELECT a.lead_id AS lead_id, m.rule AS rule, m.cap AS cap,
                   SUM(CASE WHEN a.occurred_at >= m.window_from THEN 1 ELSE 0 END) AS n_window,
                   SUM(CASE WHEN a.occurred_at >= m.live_from THEN 1 ELSE 0 END) AS n_live
            FROM activity a
            JOIN score_rule_match m ON m.signature_id = a.signature_id
            WHERE a.signature_id IN ({", ".join(map(str, capped))}) AND m.cap IS NOT NULL
                  AND {where}
            GROUP BY a.lead_id, m.rule, m.cap, {day}
        """

    def _moment(self, moment: datetime, pg: bool) -> Any:
        """A time as the database compares it with stored ones: naive UTC, on SQLite as the text
        SQLAlchemy stores."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return naive if pg else naive.strftime("%Y-%m-%d %H:%M:%S.%f")

    def parse(self, text: str) -> dict[int, tuple[tuple[int, int, int], ...]]:
        """Per model index, the (rule index, kept, live) of a lead's tallies text, rule order."""
        parsed = self._parsed.get(text)
        if parsed is None:
            by_model: dict[int, list[tuple[int, int, int]]] = {}
            for item in text.split():
                rule, kept, live = item.split(":")
                m, i = self.rules[int(rule)]
                by_model.setdefault(m, []).append((i, int(kept), int(live)))
            parsed = self._parsed[text] = {m: tuple(sorted(v)) for m, v in by_model.items()}
        return parsed

    def inputs(self, m: int, text: str, step: int | None) -> str:
        """What model `m` scores a lead from, as text: its inactivity step (`step`) and its
        tallies under the model (rule index within the model, kept, live). Stored with the
        score, it tells a later full rescore under the same model that the lead would score the
        same."""
        key = (m, text, step)
        found = self._inputs.get(key)
        if found is None:
            parsed = self.parse(text).get(m, ())
            tallied = " ".join(f"{i}:{kept}:{live}" for i, kept, live in parsed)
            found = self._inputs[key] = f"{step}|{tallied}"
        return found

    def step(self, m: int, last: Any) -> int | None:
        """The inactivity step (index, deepest first) model `m` reaches for a lead whose last
        activity is `last` as the database gave it back (text on SQLite, or a datetime)."""
        steps = self.scorers[m].steps
        if last is None:  # no activity of its own: inactive for ever
            return 0 if steps else None
        if not steps:
            return None
        if isinstance(last, str):
            moments: list[Any] = self._text[m]
        elif last.tzinfo is None:
            moments = self._naive[m]
        else:
            moments = self._aware[m]
        return next((k for k, moment in enumerate(moments) if last <= moment), None)

    def _thresholds(self) -> None:
        """Per model, the last-activity moment at or before which each step is reached."""
        for scorer in self.scorers:
            aware = [self.now - timedelta(seconds=after) for after in scorer.steps]
            naive = [m.astimezone(UTC).replace(tzinfo=None) for m in aware]
            self._aware.append(aware)
            self._naive.append(naive)
            # SQLAlchemy's SQLite storage format, whose text compares as the time does
            self._text.append([m.strftime("%Y-%m-%d %H:%M:%S.%f") for m in naive])


class Lookahead:
    """Which leads of the next range to score (`RulePlan.candidates`), found on a connection
    and a thread of its own while the caller scores this range: the comparison is most of a
    full rescore under unchanged models, and the database runs it on one core while the
    previous range's leads are scored and written on the other.

    Its reads are a snapshot taken before the caller clears the range's dirty flags; that is
    why the caller adds the leads it clears (a page that moves a lead marks it dirty) and
    reads the tallies of all the leads it scores itself, after the clear. A lead neither
    among the candidates nor cleared scored as stored then, and no page has moved it since
    (or an incremental pass took it and scores it)."""

    def __init__(self, engine: Engine, plan: RulePlan) -> None:
        self._plan = plan
        self._conn = engine.connect()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadhub-lookahead")
        self._sent = 0  # of the plan's matches, how many this connection's table holds
        self._pg = engine.dialect.name == "postgresql"

    def submit(self, low: int, high: int) -> Future[list[int]]:
        """Start finding the candidates of [low, high]; the query is built here, from the plan
        as it stands (its matches so far), so the thread reads nothing the caller changes."""
        sql, params = self._plan.compare(self._pg, low, high)
        rows = self._plan.matches[self._sent :]
        first = self._sent == 0
        self._sent += len(rows)
        return self._pool.submit(self._find, first, rows, sql, params)

    def _find(
        self, first: bool, rows: list[dict[str, Any]], sql: str, params: dict[str, Any]
    ) -> list[int]:
        conn = self._conn
        with conn.begin():
            if first:
                _MATCH.drop(conn, checkfirst=True)
                _MATCH.create(conn)
            if rows:
                conn.execute(_MATCH.insert(), rows)
            if self._pg:
                if first:
                    conn.execute(sa.text("ANALYZE score_rule_match"))
                # No parallel plan: its workers each compute the range's whole aggregate (the
                # activities' side is not split), on the core the caller is scoring on.
                conn.execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))
            return RulePlan._ids(conn, sql, params)

    def close(self) -> None:
        """Wait for the thread, drop its table and give its connection back."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            with self._conn.begin():
                _MATCH.drop(self._conn, checkfirst=True)
        finally:
            self._conn.close()


def _fetch(conn: Connection, params: dict[str, Any], queries: Sequence[str]) -> list[Sequence[Any]]:
    """The rows of each of `queries`, through the driver's cursor, JIT off (PostgreSQL)."""
    with driver_cursor(conn) as cursor:
        _no_jit(cursor, conn.dialect.name == "postgresql")
        found = []
        for sql in queries:
            cursor.execute(sql, params)
            found.append(cursor.fetchall())
    return found


def _no_jit(cursor: Any, pg: bool) -> None:
    """PostgreSQL: no JIT compilation for the rest of the transaction. These queries are cheap
    per row but costed high (a range's activities), so the server compiled them on every range:
    0.7 s of a 0.8 s query at 20,000 leads."""
    if pg:
        cursor.execute("SET LOCAL jit = off")


def _least(count: str, cap: str) -> str:
    """SQL: the smaller of a day's count and the cap."""
    return f"CASE WHEN {count} < {cap} THEN {count} ELSE {cap} END"


def few_of(only: Sequence[int], low: int, high: int) -> bool:
    """Whether the ids `only` are few enough of the range [low, high] to be read by id (through
    an index) rather than the whole range read: at most half of it."""
    return len(only) <= (high - low + 1) // 2


def ranges(ids: Sequence[int], size: int) -> Iterator[tuple[int, int, int]]:
    """(low id, high id, number of leads) of consecutive slices of sorted `ids`."""
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield chunk[0], chunk[-1], len(chunk)
