"""Conversations, keyed by Rasa sender id."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Channel, Conversation, utcnow

# Rasa's names for input channels, mapped to ours.
_CHANNELS = {
    "widget": Channel.WIDGET,
    "rest": Channel.REST,
    "twilio": Channel.SMS,
    "sms": Channel.SMS,
}


def channel_from_rasa(name: str | None) -> Channel:
    """Map a Rasa input channel name to :class:`Channel` (REST when unknown)."""
    return _CHANNELS.get((name or "").lower(), Channel.REST)


def find(session: Session, sender_id: str) -> Conversation | None:
    """The conversation with ``sender_id``, if it exists."""
    return session.scalars(
        select(Conversation).where(Conversation.sender_id == sender_id)
    ).first()


def get_or_create(session: Session, sender_id: str, channel: Channel) -> Conversation:
    """The conversation with ``sender_id``, created on first use; its activity time is bumped."""
    conversation = find(session, sender_id)
    if conversation is None:
        conversation = Conversation(sender_id=sender_id, channel=channel)
        session.add(conversation)
        session.flush()
    else:
        conversation.last_activity_at = utcnow()
    return conversation
