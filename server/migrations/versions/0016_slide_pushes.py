"""Slides pushed to every screen of a meeting: one row per meeting and scope unit (issue #14)

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slide_pushes",
        sa.Column("meeting_id", sa.Integer(), sa.ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("scope_unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="RESTRICT"), primary_key=True),
        sa.Column("slide_unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("pushed_at", sa.DateTime(), nullable=False),
        sa.Column("pushed_by", sa.String(100), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("slide_pushes")
