"""activity signatures: distinct (type, properties) pairs, referenced by each activity

Existing activities get their signature when the store next scores or ingests
(`core.store.signatures.sign_activities`), found through the partial index on unsigned rows.

Revision ID: 0006_activity_signature
Revises: 0005_report_summary
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_activity_signature"
down_revision = "0005_report_summary"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_signature",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
    )
    op.create_index("ix_activity_signature_digest", "activity_signature", ["digest"], unique=True)
    # A plain ADD COLUMN (no table rebuild), so upgrading a large store is instant.
    op.add_column("activity", sa.Column("signature_id", sa.Integer(), nullable=True))
    op.create_index(
        "ix_activity_unsigned",
        "activity",
        ["id"],
        sqlite_where=sa.text("signature_id IS NULL"),
        postgresql_where=sa.text("signature_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_activity_unsigned", table_name="activity")
    with op.batch_alter_table("activity") as batch:
        batch.drop_column("signature_id")
    op.drop_index("ix_activity_signature_digest", table_name="activity_signature")
    op.drop_table("activity_signature")
