"""KPI report ids are unique per unit (the unit the report is for), no longer across the country

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Ids were unique nationwide until now, so every stored row already satisfies the new constraint.
    with op.batch_alter_table("kpi_reports") as batch:  # SQLite: the table is copied
        batch.drop_constraint("uq_kpi_reports_report_version", type_="unique")
        batch.create_unique_constraint("uq_kpi_reports_unit_report_version", ["unit_id", "report_id", "version"])


def downgrade() -> None:
    # Fails once two units use the same report id: rename one side first.
    with op.batch_alter_table("kpi_reports") as batch:
        batch.drop_constraint("uq_kpi_reports_unit_report_version", type_="unique")
        batch.create_unique_constraint("uq_kpi_reports_report_version", ["report_id", "version"])
