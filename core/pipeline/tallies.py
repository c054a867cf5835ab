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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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

    def drop(self, conn: Connection) -> None:
        _MATCH.drop(conn, checkfirst=True)

    def _ago(self, seconds: float) -> datetime:
        return self.now - timedelta(seconds=seconds)

    def tallies(self, conn: Connection, low: int, high: int) -> dict[int, LeadTallies]:
        """The tallies of the leads with ids in [low, high] that have activities up to now.

        Two aggregates over the range's activities: rules without a per-day cap counted per lead
        in one GROUP BY (a column per rule, testing the activity's signature against the rule's
        list: no join; the activities come in lead order from the index, so nothing is sorted),
        and the capped ones per lead, rule and day (a few activity types), joined with the
        matches.
        """
        pg = conn.dialect.name == "postgresql"
        mark = "%({})s" if pg else ":{}"
        outbound = ", ".join(f"'{t}'" for t in sorted(OUTBOUND_TYPES))
        params: dict[str, Any] = {"low": low, "high": high, "now": self._moment(self.now, pg)}
        sums, texts = [], []
        for rule, (cap, window, live) in sorted(self._bounds.items()):
            if cap is not None:
                continue
            # per rule: its matches within the window (kept) and within expiry too (live)
            if pg:  # one array: the server hashes it
                params[f"s{rule}"] = self._signatures[rule]
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
            texts.append(
                f"CASE WHEN {kept} > 0 THEN '{rule}:' || {kept} || ':' || {alive} || ' ' "
                "ELSE '' END"
            )
        where = (
            f"a.lead_id BETWEEN {mark.format('low')} AND {mark.format('high')} "
            f"AND a.occurred_at <= {mark.format('now')}"
        )
        # Per lead one row: its tallies as text ("rule:kept:live ..."), which is also the key
        # under which equal inputs share one computed score, and its last activity.
        text = " || ".join(texts) if texts else "''"
        sql = f"""
            SELECT lead_id, {text}, last_at
            FROM (
                SELECT a.lead_id AS lead_id, {"".join(f"{x}, " for x in sums)}
                       MAX(CASE WHEN a.type NOT IN ({outbound}) THEN a.occurred_at END)
                           AS last_at
                FROM activity a
                WHERE {where}
                GROUP BY a.lead_id
            ) t
        """
        found: dict[int, LeadTallies] = {}
        # The DBAPI cursor directly: these rows need no type processing, and skipping it is a
        # good part of the time on a million leads.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            capped: Sequence[Any] = []
            if any(cap is not None for cap, _, _ in self._bounds.values()):
                cursor.execute(self._capped(pg, where), params)
                capped = cursor.fetchall()
        finally:
            cursor.close()
        extra: dict[int, str] = {}
        for lead_id, rule, kept, live in capped:
            if kept > 0:
                extra[lead_id] = f"{extra.get(lead_id, '')}{rule}:{kept}:{live} "
        self._parsed.clear()
        self._inputs.clear()
        for lead_id, tallied, last in rows:
            found[lead_id] = LeadTallies(tallied + extra.get(lead_id, ""), last)
        return found

    def _capped(self, pg: bool, where: str) -> str:
        """Per lead and capped rule: the matches kept within the window after the per-day cap,
        and of those the ones within expiry."""
        day = "CAST(a.occurred_at AS DATE)" if pg else "substr(a.occurred_at, 1, 10)"
        return f"""
            SELECT lead_id, rule,
                   SUM(CASE WHEN n_window < cap THEN n_window ELSE cap END),
                   SUM(CASE WHEN n_live < cap THEN n_live ELSE cap END)
            FROM (
                SELECT a.lead_id AS lead_id, m.rule AS rule, m.cap AS cap,
                       SUM(CASE WHEN a.occurred_at >= m.window_from THEN 1 ELSE 0 END)
                           AS n_window,
                       SUM(CASE WHEN a.occurred_at >= m.live_from THEN 1 ELSE 0 END) AS n_live
                FROM activity a
                JOIN score_rule_match m ON m.signature_id = a.signature_id
                WHERE m.cap IS NOT NULL AND {where}
                GROUP BY a.lead_id, m.rule, m.cap, {day}
            ) t
            GROUP BY lead_id, rule
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

    def inputs(self, m: int, text: str, last: Any) -> str:
        """What model `m` scores a lead from, as text: its inactivity step and its tallies
        under the model (rule index within the model, kept, live). Stored with the score, it
        tells a later full rescore under the same model that the lead would score the same."""
        step = self.step(m, last)
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


def ranges(ids: Sequence[int], size: int) -> Iterator[tuple[int, int, int]]:
    """(low id, high id, number of leads) of consecutive slices of sorted `ids`."""
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield chunk[0], chunk[-1], len(chunk)
