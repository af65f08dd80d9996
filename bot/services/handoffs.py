"""Handoff records: every conversation that needs a person ends up here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from bot.db.models import (
    Channel,
    Handoff,
    HandoffPriority,
    HandoffReason,
    HandoffStatus,
)
from bot.services import conversations

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


def open_queue(session: Session) -> list[Handoff]:
    """Open and claimed handoffs, most urgent first, then oldest first."""
    return list(
        session.scalars(
            select(Handoff)
            .where(Handoff.status != HandoffStatus.RESOLVED)
            .order_by(_PRIORITY_ORDER, Handoff.created_at, Handoff.id)
        )
    )


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
