"""Handoff records: every conversation that needs a person ends up here.

Staff work them in the staff console: a handoff is *open* until someone claims it, *claimed*
while they follow it up (adding notes), and *resolved* with an outcome. Each of these changes is
written to the audit log in the same unit of work. The status changes are conditional
``UPDATE`` statements on the current status, so two colleagues acting at once cannot both claim
or both resolve the same handoff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from bot.db.models import (
    Channel,
    Conversation,
    Handoff,
    HandoffNote,
    HandoffOutcome,
    HandoffPriority,
    HandoffReason,
    HandoffStatus,
    utcnow,
)
from bot.services import audit, conversations

MAX_NOTE_LENGTH = 4000
ACTIVE_STATUSES = (HandoffStatus.OPEN, HandoffStatus.CLAIMED)


class HandoffError(ValueError):
    """A handoff change that is not possible (unknown handoff, already resolved, claimed by a
    colleague, an empty note ...); the message says why, for staff."""

_PRIORITY_ORDER = case(
    (Handoff.priority == HandoffPriority.URGENT, 0),
    (Handoff.priority == HandoffPriority.SOON, 1),
    else_=2,
)


def create(
    session: Session,
    sender_id: str,
    channel: Channel,
    reason: HandoffReason,
    priority: HandoffPriority,
    summary: dict[str, Any],
) -> Handoff:
    """Record a handoff for the conversation ``sender_id``.

    Args:
        session: The unit of work.
        sender_id: The Rasa sender id of the conversation.
        channel: The channel the conversation is on.
        reason: Why staff are needed.
        priority: Routing priority for staff (never shown to the patient).
        summary: A structured, JSON-serialisable summary for staff (stored encrypted).

    Returns:
        The new handoff.
    """
    conversation = conversations.get_or_create(session, sender_id, channel)
    handoff = Handoff(
        conversation_id=conversation.id,
        person_id=conversation.person_id,
        reason=reason,
        priority=priority,
        status=HandoffStatus.OPEN,
        summary=summary,
    )
    session.add(handoff)
    session.flush()
    return handoff


def for_conversation(session: Session, sender_id: str) -> list[Handoff]:
    """Every handoff of one conversation, oldest first."""
    conversation = conversations.find(session, sender_id)
    if conversation is None:
        return []
    return list(
        session.scalars(
            select(Handoff)
            .where(Handoff.conversation_id == conversation.id)
            .order_by(Handoff.id)
        )
    )


# -- The staff queue ----------------------------------------------------------------------------


def queue(
    session: Session,
    *,
    channel: Channel | str | None = None,
    priority: HandoffPriority | str | None = None,
    statuses: Iterable[HandoffStatus | str] | None = None,
    assignee_id: int | None = None,
) -> list[Handoff]:
    """Handoffs for the staff queue: most urgent first, then oldest first.

    Args:
        session: The unit of work.
        channel: Only handoffs of conversations on this channel.
        priority: Only handoffs of this priority.
        statuses: Only handoffs in these statuses (default: open and claimed).
        assignee_id: Only handoffs claimed by this staff member.

    Raises:
        ValueError: An unknown channel, priority or status.
    """
    wanted = [HandoffStatus(status) for status in (statuses or ACTIVE_STATUSES)]
    statement = select(Handoff).where(Handoff.status.in_(wanted))
    if channel is not None:
        statement = statement.join(Conversation, Conversation.id == Handoff.conversation_id) \
            .where(Conversation.channel == Channel(channel))
    if priority is not None:
        statement = statement.where(Handoff.priority == HandoffPriority(priority))
    if assignee_id is not None:
        statement = statement.where(Handoff.assigned_to_id == assignee_id)
    return list(session.scalars(
        statement.order_by(_PRIORITY_ORDER, Handoff.created_at, Handoff.id)
    ))


def get(session: Session, handoff_id: int) -> Handoff | None:
    """The handoff with ``handoff_id``, if any. Viewing is not audited here: the caller that
    shows it to staff records ``handoff.view``."""
    return session.get(Handoff, handoff_id)


def queue_version(session: Session) -> str:
    """A short fingerprint of the queue's state, for the live queue's change detection.

    It changes whenever a handoff is created or changes (claimed, noted, resolved, its summary
    updated) and whenever a conversation is taken over or handed back.
    """
    handoff_state = session.execute(
        select(func.count(Handoff.id), func.max(Handoff.id), func.max(Handoff.updated_at))
    ).one()
    held_state = session.execute(
        select(func.count(Conversation.id), func.max(Conversation.held_since))
        .where(Conversation.held_by_id.is_not(None))
    ).one()
    notes_state = session.scalar(select(func.max(HandoffNote.id)))
    fingerprint = "|".join(str(value) for value in (*handoff_state, *held_state, notes_state))
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def _require(session: Session, handoff_id: int) -> Handoff:
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffError("No such handoff.")
    return handoff


def claim(session: Session, handoff_id: int, user_id: int, *, reassign: bool = False
          ) -> Handoff:
    """Claim a handoff: it is assigned to ``user_id`` (audited as ``handoff.claim``).

    Claiming one's own claimed handoff again changes nothing.

    Args:
        session: The unit of work.
        handoff_id: The handoff.
        user_id: The staff member claiming it.
        reassign: Take it over even though a colleague has claimed it.

    Returns:
        The handoff, now claimed.

    Raises:
        HandoffError: No such handoff, it is resolved, or a colleague claimed it (and
            ``reassign`` is not set).
    """
    handoff = _require(session, handoff_id)
    if handoff.status is HandoffStatus.CLAIMED and handoff.assigned_to_id == user_id:
        return handoff
    previous = handoff.assigned_to_id
    allowed = [HandoffStatus.OPEN] + ([HandoffStatus.CLAIMED] if reassign else [])
    now = utcnow()
    result = session.execute(
        update(Handoff)
        .where(Handoff.id == handoff.id, Handoff.status.in_(allowed))
        .values(status=HandoffStatus.CLAIMED, assigned_to_id=user_id, claimed_at=now,
                updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(handoff)
    if result.rowcount == 0:
        if handoff.status is HandoffStatus.RESOLVED:
            raise HandoffError("This handoff is already resolved.")
        raise HandoffError("A colleague has already claimed this handoff.")
    detail: dict[str, Any] = {"status": HandoffStatus.CLAIMED.value}
    if previous is not None and previous != user_id:
        detail["previous_assignee_id"] = previous
    audit.record(session, user_id, audit.HANDOFF_CLAIM, "handoff", handoff.id,
                 person_id=handoff.person_id, detail=detail)
    return handoff


def _clean_note(body: str) -> str:
    text = (body or "").strip() if isinstance(body, str) else ""
    if not text:
        raise HandoffError("The note is empty.")
    if len(text) > MAX_NOTE_LENGTH:
        raise HandoffError(f"The note is longer than {MAX_NOTE_LENGTH} characters.")
    return text


def add_note(session: Session, handoff_id: int, user_id: int, body: str) -> HandoffNote:
    """Add a staff note to a handoff (stored encrypted; audited as ``handoff.note``, without
    its text).

    Args:
        session: The unit of work.
        handoff_id: The handoff (in any status: a follow-up may come after resolving).
        user_id: The staff member writing.
        body: The note, up to :data:`MAX_NOTE_LENGTH` characters.

    Returns:
        The new note.

    Raises:
        HandoffError: No such handoff, or the note is empty or too long.
    """
    text = _clean_note(body)
    handoff = _require(session, handoff_id)
    now = utcnow()
    note = HandoffNote(handoff_id=handoff.id, staff_user_id=user_id, body=text, created_at=now)
    session.add(note)
    handoff.updated_at = now
    session.flush()
    audit.record(session, user_id, audit.HANDOFF_NOTE, "handoff", handoff.id,
                 person_id=handoff.person_id, detail={"note_id": note.id})
    return note


def notes(session: Session, handoff_id: int) -> list[HandoffNote]:
    """A handoff's notes, oldest first."""
    return list(session.scalars(
        select(HandoffNote).where(HandoffNote.handoff_id == handoff_id).order_by(HandoffNote.id)
    ))


def resolve(
    session: Session,
    handoff_id: int,
    user_id: int,
    outcome: HandoffOutcome | str,
    note: str | None = None,
) -> Handoff:
    """Resolve a handoff with an outcome (audited as ``handoff.resolve``).

    An open handoff can be resolved straight away; it is then assigned to whoever resolved it.

    Args:
        session: The unit of work.
        handoff_id: The handoff.
        user_id: The staff member resolving it.
        outcome: ``called_back``, ``booked``, ``referred`` or ``no_action_needed``.
        note: An optional closing note (added with :func:`add_note`).

    Returns:
        The resolved handoff.

    Raises:
        HandoffError: No such handoff, an unknown outcome, it is already resolved, or the note
            is too long.
    """
    try:
        result_outcome = HandoffOutcome(outcome)
    except ValueError:
        choices = ", ".join(member.value for member in HandoffOutcome)
        raise HandoffError(f"Unknown outcome {outcome!r} (use {choices}).") from None
    closing_note = _clean_note(note) if note is not None and note.strip() else None
    handoff = _require(session, handoff_id)
    now = utcnow()
    result = session.execute(
        update(Handoff)
        .where(Handoff.id == handoff.id, Handoff.status.in_(ACTIVE_STATUSES))
        .values(status=HandoffStatus.RESOLVED, outcome=result_outcome, resolved_by_id=user_id,
                resolved_at=now, updated_at=now,
                assigned_to_id=func.coalesce(Handoff.assigned_to_id, user_id),
                claimed_at=func.coalesce(Handoff.claimed_at, now))
        .execution_options(synchronize_session=False)
    )
    session.refresh(handoff)
    if result.rowcount == 0:
        raise HandoffError("This handoff is already resolved.")
    detail: dict[str, Any] = {"outcome": result_outcome.value}
    if closing_note is not None:
        detail["note_id"] = add_note(session, handoff.id, user_id, closing_note).id
    audit.record(session, user_id, audit.HANDOFF_RESOLVE, "handoff", handoff.id,
                 person_id=handoff.person_id, detail=detail)
    return handoff
