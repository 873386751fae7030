"""An index on a KPI snapshot's unit: a slide's "previous meeting" lookup (one unit's concluded
snapshots) no longer scans every snapshot of every meeting.

Revision ID: 0019
Revises: 0018
"""
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_meeting_kpi_snapshots_unit", "meeting_kpi_snapshots", ["unit_id", "period", "phase", "taken_at"])


def downgrade() -> None:
    op.drop_index("ix_meeting_kpi_snapshots_unit", table_name="meeting_kpi_snapshots")
