"""score: the two indexes no query needs are dropped

Revision ID: 0011_score_redundant_indexes
Revises: 0010_activity_signature_index

`ix_score_lead_id` (lead_id) is the leading column of the unique (lead_id, model), which serves
every lookup by lead and the foreign key's checks. `ix_score_total` (total, over every model)
serves no query: each reads the scores of one model, through the (model, ..., total DESC)
indexes. Each index costs every score written: a full rescore that writes a million scores
kept nine indexes, now seven.
"""

from alembic import op

revision = "0011_score_redundant_indexes"
down_revision = "0010_activity_signature_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_score_lead_id", table_name="score")
    op.drop_index("ix_score_total", table_name="score")


def downgrade() -> None:
    op.create_index("ix_score_total", "score", ["total"])
    op.create_index("ix_score_lead_id", "score", ["lead_id"])
