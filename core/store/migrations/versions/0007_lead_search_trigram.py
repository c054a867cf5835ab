"""lead search: an FTS5 trigram table (SQLite) or a pg_trgm GIN index (PostgreSQL)

Revision ID: 0007_lead_search_trigram
Revises: 0006_activity_signature

Filled from the leads present (the backfill); from then on SQLite's triggers keep the FTS5
table in step with `lead`, and PostgreSQL keeps its index itself. Where the index cannot be
built (SQLite without FTS5 trigrams, which need 3.34; pg_trgm not installable) a note is
logged and search keeps scanning the leads.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0007_lead_search_trigram"
down_revision = "0006_activity_signature"
branch_labels = None
depends_on = None

log = logging.getLogger("leadhub.store")

NAME = "coalesce({p}first_name, '') || ' ' || coalesce({p}last_name, '')"
SQLITE_ROW = f"{{p}}id, {{p}}email, {NAME}, {{p}}company"
SQLITE_TRIGGERS = {
    "lead_search_insert": "AFTER INSERT ON lead BEGIN {insert_new}; END",
    "lead_search_delete": "AFTER DELETE ON lead BEGIN {delete_old}; END",
    "lead_search_update": (
        "AFTER UPDATE OF id, email, first_name, last_name, company ON lead "
        "BEGIN {delete_old}; {insert_new}; END"
    ),
}
PG_DOCUMENT = (
    "lower(coalesce(email, '') || ' ' || coalesce(first_name, '') || ' ' || "
    "coalesce(last_name, '') || ' ' || coalesce(company, ''))"
)


def _sqlite_upgrade() -> None:
    conn = op.get_bind()
    try:
        with conn.begin_nested():
            conn.execute(
                sa.text(
                    "CREATE VIRTUAL TABLE lead_search USING fts5("
                    "email, name, company, tokenize='trigram')"
                )
            )
    except sa.exc.OperationalError as exc:
        version = conn.execute(sa.text("SELECT sqlite_version()")).scalar()
        log.warning(
            "lead search keeps scanning every lead: SQLite %s has no FTS5 trigram tokenizer "
            "(3.34 or later with FTS5 is needed): %s",
            version,
            exc.orig,
        )
        return
    columns = "rowid, email, name, company"
    new_row = SQLITE_ROW.format(p="new.")
    parts = {
        "insert_new": f"INSERT INTO lead_search({columns}) VALUES ({new_row})",
        "delete_old": "DELETE FROM lead_search WHERE rowid = old.id",
    }
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body.format(**parts)}")
    every = SQLITE_ROW.format(p="")
    op.execute(f"INSERT INTO lead_search({columns}) SELECT {every} FROM lead")


def _pg_upgrade() -> None:
    conn = op.get_bind()
    find = "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
    schema = conn.execute(sa.text(f"{find} WHERE e.extname = 'pg_trgm'")).scalar()
    if schema is None:
        try:
            with conn.begin_nested():
                # in `public` when there is one: the extension outlives any one schema
                has_public = conn.execute(
                    sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")
                ).first()
                where = " SCHEMA public" if has_public else ""
                conn.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS pg_trgm{where}"))
        except sa.exc.DBAPIError as exc:
            log.warning(
                "lead search keeps scanning every lead: the pg_trgm extension could not be "
                "installed: %s",
                exc.orig,
            )
            return
        schema = conn.execute(sa.text(f"{find} WHERE e.extname = 'pg_trgm'")).scalar()
    opclass = f'"{schema}".gin_trgm_ops'
    op.execute(f"CREATE INDEX ix_lead_search_trgm ON lead USING gin (({PG_DOCUMENT}) {opclass})")
    op.execute("ANALYZE lead")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_upgrade()
    elif dialect == "postgresql":
        _pg_upgrade()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS lead_search")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_lead_search_trgm")
