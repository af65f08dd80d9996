"""The website intake: answers stored as they are given, consent, and submission to staff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.crypto import blind_index
from bot.db.models import (
    Answer,
    Channel,
    ConsentKind,
    ConsentRecord,
    Conversation,
    Handoff,
    HandoffPriority,
    HandoffReason,
    IntakeStatus,
    Person,
    PersonKind,
    utcnow,
)
from bot.services import conversations, handoffs

FORM = "intake"

# The intake's questions, in the order they are asked and summarised. Each is a slot name.
INTAKE_FIELDS: tuple[str, ...] = (
    "first_name",
    "phone",
    "email",
    "contact_time",
    "us_state",
    "conditions",
    "condition_duration",
    "antidepressant_count",
    "prior_treatments",
    "prior_ketamine",
    "prior_ketamine_when",
    "prior_ketamine_infusions",
    "current_medications",
    "referral_source",
    "consent_contact",
    "consent_sms",
)

# Answers that also describe the person, so staff can find and contact them.
_PERSON_FIELDS = {"first_name", "phone", "email", "us_state"}


def _person_for(session: Session, conversation: Conversation) -> Person:
    if conversation.person is None:
        person = Person(kind=PersonKind.PROSPECT)
        session.add(person)
        session.flush()
        conversation.person_id = person.id
        conversation.person = person
    return conversation.person


def _update_person(person: Person, key: str, value: Any) -> None:
    # A skipped answer ({"skipped": true}) changes nothing on the person.
    if value is None or isinstance(value, dict):
        return
    if key == "first_name":
        person.first_name = str(value)
    elif key == "phone":
        person.phone = str(value)
        person.phone_index = blind_index(str(value))
    elif key == "email":
        email = str(value).lower()
        person.email = email
        person.email_index = blind_index(email)
    elif key == "us_state":
        person.us_state = str(value)


def record_answer(
    session: Session, sender_id: str, channel: Channel, key: str, value: Any
) -> Answer:
    """Store one intake answer the moment it is given.

    Corrections add a new row; the latest row for a question is the current answer.

    Args:
        session: The unit of work.
        sender_id: The conversation's Rasa sender id.
        channel: The channel the answer came in on.
        key: The question (slot) name; one of :data:`INTAKE_FIELDS`.
        value: A JSON-serialisable value (``{"skipped": true}`` for a skipped question).

    Returns:
        The stored answer.

    Raises:
        ValueError: ``key`` is not an intake question.
    """
    if key not in INTAKE_FIELDS:
        raise ValueError(f"Not an intake question: {key}")
    conversation = conversations.get_or_create(session, sender_id, channel)
    if conversation.intake_status is None:
        conversation.intake_status = IntakeStatus.IN_PROGRESS
    if key in _PERSON_FIELDS:
        _update_person(_person_for(session, conversation), key, value)
    answer = Answer(
        conversation_id=conversation.id,
        form=FORM,
        question_key=key,
        value=value,
        channel=channel,
    )
    session.add(answer)
    session.flush()
    return answer


def latest_answers(session: Session, sender_id: str) -> dict[str, Any]:
    """The current answer to each intake question answered so far, in question order."""
    conversation = conversations.find(session, sender_id)
    if conversation is None:
        return {}
    rows = session.scalars(
        select(Answer)
        .where(Answer.conversation_id == conversation.id, Answer.form == FORM)
        .order_by(Answer.id)
    )
    latest: dict[str, Any] = {}
    for row in rows:
        latest[row.question_key] = row.value
    return {key: latest[key] for key in INTAKE_FIELDS if key in latest}


def record_consent(
    session: Session,
    sender_id: str,
    channel: Channel,
    kind: ConsentKind,
    granted: bool,
    text_version: str,
    text_sha256: str,
) -> ConsentRecord:
    """Record a consent given or declined, with the exact wording version shown."""
    conversation = conversations.get_or_create(session, sender_id, channel)
    record = ConsentRecord(
        person_id=conversation.person_id,
        conversation_id=conversation.id,
        kind=kind,
        granted=granted,
        text_version=text_version,
        text_sha256=text_sha256,
        channel=channel,
    )
    session.add(record)
    session.flush()
    return record


def intake_summary(session: Session, sender_id: str) -> dict[str, Any]:
    """The structured summary staff see for an intake, complete or partial."""
    conversation = conversations.find(session, sender_id)
    consents = []
    if conversation is not None:
        consents = [
            {
                "kind": record.kind.value,
                "granted": record.granted,
                "text_version": record.text_version,
                "at": record.created_at.isoformat(),
            }
            for record in session.scalars(
                select(ConsentRecord)
                .where(ConsentRecord.conversation_id == conversation.id)
                .order_by(ConsentRecord.id)
            )
        ]
    return {
        "kind": "intake",
        "status": (
            conversation.intake_status.value
            if conversation is not None and conversation.intake_status
            else None
        ),
        "answers": latest_answers(session, sender_id),
        "consents": consents,
    }


@dataclass(frozen=True)
class SubmitResult:
    """The outcome of :func:`submit`."""

    handoff: Handoff
    created: bool


def submit(session: Session, sender_id: str, channel: Channel) -> SubmitResult:
    """Submit the intake: mark it submitted and hand it to staff at routine priority.

    Submitting again with no answer changed since returns the earlier handoff instead of
    queueing a duplicate; if answers changed, staff get a new handoff marked as an update.
    """
    conversation = conversations.get_or_create(session, sender_id, channel)
    updated = False
    if conversation.intake_status == IntakeStatus.SUBMITTED:
        earlier = [
            h for h in handoffs.for_conversation(session, sender_id)
            if h.reason == HandoffReason.INTAKE_SUBMITTED
        ]
        changed = session.scalars(
            select(Answer.id).where(
                Answer.conversation_id == conversation.id,
                Answer.form == FORM,
                Answer.created_at > conversation.intake_submitted_at,
            )
        ).first()
        if earlier and changed is None:
            return SubmitResult(earlier[-1], created=False)
        updated = bool(earlier)
    conversation.intake_status = IntakeStatus.SUBMITTED
    conversation.intake_submitted_at = utcnow()
    summary = intake_summary(session, sender_id)
    summary["updated"] = updated
    handoff = handoffs.create(
        session,
        sender_id,
        channel,
        HandoffReason.INTAKE_SUBMITTED,
        HandoffPriority.ROUTINE,
        summary,
    )
    return SubmitResult(handoff, created=True)


def partial_intakes(session: Session) -> list[Conversation]:
    """Conversations whose intake was started but not submitted, newest activity first."""
    return list(
        session.scalars(
            select(Conversation)
            .where(Conversation.intake_status == IntakeStatus.IN_PROGRESS)
            .order_by(Conversation.last_activity_at.desc())
        )
    )
