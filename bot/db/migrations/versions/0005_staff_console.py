"""Staff console: staff accounts and sessions, login attempts, the audit log, handoff notes,
claiming and resolving handoffs, staff takeover of conversations, and clinic-config overrides.

``audit_events`` is append-only, enforced by the database: triggers refuse UPDATE and DELETE
(and, on PostgreSQL, TRUNCATE). ``handoff_notes.body`` holds what staff wrote about a patient,
so the application encrypts it (bot.db.crypto) like the other patient data. Login attempts keep
keyed blind indexes of the email and the client address, never the values.

On SQLite the new foreign-key columns of ``conversations`` and ``handoffs`` are added (and
dropped) with ``ALTER TABLE`` rather than by rebuilding the tables: a rebuild drops the old
table, which SQLite refuses while other tables' rows refer to it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# SQLite: one trigger per refused statement; RAISE(ABORT) undoes the statement.
_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN
        SELECT RAISE(ABORT, 'audit_events is append-only: rows cannot be changed or deleted');
    END
    """,
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN
        SELECT RAISE(ABORT, 'audit_events is append-only: rows cannot be changed or deleted');
    END
    """,
)

# PostgreSQL: one function, fired for each changed row and before any TRUNCATE.
_POSTGRES_TRIGGERS = (
    """
    CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: rows cannot be changed or deleted (%)',
            TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()
    """,
)

# SQLite cannot add a foreign key to an existing table except as part of a new column.
_SQLITE_NEW_COLUMNS = (
    "ALTER TABLE conversations ADD COLUMN held_by_id INTEGER "
    "CONSTRAINT fk_conversations_held_by_id_staff_users REFERENCES staff_users (id)",
    "ALTER TABLE conversations ADD COLUMN held_since DATETIME",
    "ALTER TABLE handoffs ADD COLUMN assigned_to_id INTEGER "
    "CONSTRAINT fk_handoffs_assigned_to_id_staff_users REFERENCES staff_users (id)",
    "ALTER TABLE handoffs ADD COLUMN claimed_at DATETIME",
    "ALTER TABLE handoffs ADD COLUMN outcome VARCHAR(32)",
    "ALTER TABLE handoffs ADD COLUMN resolved_by_id INTEGER "
    "CONSTRAINT fk_handoffs_resolved_by_id_staff_users REFERENCES staff_users (id)",
)


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def upgrade() -> None:
    op.create_table('staff_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.Enum('admin', 'clinician', 'front_desk', name='staff_role', native_enum=False, length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('email = lower(email)', name=op.f('ck_staff_users_email_lower_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
    sa.UniqueConstraint('email', name=op.f('uq_staff_users_email'))
    )

    op.create_table('staff_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'], name=op.f('fk_staff_sessions_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions'))
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_index', sa.String(length=64), nullable=False),
    sa.Column('client_index', sa.String(length=64), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_attempts_at'), ['at'], unique=False)
        batch_op.create_index('ix_login_attempts_email_index_at', ['email_index', 'at'], unique=False)
        batch_op.create_index('ix_login_attempts_client_index_at', ['client_index', 'at'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('staff_user_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('target_type', sa.String(length=40), nullable=False),
    sa.Column('target_id', sa.String(length=128), nullable=True),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_audit_events_person_id_people')),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_audit_events_staff_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_person_id'), ['person_id'], unique=False)
        batch_op.create_index('ix_audit_events_staff_user_at', ['staff_user_id', 'at'], unique=False)

    op.create_table('handoff_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handoff_id', sa.Integer(), nullable=False),
    sa.Column('staff_user_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_handoff_notes_handoff_id_handoffs')),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_handoff_notes_staff_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_notes'))
    )
    with op.batch_alter_table('handoff_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoff_notes_handoff_id'), ['handoff_id'], unique=False)

    op.create_table('clinic_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('staff_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_users.id'], name=op.f('fk_clinic_settings_staff_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic_settings'))
    )

    if _is_sqlite():
        for statement in _SQLITE_NEW_COLUMNS:
            op.execute(statement)
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.add_column('conversations', sa.Column('held_by_id', sa.Integer(), nullable=True))
        op.add_column('conversations', sa.Column('held_since', sa.DateTime(timezone=True), nullable=True))
        op.create_foreign_key(op.f('fk_conversations_held_by_id_staff_users'),
                              'conversations', 'staff_users', ['held_by_id'], ['id'])
        op.add_column('handoffs', sa.Column('assigned_to_id', sa.Integer(), nullable=True))
        op.add_column('handoffs', sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        op.add_column('handoffs', sa.Column('outcome', sa.Enum('called_back', 'booked', 'referred', 'no_action_needed', name='handoff_outcome', native_enum=False, length=32), nullable=True))
        op.add_column('handoffs', sa.Column('resolved_by_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_handoffs_assigned_to_id_staff_users'),
                              'handoffs', 'staff_users', ['assigned_to_id'], ['id'])
        op.create_foreign_key(op.f('fk_handoffs_resolved_by_id_staff_users'),
                              'handoffs', 'staff_users', ['resolved_by_id'], ['id'])
        for statement in _POSTGRES_TRIGGERS:
            op.execute(statement)
    op.create_index(op.f('ix_conversations_held_by_id'), 'conversations', ['held_by_id'], unique=False)
    op.create_index(op.f('ix_handoffs_assigned_to_id'), 'handoffs', ['assigned_to_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_handoffs_assigned_to_id'), table_name='handoffs')
    op.drop_index(op.f('ix_conversations_held_by_id'), table_name='conversations')
    # Dropping a column drops its foreign key too. On SQLite (3.35 and later) this is an
    # ALTER TABLE, not a rebuild, so it works while other tables' rows refer to these tables.
    sqlite = _is_sqlite()
    for column in ('resolved_by_id', 'outcome', 'claimed_at', 'assigned_to_id'):
        op.drop_column('handoffs', column)
    for column in ('held_since', 'held_by_id'):
        op.drop_column('conversations', column)

    op.drop_table('clinic_settings')
    with op.batch_alter_table('handoff_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoff_notes_handoff_id'))
    op.drop_table('handoff_notes')

    # Dropping the table drops its triggers; the PostgreSQL function goes separately.
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_staff_user_at')
        batch_op.drop_index(batch_op.f('ix_audit_events_person_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
    op.drop_table('audit_events')
    if not sqlite:
        op.execute('DROP FUNCTION audit_events_append_only()')

    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_client_index_at')
        batch_op.drop_index('ix_login_attempts_email_index_at')
        batch_op.drop_index(batch_op.f('ix_login_attempts_at'))
    op.drop_table('login_attempts')
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_sessions_user_id'))
    op.drop_table('staff_sessions')
    op.drop_table('staff_users')
