"""The application database: people, conversations, answers, consents, handoffs, staff alerts,
the SMS check-ins of enrolled patients, and the staff console (staff accounts and sessions,
handoff notes, the audit log and clinic-config overrides).

Alembic migrations in ``bot/db/migrations`` are the only way this schema changes; these models
describe it for the service layer.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import declarative_base, relationship

from bot.db.crypto import EncryptedJSON, EncryptedText

# Stable constraint names, so migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Base: Any = declarative_base(metadata=MetaData(naming_convention=NAMING_CONVENTION))


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


class PersonKind(str, enum.Enum):
    """Whether a person is considering treatment or already a patient."""

    PROSPECT = "prospect"
    PATIENT = "patient"


class Channel(str, enum.Enum):
    """Where a conversation takes place."""

    WIDGET = "widget"
    REST = "rest"
    SMS = "sms"


class ConsentKind(str, enum.Enum):
    """What a person agreed, or declined, to."""

    CONTACT = "contact"
    SMS = "sms"


class HandoffPriority(str, enum.Enum):
    """Routing priority for staff. Never shown to the patient."""

    URGENT = "urgent"
    SOON = "soon"
    ROUTINE = "routine"


class HandoffStatus(str, enum.Enum):
    """Where a handoff is in the staff queue."""

    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class HandoffReason(str, enum.Enum):
    """Why the assistant handed a conversation to staff."""

    INTAKE_SUBMITTED = "intake_submitted"
    HUMAN_REQUESTED = "human_requested"
    CLINICAL_QUESTION = "clinical_question"
    COST_QUESTION = "cost_question"
    NLU_FALLBACK = "nlu_fallback"
    CRISIS = "crisis"
    CHECKIN = "checkin"
    CALLBACK_REQUESTED = "callback_requested"


class AlertStatus(str, enum.Enum):
    """How the delivery of a staff alert through one transport ended."""

    SENT = "sent"
    FAILED = "failed"


class IntakeStatus(str, enum.Enum):
    """Progress of a website intake."""

    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"


class CheckinStatus(str, enum.Enum):
    """Where one SMS check-in is, from scheduled to closed."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckinOrigin(str, enum.Enum):
    """Who started a check-in: the schedule, or the patient texting in."""

    SCHEDULE = "schedule"
    PATIENT = "patient"


class SmsDirection(str, enum.Enum):
    """Whether a text message came from the patient or was sent to them."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class StaffRole(str, enum.Enum):
    """What a staff member may do in the staff console (see :mod:`bot.services.staff`)."""

    ADMIN = "admin"
    CLINICIAN = "clinician"
    FRONT_DESK = "front_desk"


class HandoffOutcome(str, enum.Enum):
    """How staff closed a handoff."""

    CALLED_BACK = "called_back"
    BOOKED = "booked"
    REFERRED = "referred"
    NO_ACTION_NEEDED = "no_action_needed"


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native ENUM type), so adding a value is a data change only.
    return Enum(kind, name=name, native_enum=False, length=32,
                values_callable=lambda members: [m.value for m in members])


class Person(Base):
    """A prospective or existing patient.

    Contact details are encrypted; their blind indexes allow lookups by phone or email.
    """

    __tablename__ = "people"

    id = Column(Integer, primary_key=True)
    kind = Column(_enum(PersonKind, "person_kind"), nullable=False)
    first_name = Column(EncryptedText)
    phone = Column(EncryptedText)
    phone_index = Column(String(64), index=True)
    email = Column(EncryptedText)
    email_index = Column(String(64), index=True)
    us_state = Column(String(2))
    created_at = Column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )

    conversations = relationship("Conversation", back_populates="person")


class Conversation(Base):
    """One Rasa conversation, keyed by its (unguessable) sender id."""

    __tablename__ = "conversations"

    id = Column(Integer, primary_key=True)
    sender_id = Column(String(128), nullable=False, unique=True)
    channel = Column(_enum(Channel, "channel"), nullable=False)
    person_id = Column(ForeignKey("people.id"), index=True)
    intake_status = Column(
        _enum(IntakeStatus, "intake_status")
    )
    started_at = Column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    last_activity_at = Column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    intake_submitted_at = Column(DateTime(timezone=True))
    # The staff member who has taken the conversation over (the assistant is paused meanwhile);
    # NULL while the assistant has it.
    held_by_id = Column(ForeignKey("staff_users.id"), index=True)
    held_since = Column(DateTime(timezone=True))

    person = relationship("Person", back_populates="conversations")
    held_by = relationship("StaffUser", foreign_keys=[held_by_id])
    answers = relationship("Answer", back_populates="conversation", order_by="Answer.id")
    handoffs = relationship("Handoff", back_populates="conversation")


class Answer(Base):
    """One answer, stored the moment it was given. Corrections add rows; nothing is overwritten."""

    __tablename__ = "answers"
    __table_args__ = (Index("ix_answers_conversation_question", "conversation_id", "question_key"),)

    id = Column(Integer, primary_key=True)
    conversation_id = Column(ForeignKey("conversations.id"), nullable=False)
    form = Column(String(32), nullable=False)
    question_key = Column(String(64), nullable=False)
    value = Column(EncryptedJSON, nullable=False)
    channel = Column(_enum(Channel, "channel"), nullable=False)
    created_at = Column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )

    conversation = relationship("Conversation", back_populates="answers")


class ConsentRecord(Base):
    """A consent given or declined, with the exact wording version that was shown."""

    __tablename__ = "consent_records"

    id = Column(Integer, primary_key=True)
    person_id = Column(ForeignKey("people.id"), index=True)
    conversation_id = Column(ForeignKey("conversations.id"), index=True)
    kind = Column(_enum(ConsentKind, "consent_kind"), nullable=False)
    granted = Column(Boolean, nullable=False)
    text_version = Column(String(64), nullable=False)
    text_sha256 = Column(String(64), nullable=False)
    channel = Column(_enum(Channel, "channel"), nullable=False)
    created_at = Column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )


class Handoff(Base):
    """A conversation handed to the care team, with a structured summary for staff."""

    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_status_priority", "status", "priority", "created_at"),)

    id = Column(Integer, primary_key=True)
    conversation_id = Column(
        ForeignKey("conversations.id"), nullable=False, index=True
    )
    person_id = Column(ForeignKey("people.id"), index=True)
    reason = Column(
        _enum(HandoffReason, "handoff_reason"), nullable=False
    )
    priority = Column(
        _enum(HandoffPriority, "handoff_priority"), nullable=False
    )
    status = Column(
        _enum(HandoffStatus, "handoff_status"), nullable=False, default=HandoffStatus.OPEN
    )
    summary = Column(EncryptedJSON, nullable=False)
    created_at = Column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    updated_at = Column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )
    resolved_at = Column(DateTime(timezone=True))
    # Claiming assigns the handoff to one staff member; resolving records who closed it and how.
    assigned_to_id = Column(ForeignKey("staff_users.id"), index=True)
    claimed_at = Column(DateTime(timezone=True))
    outcome = Column(_enum(HandoffOutcome, "handoff_outcome"))
    resolved_by_id = Column(ForeignKey("staff_users.id"))

    conversation = relationship("Conversation", back_populates="handoffs")
    assigned_to = relationship("StaffUser", foreign_keys=[assigned_to_id])
    resolved_by = relationship("StaffUser", foreign_keys=[resolved_by_id])
    notes = relationship("HandoffNote", back_populates="handoff", order_by="HandoffNote.id")


class StaffAlert(Base):
    """One staff alert sent (or not) through one transport: webhook, email, or none configured.

    Holds no patient data: only what staff need to find the handoff in the staff console, and
    enough to see which alerts failed and why.
    """

    __tablename__ = "staff_alerts"

    id = Column(Integer, primary_key=True)
    handoff_id = Column(ForeignKey("handoffs.id"), index=True)
    kind = Column(String(32), nullable=False)
    priority = Column(_enum(HandoffPriority, "handoff_priority"), nullable=False)
    transport = Column(String(16), nullable=False)
    status = Column(_enum(AlertStatus, "alert_status"), nullable=False)
    attempts = Column(Integer, nullable=False)
    # An error type or "HTTP <status>", never a response body.
    last_error = Column(String(200))
    conversation_ref = Column(String(64), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class Patient(Base):
    """An existing patient, past the induction series, enrolled in SMS check-ins.

    Linked one-to-one to a :class:`Person` of kind ``patient``, so SMS conversations, handoffs
    and consent records can refer to them like anyone else. Name and mobile number are
    encrypted; ``mobile_index`` (a blind index of the E.164 number) finds a patient by number
    and makes each number enrolled at most once. The induction dates are treatment history and
    are encrypted too; the last infusion date stays plain because the scheduler computes due
    check-ins from it.

    SMS consent is what staff recorded from the clinic's own consent form: its wording version
    and when it was given. ``opted_out_at`` is set by STOP (or by staff) and only cleared by an
    explicit opt-in; ``active`` is the clinic's choice to run check-ins at all.
    """

    __tablename__ = "patients"
    __table_args__ = (CheckConstraint("cadence_days > 0", name="cadence_days_positive"),)

    id = Column(Integer, primary_key=True)
    person_id = Column(ForeignKey("people.id"), nullable=False, unique=True)
    name = Column(EncryptedText, nullable=False)
    mobile = Column(EncryptedText, nullable=False)
    mobile_index = Column(String(64), nullable=False, unique=True)
    # An IANA time zone name ("America/Denver"), for quiet hours and local due dates.
    timezone = Column(String(64), nullable=False)
    # ISO dates ("2026-09-01"), oldest first.
    induction_dates = Column(EncryptedJSON, nullable=False)
    last_infusion_on = Column(Date, nullable=False)
    # Days between check-ins; NULL means the clinic's default.
    cadence_days = Column(Integer)
    sms_consent_version = Column(String(64), nullable=False)
    sms_consented_at = Column(DateTime(timezone=True), nullable=False)
    opted_out_at = Column(DateTime(timezone=True))
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    person = relationship("Person")
    checkins = relationship("Checkin", back_populates="patient", order_by="Checkin.due_on")

    @property
    def induction_days(self) -> list[dt.date]:
        """The induction series as dates, oldest first."""
        return [dt.date.fromisoformat(day) for day in self.induction_dates or []]


class Checkin(Base):
    """One scheduled SMS check-in of one patient.

    ``due_on`` is the patient's local date the check-in belongs to. A patient has at most one
    check-in per due date, so a scheduler that runs twice, or two schedulers at once, cannot
    text the same check-in twice: the second insert fails on ``uq_checkins_patient_due_on``.
    """

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("patient_id", "due_on", name="uq_checkins_patient_due_on"),
        Index("ix_checkins_status_scheduled_for", "status", "scheduled_for"),
        Index("ix_checkins_patient_status", "patient_id", "status"),
    )

    id = Column(Integer, primary_key=True)
    patient_id = Column(ForeignKey("patients.id"), nullable=False)
    due_on = Column(Date, nullable=False)
    scheduled_for = Column(DateTime(timezone=True), nullable=False)
    status = Column(
        _enum(CheckinStatus, "checkin_status"), nullable=False, default=CheckinStatus.SCHEDULED
    )
    sent_at = Column(DateTime(timezone=True))
    reminder_sent_at = Column(DateTime(timezone=True))
    closed_at = Column(DateTime(timezone=True))
    origin = Column(String(16), nullable=False, default=CheckinOrigin.SCHEDULE.value,
                    server_default=CheckinOrigin.SCHEDULE.value)
    # Send attempts so far, and the last failure (an error type or Twilio code, no text).
    attempts = Column(Integer, nullable=False, default=0, server_default="0")
    last_error = Column(String(200))
    # The patient's last answer (or the send), for the reminder and the incomplete close.
    last_activity_at = Column(DateTime(timezone=True))
    conversation_id = Column(ForeignKey("conversations.id"))
    handoff_id = Column(ForeignKey("handoffs.id"))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    patient = relationship("Patient", back_populates="checkins")
    answers = relationship("CheckinAnswer", back_populates="checkin", order_by="CheckinAnswer.id")


class CheckinAnswer(Base):
    """One answer to one check-in question, as the patient wrote it and as scored.

    Like intake answers, corrections add rows; the latest row for a question is the answer.
    """

    __tablename__ = "checkin_answers"
    __table_args__ = (
        Index("ix_checkin_answers_checkin_question", "checkin_id", "question_key"),
    )

    id = Column(Integer, primary_key=True)
    checkin_id = Column(ForeignKey("checkins.id"), nullable=False)
    question_key = Column(String(64), nullable=False)
    raw_text = Column(EncryptedText, nullable=False)
    # The item's score (e.g. 0-3 for PHQ and GAD items); NULL when it could not be read.
    score = Column(Integer)
    # For a multiple-choice question, the keys picked (encrypted: they are health data).
    choices = Column(EncryptedJSON)
    answered_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    checkin = relationship("Checkin", back_populates="answers")


class SmsMessage(Base):
    """A text message received or sent, for delivery tracking and webhook deduplication.

    Holds no message text: what patients write is kept (encrypted) in the check-in answers and
    handoffs. Twilio retries slow webhooks, so ``message_sid`` is unique; it is NULL only for an
    outbound message Twilio never accepted.
    """

    __tablename__ = "sms_messages"

    id = Column(Integer, primary_key=True)
    direction = Column(_enum(SmsDirection, "sms_direction"), nullable=False)
    patient_id = Column(ForeignKey("patients.id"), index=True)
    conversation_id = Column(ForeignKey("conversations.id"), index=True)
    message_sid = Column(String(64), unique=True)
    # Twilio's own status words ("queued", "delivered", "received", ...), kept as given.
    status = Column(String(32), nullable=False)
    # Twilio's error code ("30007"), never an error message.
    error_code = Column(String(16))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class StaffUser(Base):
    """A staff account of the staff console.

    ``email`` is the login name, stored lower-case (the database refuses anything else), so
    ``Ana@Clinic.example`` and ``ana@clinic.example`` are one account. Accounts are never
    deleted, only made inactive: the audit log refers to them.
    """

    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower_case"),)

    id = Column(Integer, primary_key=True)
    email = Column(String(254), nullable=False, unique=True)
    display_name = Column(String(200), nullable=False)
    role = Column(_enum(StaffRole, "staff_role"), nullable=False)
    # An argon2 hash in PHC form ("$argon2id$v=19$m=...").
    password_hash = Column(String(255), nullable=False)
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    last_login_at = Column(DateTime(timezone=True))


class StaffSession(Base):
    """A logged-in browser session of the staff console.

    The browser holds a random token; only its SHA-256 (hex) is stored, as ``id``, so a copy of
    the database cannot be used to log in. ``csrf_token`` guards the session's forms.
    """

    __tablename__ = "staff_sessions"

    id = Column(String(64), primary_key=True)
    user_id = Column(ForeignKey("staff_users.id"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_seen_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    expires_at = Column(DateTime(timezone=True), nullable=False)
    revoked_at = Column(DateTime(timezone=True))

    user = relationship("StaffUser")


class LoginAttempt(Base):
    """One staff login attempt, for throttling password guessing.

    Holds no email address and no network address: both are keyed blind indexes
    (:func:`bot.db.crypto.blind_index`), enough to count attempts per account and per client.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_index_at", "email_index", "at"),
        Index("ix_login_attempts_client_index_at", "client_index", "at"),
    )

    id = Column(Integer, primary_key=True)
    email_index = Column(String(64), nullable=False)
    client_index = Column(String(64), nullable=False)
    succeeded = Column(Boolean, nullable=False)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)


class AuditEvent(Base):
    """One entry of the append-only audit log: who did or saw what, and when.

    The database itself refuses UPDATE and DELETE on this table (triggers, see migration 0005).
    ``detail`` holds ids, outcomes and the names of changed fields, never patient data.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_staff_user_at", "staff_user_id", "at"),)

    id = Column(Integer, primary_key=True)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    # NULL for what no logged-in staff member did (a failed login, the command line).
    staff_user_id = Column(ForeignKey("staff_users.id"))
    action = Column(String(40), nullable=False)
    target_type = Column(String(40), nullable=False)
    target_id = Column(String(128))
    person_id = Column(ForeignKey("people.id"), index=True)
    detail = Column(JSON)


class HandoffNote(Base):
    """A note a staff member added to a handoff. The text is encrypted: it is about a patient."""

    __tablename__ = "handoff_notes"

    id = Column(Integer, primary_key=True)
    handoff_id = Column(ForeignKey("handoffs.id"), nullable=False, index=True)
    staff_user_id = Column(ForeignKey("staff_users.id"), nullable=False)
    body = Column(EncryptedText, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    handoff = relationship("Handoff", back_populates="notes")
    staff_user = relationship("StaffUser")


class ClinicSetting(Base):
    """One saved set of clinic-config overrides (name, phone, hours, FAQ answers).

    Append-only history: the newest row is the one in force, over the configuration file.
    """

    __tablename__ = "clinic_settings"

    id = Column(Integer, primary_key=True)
    values = Column(JSON, nullable=False)
    staff_user_id = Column(ForeignKey("staff_users.id"))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


__all__ = [
    "AlertStatus",
    "Answer",
    "AuditEvent",
    "Base",
    "Channel",
    "Checkin",
    "CheckinAnswer",
    "CheckinOrigin",
    "CheckinStatus",
    "ClinicSetting",
    "ConsentKind",
    "ConsentRecord",
    "Conversation",
    "Handoff",
    "HandoffNote",
    "HandoffOutcome",
    "HandoffPriority",
    "HandoffReason",
    "HandoffStatus",
    "IntakeStatus",
    "LoginAttempt",
    "Patient",
    "Person",
    "PersonKind",
    "SmsDirection",
    "SmsMessage",
    "StaffAlert",
    "StaffRole",
    "StaffSession",
    "StaffUser",
    "utcnow",
]
