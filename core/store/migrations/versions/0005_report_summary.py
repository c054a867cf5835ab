"""report summary tables and lead-list indexes

Revision ID: 0005_report_summary
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_report_summary"
down_revision = "0004"
branch_labels = None
depends_on = None

LIST_INDEXES = {
    "ix_score_model_total": (),
    "ix_score_model_tier_total": ("tier",),
    "ix_score_model_grade_total": ("grade",),
    "ix_score_model_qualified_total": ("qualified",),
}


def upgrade() -> None:
    op.create_table(
        "report_lead",
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(), nullable=True),
        sa.Column("grade", sa.String(), nullable=True),
        sa.Column("qualified", sa.Boolean(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("systems", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("decided_total", sa.Float(), nullable=True),
        sa.Column("decided_qualified", sa.Boolean(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("model", "lead_id"),
    )
    op.create_index("ix_report_lead_lead_id", "report_lead", ["lead_id"])
    op.create_table(
        "report_figure",
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("figure", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("decided", sa.Integer(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.Column("qualified", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "figure", "key"),
    )
    op.create_table(
        "report_qualified",
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.PrimaryKeyConstraint("model", "lead_id", "month"),
    )
    op.create_index("ix_report_qualified_lead_id", "report_qualified", ["lead_id"])
    # The summary is built by the next score run (`core.store.summary.apply`).
    for name, columns in LIST_INDEXES.items():
        op.create_index(
            name, "score", ["model", *columns, sa.text("total DESC"), "lead_id"], unique=False
        )
    op.create_index("ix_lead_channel", "lead", ["channel"])
    op.create_index("ix_identity_system_lead", "identity", ["system", "lead_id"])


def downgrade() -> None:
    op.drop_index("ix_identity_system_lead", table_name="identity")
    op.drop_index("ix_lead_channel", table_name="lead")
    for name in LIST_INDEXES:
        op.drop_index(name, table_name="score")
    op.drop_table("report_qualified")
    op.drop_table("report_figure")
    op.drop_table("report_lead")
