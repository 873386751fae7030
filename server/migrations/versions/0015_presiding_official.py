"""The presiding official and the signer of a meeting's notice of conclusions (issue #15)

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = ("presiding_title", "presiding_name", "signer_authority", "signer_title", "signer_name")


def upgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(100), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
