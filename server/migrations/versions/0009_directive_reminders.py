"""The daily overdue reminder's flag on directive assignments

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("directive_assignments") as batch:
        batch.add_column(sa.Column("overdue_flagged_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("directive_assignments") as batch:
        batch.drop_column("overdue_flagged_at")
