"""The staff queue on SQLite and PostgreSQL: ordering and filters, claiming, notes, resolving,
the queue's change fingerprint, who holds a conversation, who a handoff is about, and the
check-in history the handoff page charts."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from bot.db.models import (
    AuditEvent,
    Channel,
    Checkin,
    CheckinStatus,
    Handoff,
    HandoffOutcome,
    HandoffPriority,
    HandoffReason,
    HandoffStatus,
    Patient,
    StaffRole,
    StaffUser,
)
from bot.services import checkins, conversations, handoffs, intake, patients, people
from bot.services.conversations import ConversationHeldError
from bot.services.handoffs import HandoffError

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 14, 15, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
NOTE = "Called back, left a voicemail about the booster"


@pytest.fixture(autouse=True)
def audit_floor(request: pytest.FixtureRequest) -> None:
    """Audit entries committed by other tests cannot be deleted; note where ours start."""
    if "db_session" in request.fixturenames:
        session = request.getfixturevalue("db_session")
        session.info["audit_floor"] = session.scalar(select(func.max(AuditEvent.id))) or 0


def _staff(session: Session, name: str = "Ana") -> StaffUser:
    user = StaffUser(email=f"{name.lower()}@clinic.example", display_name=name,
                     role=StaffRole.CLINICIAN, password_hash="x")
    session.add(user)
    session.flush()
    return user


def _handoff(session: Session, sender_id: str, priority: HandoffPriority = HandoffPriority.SOON,
             channel: Channel = Channel.WIDGET, minutes: int = 0,
             reason: HandoffReason = HandoffReason.HUMAN_REQUESTED) -> Handoff:
    handoff = handoffs.create(session, sender_id, channel, reason, priority, {"kind": "test"})
    handoff.created_at = T0 + dt.timedelta(minutes=minutes)
    session.flush()
    return handoff


def _events(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(
        select(AuditEvent)
        .where(AuditEvent.id > session.info.get("audit_floor", 0), AuditEvent.action == action)
        .order_by(AuditEvent.id)))


def _ours(found: list[Handoff], *mine: Handoff) -> list[int]:
    """The ids of ``found`` that are among ``mine``, in order (the shared database may hold
    handoffs committed by other tests)."""
    ids = {handoff.id for handoff in mine}
    return [handoff.id for handoff in found if handoff.id in ids]


# -- The queue ----------------------------------------------------------------------------------


def test_the_queue_is_most_urgent_first_then_oldest_first(db_session) -> None:
    routine_old = _handoff(db_session, "q-1", HandoffPriority.ROUTINE, minutes=0)
    soon_new = _handoff(db_session, "q-2", HandoffPriority.SOON, minutes=20)
    urgent = _handoff(db_session, "q-3", HandoffPriority.URGENT, minutes=30)
    soon_old = _handoff(db_session, "q-4", HandoffPriority.SOON, minutes=10)
    resolved = _handoff(db_session, "q-5", HandoffPriority.URGENT, minutes=5)
    handoffs.resolve(db_session, resolved.id, _staff(db_session).id, "no_action_needed")
    mine = (routine_old, soon_new, urgent, soon_old, resolved)

    assert _ours(handoffs.queue(db_session), *mine) == [
        urgent.id, soon_old.id, soon_new.id, routine_old.id]
    assert _ours(handoffs.queue(db_session, statuses=["resolved"]), *mine) == [resolved.id]
    assert _ours(handoffs.queue(db_session, statuses=list(HandoffStatus)), *mine) == [
        resolved.id, urgent.id, soon_old.id, soon_new.id, routine_old.id]


def test_the_queue_filters_by_channel_priority_and_assignee(db_session) -> None:
    ana, ben = _staff(db_session, "Ana"), _staff(db_session, "Ben")
    web = _handoff(db_session, "f-web", HandoffPriority.SOON, Channel.WIDGET)
    sms = _handoff(db_session, "f-sms", HandoffPriority.URGENT, Channel.SMS, minutes=1)
    other = _handoff(db_session, "f-other", HandoffPriority.SOON, Channel.SMS, minutes=2)
    handoffs.claim(db_session, sms.id, ana.id)
    handoffs.claim(db_session, other.id, ben.id)
    mine = (web, sms, other)

    assert _ours(handoffs.queue(db_session, channel="sms"), *mine) == [sms.id, other.id]
    assert _ours(handoffs.queue(db_session, channel=Channel.WIDGET), *mine) == [web.id]
    assert _ours(handoffs.queue(db_session, priority="soon"), *mine) == [web.id, other.id]
    assert _ours(handoffs.queue(db_session, assignee_id=ana.id), *mine) == [sms.id]
    assert _ours(handoffs.queue(db_session, statuses=["open"]), *mine) == [web.id]
    assert _ours(handoffs.queue(db_session, channel="sms", priority="soon",
                                assignee_id=ben.id), *mine) == [other.id]


@pytest.mark.parametrize("bad", [{"channel": "fax"}, {"priority": "asap"},
                                 {"statuses": ["closed"]}])
def test_unknown_filter_values_are_refused(db_session, bad) -> None:
    with pytest.raises(ValueError):
        handoffs.queue(db_session, **bad)


def test_get_finds_a_handoff_or_nothing(db_session) -> None:
    handoff = _handoff(db_session, "g-1")
    assert handoffs.get(db_session, handoff.id) is handoff
    assert handoffs.get(db_session, 987654) is None


# -- Claiming, notes, resolving -----------------------------------------------------------------


def test_claim_assigns_the_handoff_and_is_audited(db_session) -> None:
    ana = _staff(db_session)
    handoff = _handoff(db_session, "c-1")
    intake.record_answer(db_session, "c-1", Channel.WIDGET, "first_name", "Maria")
    handoff.person_id = conversations.find(db_session, "c-1").person_id

    claimed = handoffs.claim(db_session, handoff.id, ana.id)
    handoffs.claim(db_session, handoff.id, ana.id)  # again: nothing changes

    assert claimed is handoff
    assert (handoff.status, handoff.assigned_to_id) == (HandoffStatus.CLAIMED, ana.id)
    assert handoff.claimed_at is not None
    [event] = _events(db_session, "handoff.claim")
    assert (event.staff_user_id, event.target_type, event.target_id, event.person_id,
            event.detail) == (ana.id, "handoff", str(handoff.id), handoff.person_id,
                              {"status": "claimed"})


def test_a_handoff_a_colleague_claimed_is_not_taken_without_asking(db_session) -> None:
    ana, ben = _staff(db_session, "Ana"), _staff(db_session, "Ben")
    handoff = _handoff(db_session, "c-2")
    handoffs.claim(db_session, handoff.id, ana.id)

    with pytest.raises(HandoffError, match="already claimed"):
        handoffs.claim(db_session, handoff.id, ben.id)
    assert handoff.assigned_to_id == ana.id

    handoffs.claim(db_session, handoff.id, ben.id, reassign=True)
    assert handoff.assigned_to_id == ben.id
    assert _events(db_session, "handoff.claim")[-1].detail == {
        "status": "claimed", "previous_assignee_id": ana.id}


def test_a_claim_racing_another_process_loses_cleanly(db_session) -> None:
    ana, ben = _staff(db_session, "Ana"), _staff(db_session, "Ben")
    handoff = _handoff(db_session, "c-3")
    assert handoff.status is HandoffStatus.OPEN
    # Another process claims it after this one read it as open.
    db_session.execute(update(Handoff).where(Handoff.id == handoff.id)
                       .values(status=HandoffStatus.CLAIMED, assigned_to_id=ben.id)
                       .execution_options(synchronize_session=False))
    with pytest.raises(HandoffError, match="already claimed"):
        handoffs.claim(db_session, handoff.id, ana.id)
    assert handoff.assigned_to_id == ben.id
    assert _events(db_session, "handoff.claim") == []


@pytest.mark.parametrize("action", ["claim", "note", "resolve"])
def test_unknown_handoffs_are_refused(db_session, action) -> None:
    ana = _staff(db_session)
    calls = {
        "claim": lambda: handoffs.claim(db_session, 987654, ana.id),
        "note": lambda: handoffs.add_note(db_session, 987654, ana.id, NOTE),
        "resolve": lambda: handoffs.resolve(db_session, 987654, ana.id, "booked"),
    }
    with pytest.raises(HandoffError, match="No such handoff"):
        calls[action]()


def test_notes_are_encrypted_and_their_text_is_never_audited(db_session) -> None:
    ana, ben = _staff(db_session, "Ana"), _staff(db_session, "Ben")
    handoff = _handoff(db_session, "n-1")
    first = handoffs.add_note(db_session, handoff.id, ana.id, f"  {NOTE}  ")
    second = handoffs.add_note(db_session, handoff.id, ben.id, "Booked for Tuesday")

    assert [(n.id, n.staff_user_id, n.body) for n in handoffs.notes(db_session, handoff.id)] == [
        (first.id, ana.id, NOTE), (second.id, ben.id, "Booked for Tuesday")]
    raw = db_session.execute(text("SELECT body FROM handoff_notes WHERE handoff_id = :id"),
                             {"id": handoff.id}).scalars().all()
    assert len(raw) == 2 and all("voicemail" not in body and "Tuesday" not in body
                                 for body in raw)
    events = _events(db_session, "handoff.note")
    assert [e.detail for e in events] == [{"note_id": first.id}, {"note_id": second.id}]
    assert "voicemail" not in repr(db_session.execute(text("SELECT * FROM audit_events")).all())


@pytest.mark.parametrize("body", ["", "   ", "x" * 4001])
def test_empty_or_huge_notes_are_refused(db_session, body) -> None:
    handoff = _handoff(db_session, "n-2")
    with pytest.raises(HandoffError, match="note"):
        handoffs.add_note(db_session, handoff.id, _staff(db_session).id, body)
    assert handoffs.notes(db_session, handoff.id) == []


def test_resolve_records_the_outcome_and_who_with_a_closing_note(db_session) -> None:
    ana, ben = _staff(db_session, "Ana"), _staff(db_session, "Ben")
    handoff = _handoff(db_session, "r-1")
    handoffs.claim(db_session, handoff.id, ana.id)

    resolved = handoffs.resolve(db_session, handoff.id, ben.id, HandoffOutcome.BOOKED,
                                note="Booked the booster for Tuesday")

    assert resolved is handoff
    assert (handoff.status, handoff.outcome, handoff.resolved_by_id, handoff.assigned_to_id) == (
        HandoffStatus.RESOLVED, HandoffOutcome.BOOKED, ben.id, ana.id)
    assert handoff.resolved_at is not None
    [note] = handoffs.notes(db_session, handoff.id)
    assert (note.body, note.staff_user_id) == ("Booked the booster for Tuesday", ben.id)
    [event] = _events(db_session, "handoff.resolve")
    assert (event.staff_user_id, event.detail) == (ben.id, {"outcome": "booked",
                                                            "note_id": note.id})


def test_an_open_handoff_can_be_resolved_directly(db_session) -> None:
    ana = _staff(db_session)
    handoff = _handoff(db_session, "r-2")
    handoffs.resolve(db_session, handoff.id, ana.id, "no_action_needed")
    assert (handoff.status, handoff.assigned_to_id, handoff.outcome) == (
        HandoffStatus.RESOLVED, ana.id, HandoffOutcome.NO_ACTION_NEEDED)
    assert handoff.claimed_at is not None
    assert handoffs.notes(db_session, handoff.id) == []


def test_a_resolved_handoff_is_neither_claimed_nor_resolved_again(db_session) -> None:
    ana, ben = _staff(db_session, "Ana"), _staff(db_session, "Ben")
    handoff = _handoff(db_session, "r-3")
    handoffs.resolve(db_session, handoff.id, ana.id, "called_back")
    with pytest.raises(HandoffError, match="already resolved"):
        handoffs.resolve(db_session, handoff.id, ben.id, "booked")
    with pytest.raises(HandoffError, match="already resolved"):
        handoffs.claim(db_session, handoff.id, ben.id, reassign=True)
    assert (handoff.outcome, handoff.resolved_by_id) == (HandoffOutcome.CALLED_BACK, ana.id)
    assert len(_events(db_session, "handoff.resolve")) == 1
    # A follow-up note is still welcome.
    handoffs.add_note(db_session, handoff.id, ben.id, "Patient called again, all fine")
    assert len(handoffs.notes(db_session, handoff.id)) == 1


def test_an_unknown_outcome_is_refused(db_session) -> None:
    handoff = _handoff(db_session, "r-4")
    with pytest.raises(HandoffError, match="Unknown outcome"):
        handoffs.resolve(db_session, handoff.id, _staff(db_session).id, "fixed")
    assert handoff.status is HandoffStatus.OPEN


# -- The live queue's fingerprint -------------------------------------------------------------


def test_queue_version_changes_with_every_change_and_only_then(db_session) -> None:
    ana = _staff(db_session)
    seen = [handoffs.queue_version(db_session)]

    def changed() -> bool:
        # Compared with the last version seen, as the live queue does.
        version = handoffs.queue_version(db_session)
        fresh = version != seen[-1]
        seen.append(version)
        return fresh

    assert not changed()
    handoff = _handoff(db_session, "v-1")
    assert changed()
    handoffs.queue(db_session)
    handoffs.get(db_session, handoff.id)
    assert not changed()
    handoffs.claim(db_session, handoff.id, ana.id)
    assert changed()
    handoffs.add_note(db_session, handoff.id, ana.id, NOTE)
    assert changed()
    conversations.hold(db_session, "v-1", ana.id)
    assert changed()
    conversations.release(db_session, "v-1")
    assert changed()
    handoffs.resolve(db_session, handoff.id, ana.id, "called_back")
    assert changed()
    handoff.summary = {"kind": "test", "messages": ["more"]}
    db_session.flush()
    assert changed()
    assert len(seen[-1]) == 16


# -- Who holds a conversation ----------------------------------------------------------------


def test_hold_release_and_holder(db_session) -> None:
    ana, ben = _staff(db_session, "Ana"), _staff(db_session, "Ben")
    _handoff(db_session, "h-1")
    assert conversations.holder(db_session, "h-1") is None

    conversation = conversations.hold(db_session, "h-1", ana.id)
    since = conversation.held_since
    assert (conversation.held_by_id, conversations.holder(db_session, "h-1")) == (ana.id, ana)
    assert conversations.hold(db_session, "h-1", ana.id).held_since == since

    with pytest.raises(ConversationHeldError) as held:
        conversations.hold(db_session, "h-1", ben.id)
    assert held.value.holder_id == ana.id
    assert conversations.holder(db_session, "h-1") is ana

    conversations.hold(db_session, "h-1", ben.id, force=True)
    assert conversations.holder(db_session, "h-1") is ben

    released = conversations.release(db_session, "h-1")
    assert (released.held_by_id, released.held_since) == (None, None)
    assert conversations.holder(db_session, "h-1") is None
    conversations.hold(db_session, "h-1", ana.id)
    assert conversations.holder(db_session, "h-1") is ana


def test_an_unknown_conversation_cannot_be_held(db_session) -> None:
    with pytest.raises(LookupError):
        conversations.hold(db_session, "nobody-here", _staff(db_session).id)
    assert conversations.release(db_session, "nobody-here") is None
    assert conversations.holder(db_session, "nobody-here") is None


# -- Who a handoff is about ---------------------------------------------------------------------


def _enrol(session: Session) -> Patient:
    return patients.enrol_patient(
        session, name="Ana Diaz", mobile="(555) 555-0123", timezone="America/Denver",
        induction_dates=["2026-09-01", "2026-09-03", "2026-09-05"], last_infusion="2026-10-20",
        consent_version="sms-v1", consented_at="2026-09-01", now=NOW).patient


def test_describe_a_prospect_from_the_website(db_session) -> None:
    for key, value in (("first_name", "Maria"), ("phone", "+15035550199"),
                       ("email", "maria@example.com")):
        intake.record_answer(db_session, "p-web", Channel.WIDGET, key, value)
    handoff = _handoff(db_session, "p-web")

    assert people.describe(db_session, handoff) == {
        "kind": "prospect", "name": "Maria", "first_name": "Maria", "phone": "+15035550199",
        "email": "maria@example.com", "channel": "widget", "sender_id": "p-web",
        "person_id": handoff.person_id, "patient_id": None,
    }


def test_describe_an_enrolled_patient_over_sms(db_session) -> None:
    patient = _enrol(db_session)
    sender_id = checkins.sender_id_for(patient)
    checkins.link_conversation(db_session, patient, sender_id)
    handoff = _handoff(db_session, sender_id, channel=Channel.SMS, reason=HandoffReason.CHECKIN)

    assert people.describe(db_session, handoff) == {
        "kind": "patient", "name": "Ana Diaz", "first_name": "Ana", "phone": "+15555550123",
        "email": None, "channel": "sms", "sender_id": sender_id,
        "person_id": patient.person_id, "patient_id": patient.id,
    }


def test_describe_a_visitor_who_gave_no_details(db_session) -> None:
    handoff = _handoff(db_session, "p-anonymous")
    assert people.describe(db_session, handoff) == {
        "kind": "prospect", "name": None, "first_name": None, "phone": None, "email": None,
        "channel": "widget", "sender_id": "p-anonymous", "person_id": None, "patient_id": None,
    }


# -- The check-in chart -------------------------------------------------------------------------


def _checkin(session: Session, patient: Patient, due_on: dt.date,
             scores: dict[str, int]) -> Checkin:
    # Sent at 23:30 UTC: still the due date in Denver, the next day in UTC.
    sent_at = dt.datetime.combine(due_on, dt.time(23, 30), tzinfo=UTC)
    checkin = Checkin(patient_id=patient.id, due_on=due_on, scheduled_for=sent_at,
                      status=CheckinStatus.SENT, sent_at=sent_at, last_activity_at=sent_at)
    session.add(checkin)
    session.flush()
    moment = sent_at
    for key, score in scores.items():
        moment += dt.timedelta(minutes=1)
        checkins.record_answer(session, checkin, key, str(score), score=score, now=moment)
    return checkin


def test_score_history_is_one_entry_per_scored_checkin_oldest_first(db_session) -> None:
    patient = _enrol(db_session)
    later = _checkin(db_session, patient, dt.date(2026, 11, 18),
                     {"overall": 6, "phq1": 2, "phq2": 2})
    earlier = _checkin(db_session, patient, dt.date(2026, 10, 21),
                       {"overall": 2, "phq1": 0, "phq2": 1, "gad1": 1, "gad2": 0})
    _checkin(db_session, patient, dt.date(2026, 11, 20), {})  # sent, nothing answered yet

    assert checkins.score_history(db_session, patient.id) == [
        {"checkin_id": earlier.id, "date": "2026-10-21", "overall": 2, "phq2": 1, "gad2": 1,
         "phq9": None},
        {"checkin_id": later.id, "date": "2026-11-18", "overall": 6, "phq2": 4, "gad2": None,
         "phq9": None},
    ]
    assert checkins.score_history(db_session, 987654) == []


def test_infusion_history_lists_the_series_then_the_last_booster(db_session) -> None:
    patient = _enrol(db_session)
    assert checkins.infusion_history(db_session, patient.id) == [
        {"date": "2026-09-01", "kind": "induction"},
        {"date": "2026-09-03", "kind": "induction"},
        {"date": "2026-09-05", "kind": "induction"},
        {"date": "2026-10-20", "kind": "booster"},
    ]
    # A last infusion that was the end of the series is not a booster.
    patient.last_infusion_on = dt.date(2026, 9, 5)
    db_session.flush()
    assert [entry["kind"] for entry in checkins.infusion_history(db_session, patient.id)] == [
        "induction"] * 3
    assert checkins.infusion_history(db_session, 987654) == []
