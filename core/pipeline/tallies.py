"""Full rescore, set-based: the database counts what each engagement rule keeps, in one pass.

For a range of leads, one aggregate query joins the activities with the (signature, rule)
pairs that match (rules are matched once per activity signature, not per activity) and returns
one row per lead: per rule, the matches kept within the rule's window after its per-day cap and
how many of those are also within the model's expiry (as text, which also keys equal inputs),
and the lead's last activity. `scoring.tallied` turns these into scores with the engine's
arithmetic. Plain SQL on both databases: the work is one join and a few GROUP BYs the database
does in C; a columnar engine (DuckDB, polars) would first have to read the same rows out of the
database, and would add a dependency.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.signatures import load_signatures, sign_activities
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
        self._rows: list[dict[str, Any]] = []
        self._first: dict[tuple[int, int], int] = {}
        self._aware: list[list[datetime]] = []
        self._naive: list[list[datetime]] = []
        self._text: list[list[str]] = []
        self._thresholds()
        self._naive_now = now.astimezone(UTC).replace(tzinfo=None)
        self._parsed: dict[str, dict[int, tuple[tuple[int, int, int], ...]]] = {}

    def _rule_id(self, m: int, i: int) -> int:
        key = (m, i)
        if key not in self._first:
            self._first[key] = len(self.rules)
            self.rules.append(key)
        return self._first[key]

    def load(self, conn: Connection) -> None:
        """Sign unsigned activities, match every signature once, fill the temporary table."""
        sign_activities(conn)
        bounds = []
        for scorer in self.scorers:
            compiled = scorer.compiled
            per_rule = []
            for rule in compiled.engagement:
                window = _EPOCH if rule.window is None else self._ago(rule.window)
                live = window
                if rule.fades and compiled.expire is not None:
                    live = max(window, self._ago(compiled.expire))
                per_rule.append((rule.per_day, window, live))
            bounds.append(per_rule)
        for sig, kind, properties in load_signatures(conn):
            for m, scorer in enumerate(self.scorers):
                for i in scorer.compiled.rules_for(kind, properties):
                    cap, window, live = bounds[m][i]
                    self._rows.append(
                        {
                            "signature_id": sig,
                            "rule": self._rule_id(m, i),
                            "cap": cap,
                            "window_from": window,
                            "live_from": live,
                        }
                    )
        _MATCH.drop(conn, checkfirst=True)
        _MATCH.create(conn)
        if self._rows:
            conn.execute(_MATCH.insert(), self._rows)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE score_rule_match"))

    def drop(self, conn: Connection) -> None:
        _MATCH.drop(conn, checkfirst=True)

    def _ago(self, seconds: float) -> datetime:
        return self.now - timedelta(seconds=seconds)

    def tallies(self, conn: Connection, low: int, high: int) -> dict[int, LeadTallies]:
        """The tallies of the leads with ids in [low, high] that have activities up to now."""
        pg = conn.dialect.name == "postgresql"
        day = "CAST(a.occurred_at AS DATE)" if pg else "substr(a.occurred_at, 1, 10)"
        outbound = ", ".join(f"'{t}'" for t in sorted(OUTBOUND_TYPES))
        mark = "%({})s" if pg else ":{}"
        # Per lead one row: its tallies as text ("rule:kept:live ..."), which is also the key
        # under which equal inputs share one computed score, and its last activity.
        tally = "CAST(rule AS TEXT) || ':' || kept || ':' || live"
        concat = f"string_agg({tally}, ' ' ORDER BY rule)" if pg else f"group_concat({tally}, ' ')"
        sql = f"""
            SELECT lead_id, {concat}, MAX(last_at)
            FROM (
                SELECT lead_id, rule,
                       SUM(CASE WHEN cap IS NULL OR n_window < cap THEN n_window ELSE cap END)
                           AS kept,
                       SUM(CASE WHEN cap IS NULL OR n_live < cap THEN n_live ELSE cap END)
                           AS live,
                       MAX(last_at) AS last_at
                FROM (
                    SELECT a.lead_id AS lead_id, m.rule AS rule, m.cap AS cap,
                           SUM(CASE WHEN a.occurred_at >= m.window_from THEN 1 ELSE 0 END)
                               AS n_window,
                           SUM(CASE WHEN a.occurred_at >= m.live_from THEN 1 ELSE 0 END)
                               AS n_live,
                           MAX(CASE WHEN a.type NOT IN ({outbound}) THEN a.occurred_at END)
                               AS last_at
                    FROM activity a
                    LEFT JOIN score_rule_match m ON m.signature_id = a.signature_id
                    WHERE a.lead_id BETWEEN {mark.format("low")} AND {mark.format("high")}
                      AND a.occurred_at <= {mark.format("now")}
                    GROUP BY a.lead_id, m.rule, m.cap,
                             CASE WHEN m.cap IS NULL THEN NULL ELSE {day} END
                ) t
                GROUP BY lead_id, rule
            ) u
            GROUP BY lead_id
        """
        now = self._naive_now.strftime("%Y-%m-%d %H:%M:%S.%f") if not pg else self._naive_now
        # The DBAPI cursor directly: these rows need no type processing, and skipping it is a
        # good part of the time on a million leads.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, {"low": low, "high": high, "now": now})
        rows = cursor.fetchall()
        cursor.close()
        self._parsed.clear()
        return {lead_id: LeadTallies(text or "", last) for lead_id, text, last in rows}

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
