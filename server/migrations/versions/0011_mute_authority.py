"""Who muted a site (site, operator, chair): a mute is lifted only by that authority or a higher one

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meeting_participants") as batch:
        batch.add_column(sa.Column("muted_by", sa.String(16), nullable=False, server_default=""))
    # mutes made before this revision: the chair's (only the chair could mute another site)
    op.execute("UPDATE meeting_participants SET muted_by = 'chair' WHERE muted")


def downgrade() -> None:
    with op.batch_alter_table("meeting_participants") as batch:
        batch.drop_column("muted_by")
