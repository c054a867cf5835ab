"""score inputs: what a set-based score was computed from

Revision ID: 0009_score_inputs
Revises: 0008_lead_search_text

`score.inputs` holds, for a score the full rescore computed from tallies, the lead's inactivity
step and its tallies under the score's model (`core.pipeline.score`). A later full rescore under
the same model skips a lead that is not dirty and whose inputs are the same, without reading its
fields or scoring it: the daily decay pass then scores only the leads whose windows, expiry or
inactivity moved. Empty (NULL) where the per-lead engine wrote the score, and for scores stored
before this revision: those are computed on the next full rescore.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_score_inputs"
down_revision = "0008_lead_search_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table rebuild, no default to write), so upgrading is instant.
    op.add_column("score", sa.Column("inputs", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("score") as batch:
        batch.drop_column("inputs")
