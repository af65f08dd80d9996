"""Who a handoff is about, with their contact details, for the staff console.

This is the console's one place to get contact details: they are decrypted here, for staff
whose role may see them (every role may: front desk calls people back). Nothing here is
logged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Conversation, Handoff, Patient, Person, PersonKind
from bot.services.checkins import first_name


def describe(session: Session, handoff: Handoff) -> dict[str, Any]:
    """The person a handoff is about and how to reach them.

    Args:
        session: The unit of work.
        handoff: The handoff.

    Returns:
        ``kind`` (``"prospect"`` or ``"patient"``); ``name`` (a prospect's first name, a
        patient's full name; ``None`` if not given); ``first_name``; ``phone`` and ``email``
        (``None`` if not given; a patient's phone is their enrolled mobile number);
        ``channel`` (``"widget"``, ``"rest"`` or ``"sms"``); ``sender_id`` (the conversation);
        ``person_id`` and ``patient_id`` (``None`` when not a patient enrolled in check-ins).
        A visitor who gave no details is a prospect with ``None`` for every detail.
    """
    conversation = session.get(Conversation, handoff.conversation_id)
    person_id = handoff.person_id or (conversation.person_id if conversation else None)
    person = session.get(Person, person_id) if person_id is not None else None
    patient = None
    if person is not None:
        patient = session.scalars(select(Patient).where(Patient.person_id == person.id)).first()

    kind = PersonKind.PATIENT if patient is not None else (
        person.kind if person is not None else PersonKind.PROSPECT)
    if patient is not None:
        name: str | None = patient.name
        given: str | None = first_name(patient.name) or None
        phone: str | None = patient.mobile or (person.phone if person else None)
    else:
        given = person.first_name if person is not None else None
        name = given
        phone = person.phone if person is not None else None
    return {
        "kind": kind.value,
        "name": name,
        "first_name": given,
        "phone": phone,
        "email": person.email if person is not None else None,
        "channel": conversation.channel.value if conversation is not None else None,
        "sender_id": conversation.sender_id if conversation is not None else None,
        "person_id": person.id if person is not None else None,
        "patient_id": patient.id if patient is not None else None,
    }
