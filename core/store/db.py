"""Engine creation and migrations: SQLite (WAL, foreign keys, busy timeout) or PostgreSQL by URL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("leadhub.db")
MIGRATIONS = Path(__file__).parent / "migrations"
ANALYZE_FROM_PAGES = 8  # smaller tables are read whole whatever the plan: no statistics needed


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a 30 s busy timeout."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # psycopg prepares a statement after five runs, and PostgreSQL may then pin it to a generic
    # plan made while a table was empty (without autovacuum nothing refreshes the statistics):
    # identity lookups during an import became seconds-long scans. Without server-side prepared
    # statements every query is planned for its own parameters.
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"prepare_threshold": None})


def analyze_grown(conn: Connection, tables: Sequence[str]) -> list[str]:
    """ANALYZE those of `tables` that have doubled in size since their statistics were taken (or
    never had any), and return their names; PostgreSQL only, a no-op elsewhere.

    Without autovacuum nothing else refreshes the statistics, and a plan made for a table of
    1,000 rows scans a table of 1,000,000. Doubling bounds the cost: an import that grows a table
    to N rows analyzes it about log2(N) times, each a fixed-size sample.
    """
    if conn.dialect.name != "postgresql":
        return []
    grown = (
        conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_class c WHERE c.oid = ANY(CAST(:tables AS regclass[])) "
                "AND pg_relation_size(c.oid) >= GREATEST(2 * CAST(c.relpages AS bigint), :least) "
                "* CAST(current_setting('block_size') AS bigint) ORDER BY c.relname"
            ),
            {"tables": list(tables), "least": ANALYZE_FROM_PAGES},
        )
        .scalars()
        .all()
    )
    for name in grown:
        conn.execute(sa.text(f'ANALYZE "{name}"'))
    return list(grown)


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every pending migration (run automatically when the store opens)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Workers opening a fresh database together migrate one at a time.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7142026)"))
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
