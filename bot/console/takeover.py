"""Staff take a conversation over from the assistant, reply in it, and hand it back.

* :func:`take_over` pauses the assistant in Rasa (see :mod:`bot.console.rasa_api`) and records
  in the database who holds the conversation (``conversations.held_by_id``).
* :func:`reply` sends a staff member's message into the conversation's own channel, taking the
  conversation over first if they do not hold it yet:

  * website chat: the message is added to the conversation in Rasa, marked as theirs, and the
    widget's live stream (``GET /webhooks/widget/stream``, :mod:`bot.channels.widget`) shows it
    in the visitor's open chat, labelled with their name;
  * SMS: the message is texted to the enrolled patient's number through the channel's
    :class:`~bot.channels.sms.SmsOutbox`, exactly as written (a character outside GSM-7 makes
    it a UCS-2 text; nothing is replaced), then added to the conversation in Rasa. A patient
    who opted out (STOP) is never texted.

* :func:`hand_back` resumes the assistant and clears the hold.

While staff hold a conversation the channels still run the crisis check first on every
message: crisis language gets the resources and an urgent handoff at once, and everything the
person writes is kept in the conversation for staff to read.

Every step is written to the audit log (a reply without its text). All three functions take the
caller's database session first and leave committing to the caller. They block on HTTP (Rasa,
Twilio), so async code runs them in a worker thread. The external step comes before the
database writes, so an SMS that goes out is never held up by the caller's open transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

from bot import gsm
from bot.console.rasa_api import RasaApi, RasaApiError
from bot.db.models import Channel, Conversation

if TYPE_CHECKING:
    from bot.channels.sms import SmsOutbox
    from bot.db.models import StaffUser

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 1600
"""The longest staff reply, in characters: what Twilio accepts as one message body."""

PERMISSION = "conversation.reply"
"""The staff permission all three steps need (:func:`bot.services.staff.can`)."""
TARGET_TYPE = "conversation"
"""The audit entries' target type; the target id is the conversation's row id."""

ENCODING_GSM7 = "GSM-7"
ENCODING_UCS2 = "UCS-2"

# Control characters other than tab and newline have no place in a message (and a carriage
# return would show as a second line break on some phones).
_CONTROL = frozenset(chr(code) for code in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F))


class Outbox(Protocol):
    """What SMS replies are sent through: :class:`~bot.channels.sms.SmsOutbox`."""

    def send(self, to: str, body: str, *, patient_id: int | None = None,
             conversation_id: int | None = None) -> str:
        """Send one text; return its SID or raise ``SmsSendError``."""
        ...


class TakeoverError(Exception):
    """A takeover, reply or hand back that cannot be done; the message says why, in words
    staff can act on, and never quotes the reply."""


@dataclass(frozen=True)
class ReplyResult:
    """What happened to a staff reply.

    Attributes:
        channel: The conversation's channel.
        characters: The reply's length.
        encoding: For SMS, ``"GSM-7"`` or ``"UCS-2"``; ``None`` otherwise.
        segments: For SMS, how many segments the text takes (what the carrier bills).
        took_over: Whether the reply first took the conversation over.
        recorded: Whether the reply is in the conversation's transcript. Only an SMS reply can
            be sent but not recorded (Rasa failed after the text went out); the console should
            say so rather than have it sent twice.
    """

    channel: Channel
    characters: int
    encoding: str | None = None
    segments: int | None = None
    took_over: bool = False
    recorded: bool = True


def check_reply_text(text: object) -> str:
    """Validate a staff reply and return it without surrounding whitespace.

    Args:
        text: The reply as submitted.

    Returns:
        The reply, stripped at both ends and otherwise exactly as written.

    Raises:
        TakeoverError: It is not text, is empty, is longer than :data:`MAX_REPLY_CHARS`, or
            contains control characters.
    """
    if not isinstance(text, str):
        raise TakeoverError("The reply must be text.")
    body = text.strip()
    if not body:
        raise TakeoverError("The reply is empty.")
    if len(body) > MAX_REPLY_CHARS:
        raise TakeoverError(
            f"The reply is {len(body):,} characters long; the limit is {MAX_REPLY_CHARS:,}."
        )
    if any(char in _CONTROL for char in body):
        raise TakeoverError("The reply contains control characters; please retype it.")
    return body


def sms_encoding(text: str) -> tuple[str, int]:
    """How a text goes out as SMS: its encoding and number of segments.

    Args:
        text: The message.

    Returns:
        ``("GSM-7", n)`` or ``("UCS-2", n)``.
    """
    return (ENCODING_GSM7 if gsm.is_gsm7(text) else ENCODING_UCS2), gsm.segments(text)


def default_outbox() -> SmsOutbox:
    """The SMS outbox configured like the SMS channel's (``TWILIO_*`` settings)."""
    from bot.channels.sms import SmsOutbox
    from bot.settings import get_settings

    settings = get_settings()
    return SmsOutbox(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_from_number,
        settings.twilio_api_base_url,
    )


# -- the three steps ---------------------------------------------------------------------

def take_over(
    session: Session, api: RasaApi, sender_id: str, user: StaffUser, *, force: bool = False
) -> Conversation:
    """Record that ``user`` holds a conversation, and pause the assistant in it.

    The hold is recorded first (one conditional update, so two colleagues cannot both take
    over); if Rasa then cannot pause, the error makes the caller roll the hold back. Taking over
    a conversation ``user`` already holds makes sure the assistant is still paused (a new Rasa
    session unpauses it) and changes nothing else.

    Args:
        session: The unit of work (the caller commits).
        api: Rasa's HTTP API.
        sender_id: The conversation.
        user: The staff member.
        force: Take it over even if a colleague holds it.

    Returns:
        The conversation.

    Raises:
        TakeoverError: The conversation is unknown, ``user`` may not reply in conversations,
            a colleague holds it (without ``force``), or Rasa could not pause it.
    """
    conversation = _checked(session, sender_id, user)
    current = _holder(session, sender_id, user, force=force)
    changed = _hold(session, conversation, user, current, force=force)
    repaused = _pause(api, sender_id)
    if changed or repaused:
        _audit_take_over(session, conversation, user, current, repaused=repaused and not changed)
    return conversation


def reply(
    session: Session,
    api: RasaApi,
    sender_id: str,
    user: StaffUser,
    text: str,
    *,
    outbox: Outbox | None = None,
) -> ReplyResult:
    """Send a staff member's reply into the conversation's own channel.

    A conversation ``user`` does not hold yet is taken over first. The reply is delivered before
    anything is written to the database, so an SMS never waits for the caller's transaction.
    If delivery fails, a pause this call made is undone.

    Args:
        session: The unit of work (the caller commits).
        api: Rasa's HTTP API.
        sender_id: The conversation.
        user: The staff member.
        text: The reply (at most :data:`MAX_REPLY_CHARS` characters).
        outbox: Where SMS replies are sent; by default the one configured from the settings.

    Returns:
        What happened.

    Raises:
        TakeoverError: Bad text, an unknown conversation, a channel that cannot take replies,
            a colleague holds the conversation, an SMS conversation without an enrolled
            patient or with one who opted out, or the reply could not be delivered.
    """
    body = check_reply_text(text)
    conversation = _checked(session, sender_id, user)
    if conversation.channel not in (Channel.WIDGET, Channel.SMS):
        raise TakeoverError(
            "This conversation came through the REST API, which cannot receive replies."
        )
    target = _sms_target(session, conversation) if conversation.channel is Channel.SMS else None
    current = _holder(session, sender_id, user, force=False)
    paused_now = _pause(api, sender_id)
    encoding: str | None = None
    segments: int | None = None
    recorded = True
    try:
        if target is not None:
            encoding, segments = sms_encoding(body)
            _send_sms(outbox or default_outbox(), target, body, conversation)
        else:
            _append(api, sender_id, body, user)
    except TakeoverError:
        if paused_now and current is None:
            _undo_pause(api, sender_id)
        raise
    if target is not None:
        # The text is out: from here on nothing may fail the reply or lose its audit entry.
        try:
            _append(api, sender_id, body, user)
        except TakeoverError:
            recorded = False
            logger.error("An SMS staff reply was sent but is missing from conversation %s",
                         conversation.id)
    try:
        changed = _hold(session, conversation, user, current, force=False)
    except TakeoverError:
        # A colleague took it over at the same moment; the reply is delivered all the same.
        changed = False
    if changed or paused_now:
        _audit_take_over(session, conversation, user, current,
                         repaused=paused_now and not changed)
    _audit_reply(session, conversation, user, body, encoding, segments, recorded=recorded)
    return ReplyResult(conversation.channel, len(body), encoding, segments, changed, recorded)


def hand_back(
    session: Session, api: RasaApi, sender_id: str, user: StaffUser, *, force: bool = False
) -> Conversation:
    """Resume the assistant in a conversation and clear the hold.

    Args:
        session: The unit of work (the caller commits).
        api: Rasa's HTTP API.
        sender_id: The conversation.
        user: The staff member.
        force: Hand it back even if a colleague holds it.

    Returns:
        The conversation.

    Raises:
        TakeoverError: The conversation is unknown, ``user`` may not reply in conversations,
            a colleague holds it (without ``force``), or Rasa could not resume it.
    """
    from bot.services import audit, conversations

    conversation = _checked(session, sender_id, user)
    current = _holder(session, sender_id, user, force=force)
    try:
        api.resume(sender_id)
    except RasaApiError as error:
        raise TakeoverError(
            f"The assistant could not be resumed (Rasa: {error.code}). Please try again."
        ) from None
    conversations.release(session, sender_id)
    audit.record(
        session, user.id, audit.CONVERSATION_HANDBACK, TARGET_TYPE, conversation.id,
        person_id=conversation.person_id,
        detail={"channel": conversation.channel.value,
                "holder_id": current.id if current is not None else None},
    )
    return conversation


# -- helpers -----------------------------------------------------------------------------

def _checked(session: Session, sender_id: str, user: StaffUser) -> Conversation:
    """The conversation, once ``user`` is allowed to act in it."""
    from bot.services import conversations, staff

    if not getattr(user, "active", False) or not staff.can(user.role, PERMISSION):
        raise TakeoverError("Your role does not allow replying in conversations.")
    if not isinstance(sender_id, str) or not sender_id:
        raise TakeoverError("Unknown conversation.")
    conversation = conversations.find(session, sender_id)
    if conversation is None:
        raise TakeoverError("Unknown conversation.")
    return conversation


def _holder(session: Session, sender_id: str, user: StaffUser, *, force: bool
            ) -> StaffUser | None:
    """Who holds the conversation now; an error if it is a colleague (without ``force``)."""
    from bot.services import conversations

    current = conversations.holder(session, sender_id)
    if current is not None and current.id != user.id and not force:
        raise TakeoverError(f"{current.display_name} is already replying in this conversation.")
    return current


def _hold(session: Session, conversation: Conversation, user: StaffUser,
          current: StaffUser | None, *, force: bool) -> bool:
    """Record the hold; True if it changed hands."""
    from bot.services import conversations

    if current is not None and current.id == user.id:
        return False
    try:
        conversations.hold(session, conversation.sender_id, user.id, force=force)
    except conversations.ConversationHeldError:
        raise TakeoverError("A colleague has just taken over this conversation.") from None
    return True


def _pause(api: RasaApi, sender_id: str) -> bool:
    """Make sure the assistant is paused; True if it had to be paused now."""
    try:
        if api.is_paused(sender_id):
            return False
        api.pause(sender_id)
    except RasaApiError as error:
        raise TakeoverError(
            f"The assistant could not be paused (Rasa: {error.code}). Please try again."
        ) from None
    return True


def _undo_pause(api: RasaApi, sender_id: str) -> None:
    """Resume a conversation that a failed reply paused, so the assistant is not left silent."""
    try:
        api.resume(sender_id)
    except RasaApiError as error:
        logger.error("A conversation paused for a failed reply stays paused: %s", error.code)


def _append(api: RasaApi, sender_id: str, body: str, user: StaffUser) -> None:
    try:
        api.append_staff_message(sender_id, body, user.display_name)
    except RasaApiError as error:
        raise TakeoverError(
            f"The reply could not be delivered (Rasa: {error.code}). Please try again."
        ) from None


@dataclass(frozen=True)
class _SmsTarget:
    mobile: str
    patient_id: int


def _sms_target(session: Session, conversation: Conversation) -> _SmsTarget:
    from bot.services.checkins import patient_for_sender

    patient = patient_for_sender(session, conversation.sender_id)
    if patient is None:
        raise TakeoverError(
            "This number is not an enrolled patient's, so it cannot be texted from here; "
            "call them back instead."
        )
    if patient.opted_out_at is not None:
        raise TakeoverError("The patient has opted out of texts (STOP); call them instead.")
    return _SmsTarget(patient.mobile, patient.id)


def _send_sms(outbox: Outbox, target: _SmsTarget, body: str, conversation: Conversation) -> str:
    from bot.channels.sms import SmsSendError

    try:
        return str(outbox.send(target.mobile, body, patient_id=target.patient_id,
                               conversation_id=conversation.id))
    except SmsSendError as error:
        raise TakeoverError(
            f"The text could not be sent ({error.code}). Please try again, or call."
        ) from None


def _audit_take_over(session: Session, conversation: Conversation, user: StaffUser,
                     previous: StaffUser | None, *, repaused: bool) -> None:
    from bot.services import audit

    audit.record(
        session, user.id, audit.CONVERSATION_TAKEOVER, TARGET_TYPE, conversation.id,
        person_id=conversation.person_id,
        detail={"channel": conversation.channel.value,
                "previous_holder_id": previous.id if previous is not None else None,
                "repaused": repaused},
    )


def _audit_reply(session: Session, conversation: Conversation, user: StaffUser, body: str,
                 encoding: str | None, segments: int | None, *, recorded: bool) -> None:
    from bot.services import audit

    detail: dict[str, Any] = {"channel": conversation.channel.value, "characters": len(body),
                              "recorded": recorded}
    if encoding is not None:
        detail.update(encoding=encoding, segments=segments)
    audit.record(session, user.id, audit.CONVERSATION_REPLY, TARGET_TYPE, conversation.id,
                 person_id=conversation.person_id, detail=detail)


__all__ = [
    "MAX_REPLY_CHARS",
    "ReplyResult",
    "TakeoverError",
    "check_reply_text",
    "default_outbox",
    "hand_back",
    "reply",
    "sms_encoding",
    "take_over",
]
