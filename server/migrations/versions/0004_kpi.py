"""kpi reports (with correction history) and rolled-up kpi totals

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kpi_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('superseded', sa.Boolean(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('indicator', sa.String(length=32), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('num', sa.BigInteger(), nullable=False),
    sa.Column('den', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('reporter', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('report_id', 'version', name='uq_kpi_reports_report_version')
    )
    with op.batch_alter_table('kpi_reports', schema=None) as batch_op:
        batch_op.create_index('ix_kpi_reports_key', ['unit_id', 'indicator', 'period'], unique=False)

    op.create_table('kpi_totals',
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('indicator', sa.String(length=32), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('num', sa.BigInteger(), nullable=False),
    sa.Column('den', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('unit_id', 'indicator', 'period')
    )
    with op.batch_alter_table('kpi_totals', schema=None) as batch_op:
        batch_op.create_index('ix_kpi_totals_period', ['period', 'indicator'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kpi_totals', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_totals_period')
    op.drop_table('kpi_totals')
    with op.batch_alter_table('kpi_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_reports_key')
    op.drop_table('kpi_reports')
