"""Recording at provincial bridges: the bridges the chair asked to record too (issue #17)

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meeting_recording") as batch:
        batch.add_column(sa.Column("bridges", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("meeting_recording") as batch:
        batch.drop_column("bridges")
