"""Crisis records: the urgent handoff a crisis creates, denials, and the PHQ-9 item 9 path.

One conversation has at most one open crisis handoff. Further crisis messages are added to it;
a denial ("you misunderstood", "I'm fine") is added to it and lowers its priority to ``soon``
without closing it; a new crisis message after a denial raises it back to ``urgent``. Every
message is kept, with the detector's reasons, in the handoff's encrypted summary.

:func:`alert_due` says when staff should be alerted (again): when the handoff is created, when
its priority rises or falls, and otherwise at most every :data:`REALERT_AFTER`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import (
    Channel,
    Handoff,
    HandoffPriority,
    HandoffReason,
    HandoffStatus,
    utcnow,
)
from bot.services import conversations, handoffs

REALERT_AFTER = dt.timedelta(minutes=10)
MAX_MESSAGES_KEPT = 50

KIND_CRISIS = "crisis"
KIND_REPEAT = "crisis_repeat"
KIND_DENIAL = "crisis_denial"
KIND_PHQ9 = "phq9_item9"

PHQ9_ITEM9 = "phq9_item9"


@dataclass(frozen=True)
class CrisisRecord:
    """What recording a crisis event did.

    Attributes:
        handoff_id: The crisis handoff.
        priority: Its priority now.
        created: Whether this event created it.
        alert_kind: The staff alert to send now (``None``: staff were alerted recently).
    """

    handoff_id: int
    priority: HandoffPriority
    created: bool
    alert_kind: str | None


def open_crisis_handoff(session: Session, sender_id: str) -> Handoff | None:
    """The conversation's crisis handoff that is not yet resolved, if any."""
    conversation = conversations.find(session, sender_id)
    if conversation is None:
        return None
    return session.scalars(
        select(Handoff)
        .where(
            Handoff.conversation_id == conversation.id,
            Handoff.reason == HandoffReason.CRISIS,
            Handoff.status != HandoffStatus.RESOLVED,
        )
        .order_by(Handoff.id.desc())
    ).first()


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _parse_iso(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _new_summary(
    now: dt.datetime,
    *,
    messages: Sequence[dict[str, Any]] = (),
    context: Sequence[str] = (),
    paused_form: str | None = None,
    denials: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A new crisis handoff's summary (staff are alerted as it is created)."""
    return {
        "kind": KIND_CRISIS,
        "messages": list(messages),
        "context": list(context),
        "paused_form": paused_form,
        "denials": list(denials),
        "last_alerted_at": _iso(now),
    }


def alert_due(summary: dict[str, Any], now: dt.datetime) -> bool:
    """Whether staff were last alerted about this handoff longer ago than REALERT_AFTER."""
    last = _parse_iso(summary.get("last_alerted_at"))
    return last is None or now - last >= REALERT_AFTER


def record_crisis(
    session: Session,
    sender_id: str,
    channel: Channel,
    *,
    text: str,
    detection: dict[str, Any],
    context: Sequence[str] = (),
    paused_form: str | None = None,
    source: str = "message",
    now: dt.datetime | None = None,
) -> CrisisRecord:
    """Record a crisis message on the conversation's urgent crisis handoff.

    Args:
        session: The unit of work.
        sender_id: The conversation.
        channel: Its channel.
        text: What the person wrote (stored encrypted, never logged).
        detection: Why it was flagged (:meth:`Assessment.as_metadata`).
        context: The person's previous messages in the detection window, oldest first.
        paused_form: The form that was active and is now paused, if any.
        source: ``message``, or ``phq9_item9`` for a check-in answer.
        now: The time (tests pass their own).

    Returns:
        The record, with the alert to send.
    """
    now = now or utcnow()
    entry = {
        "at": _iso(now),
        "text": text,
        "source": source,
        "detection": detection,
    }
    handoff = open_crisis_handoff(session, sender_id)
    if handoff is None:
        summary = _new_summary(now, messages=[entry], context=context, paused_form=paused_form)
        handoff = handoffs.create(
            session, sender_id, channel, HandoffReason.CRISIS, HandoffPriority.URGENT, summary
        )
        return CrisisRecord(handoff.id, HandoffPriority.URGENT, True, KIND_CRISIS)
    summary = dict(handoff.summary or {})
    summary["messages"] = (list(summary.get("messages", [])) + [entry])[-MAX_MESSAGES_KEPT:]
    if paused_form and not summary.get("paused_form"):
        summary["paused_form"] = paused_form
    raised = handoff.priority != HandoffPriority.URGENT
    alert_kind = KIND_REPEAT if raised or alert_due(summary, now) else None
    if alert_kind:
        summary["last_alerted_at"] = _iso(now)
    handoff.priority = HandoffPriority.URGENT
    # A new dict, so the encrypted JSON column sees the change.
    handoff.summary = summary
    handoff.updated_at = now
    session.flush()
    return CrisisRecord(handoff.id, HandoffPriority.URGENT, False, alert_kind)


def record_denial(
    session: Session,
    sender_id: str,
    channel: Channel,
    *,
    text: str,
    now: dt.datetime | None = None,
) -> CrisisRecord:
    """Record "you misunderstood" / "I'm fine" after a crisis reply.

    The crisis handoff stays open, lowered to ``soon``: staff still follow up. If there is no
    open crisis handoff (the crisis could not be recorded at the time), one is created at
    ``soon`` so the denial is not lost either.

    Args:
        session: The unit of work.
        sender_id: The conversation.
        channel: Its channel.
        text: What the person wrote.
        now: The time.

    Returns:
        The record; its alert kind is always ``crisis_denial``.
    """
    now = now or utcnow()
    entry = {"at": _iso(now), "text": text}
    handoff = open_crisis_handoff(session, sender_id)
    if handoff is None:
        summary = _new_summary(now, denials=[entry])
        handoff = handoffs.create(
            session, sender_id, channel, HandoffReason.CRISIS, HandoffPriority.SOON, summary
        )
        return CrisisRecord(handoff.id, HandoffPriority.SOON, True, KIND_DENIAL)
    summary = dict(handoff.summary or {})
    summary["denials"] = list(summary.get("denials", [])) + [entry]
    summary["last_alerted_at"] = _iso(now)
    handoff.summary = summary
    handoff.priority = HandoffPriority.SOON
    handoff.updated_at = now
    session.flush()
    return CrisisRecord(handoff.id, HandoffPriority.SOON, False, KIND_DENIAL)


def record_phq9_item9(
    session: Session,
    sender_id: str,
    channel: Channel,
    *,
    score: int,
    answer_text: str,
    now: dt.datetime | None = None,
) -> CrisisRecord | None:
    """Take the crisis path for a PHQ-9 item 9 answer above 0.

    Item 9 asks about thoughts of being better off dead or of self-harm; any answer above 0
    needs same-day human follow-up, exactly like a crisis message.

    Args:
        session: The unit of work.
        sender_id: The conversation.
        channel: Its channel.
        score: The item's score, 0 to 3.
        answer_text: The person's own words for the answer.
        now: The time.

    Returns:
        The crisis record, or ``None`` when the score is 0.

    Raises:
        ValueError: The score is not 0 to 3.
    """
    if score not in (0, 1, 2, 3):
        raise ValueError("PHQ-9 item scores are 0 to 3")
    if score == 0:
        return None
    record = record_crisis(
        session,
        sender_id,
        channel,
        text=answer_text,
        detection={"crisis": True, "layers": [PHQ9_ITEM9], "phq9_item9": score},
        source=PHQ9_ITEM9,
        now=now,
    )
    if record.created:
        return CrisisRecord(record.handoff_id, record.priority, True, KIND_PHQ9)
    return record
