"""The audit log: what is recorded, how it is read, and that the database keeps it append-only
(SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from bot.db.models import AuditEvent, Person, PersonKind, StaffRole, StaffUser
from bot.services import audit

T0 = dt.datetime(2026, 12, 14, 15, 0, tzinfo=dt.timezone.utc)


def _staff(session: Session, email: str) -> StaffUser:
    user = StaffUser(email=email, display_name=email.split("@")[0], role=StaffRole.CLINICIAN,
                     password_hash="x")
    session.add(user)
    session.flush()
    return user


def _person(session: Session) -> Person:
    person = Person(kind=PersonKind.PROSPECT)
    session.add(person)
    session.flush()
    return person


def test_record_stores_who_what_and_which_record(db_session) -> None:
    user = _staff(db_session, "ana@clinic.example")
    person = _person(db_session)
    event = audit.record(db_session, user.id, audit.HANDOFF_RESOLVE, "handoff", 17,
                         person_id=person.id, detail={"outcome": "booked", "note_id": 3})

    db_session.expire_all()
    stored = db_session.get(AuditEvent, event.id)
    assert (stored.staff_user_id, stored.action, stored.target_type, stored.target_id,
            stored.person_id, stored.detail) == (
        user.id, "handoff.resolve", "handoff", "17", person.id, {"outcome": "booked",
                                                                "note_id": 3})
    assert stored.at is not None


def test_query_is_newest_first_and_filters_by_staff_member_and_person(db_session) -> None:
    ana = _staff(db_session, "ana@clinic.example")
    ben = _staff(db_session, "ben@clinic.example")
    person = _person(db_session)
    first = audit.record(db_session, ana.id, "handoff.view", "handoff", 1, person_id=person.id)
    second = audit.record(db_session, ben.id, "transcript.view", "conversation", "web-x",
                          person_id=person.id)
    third = audit.record(db_session, ana.id, "login", "staff_user", ana.id)

    # (The database may hold entries of earlier tests: the log cannot be emptied.)
    assert [e.id for e in audit.query(db_session)][:3] == [third.id, second.id, first.id]
    assert [e.id for e in audit.query(db_session, staff_user_id=ana.id)] == [third.id, first.id]
    assert [e.id for e in audit.query(db_session, person_id=person.id)] == [second.id, first.id]
    assert [e.id for e in audit.query(db_session, staff_user_id=ana.id, person_id=person.id)
            ] == [first.id]
    assert [e.id for e in audit.query(db_session, staff_user_id=ana.id, limit=1)] == [third.id]


@pytest.mark.parametrize("action", ["", "Handoff.View", "handoff view", "handoff.", "x" * 41])
def test_malformed_actions_are_refused(db_session, action: str) -> None:
    with pytest.raises(ValueError, match="audit action"):
        audit.record(db_session, None, action, "handoff", 1)


@pytest.mark.parametrize("detail", [
    {"summary": {"first_name": "Maria"}},
    {"answers": [{"text": "I feel worse"}]},
    {1: "one"},
])
def test_detail_takes_plain_values_only_never_documents(db_session, detail) -> None:
    with pytest.raises(TypeError):
        audit.record(db_session, None, "handoff.view", "handoff", 1, detail=detail)


def test_every_product_action_is_accepted(db_session) -> None:
    for action in sorted(audit.ACTIONS):
        audit.record(db_session, None, action, "test", None)
    assert {e.action for e in audit.query(db_session, limit=1000)} >= audit.ACTIONS


# -- Append-only, enforced by the database --------------------------------------------------


def _insert_raw(connection) -> int:
    connection.execute(text(
        "INSERT INTO audit_events (at, action, target_type, target_id) "
        "VALUES (:at, 'handoff.view', 'handoff', '1')"), {"at": T0})
    return connection.execute(text("SELECT max(id) FROM audit_events")).scalar_one()


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'handoff.claim' WHERE id = :id",
    "UPDATE audit_events SET detail = NULL",
    "DELETE FROM audit_events WHERE id = :id",
    "DELETE FROM audit_events",
])
def test_raw_sql_cannot_change_or_delete_an_entry(db_engine, statement: str) -> None:
    with db_engine.connect() as connection, connection.begin() as transaction:
        event_id = _insert_raw(connection)
        with pytest.raises(DatabaseError, match="append-only"):
            connection.execute(text(statement), {"id": event_id})
        transaction.rollback()


def test_the_entry_is_unchanged_after_a_refused_update(sqlite_engine) -> None:
    # SQLite's RAISE(ABORT) undoes the statement and keeps the transaction, so it can be read.
    with sqlite_engine.connect() as connection, connection.begin() as transaction:
        event_id = _insert_raw(connection)
        with pytest.raises(DatabaseError):
            connection.execute(text("UPDATE audit_events SET action = 'x' WHERE id = :id"),
                               {"id": event_id})
        action = connection.execute(text("SELECT action FROM audit_events WHERE id = :id"),
                                    {"id": event_id}).scalar_one()
        assert action == "handoff.view"
        transaction.rollback()


def test_truncate_is_refused_on_postgres(postgres_engine) -> None:
    with postgres_engine.connect() as connection, connection.begin() as transaction:
        _insert_raw(connection)
        with pytest.raises(DatabaseError, match="append-only"):
            connection.execute(text("TRUNCATE audit_events"))
        transaction.rollback()


def test_the_orm_cannot_change_or_delete_an_entry_either(db_engine) -> None:
    for change in ("update", "delete"):
        with Session(db_engine, future=True) as session:
            event = audit.record(session, None, "handoff.view", "handoff", 1)
            if change == "update":
                event.action = "handoff.claim"
            else:
                session.delete(event)
            with pytest.raises(DatabaseError, match="append-only"):
                session.flush()
            session.rollback()
