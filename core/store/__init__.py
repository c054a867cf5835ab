"""The store: one normalized database of leads, identities, activities, outcomes and scores.

db.py          engines (SQLite with WAL, PostgreSQL) and Alembic migrations
tables.py      the tables, as SQLModel classes
store.py       `Store`: pages with their cursors, runs, meta, reads for the CLI and web
ingest.py      batch upserts of a page, identity resolution, quarantine
reader.py      the ranked leads read on the database driver alone (`leadhub leads`)
identity.py    which record joins which lead, and how fields merge
migrations/    the Alembic environment and versions
"""
