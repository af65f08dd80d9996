"""SMS check-in flow: who started a check-in, send attempts, its conversation and handoff, and
the choices read from a multiple-choice answer.

``checkin_answers.choices`` holds the signs a patient picked (health data), so the application
encrypts it like the answer text. New enum values (check-in status ``sending``, handoff reasons
``checkin`` and ``callback_requested``) need no schema change: enums are stored as strings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=16), nullable=False,
                                      server_default='schedule'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('last_error', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('last_activity_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('conversation_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('handoff_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_checkins_conversation_id_conversations'),
                                    'conversations', ['conversation_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_checkins_handoff_id_handoffs'),
                                    'handoffs', ['handoff_id'], ['id'])
        batch_op.create_index('ix_checkins_patient_status', ['patient_id', 'status'],
                              unique=False)

    with op.batch_alter_table('checkin_answers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('choices', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('checkin_answers', schema=None) as batch_op:
        batch_op.drop_column('choices')

    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_index('ix_checkins_patient_status')
        batch_op.drop_constraint(batch_op.f('fk_checkins_handoff_id_handoffs'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_checkins_conversation_id_conversations'),
                                 type_='foreignkey')
        batch_op.drop_column('handoff_id')
        batch_op.drop_column('conversation_id')
        batch_op.drop_column('last_activity_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('attempts')
        batch_op.drop_column('origin')
