"""The transactional outbox: bus events stored with the change they announce (issue #18)

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime()),
        sa.Column("delivered_at", sa.DateTime()),
    )
    op.create_index("ix_outbox_events_delivered_id", "outbox_events", ["delivered_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_events_delivered_id", "outbox_events")
    op.drop_table("outbox_events")
