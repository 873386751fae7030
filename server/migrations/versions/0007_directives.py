"""Conclusions, directives, assignments (with the dashboard's denormalised province and due
instant), progress reports and their attachments

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conclusions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("meeting_id", sa.Integer(), sa.ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_conclusions_meeting_id", "conclusions", ["meeting_id"])

    # The parent assignment's foreign key is added once its table exists (the two refer to each other).
    op.create_table(
        "directives",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("meeting_id", sa.Integer(), sa.ForeignKey("meetings.id", ondelete="CASCADE"), nullable=True),
        sa.Column("conclusion_id", sa.Integer(), sa.ForeignKey("conclusions.id", ondelete="CASCADE"), nullable=True),
        sa.Column("parent_assignment_id", sa.Integer(), nullable=True),
        sa.Column("assigner_unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("lead_unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("require_children_done", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_by_name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_directives_meeting_id", "directives", ["meeting_id"])
    op.create_index("ix_directives_conclusion_id", "directives", ["conclusion_id"])
    op.create_index("ix_directives_parent_assignment_id", "directives", ["parent_assignment_id"])

    op.create_table(
        "directive_assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("directive_id", sa.Integer(), sa.ForeignKey("directives.id", ondelete="CASCADE"), nullable=False),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("province_id", sa.Integer(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("completed_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("directive_id", "unit_id", name="uq_assignments_directive_unit"),
        sa.CheckConstraint("percent >= 0 AND percent <= 100", name="ck_assignments_percent"),
    )
    op.create_index("ix_directive_assignments_directive_id", "directive_assignments", ["directive_id"])
    op.create_index("ix_assignments_dashboard", "directive_assignments", ["province_id", "outcome", "due_at"])
    op.create_index("ix_assignments_unit_due", "directive_assignments", ["unit_id", "due_at"])

    with op.batch_alter_table("directives") as batch:  # SQLite: the table is rebuilt with the key
        batch.create_foreign_key("fk_directives_parent_assignment", "directive_assignments",
                                 ["parent_assignment_id"], ["id"], ondelete="CASCADE")

    op.create_table(
        "directive_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("assignment_id", sa.Integer(), sa.ForeignKey("directive_assignments.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_directive_reports_assignment_id", "directive_reports", ["assignment_id"])

    op.create_table(
        "directive_attachments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("report_id", sa.Integer(), sa.ForeignKey("directive_reports.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_path", sa.String(length=300), nullable=False),
    )
    op.create_index("ix_directive_attachments_report_id", "directive_attachments", ["report_id"])


def downgrade() -> None:
    op.drop_table("directive_attachments")
    op.drop_table("directive_reports")
    with op.batch_alter_table("directives") as batch:
        batch.drop_constraint("fk_directives_parent_assignment", type_="foreignkey")
    op.drop_table("directive_assignments")
    op.drop_table("directives")
    op.drop_table("conclusions")
