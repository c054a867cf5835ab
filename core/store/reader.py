"""Read-only queries on the database driver itself, for the commands that must start fast.

Opening a `Store` imports SQLAlchemy and has Alembic bring the schema up to date (~0.5 s before
the first query); `leadhub leads` only reads. The reader opens SQLite (`sqlite:///…`) and
PostgreSQL (`postgresql://…`, psycopg) URLs directly and answers only when the store's schema is
at the newest migration, compared by revision id. Otherwise (a new or older database, another
driver) it answers None and the caller opens the `Store`, which migrates.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

VERSIONS = Path(__file__).parent / "migrations" / "versions"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.MULTILINE)

# The columns `Store.ranked_leads` returns, in its order.
RANKED_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "model",
    "fit",
    "engagement",
    "total",
    "tier",
    "grade",
    "qualified",
    "qualified_at",
    "reason",
    "predictive",
)
_RANKED = """
SELECT lead.id, lead.email, lead.first_name, lead.last_name, lead.company, lead.job_title,
       score.model, score.fit, score.engagement, score.total, score.tier, score.grade,
       score.qualified, score.qualified_at, score.reason, score.predictive
FROM lead LEFT OUTER JOIN score ON score.lead_id = lead.id AND score.model = {param}
ORDER BY score.total DESC NULLS LAST, lead.id
"""

# A DB-API connection: sqlite3's, or psycopg's. psycopg is imported by name when a URL names
# PostgreSQL, as SQLAlchemy loads a dialect's driver: a SQLite store does not pay for it.
Connection = Any
POSTGRESQL_DRIVER = "psycopg"


def schema_head(versions: Path = VERSIONS) -> str | None:
    """The newest migration's revision id, read from the migration files (None: not one head)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = _REVISION.search(text)
        if found is None:
            continue
        revisions.add(found.group(1))
        down = _DOWN.search(text)
        if down is not None:
            parents.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def ranked_leads(url: str, model: str, top: int | None = None) -> list[dict[str, Any]] | None:
    """`Store.ranked_leads` without SQLAlchemy; None when the reader cannot answer for `url`.

    A server that cannot be reached raises the driver's OperationalError.
    """
    with _connect(url) as conn:
        if conn is None or _revision(conn) != schema_head():
            return None
        sql = _RANKED.format(param="?" if isinstance(conn, sqlite3.Connection) else "%s")
        if top:
            sql += f" LIMIT {int(top)}"
        rows = conn.execute(sql, (model,)).fetchall()
    return [_ranked_row(row) for row in rows]


def _ranked_row(row: tuple[Any, ...]) -> dict[str, Any]:
    found = dict(zip(RANKED_COLUMNS, row, strict=True))
    if found["qualified"] is not None:
        found["qualified"] = bool(found["qualified"])
    found["qualified_at"] = _utc(found["qualified_at"])
    return found


def _utc(value: datetime | str | None) -> datetime | None:
    """A stored time (naive UTC; text on SQLite) as an aware UTC datetime, as the Store gives it."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _revision(conn: Connection) -> str | None:
    """The store's Alembic revision; None when it has none (a database leadhub never opened)."""
    if isinstance(conn, sqlite3.Connection):
        exists = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    else:
        exists = "SELECT to_regclass('alembic_version')"
    found = conn.execute(exists).fetchone()
    if found is None or found[0] is None:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


@contextmanager
def _connect(url: str) -> Iterator[Connection | None]:
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is None or not path.is_file():  # in memory, with options, or not created yet
            yield None
            return
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=30)) as lite:
            yield lite
        return
    conninfo = _postgresql_conninfo(url)
    if conninfo is None:
        yield None
        return
    driver = importlib.import_module(POSTGRESQL_DRIVER)
    with driver.connect(conninfo) as pg:
        pg.read_only = True
        yield pg


def _sqlite_path(url: str) -> Path | None:
    """`sqlite:///leadhub.db` -> leadhub.db, `sqlite:////srv/lh.db` -> /srv/lh.db."""
    found = re.fullmatch(r"sqlite(?:\+pysqlite)?:///([^?]+)", url)
    if found is None or found.group(1) == ":memory:":
        return None
    return Path(found.group(1))


def _postgresql_conninfo(url: str) -> str | None:
    """The libpq URI of a PostgreSQL URL the psycopg 3 driver serves; None for another driver."""
    found = re.fullmatch(r"(postgres|postgresql)(\+psycopg)?://(.*)", url, re.DOTALL)
    return f"postgresql://{found.group(3)}" if found else None
