"""Lead search: a case-insensitive substring of the email, first or last name, full name
("first last") or company, answered from a trigram index rather than a scan of every lead.

- SQLite: the FTS5 table `lead_search` (`tokenize='trigram'`, SQLite ≥ 3.34) holds each lead's
  email, full name and company under the lead's id, kept in step with `lead` by triggers
  (inserts, updates, merges and deletes alike).
- PostgreSQL: a GIN index (`gin_trgm_ops`, extension pg_trgm) on `SEARCH_DOCUMENT`, the
  lower-cased email, names and company of a lead.

The index only narrows the candidates: every candidate is checked again with the plain
condition (`lower(column)` contains the lower-cased needle, `%` and `_` literal), so the
results, their order and their count are exactly those of a scan. A trigram index cannot
answer a needle of fewer than three characters; such needles are answered by the scan.
Without the index (SQLite built without FTS5 trigrams, or pg_trgm unavailable) every needle
is answered by the scan.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.ingest import LEAD

FTS_TABLE = "lead_search"
PG_INDEX = "ix_lead_search_trgm"
MIN_INDEXED = 3  # characters: the shortest needle a trigram index can answer

SEARCH_DOCUMENT = (
    "lower(coalesce(lead.email, '') || ' ' || coalesce(lead.first_name, '') || ' ' || "
    "coalesce(lead.last_name, '') || ' ' || coalesce(lead.company, ''))"
)
"""The PostgreSQL index's expression, written exactly as the index has it (less the table
name) so the planner matches it."""

_indexed: dict[tuple[str, str], bool] = {}


def indexed(conn: Connection) -> bool:
    """Whether this store has the search index (looked up once per database and schema)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        where = str(conn.engine.url.database)
        query = sa.text("SELECT 1 FROM sqlite_master WHERE name = :n")
        name = FTS_TABLE
    elif dialect == "postgresql":
        where = f"{conn.engine.url}:{conn.execute(sa.text('SELECT current_schema()')).scalar()}"
        query = sa.text(
            "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :n"
        )
        name = PG_INDEX
    else:
        return False
    key = (dialect, where)
    if key not in _indexed:
        found = conn.execute(query, {"n": name}).first() is not None
        if where in ("", ":memory:", "None") or not found:
            return found  # in-memory stores and stores not yet migrated: look again next time
        _indexed[key] = found
    return _indexed[key]


def escaped(needle: str) -> str:
    """`needle` as a LIKE pattern matching it anywhere, `%`, `_` and `/` literal (escape `/`)."""
    literal = needle.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{literal}%"


def scan_condition(needle: str) -> sa.ColumnElement[bool]:
    """The plain condition: some searched column contains `needle` (lower-cased) as is."""
    needle = needle.lower()
    full = LEAD.c.first_name + " " + LEAD.c.last_name
    columns = (LEAD.c.email, LEAD.c.first_name, LEAD.c.last_name, LEAD.c.company, full)
    return sa.or_(*(sa.func.lower(c).contains(needle, autoescape=True) for c in columns))


def index_condition(dialect: str, needle: str) -> sa.ColumnElement[bool] | None:
    """The candidates the index finds for `needle` (a superset of the matches), or None when
    the index cannot answer it."""
    needle = needle.lower()
    if len(needle) < MIN_INDEXED:
        return None
    if dialect == "sqlite":
        phrase = '"' + needle.replace('"', '""') + '"'  # an FTS5 string: substring, any column
        matched = sa.text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :phrase")
        return LEAD.c.id.in_(matched.bindparams(phrase=phrase))
    if dialect == "postgresql":
        # inline, so the planner sees the pattern even for a prepared statement's plan
        pattern: Any = sa.bindparam("search_pattern", escaped(needle), literal_execute=True)
        return sa.literal_column(SEARCH_DOCUMENT).like(pattern, escape="/")
    return None


def condition(needle: str, dialect: str | None) -> sa.ColumnElement[bool]:
    """Leads whose email, first or last name, full name or company contain `needle`
    (case-insensitive); `dialect` is that of a store with the index, None without it."""
    plain = scan_condition(needle)
    narrowed = index_condition(dialect, needle) if dialect else None
    return plain if narrowed is None else sa.and_(narrowed, plain)
