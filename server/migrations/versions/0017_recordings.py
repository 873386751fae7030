"""Recordings of meetings: the chair's wish, recordings and their segments (issue #17)

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meeting_recording",
        sa.Column("meeting_id", sa.Integer(), sa.ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("wanted", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("notice", sa.String(300), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("meeting_id", sa.Integer(), sa.ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False),
        sa.Column("bridge_unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("chapters", sa.JSON(), nullable=False),
        sa.UniqueConstraint("meeting_id", "name", name="uq_recordings_meeting_name"),
    )
    op.create_index("ix_recordings_meeting_id", "recordings", ["meeting_id"])
    op.create_table(
        "recording_segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recording_id", sa.Integer(), sa.ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("offset_s", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("chapters", sa.JSON(), nullable=False),
        sa.UniqueConstraint("recording_id", "idx", name="uq_recording_segments_idx"),
    )
    op.create_index("ix_recording_segments_recording_id", "recording_segments", ["recording_id"])


def downgrade() -> None:
    op.drop_index("ix_recording_segments_recording_id", "recording_segments")
    op.drop_table("recording_segments")
    op.drop_index("ix_recordings_meeting_id", "recordings")
    op.drop_table("recordings")
    op.drop_table("meeting_recording")
