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

from core.settings import Settings

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
    """An engine for `url`; SQLite gets WAL, foreign keys and a 30 s busy timeout; PostgreSQL
    prepared statements planned for their parameters each run (`prepared_statements` setting)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A statement run again on a connection is prepared there (parsed once), but still planned
    # for its own parameters every time: a generic plan, which PostgreSQL would otherwise settle
    # on after five runs, may be made while a table was empty (without autovacuum nothing
    # refreshes the statistics), and identity lookups during an import became seconds-long
    # scans on one.
    prepared = Settings().prepared_statements
    threshold = PREPARE_AFTER if prepared else None  # None: nothing prepared
    engine = sa.create_engine(
        url, pool_pre_ping=True, connect_args={"prepare_threshold": threshold}
    )
    if prepared:
        sa.event.listen(engine, "connect", _custom_plans)
    return engine


PREPARE_AFTER = 1  # runs of a statement on a connection before it is prepared there


def _custom_plans(dbapi_conn: Any, _record: Any) -> None:
    """Plan each run of a prepared statement for its parameters, for the whole session (set
    outside a transaction, which would undo it on rollback)."""
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        dbapi_conn.execute("SET plan_cache_mode = force_custom_plan")
    finally:
        dbapi_conn.autocommit = autocommit


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
