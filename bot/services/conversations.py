"""Conversations, keyed by Rasa sender id, and which staff member holds one.

A staff member who takes a conversation over *holds* it until they hand it back: the assistant
stays paused meanwhile, and no colleague can take it over at the same time.
"""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.db.models import Channel, Conversation, StaffUser, utcnow

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


class ConversationHeldError(ValueError):
    """Another staff member already holds the conversation.

    Attributes:
        holder_id: The staff user holding it.
    """

    def __init__(self, holder_id: int) -> None:
        super().__init__("A colleague has already taken over this conversation.")
        self.holder_id = holder_id


def hold(session: Session, sender_id: str, user_id: int, *, force: bool = False
         ) -> Conversation:
    """Record that staff member ``user_id`` has taken the conversation over.

    Holding a conversation one already holds changes nothing (``held_since`` stays). The
    check and the change are one conditional ``UPDATE``, so two colleagues taking over at the
    same moment cannot both succeed. Not audited here: the takeover is.

    Args:
        session: The unit of work.
        sender_id: The conversation.
        user_id: The staff member taking over.
        force: Take it even from a colleague who holds it.

    Returns:
        The conversation.

    Raises:
        LookupError: There is no conversation ``sender_id``.
        ConversationHeldError: A colleague holds it (and ``force`` is not set).
    """
    conversation = find(session, sender_id)
    if conversation is None:
        raise LookupError("No such conversation.")
    if conversation.held_by_id == user_id:
        return conversation
    statement = update(Conversation).where(Conversation.id == conversation.id)
    if not force:
        statement = statement.where(or_(Conversation.held_by_id.is_(None),
                                        Conversation.held_by_id == user_id))
    result = session.execute(
        statement.values(held_by_id=user_id, held_since=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(conversation)
    if result.rowcount == 0 and conversation.held_by_id != user_id:
        raise ConversationHeldError(conversation.held_by_id)
    return conversation


def release(session: Session, sender_id: str) -> Conversation | None:
    """Give the conversation back to the assistant (nobody holds it afterwards).

    Returns:
        The conversation, or ``None`` if there is no conversation ``sender_id``.
    """
    conversation = find(session, sender_id)
    if conversation is None:
        return None
    if conversation.held_by_id is not None or conversation.held_since is not None:
        conversation.held_by_id = None
        conversation.held_since = None
        session.flush()
    return conversation


def holder(session: Session, sender_id: str) -> StaffUser | None:
    """The staff member holding the conversation, or ``None`` while the assistant has it."""
    return session.scalars(
        select(StaffUser)
        .join(Conversation, Conversation.held_by_id == StaffUser.id)
        .where(Conversation.sender_id == sender_id)
    ).first()
