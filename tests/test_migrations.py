"""Alembic is the only way the schema changes: it must match the models and run both ways."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.db import migrate
from bot.db.models import Base
from bot.db.session import make_engine
from tests.conftest import own_database


def test_migrations_match_the_models(db_engine):
    with db_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # Encrypted columns are Text in the migration and a TypeDecorator over Text in the models.
    significant = [d for d in diff if not (isinstance(d, list) and d and d[0][0] == "modify_type")]
    assert significant == []


def test_downgrade_and_upgrade_round_trip(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    assert {"people", "conversations", "answers", "consent_records", "handoffs"} <= set(
        inspect(engine).get_table_names())
    migrate.downgrade(url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert "handoffs" in inspect(engine).get_table_names()
    engine.dispose()


# -- 0005, the staff console: both ways, on both databases, with rows in place ------------------

STAFF_TABLES = {"staff_users", "staff_sessions", "login_attempts", "audit_events",
                "handoff_notes", "clinic_settings"}
NEW_COLUMNS = {
    "conversations": {"held_by_id", "held_since"},
    "handoffs": {"assigned_to_id", "claimed_at", "outcome", "resolved_by_id"},
}


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A new, empty database: SQLite and PostgreSQL."""
    with own_database(request.param, tmp_path, "migr", migrated=False) as url:
        yield url


def _columns(engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}


def _foreign_keys(engine, table: str) -> set[tuple[str, str]]:
    return {(fk["constrained_columns"][0], fk["referred_table"])
            for fk in inspect(engine).get_foreign_keys(table)}


def _seed_0004(engine) -> None:
    """Rows of everything that refers to conversations and handoffs, as 0004 left them."""
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO people (id, kind, created_at) VALUES (1, 'prospect', :now)"), {"now": now})
        connection.execute(text(
            "INSERT INTO conversations (id, sender_id, channel, person_id, started_at, "
            "last_activity_at) VALUES (1, 'sender-1', 'widget', 1, :now, :now)"), {"now": now})
        connection.execute(text(
            "INSERT INTO answers (conversation_id, form, question_key, value, channel, created_at)"
            " VALUES (1, 'intake', 'first_name', 'ciphertext', 'widget', :now)"), {"now": now})
        connection.execute(text(
            "INSERT INTO handoffs (id, conversation_id, person_id, reason, priority, status, "
            "summary, created_at, updated_at) VALUES (1, 1, 1, 'human_requested', 'soon', "
            "'open', 'ciphertext', :now, :now)"), {"now": now})
        connection.execute(text(
            "INSERT INTO staff_alerts (handoff_id, kind, priority, transport, status, attempts, "
            "conversation_ref, created_at, finished_at) VALUES (1, 'handoff', 'soon', 'none', "
            "'sent', 1, 'ref', :now, :now)"), {"now": now})


def test_0005_upgrades_a_database_with_rows_and_downgrades_again(empty_url):
    migrate.upgrade(empty_url, "0004")
    engine = make_engine(empty_url)
    try:
        _seed_0004(engine)
        migrate.upgrade(empty_url, "0005")

        assert set(inspect(engine).get_table_names()) >= STAFF_TABLES
        for table, columns in NEW_COLUMNS.items():
            assert columns <= _columns(engine, table)
        assert ("held_by_id", "staff_users") in _foreign_keys(engine, "conversations")
        assert {("assigned_to_id", "staff_users"), ("resolved_by_id", "staff_users")} <= (
            _foreign_keys(engine, "handoffs"))
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT h.status, h.assigned_to_id, h.outcome, c.held_by_id FROM handoffs h "
                "JOIN conversations c ON c.id = h.conversation_id")).one()
            assert tuple(row) == ("open", None, None, None)
            assert connection.execute(text("SELECT count(*) FROM staff_alerts")).scalar() == 1
            assert connection.execute(text("SELECT count(*) FROM answers")).scalar() == 1

        # The new foreign keys hold: a conversation cannot be held by a staff member who does
        # not exist.
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE conversations SET held_by_id = 999"))

        migrate.downgrade(empty_url, "0004")
        assert not STAFF_TABLES & set(inspect(engine).get_table_names())
        for table, columns in NEW_COLUMNS.items():
            assert not columns & _columns(engine, table)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM handoffs")).scalar() == 1
            assert connection.execute(text("SELECT count(*) FROM staff_alerts")).scalar() == 1
            if engine.dialect.name == "postgresql":
                functions = connection.execute(text(
                    "SELECT count(*) FROM pg_proc WHERE proname = 'audit_events_append_only'"))
                assert functions.scalar() == 0

        migrate.upgrade(empty_url)
        assert set(inspect(engine).get_table_names()) >= STAFF_TABLES
    finally:
        engine.dispose()


def test_staff_emails_are_stored_lower_case_only(db_engine):
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
    insert = text(
        "INSERT INTO staff_users (email, display_name, role, password_hash, active, created_at, "
        "updated_at) VALUES (:email, 'Ana', 'admin', 'x', :active, :now, :now)")
    with db_engine.connect() as connection, connection.begin() as transaction:
        connection.execute(insert, {"email": "ana@clinic.example", "active": True, "now": now})
        with pytest.raises(IntegrityError):
            connection.execute(insert, {"email": "Ben@Clinic.example", "active": True, "now": now})
        transaction.rollback()
