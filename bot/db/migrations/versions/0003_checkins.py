"""SMS check-ins: enrolled patients, their check-ins and answers, and the text message log.

Columns holding patient data (name, mobile number, induction dates, answer text) are Text here:
the application encrypts them (bot.db.crypto) before they reach the database. No message text
is stored in sms_messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 09:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('mobile', sa.Text(), nullable=False),
    sa.Column('mobile_index', sa.String(length=64), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('induction_dates', sa.Text(), nullable=False),
    sa.Column('last_infusion_on', sa.Date(), nullable=False),
    sa.Column('cadence_days', sa.Integer(), nullable=True),
    sa.Column('sms_consent_version', sa.String(length=64), nullable=False),
    sa.Column('sms_consented_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('cadence_days > 0', name=op.f('ck_patients_cadence_days_positive')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_patients_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('mobile_index', name=op.f('uq_patients_mobile_index')),
    sa.UniqueConstraint('person_id', name=op.f('uq_patients_person_id'))
    )

    op.create_table('checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('scheduled', 'sent', 'in_progress', 'completed', 'incomplete', 'failed', 'skipped', name='checkin_status', native_enum=False, length=32), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminder_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_checkins_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    sa.UniqueConstraint('patient_id', 'due_on', name='uq_checkins_patient_due_on')
    )
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.create_index('ix_checkins_status_scheduled_for', ['status', 'scheduled_for'], unique=False)

    op.create_table('checkin_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkin_id', sa.Integer(), nullable=False),
    sa.Column('question_key', sa.String(length=64), nullable=False),
    sa.Column('raw_text', sa.Text(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkin_id'], ['checkins.id'], name=op.f('fk_checkin_answers_checkin_id_checkins')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_answers'))
    )
    with op.batch_alter_table('checkin_answers', schema=None) as batch_op:
        batch_op.create_index('ix_checkin_answers_checkin_question', ['checkin_id', 'question_key'], unique=False)

    op.create_table('sms_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.Enum('inbound', 'outbound', name='sms_direction', native_enum=False, length=32), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('message_sid', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('error_code', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_sms_messages_conversation_id_conversations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_sms_messages_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_messages')),
    sa.UniqueConstraint('message_sid', name=op.f('uq_sms_messages_message_sid'))
    )
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_messages_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_messages_patient_id'), ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_messages_patient_id'))
        batch_op.drop_index(batch_op.f('ix_sms_messages_conversation_id'))

    op.drop_table('sms_messages')
    with op.batch_alter_table('checkin_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_checkin_answers_checkin_question')

    op.drop_table('checkin_answers')
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_index('ix_checkins_status_scheduled_for')

    op.drop_table('checkins')
    op.drop_table('patients')
