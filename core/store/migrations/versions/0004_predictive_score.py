"""predictive score output

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("score") as batch:
        batch.add_column(sa.Column("predictive", sa.Float(), nullable=True))
        batch.add_column(sa.Column("predictive_reason", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("score") as batch:
        batch.drop_column("predictive_reason")
        batch.drop_column("predictive")
