"""Staff alerts: one row per alert and transport, with how its delivery ended.

No patient data: kind, priority, a non-identifying conversation reference and the handoff id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:02:41.118604
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handoff_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.Enum('urgent', 'soon', 'routine', name='handoff_priority', native_enum=False, length=32), nullable=False),
    sa.Column('transport', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Enum('sent', 'failed', name='alert_status', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('conversation_ref', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_staff_alerts_handoff_id_handoffs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_alerts'))
    )
    with op.batch_alter_table('staff_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_alerts_handoff_id'), ['handoff_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staff_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_alerts_handoff_id'))

    op.drop_table('staff_alerts')
