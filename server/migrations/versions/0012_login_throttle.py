"""Login throttle counters: attempts counted before the password is checked (per client, account, IP, device)

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at_ms", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_login_throttle_next_at_ms", "login_throttle", ["next_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_login_throttle_next_at_ms", table_name="login_throttle")
    op.drop_table("login_throttle")
