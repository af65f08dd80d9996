"""The audit log: every view of a handoff or transcript, every reply, every change staff make.

The log is append-only. This module only inserts and reads; the database refuses UPDATE and
DELETE on ``audit_events`` (triggers from migration 0005), so an entry cannot be changed or
removed even with direct SQL.

An entry says who, what and to which record. ``detail`` holds ids, outcomes and the names of
changed fields, never patient data: no names, no note or message text, no answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import AuditEvent, utcnow

LOGIN = "login"
LOGIN_FAILED = "login.failed"
LOGOUT = "logout"
STAFF_CREATE = "staff.create"
STAFF_UPDATE = "staff.update"
HANDOFF_VIEW = "handoff.view"
TRANSCRIPT_VIEW = "transcript.view"
HANDOFF_CLAIM = "handoff.claim"
HANDOFF_NOTE = "handoff.note"
HANDOFF_RESOLVE = "handoff.resolve"
CONVERSATION_TAKEOVER = "conversation.takeover"
CONVERSATION_REPLY = "conversation.reply"
CONVERSATION_HANDBACK = "conversation.handback"
PATIENT_ENROL = "patient.enrol"
PATIENT_IMPORT = "patient.import"
CLINIC_UPDATE = "clinic.update"
AUDIT_VIEW = "audit.view"
ACCESS_DENIED = "access.denied"

ACTIONS = frozenset({
    LOGIN, LOGIN_FAILED, LOGOUT, STAFF_CREATE, STAFF_UPDATE, HANDOFF_VIEW, TRANSCRIPT_VIEW,
    HANDOFF_CLAIM, HANDOFF_NOTE, HANDOFF_RESOLVE, CONVERSATION_TAKEOVER, CONVERSATION_REPLY,
    CONVERSATION_HANDBACK, PATIENT_ENROL, PATIENT_IMPORT, CLINIC_UPDATE, AUDIT_VIEW,
    ACCESS_DENIED,
})
"""The actions the product records."""

_ACTION = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)*")

MAX_LIMIT = 1000

# Values a detail may hold: ids, counts, flags, outcome words, field names. Nested lists (of
# field names or ids) are allowed; nested mappings are not, which keeps summaries out.
_Scalar = (str, int, float, bool, type(None))


def _check_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in detail.items():
        if not isinstance(key, str):
            raise TypeError("audit detail keys must be strings")
        if isinstance(value, (list, tuple)):
            if not all(isinstance(item, _Scalar) for item in value):
                raise TypeError(f"audit detail {key!r} must hold plain values only")
            clean[key] = list(value)
        elif isinstance(value, _Scalar):
            clean[key] = value
        else:
            raise TypeError(f"audit detail {key!r} must be a plain value or a list of them")
    return clean


def record(
    session: Session,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: int | str | None,
    person_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one entry to the audit log.

    Args:
        session: The unit of work (the caller commits, together with the change audited).
        actor_id: The staff member who acted; ``None`` when nobody was logged in (a failed
            login) or for the command line.
        action: What happened, usually one of :data:`ACTIONS` (``"handoff.view"``,
            ``"clinic.update"`` ...): dotted lower-case words, at most 40 characters.
        target_type: What was acted on: ``"handoff"``, ``"conversation"``, ``"staff_user"``,
            ``"patient"``, ``"clinic"`` ...
        target_id: Its id (stored as text, so a conversation's sender id fits too).
        person_id: The person (patient or prospect) concerned, if any, so their record's
            history can be listed.
        detail: Ids, outcomes and names of changed fields, never patient data.

    Returns:
        The new entry (flushed, so it has its id).

    Raises:
        ValueError: ``action`` is not dotted lower-case words.
        TypeError: ``detail`` holds something other than plain values or lists of them.
    """
    if len(action) > 40 or not _ACTION.fullmatch(action):
        raise ValueError(f"not an audit action: {action!r} (e.g. 'handoff.view')")
    event = AuditEvent(
        at=utcnow(),
        staff_user_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        person_id=person_id,
        detail=_check_detail(detail) if detail else None,
    )
    session.add(event)
    session.flush()
    return event


def query(
    session: Session,
    *,
    staff_user_id: int | None = None,
    person_id: int | None = None,
    limit: int = 200,
) -> list[AuditEvent]:
    """Audit entries, newest first.

    Args:
        session: The unit of work.
        staff_user_id: Only what this staff member did.
        person_id: Only entries concerning this person.
        limit: At most this many (1 to :data:`MAX_LIMIT`).

    Returns:
        The entries, newest first.
    """
    statement = select(AuditEvent)
    if staff_user_id is not None:
        statement = statement.where(AuditEvent.staff_user_id == staff_user_id)
    if person_id is not None:
        statement = statement.where(AuditEvent.person_id == person_id)
    limit = max(1, min(int(limit), MAX_LIMIT))
    return list(session.scalars(
        statement.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    ))
