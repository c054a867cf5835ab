"""lead search text: each lead's lower-cased search document in a narrow table; the score
history's crossings by model, event and time

Revision ID: 0008_lead_search_text
Revises: 0007_lead_search_trigram

`lead_search_text` holds one row per lead: its email, name and company, lower-cased by the
database's own lower() and joined by the unit separator (char 31), so that any search is one
pass over short strings at worst (a needle too short for a trigram index, or very common text),
never a read of the wide lead rows. The name part is "first last" when the lead has both names,
else the one it has: a substring of it is exactly a substring of the first name, the last name or
the full name. Filled from the leads present (the backfill); triggers keep it in step with `lead`
(inserts, updates of the searched fields, merges and deletes). On PostgreSQL the trigram index
moves from the expression over `lead` (0007) to this table's document.

`ix_score_history_model_event` finds a model's latest crossings into qualified (and releases)
without reading its whole history: the dashboard's home page shows the latest.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0008_lead_search_text"
down_revision = "0007_lead_search_trigram"
branch_labels = None
depends_on = None

log = logging.getLogger("leadhub.store")

SEP = "char(31)"  # SQLite; PostgreSQL spells it chr(31)
NAME = (
    "CASE WHEN {p}first_name IS NOT NULL AND {p}last_name IS NOT NULL "
    "THEN {p}first_name || ' ' || {p}last_name ELSE coalesce({p}first_name, {p}last_name, '') END"
)
DOCUMENT = (
    "lower(coalesce({p}email, '') || {sep} || " + NAME + " || {sep} || coalesce({p}company, ''))"
)
SQLITE_TRIGGERS = {
    "lead_search_text_insert": "AFTER INSERT ON lead BEGIN {insert_new}; END",
    "lead_search_text_delete": "AFTER DELETE ON lead BEGIN {delete_old}; END",
    "lead_search_text_update": (
        "AFTER UPDATE OF id, email, first_name, last_name, company ON lead "
        "BEGIN {delete_old}; {insert_new}; END"
    ),
}
PG_FUNCTIONS = {
    # inserts and deletes a statement at a time (a COPY or a batch insert is one set-based write)
    "lead_search_text_added": """
        INSERT INTO lead_search_text (lead_id, doc) SELECT id, {doc} FROM added""",
    "lead_search_text_removed": """
        DELETE FROM lead_search_text t USING removed WHERE t.lead_id = removed.id""",
    # updates a row at a time: the trigger fires only when a searched field changed
    "lead_search_text_changed": """
        DELETE FROM lead_search_text WHERE lead_id = OLD.id;
        INSERT INTO lead_search_text (lead_id, doc) VALUES (NEW.id, {new_doc})""",
}
PG_TRIGGERS = {
    "lead_search_text_insert": "AFTER INSERT ON lead REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION lead_search_text_added()",
    "lead_search_text_delete": "AFTER DELETE ON lead REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION lead_search_text_removed()",
    "lead_search_text_update": "AFTER UPDATE OF id, email, first_name, last_name, company ON lead "
    "FOR EACH ROW WHEN ((OLD.id, OLD.email, OLD.first_name, OLD.last_name, OLD.company) "
    "IS DISTINCT FROM (NEW.id, NEW.email, NEW.first_name, NEW.last_name, NEW.company)) "
    "EXECUTE FUNCTION lead_search_text_changed()",
}


def _create_table() -> None:
    op.create_table(
        "lead_search_text",
        sa.Column("lead_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )


def _sqlite_upgrade() -> None:
    _create_table()
    parts = {
        "insert_new": "INSERT INTO lead_search_text (lead_id, doc) VALUES "
        f"(new.id, {DOCUMENT.format(p='new.', sep=SEP)})",
        "delete_old": "DELETE FROM lead_search_text WHERE lead_id = old.id",
    }
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body.format(**parts)}")
    op.execute(
        "INSERT INTO lead_search_text (lead_id, doc) "
        f"SELECT id, {DOCUMENT.format(p='', sep=SEP)} FROM lead"
    )
    op.execute("ANALYZE lead_search_text")


def _pg_upgrade() -> None:
    _create_table()
    sep = "chr(31)"
    bodies = {
        "doc": DOCUMENT.format(p="", sep=sep),
        "new_doc": DOCUMENT.format(p="NEW.", sep=sep),
    }
    for name, body in PG_FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{body.format(**bodies)}; RETURN NULL; END $$"
        )
    for name, body in PG_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")
    op.execute(
        "INSERT INTO lead_search_text (lead_id, doc) "
        f"SELECT id, {DOCUMENT.format(p='', sep=sep)} FROM lead"
    )
    conn = op.get_bind()
    find = "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
    schema = conn.execute(sa.text(f"{find} WHERE e.extname = 'pg_trgm'")).scalar()
    if schema is None:  # 0007 logged why: search scans the narrow table
        op.execute("ANALYZE lead_search_text")
        return
    op.execute("DROP INDEX IF EXISTS ix_lead_search_trgm")
    op.execute(
        "CREATE INDEX ix_lead_search_text_trgm ON lead_search_text "
        f'USING gin (doc "{schema}".gin_trgm_ops)'
    )
    op.execute("ANALYZE lead_search_text")


HISTORY_INDEX = "ix_score_history_model_event"


def upgrade() -> None:
    op.create_index(HISTORY_INDEX, "score_history", ["model", "event", "computed_at", "lead_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_upgrade()
    elif dialect == "postgresql":
        _pg_upgrade()
    else:
        log.warning("lead search keeps scanning every lead: no search text on %s", dialect)


def downgrade() -> None:
    op.drop_index(HISTORY_INDEX, table_name="score_history")
    dialect = op.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return
    for name in SQLITE_TRIGGERS if dialect == "sqlite" else PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON lead" if dialect != "sqlite" else ""))
    if dialect == "postgresql":
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        conn = op.get_bind()
        find = "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        schema = conn.execute(sa.text(f"{find} WHERE e.extname = 'pg_trgm'")).scalar()
        if schema is not None:  # 0007's index, as it was
            document = (
                "lower(coalesce(email, '') || ' ' || coalesce(first_name, '') || ' ' || "
                "coalesce(last_name, '') || ' ' || coalesce(company, ''))"
            )
            op.execute(
                "CREATE INDEX IF NOT EXISTS ix_lead_search_trgm ON lead "
                f'USING gin (({document}) "{schema}".gin_trgm_ops)'
            )
    op.execute("DROP TABLE IF EXISTS lead_search_text")
