"""The service layer against real databases: SQLite and PostgreSQL, migrated with Alembic."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from bot.db.crypto import blind_index
from bot.db.models import (
    Answer,
    Channel,
    ConsentKind,
    HandoffPriority,
    HandoffReason,
    HandoffStatus,
    IntakeStatus,
    Person,
)
from bot.services import conversations, handoffs, intake

SENDER = "web-test-sender"


def test_record_answer_creates_conversation_person_and_row(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "first_name", "Maria")
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "phone", "+15035550199")

    conversation = conversations.find(db_session, SENDER)
    assert conversation is not None
    assert conversation.intake_status == IntakeStatus.IN_PROGRESS
    person = db_session.get(Person, conversation.person_id)
    assert (person.first_name, person.phone) == ("Maria", "+15035550199")
    assert person.phone_index == blind_index("+15035550199")
    rows = db_session.scalars(select(Answer).order_by(Answer.id)).all()
    assert [(r.question_key, r.value, r.channel) for r in rows] == [
        ("first_name", "Maria", Channel.WIDGET),
        ("phone", "+15035550199", Channel.WIDGET),
    ]


def test_answers_and_contact_details_are_encrypted_at_rest(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "current_medications",
                         {"text": "sertraline 100mg", "ids": ["sertraline"]})
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "email", "Maria@Example.com")
    raw_answers = db_session.execute(text("SELECT value FROM answers")).scalars().all()
    raw_people = db_session.execute(text("SELECT email, email_index FROM people")).one()
    assert raw_answers and all("sertraline" not in v and "example" not in v.lower()
                               for v in raw_answers)
    assert "example" not in raw_people[0].lower()
    assert raw_people[1] == blind_index("maria@example.com")


def test_corrections_add_rows_and_latest_answer_wins(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "us_state", "OR")
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "first_name", "Jo")
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "us_state", "WA")

    assert intake.latest_answers(db_session, SENDER) == {"first_name": "Jo", "us_state": "WA"}
    # Question order, not answer order.
    assert list(intake.latest_answers(db_session, SENDER)) == ["first_name", "us_state"]
    assert db_session.scalars(select(Answer)).all().__len__() == 3


def test_skipped_answer_is_stored_and_leaves_person_unchanged(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "phone", "+15035550199")
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "phone", {"skipped": True})
    conversation = conversations.find(db_session, SENDER)
    assert intake.latest_answers(db_session, SENDER) == {"phone": {"skipped": True}}
    assert db_session.get(Person, conversation.person_id).phone == "+15035550199"


def test_unknown_question_is_refused(db_session):
    with pytest.raises(ValueError, match="Not an intake question"):
        intake.record_answer(db_session, SENDER, Channel.WIDGET, "ssn", "123")


def test_consent_records_keep_version_and_hash(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "first_name", "Maria")
    record = intake.record_consent(db_session, SENDER, Channel.WIDGET, ConsentKind.SMS, True,
                                   "sms-v1", "ab" * 32)
    assert (record.kind, record.granted, record.text_version) == (ConsentKind.SMS, True, "sms-v1")
    assert record.person_id is not None and record.created_at is not None
    summary = intake.intake_summary(db_session, SENDER)
    assert summary["consents"][0]["kind"] == "sms"
    assert summary["consents"][0]["granted"] is True


def test_submit_creates_one_routine_handoff_with_the_summary(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "first_name", "Maria")
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "antidepressant_count", 4)

    first = intake.submit(db_session, SENDER, Channel.WIDGET)
    again = intake.submit(db_session, SENDER, Channel.WIDGET)

    assert first.created and not again.created
    assert again.handoff.id == first.handoff.id
    handoff = first.handoff
    assert (handoff.reason, handoff.priority, handoff.status) == (
        HandoffReason.INTAKE_SUBMITTED, HandoffPriority.ROUTINE, HandoffStatus.OPEN)
    assert handoff.summary["answers"] == {"first_name": "Maria", "antidepressant_count": 4}
    assert handoff.summary["status"] == "submitted"
    assert handoff.summary["updated"] is False
    assert conversations.find(db_session, SENDER).intake_status == IntakeStatus.SUBMITTED


def test_resubmitting_after_a_change_queues_an_update(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "first_name", "Maria")
    first = intake.submit(db_session, SENDER, Channel.WIDGET)
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "first_name", "Marie")
    second = intake.submit(db_session, SENDER, Channel.WIDGET)
    assert second.created and second.handoff.id != first.handoff.id
    assert second.handoff.summary["updated"] is True
    assert second.handoff.summary["answers"]["first_name"] == "Marie"


def test_partial_intake_is_visible_before_submission(db_session):
    intake.record_answer(db_session, SENDER, Channel.WIDGET, "first_name", "Maria")
    intake.record_answer(db_session, "web-other", Channel.WIDGET, "first_name", "Sam")
    intake.submit(db_session, "web-other", Channel.WIDGET)
    partial = intake.partial_intakes(db_session)
    assert [c.sender_id for c in partial] == [SENDER]


def test_queue_orders_by_priority_then_age_and_hides_resolved(db_session):
    routine = handoffs.create(db_session, "a", Channel.WIDGET, HandoffReason.HUMAN_REQUESTED,
                              HandoffPriority.ROUTINE, {})
    urgent = handoffs.create(db_session, "b", Channel.SMS, HandoffReason.CRISIS,
                             HandoffPriority.URGENT, {})
    soon = handoffs.create(db_session, "c", Channel.SMS, HandoffReason.HUMAN_REQUESTED,
                           HandoffPriority.SOON, {})
    done = handoffs.create(db_session, "d", Channel.WIDGET, HandoffReason.HUMAN_REQUESTED,
                           HandoffPriority.URGENT, {})
    done.status = HandoffStatus.RESOLVED
    db_session.flush()
    assert [h.id for h in handoffs.queue(db_session)] == [urgent.id, soon.id, routine.id]


def test_conversations_are_isolated_by_sender_id(db_session):
    intake.record_answer(db_session, "web-one", Channel.WIDGET, "first_name", "Ana")
    intake.record_answer(db_session, "web-two", Channel.WIDGET, "first_name", "Ben")
    assert intake.latest_answers(db_session, "web-one") == {"first_name": "Ana"}
    assert intake.latest_answers(db_session, "web-two") == {"first_name": "Ben"}
    assert intake.latest_answers(db_session, "web-three") == {}


@pytest.mark.parametrize(
    ("rasa_name", "channel"),
    [("widget", Channel.WIDGET), ("rest", Channel.REST), ("twilio", Channel.SMS),
     (None, Channel.REST), ("something-new", Channel.REST)],
)
def test_channel_names_map(rasa_name, channel):
    assert conversations.channel_from_rasa(rasa_name) == channel
