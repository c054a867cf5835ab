"""Lead search: a case-insensitive substring of the email, first or last name, full name
("first last") or company, answered from each lead's search document rather than its row.

- `lead_search_text` (migration 0008) holds each lead's document: email, name and company,
  lower-cased by the database's lower() and joined by char 31, kept in step with `lead` by
  triggers (inserts, updates, merges and deletes alike). A needle is lower-cased by the same
  lower(), so the case folding is the database's: every letter on PostgreSQL, A-Z on SQLite.
- Candidates come from a trigram index when the needle has three characters or more: on SQLite
  the FTS5 table `lead_search` (0007), on PostgreSQL a GIN index (pg_trgm) on the document,
  which the planner uses for rare text and skips for common text. Shorter needles (and stores
  without the index) read the narrow documents, about 100-200 ms for a million leads.

`find` stops after `FEW` matches: up to that many, the list is filtered by the matching ids;
beyond, by a probe of each listed lead's document, walking the list's sort order and stopping at
the page's end (matches are then dense), and the count is one pass over the documents. When
the list also has other filters, an exact count would probe the document of every lead they keep;
it then stops at `bound()` matches and is a lower bound (`Matches.bounded`), unless the
matches were counted on the way (SQLite) and are at most `SPARSE`: then the count goes from the
documents, checking the filters for each match only (`Matches.count_within`). Either
way every candidate is checked with the plain condition (`instr` of the folded needle in the
document, `%` and `_` literal), so the results, their order and their count (when not a
lower bound) are exactly those of a scan of the leads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.store.ingest import LEAD

FTS_TABLE = "lead_search"
TEXT_TABLE = "lead_search_text"
MIN_INDEXED = 3  # characters: the shortest needle a trigram index can answer
FEW = 10_000  # matches listed by id; more are probed lead by lead in the list's order
SPARSE = 4 * FEW  # up to this many matches, a filtered count is driven from the documents
SEPARATOR = "\x1f"  # between the fields of a document: no needle spans two fields

TEXT = sa.table(TEXT_TABLE, sa.column("lead_id", sa.Integer), sa.column("doc", sa.Text))


def features(conn: Connection) -> tuple[bool, bool]:
    """(the store has the search documents, it has a trigram index over them): two catalogue
    look-ups, so a store migrated up or down while the app runs is seen at once."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        query = "SELECT count(*) FROM sqlite_master WHERE name = :n"
        index = FTS_TABLE
    elif dialect == "postgresql":
        query = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relname = :n"""
        index = "ix_lead_search_text_trgm"
    else:
        return False, False
    found = [bool(conn.execute(sa.text(query), {"n": n}).scalar()) for n in (TEXT_TABLE, index)]
    return found[0], found[1]


def indexed(conn: Connection) -> bool:
    """Whether this store has the search documents and a trigram index over them."""
    return all(features(conn))


def escaped(needle: str) -> str:
    """`needle` as a LIKE pattern matching it anywhere, `%`, `_` and `/` literal (escape `/`)."""
    literal = needle.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{literal}%"


def folded(conn: Connection, needle: str) -> str:
    """`needle` lower-cased by the database's lower(), as the documents are."""
    return str(conn.execute(sa.select(sa.func.lower(sa.literal(needle, sa.Text)))).scalar_one())


def scan_condition(needle: str, lead: Any = LEAD) -> sa.ColumnElement[bool]:
    """The plain condition over the lead's own row: some searched column contains the folded
    `needle` as is (for stores without the documents)."""
    full = lead.c.first_name + " " + lead.c.last_name
    columns = (lead.c.email, lead.c.first_name, lead.c.last_name, lead.c.company, full)
    return sa.or_(*(sa.func.lower(c).contains(needle, autoescape=True) for c in columns))


def _contains(dialect: str, doc: sa.ColumnElement[str], needle: str) -> sa.ColumnElement[bool]:
    """The document contains `needle` (already folded), taken literally."""
    if dialect == "postgresql":
        # inline, so the planner sees the pattern (and its selectivity) in any plan
        pattern: Any = sa.bindparam(None, escaped(needle), literal_execute=True)
        return doc.like(pattern, escape="/")
    return sa.func.instr(doc, needle) > 0


@dataclass(frozen=True)
class Matches:
    """The leads a search matches: `ids` when they are at most `FEW` (in no order), else None
    and `condition` probes each lead's document; `known` is their count when found on the way."""

    dialect: str
    needle: str  # folded
    ids: tuple[int, ...] | None
    documents: bool  # the store has the search documents
    known: int | None = None

    def condition(self, lead_id: sa.ColumnElement[int] = LEAD.c.id) -> sa.ColumnElement[bool]:
        """The leads (`lead_id`: the column holding the lead's id) that match."""
        if self.ids is not None:
            return lead_id.in_(self.ids) if self.ids else sa.false()
        if not self.documents:
            inner = LEAD.alias("searched")
            return lead_id.in_(sa.select(inner.c.id).where(scan_condition(self.needle, inner)))
        doc = sa.select(TEXT.c.lead_id).where(
            TEXT.c.lead_id == lead_id, _contains(self.dialect, TEXT.c.doc, self.needle)
        )
        return doc.exists()

    @property
    def bounded(self) -> bool:
        """Whether a count of these matches together with other filters stops at `bound()`:
        they are too many to list by id, so an exact count would probe every kept lead."""
        return self.ids is None

    @property
    def sparse(self) -> bool:
        """Whether these matches, too many to list by id, are known to be few enough that a
        filtered count goes faster from the documents (probing the filters for each match)
        than from the filters (probing the document of each lead they keep)."""
        return self.ids is None and self.known is not None and self.known <= SPARSE

    def count_within(self, conn: Connection, kept: sa.Select[Any]) -> int:
        """How many of the leads `kept` (a query of lead ids, this search among its
        conditions) match: one pass over the documents, `kept` probed for each match only."""
        found = TEXT.alias("found")
        lead_id = kept.selected_columns[0]
        probe = kept.where(lead_id == found.c.lead_id).exists()
        query = (
            sa.select(sa.func.count())
            .select_from(found)
            .where(_contains(self.dialect, found.c.doc, self.needle), probe)
        )
        return int(conn.execute(query).scalar_one())

    def count(self, conn: Connection) -> int:
        """How many leads match: one pass over the documents when they are many and not
        counted on the way."""
        if self.ids is not None:
            return len(self.ids)
        if self.known is not None:
            return self.known
        if not self.documents:
            query = sa.select(sa.func.count()).select_from(LEAD).where(scan_condition(self.needle))
        else:
            query = (
                sa.select(sa.func.count())
                .select_from(TEXT)
                .where(_contains(self.dialect, TEXT.c.doc, self.needle))
            )
        return int(conn.execute(query).scalar_one())


def bound() -> int:
    """The most matches a filtered search counts: a count reaching it is a lower bound."""
    return FEW + 1


def find(conn: Connection, needle: str) -> Matches:
    """The leads whose email, first or last name, full name or company contain `needle`
    (case-insensitive as the database folds case)."""
    dialect = conn.dialect.name
    needle = folded(conn, needle)
    documents, trigrams = features(conn)
    if not documents or SEPARATOR in needle:
        query = sa.select(LEAD.c.id).where(scan_condition(needle)).limit(FEW + 1)
        ids = [int(i) for i in conn.execute(query).scalars()]
        return Matches(dialect, needle, tuple(ids) if len(ids) <= FEW else None, False)
    if dialect != "sqlite":
        # the planner reads the pattern's selectivity: the trigram index for rare text, a
        # (parallel) scan of the documents that stops at the limit for common text
        query = sa.select(TEXT.c.lead_id).where(_contains(dialect, TEXT.c.doc, needle))
        ids = [int(i) for i in conn.execute(query.limit(FEW + 1)).scalars()]
        return Matches(dialect, needle, tuple(ids) if len(ids) <= FEW else None, True)
    # SQLite: candidates in lead id order (FTS5 streams its matches, so the limit stops it
    # early on common text); past `FEW`, the rest is counted from where they stopped, so the
    # documents are read at most once in all
    matches = _contains(dialect, TEXT.c.doc, needle)
    if trigrams and len(needle) >= MIN_INDEXED:
        phrase = '"' + needle.replace('"', '""') + '"'  # an FTS5 string: substring, any column
        candidates = sa.text(
            f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :phrase "
            "ORDER BY rowid LIMIT :limit"
        ).bindparams(phrase=phrase, limit=FEW + 1)
        query = (
            sa.select(TEXT.c.lead_id, matches)
            .where(TEXT.c.lead_id.in_(candidates))
            .order_by(TEXT.c.lead_id)
        )
        rows = conn.execute(query).all()
        ids = [int(i) for i, ok in rows if ok]
        if len(rows) <= FEW:
            return Matches(dialect, needle, tuple(ids), True)
        last = int(rows[-1][0])
    else:
        query = sa.select(TEXT.c.lead_id).where(matches).order_by(TEXT.c.lead_id)
        ids = [int(i) for i in conn.execute(query.limit(FEW + 1)).scalars()]
        if len(ids) <= FEW:
            return Matches(dialect, needle, tuple(ids), True)
        last = ids[-1]
    rest = sa.select(TEXT.c.lead_id).where(TEXT.c.lead_id > last, matches)
    counted = conn.execute(sa.select(sa.func.count()).select_from(rest.subquery())).scalar_one()
    if len(ids) + counted <= FEW:  # few matches among many candidates
        ids += [int(i) for i in conn.execute(rest).scalars()]
        return Matches(dialect, needle, tuple(ids), True)
    return Matches(dialect, needle, None, True, len(ids) + int(counted))
