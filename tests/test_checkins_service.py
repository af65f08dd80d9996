"""The check-in service layer (bot.services.checkins) on SQLite and PostgreSQL: conversation ids,
answers, closing with one handoff, the staff summary and its priority."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from bot.checkins import questions
from bot.db.crypto import blind_index
from bot.db.models import (
    Channel,
    Checkin,
    CheckinAnswer,
    CheckinOrigin,
    CheckinStatus,
    Conversation,
    Handoff,
    HandoffPriority,
    HandoffReason,
    Patient,
)
from bot.services import checkins, conversations, patients, safety
from bot.services.checkins import CheckinNotOpenError

UTC = dt.timezone.utc
# 11:00 in Denver (MST) on Saturday 21 November 2026.
NOW = dt.datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
MOBILE = "+15555550123"
ROUTINE_ANSWERS = {"overall": 2, "signs": 0, "phq1": 0, "phq2": 1, "gad1": 1, "gad2": 0,
                   "notes": None}


def _enrol(session: Session, **overrides) -> Patient:
    values = {
        "name": "Ana Diaz",
        "mobile": "(555) 555-0123",
        "timezone": "America/Denver",
        "induction_dates": ["2026-09-01", "2026-09-03", "2026-09-05"],
        "last_infusion": "2026-10-20",
        "consent_version": "sms-v1",
        "consented_at": "2026-09-01",
        "now": NOW,
    }
    values.update(overrides)
    return patients.enrol_patient(session, **values).patient


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sent_checkin(session: Session, patient: Patient, due_on: dt.date,
                  sent_at: dt.datetime, **values) -> Checkin:
    checkin = Checkin(patient_id=patient.id, due_on=due_on, scheduled_for=sent_at,
                      status=CheckinStatus.SENT, sent_at=sent_at, last_activity_at=sent_at,
                      attempts=1, created_at=sent_at, updated_at=sent_at, **values)
    session.add(checkin)
    session.flush()
    return checkin


def _answer_all(session: Session, checkin: Checkin, scores: dict[str, int | None],
                start: dt.datetime, *, notes: str = "nothing else") -> dt.datetime:
    """Answer in order, a minute apart; returns the time of the last answer."""
    moment = start
    for key, score in scores.items():
        moment += dt.timedelta(minutes=1)
        if key == "notes":
            checkins.record_answer(session, checkin, key, notes, score=None, now=moment)
        elif key == "signs":
            picked = questions.SIGN_KEYS[:score]
            checkins.record_answer(session, checkin, key, " ".join(picked) or "none",
                                   score=score, choices=picked, now=moment)
        else:
            checkins.record_answer(session, checkin, key, f"{score} I guess", score=score,
                                   now=moment)
    return moment


def _completed(session: Session, patient: Patient, due_on: dt.date,
               scores: dict[str, int | None]) -> Checkin:
    """A check-in sent at 10:00 local on ``due_on``, answered and completed."""
    sent_at = dt.datetime.combine(due_on, dt.time(17, 0), tzinfo=UTC)
    checkin = _sent_checkin(session, patient, due_on, sent_at)
    last = _answer_all(session, checkin, scores, sent_at)
    checkins.complete(session, checkin, now=last)
    return checkin


# -- Conversation ids ---------------------------------------------------------------------------


def test_the_sender_id_is_a_blind_index_prefix_never_the_number(db_session: Session) -> None:
    patient = _enrol(db_session)
    sender_id = checkins.sender_id_for(patient)
    assert sender_id == "sms-" + blind_index(MOBILE)[:32]
    assert sender_id == checkins.sender_id_for_mobile_index(patient.mobile_index)
    assert len(sender_id) == 36
    for digits in (MOBILE, "15555550123", "5555550123", "5550123"):
        assert digits not in sender_id
    with pytest.raises(ValueError, match="blind index"):
        checkins.sender_id_for_mobile_index("+15555550123")


def test_patient_for_sender_round_trip_and_refusals(db_session: Session) -> None:
    ana = _enrol(db_session)
    ben = _enrol(db_session, name="Ben Okafor", mobile="555 555 0199")
    assert checkins.patient_for_sender(db_session, checkins.sender_id_for(ana)).id == ana.id
    assert checkins.patient_for_sender(db_session, checkins.sender_id_for(ben)).id == ben.id
    prefix = checkins.sender_id_for(ana)[4:]
    for not_ours in (
        prefix,  # no "sms-"
        "sms-" + prefix[:31],  # too short: would match by a shorter prefix
        "sms-" + prefix + "0",  # too long
        "sms-" + prefix.upper(),
        "sms-" + prefix[:30] + "%%",  # LIKE wildcards are not accepted
        "sms-" + "_" * 32,
        "web-" + prefix,
        "",
        "sms-" + blind_index("+15555550111")[:32],  # a number nobody enrolled
    ):
        assert checkins.patient_for_sender(db_session, not_ours) is None, not_ours


def test_link_conversation_creates_and_links_the_sms_conversation(db_session: Session) -> None:
    patient = _enrol(db_session)
    sender_id = checkins.sender_id_for(patient)
    # The SMS channel may have met the number before it was enrolled.
    conversations.get_or_create(db_session, sender_id, Channel.SMS)
    conversation = checkins.link_conversation(db_session, patient, sender_id)
    assert (conversation.sender_id, conversation.channel, conversation.person_id) == (
        sender_id, Channel.SMS, patient.person_id)
    assert checkins.link_conversation(db_session, patient, sender_id).id == conversation.id
    assert db_session.scalar(select(func.count()).select_from(Conversation)) == 1
    other = _enrol(db_session, name="Ben Okafor", mobile="555 555 0199")
    with pytest.raises(ValueError, match="not this patient"):
        checkins.link_conversation(db_session, other, sender_id)


# -- Answers ------------------------------------------------------------------------------------


def test_each_answer_is_its_own_timestamped_row_and_the_latest_wins(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    t1, t2, t3 = (NOW + dt.timedelta(minutes=m) for m in (5, 7, 9))
    checkins.record_answer(db_session, checkin, "overall", "about a 6", score=6, now=t1)
    checkins.record_answer(db_session, checkin, "signs", "sleep and 1", score=2,
                           choices=["sleep", "mood", "sleep"], now=t2)
    checkins.record_answer(db_session, checkin, "overall", "sorry, I meant 4", score=4, now=t3)

    db_session.expire_all()
    rows = db_session.scalars(select(CheckinAnswer).order_by(CheckinAnswer.id)).all()
    assert [(r.question_key, r.raw_text, r.score, r.choices, _utc(r.answered_at))
            for r in rows] == [
        ("overall", "about a 6", 6, None, t1),
        ("signs", "sleep and 1", 2, ["mood", "sleep"], t2),
        ("overall", "sorry, I meant 4", 4, None, t3),
    ]
    checkin = db_session.get(Checkin, checkin.id)
    assert checkin.status is CheckinStatus.IN_PROGRESS
    assert _utc(checkin.last_activity_at) == t3
    latest = checkins.latest_answers(checkin)
    assert list(latest) == ["overall", "signs"]
    assert latest["overall"].raw_text == "sorry, I meant 4"
    assert checkins.scores(checkin) == {"overall": 4, "signs": 2}
    # The words and the picked signs are health data: encrypted at rest.
    raw = db_session.execute(text("SELECT raw_text, choices FROM checkin_answers")).all()
    assert all("meant" not in row.raw_text and "sleep" not in (row.choices or "")
               for row in raw)


@pytest.mark.parametrize(
    ("key", "score", "choices", "message"),
    [
        ("phq10", 1, (), "unknown check-in question"),
        ("overall", 11, (), "not on the scale"),
        ("phq1", 4, (), "not on the scale"),
        ("phq1", -1, (), "not on the scale"),
        ("phq1", True, (), "not on the scale"),
        ("notes", 0, (), "not on the scale"),
        ("signs", 1, ("appetite",), "unknown sign"),
        ("phq1", 1, ("mood",), "not a multiple-choice question"),
    ],
)
def test_invalid_answers_are_refused(db_session: Session, key, score, choices, message) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    with pytest.raises(ValueError, match=message):
        checkins.record_answer(db_session, checkin, key, "x", score=score, choices=choices,
                               now=NOW)
    assert db_session.scalars(select(CheckinAnswer)).all() == []
    assert db_session.get(Checkin, checkin.id).status is CheckinStatus.SENT


def test_a_closed_or_unsent_checkin_takes_no_answers(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    checkins.close_incomplete(db_session, checkin, now=NOW + dt.timedelta(hours=48))
    scheduled = Checkin(patient_id=patient.id, due_on=dt.date(2026, 12, 19),
                        scheduled_for=NOW, status=CheckinStatus.SCHEDULED)
    db_session.add(scheduled)
    db_session.flush()
    for target in (checkin, scheduled):
        with pytest.raises(CheckinNotOpenError):
            checkins.record_answer(db_session, target, "overall", "5", score=5, now=NOW)
    assert db_session.get(Checkin, checkin.id).status is CheckinStatus.INCOMPLETE
    assert db_session.scalars(select(CheckinAnswer)).all() == []


# -- Completing: the handoff and its summary ----------------------------------------------------


def test_complete_writes_one_checkin_handoff_with_the_summary(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    checkins.record_answer(db_session, checkin, "overall", "a 3", score=3, now=NOW)
    checkins.record_answer(db_session, checkin, "signs", "2 and 6", score=2,
                           choices=["motivation", "sleep"], now=NOW)
    for key, score in (("phq1", 1), ("phq2", 1), ("gad1", 2), ("gad2", 1)):
        checkins.record_answer(db_session, checkin, key, str(score), score=score, now=NOW)
    checkins.record_answer(db_session, checkin, "notes", "Work has been rough lately",
                           score=None, now=NOW)
    closed_at = NOW + dt.timedelta(minutes=10)
    handoff = checkins.complete(db_session, checkin, now=closed_at)

    db_session.expire_all()
    checkin = db_session.get(Checkin, checkin.id)
    handoff = db_session.get(Handoff, handoff.id)
    assert checkin.status is CheckinStatus.COMPLETED and _utc(checkin.closed_at) == closed_at
    assert checkin.handoff_id == handoff.id
    conversation = db_session.get(Conversation, handoff.conversation_id)
    assert conversation.sender_id == checkins.sender_id_for(patient)
    assert checkin.conversation_id == conversation.id
    assert (handoff.reason, handoff.priority, handoff.person_id) == (
        HandoffReason.CHECKIN, HandoffPriority.ROUTINE, patient.person_id)
    summary = handoff.summary
    json.dumps(summary)  # JSON all the way down
    assert summary["kind"] == "checkin" and summary["checkin_id"] == checkin.id
    assert (summary["status"], summary["origin"], summary["patient_requested"]) == (
        "completed", "schedule", False)
    assert summary["first_name"] == "Ana"
    # 11:10 on 21 November in Denver; the last infusion was on 20 October.
    assert (summary["last_infusion_on"], summary["days_since_last_infusion"]) == (
        "2026-10-20", 32)
    assert [a["key"] for a in summary["answers"]] == [
        "overall", "signs", "phq1", "phq2", "gad1", "gad2", "notes"]
    assert summary["answers"][1] == {
        "key": "signs", "label": questions.SIGNS.label, "score": 2, "text": "2 and 6",
        "choices": ["Lower motivation or interest", "Sleep changes"],
        "answered_at": NOW.isoformat(),
    }
    assert summary["answers"][0]["text"] == "a 3"
    assert summary["unanswered"] == []
    assert summary["scores"] == {"overall": 3, "phq2": 2, "gad2": 3, "phq9": None}
    assert summary["signs_present"] == ["Lower motivation or interest", "Sleep changes"]
    assert summary["own_words"] == [{"key": "notes", "label": questions.NOTES.label,
                                     "text": "Work has been rough lately"}]
    assert summary["trend"] == [{"checkin_id": checkin.id, "date": "2026-11-21",
                                 "status": "completed", "current": True,
                                 "scores": summary["scores"]}]
    assert (summary["worse_than_last"], summary["crisis"], summary["priority_reasons"]) == (
        [], False, [])
    # Only the encrypted summary holds the words.
    raw = db_session.execute(text("SELECT summary FROM handoffs")).scalar_one()
    # Quoted and spaced forms: ciphertext (URL-safe base64) can hold neither by chance, while
    # three letters such as Ana turn up in about one ciphertext in 250.
    assert "rough lately" not in raw and '"Ana"' not in raw


def test_the_days_since_the_infusion_count_in_the_patients_own_calendar(
    db_session: Session,
) -> None:
    patient = _enrol(db_session, timezone="Pacific/Honolulu")
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    # 09:30 UTC on 22 November is still 21 November, 23:30, in Honolulu.
    summary = checkins.build_summary(db_session, checkin,
                                     now=dt.datetime(2026, 11, 22, 9, 30, tzinfo=UTC))
    assert summary["days_since_last_infusion"] == 32
    summary = checkins.build_summary(db_session, checkin,
                                     now=dt.datetime(2026, 11, 22, 10, 30, tzinfo=UTC))
    assert summary["days_since_last_infusion"] == 33


def _third_checkin(session: Session, patient: Patient, overall: int) -> Handoff:
    _completed(session, patient, dt.date(2026, 10, 24), {**ROUTINE_ANSWERS, "overall": 2})
    _completed(session, patient, dt.date(2026, 11, 7),
               {**ROUTINE_ANSWERS, "overall": 4, "phq2": 2})
    checkin = _sent_checkin(session, patient, dt.date(2026, 11, 21), NOW)
    last = _answer_all(session, checkin, {**ROUTINE_ANSWERS, "overall": overall, "phq2": 2},
                       NOW)
    return checkins.complete(session, checkin, now=last)


def test_a_score_worse_than_last_time_is_flagged_soon_with_the_trend(db_session: Session) -> None:
    patient = _enrol(db_session)
    handoff = _third_checkin(db_session, patient, overall=6)
    summary = handoff.summary
    assert [(entry["date"], entry["status"], entry["scores"]) for entry in summary["trend"]] == [
        ("2026-10-24", "completed", {"overall": 2, "phq2": 1, "gad2": 1, "phq9": None}),
        ("2026-11-07", "completed", {"overall": 4, "phq2": 2, "gad2": 1, "phq9": None}),
        ("2026-11-21", "completed", {"overall": 6, "phq2": 2, "gad2": 1, "phq9": None}),
    ]
    assert [entry.get("current", False) for entry in summary["trend"]] == [False, False, True]
    # PHQ-2 equals last time (2); only the overall score rose.
    assert summary["worse_than_last"] == ["overall"]
    assert handoff.priority is HandoffPriority.SOON
    assert summary["priority_reasons"] == [
        "Worse than the last check-in: " + questions.OVERALL.label]
    # "nothing else" in the notes is not kept as the patient's own words.
    assert summary["own_words"] == []


def test_scores_better_than_last_time_stay_routine(db_session: Session) -> None:
    patient = _enrol(db_session)
    handoff = _third_checkin(db_session, patient, overall=3)
    assert handoff.summary["worse_than_last"] == []
    assert [entry["scores"]["overall"] for entry in handoff.summary["trend"]] == [2, 4, 3]
    assert handoff.priority is HandoffPriority.ROUTINE


def test_a_score_is_compared_with_the_last_checkin_that_has_it(db_session: Session) -> None:
    patient = _enrol(db_session)
    _completed(db_session, patient, dt.date(2026, 10, 24), {**ROUTINE_ANSWERS, "gad2": 0})
    # Closed before the GAD items were answered.
    partial = _sent_checkin(db_session, patient, dt.date(2026, 11, 7),
                            dt.datetime(2026, 11, 7, 17, tzinfo=UTC))
    checkins.record_answer(db_session, partial, "overall", "2", score=2, now=NOW)
    checkins.close_incomplete(db_session, partial, now=NOW)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    last = _answer_all(db_session, checkin, {**ROUTINE_ANSWERS, "gad2": 1}, NOW)
    handoff = checkins.complete(db_session, checkin, now=last)
    assert [entry["status"] for entry in handoff.summary["trend"]] == [
        "completed", "incomplete", "completed"]
    assert handoff.summary["worse_than_last"] == ["gad2"]
    assert handoff.priority is HandoffPriority.SOON


def test_the_trend_shows_at_most_six_previous_checkins(db_session: Session) -> None:
    patient = _enrol(db_session, last_infusion="2026-09-05")
    first = dt.date(2026, 9, 12)
    for week in range(8):
        _completed(db_session, patient, first + dt.timedelta(weeks=week),
                   {**ROUTINE_ANSWERS, "overall": week % 3})
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    handoff = checkins.complete(db_session, checkin, now=NOW)
    dates = [entry["date"] for entry in handoff.summary["trend"]]
    assert dates == ["2026-09-26", "2026-10-03", "2026-10-10", "2026-10-17", "2026-10-24",
                     "2026-10-31", "2026-11-21"]


def test_phq9_item_9_above_zero_is_urgent(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    scores = {"overall": 7, "signs": 3, "phq1": 2, "phq2": 2, "gad1": 1, "gad2": 1,
              "phq3": 1, "phq4": 1, "phq5": 0, "phq6": 1, "phq7": 0, "phq8": 0, "phq9": 1}
    last = _answer_all(db_session, checkin, scores, NOW)
    handoff = checkins.complete(db_session, checkin, now=last)
    summary = handoff.summary
    assert handoff.priority is HandoffPriority.URGENT
    assert summary["crisis"] is True
    assert summary["scores"] == {"overall": 7, "phq2": 4, "gad2": 2, "phq9": 8}
    # The PHQ-2 was positive, so the PHQ-9 was asked; the notes were not answered.
    assert summary["unanswered"] == ["notes"]
    assert summary["priority_reasons"] == [
        "PHQ-9 item 9 (thoughts of death or self-harm) above 0"]


def test_a_crisis_reported_by_the_dialogue_is_urgent(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    handoff = checkins.complete(db_session, checkin, now=NOW, crisis=True)
    assert handoff.priority is HandoffPriority.URGENT
    assert handoff.summary["priority_reasons"] == ["Crisis path taken during the check-in"]


@pytest.mark.parametrize(("opened_minutes", "priority"), [
    (5, HandoffPriority.URGENT),  # during the check-in
    (-60, HandoffPriority.ROUTINE),  # before it started: staff have it already
])
def test_a_crisis_handoff_opened_during_the_checkin_makes_it_urgent(
    db_session: Session, opened_minutes: int, priority: HandoffPriority
) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    opened = NOW + dt.timedelta(minutes=opened_minutes)
    record = safety.record_crisis(db_session, checkins.sender_id_for(patient), Channel.SMS,
                                  text="I can't do this anymore", detection={"crisis": True},
                                  now=opened)
    crisis = db_session.get(Handoff, record.handoff_id)
    crisis.created_at = opened
    db_session.flush()
    handoff = checkins.complete(db_session, checkin, now=NOW + dt.timedelta(minutes=20))
    assert handoff.id != crisis.id
    assert handoff.priority is priority
    assert handoff.summary["crisis"] is (priority is HandoffPriority.URGENT)


def test_a_crisis_message_added_to_an_older_crisis_handoff_makes_it_urgent(
    db_session: Session,
) -> None:
    patient = _enrol(db_session)
    sender_id = checkins.sender_id_for(patient)
    # A crisis two days ago, still open; a denial during the check-in does not count ...
    safety.record_crisis(db_session, sender_id, Channel.SMS, text="first",
                         detection={"crisis": True}, now=NOW - dt.timedelta(days=2))
    crisis = safety.open_crisis_handoff(db_session, sender_id)
    crisis.created_at = NOW - dt.timedelta(days=2)
    db_session.flush()
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    safety.record_denial(db_session, sender_id, Channel.SMS, text="I'm ok",
                         now=NOW + dt.timedelta(minutes=1))
    assert checkins.build_summary(db_session, checkin, now=NOW)["crisis"] is False
    # ... a new crisis message does.
    safety.record_crisis(db_session, sender_id, Channel.SMS, text="again",
                         detection={"crisis": True}, now=NOW + dt.timedelta(minutes=2))
    handoff = checkins.close_incomplete(db_session, checkin, now=NOW + dt.timedelta(minutes=3))
    assert handoff.priority is HandoffPriority.URGENT
    assert handoff.summary["priority_reasons"] == [
        "Crisis messages on this conversation during the check-in"]


def test_closing_for_a_crisis_is_urgent(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    handoff = checkins.close_incomplete(db_session, checkin, now=NOW, reason="crisis")
    assert handoff.priority is HandoffPriority.URGENT
    assert (handoff.summary["crisis"], handoff.summary["close_reason"]) == (True, "crisis")


def test_a_patient_requested_checkin_is_soon(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = checkins.start_patient_checkin(db_session, patient, now=NOW)
    last = _answer_all(db_session, checkin, ROUTINE_ANSWERS, NOW)
    handoff = checkins.complete(db_session, checkin, now=last)
    assert handoff.priority is HandoffPriority.SOON
    assert handoff.summary["patient_requested"] is True
    assert handoff.summary["origin"] == "patient"
    assert handoff.summary["priority_reasons"] == ["The patient asked for this check-in"]


@pytest.mark.parametrize(
    ("summary", "priority"),
    [
        ({"crisis": True, "patient_requested": True, "worse_than_last": ["overall"]},
         HandoffPriority.URGENT),
        ({"crisis": False, "patient_requested": True, "worse_than_last": []},
         HandoffPriority.SOON),
        ({"crisis": False, "patient_requested": False, "worse_than_last": ["phq2"]},
         HandoffPriority.SOON),
        ({"crisis": False, "patient_requested": False, "worse_than_last": []},
         HandoffPriority.ROUTINE),
    ],
)
def test_priority_for(summary: dict, priority: HandoffPriority) -> None:
    assert checkins.priority_for(summary) is priority


# -- Closing unfinished check-ins; idempotence --------------------------------------------------


def test_close_incomplete_keeps_partial_answers_and_lists_the_unanswered(
    db_session: Session,
) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    checkins.record_answer(db_session, checkin, "overall", "5", score=5, now=NOW)
    checkins.record_answer(db_session, checkin, "signs", "kinda everything??", score=None,
                           now=NOW)
    checkins.record_answer(db_session, checkin, "phq1", "3", score=3, now=NOW)
    checkins.record_answer(db_session, checkin, "phq2", "nearly every day", score=3, now=NOW)
    handoff = checkins.close_incomplete(db_session, checkin, now=NOW + dt.timedelta(hours=48))
    summary = handoff.summary
    assert db_session.get(Checkin, checkin.id).status is CheckinStatus.INCOMPLETE
    assert (summary["status"], summary["close_reason"]) == ("incomplete", "no_reply")
    assert [a["key"] for a in summary["answers"]] == ["overall", "signs", "phq1", "phq2"]
    # The PHQ-2 total (6) asks the rest of the PHQ-9 too.
    assert summary["unanswered"] == ["gad1", "gad2", "phq3", "phq4", "phq5", "phq6", "phq7",
                                     "phq8", "phq9", "notes"]
    assert summary["own_words"] == [
        {"key": "signs", "label": questions.SIGNS.label, "text": "kinda everything??"}]
    assert summary["signs_present"] == []
    assert summary["scores"] == {"overall": 5, "phq2": 6, "gad2": None, "phq9": None}
    assert handoff.priority is HandoffPriority.ROUTINE


def test_closing_twice_returns_the_same_handoff(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 21), NOW)
    first = checkins.close_incomplete(db_session, checkin, now=NOW, reason="opted_out")
    again = checkins.close_incomplete(db_session, checkin, now=NOW + dt.timedelta(hours=1))
    # The dialogue finishing late does not reopen or re-close it.
    late = checkins.complete(db_session, checkin, now=NOW + dt.timedelta(hours=2), crisis=True)
    # Nor does a stale copy of the row (another process's view) write a second handoff.
    db_session.expire_all()
    stale = db_session.get(Checkin, checkin.id)
    set_committed_value(stale, "handoff_id", None)  # as it was read before the close
    set_committed_value(stale, "status", CheckinStatus.SENT)
    copy = checkins.complete(db_session, stale, now=NOW)
    assert first.id == again.id == late.id == copy.id
    assert first.summary["close_reason"] == "opted_out"
    assert db_session.scalar(select(func.count()).select_from(Handoff)) == 1
    db_session.expire_all()
    assert db_session.get(Checkin, checkin.id).status is CheckinStatus.INCOMPLETE
    assert db_session.get(Handoff, first.id).priority is HandoffPriority.ROUTINE


def test_a_checkin_never_sent_cannot_be_closed(db_session: Session) -> None:
    patient = _enrol(db_session)
    scheduled = Checkin(patient_id=patient.id, due_on=dt.date(2026, 11, 21), scheduled_for=NOW,
                        status=CheckinStatus.SCHEDULED)
    db_session.add(scheduled)
    db_session.flush()
    with pytest.raises(CheckinNotOpenError):
        checkins.complete(db_session, scheduled, now=NOW)
    assert db_session.scalar(select(func.count()).select_from(Handoff)) == 0


# -- The patient asks for a check-in ------------------------------------------------------------


def test_a_patient_request_creates_a_checkin_due_on_their_local_today(
    db_session: Session,
) -> None:
    patient = _enrol(db_session, timezone="America/Los_Angeles")
    # 02:00 UTC on 22 November is 18:00 on 21 November in Los Angeles.
    now = dt.datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    checkin = checkins.start_patient_checkin(db_session, patient, now=now)
    db_session.expire_all()
    checkin = db_session.get(Checkin, checkin.id)
    assert checkin.due_on == dt.date(2026, 11, 21)
    assert (checkin.status, checkin.origin) == (CheckinStatus.IN_PROGRESS, "patient")
    assert _utc(checkin.sent_at) == _utc(checkin.last_activity_at) == now
    assert checkin.attempts == 0
    conversation = db_session.get(Conversation, checkin.conversation_id)
    assert conversation.sender_id == checkins.sender_id_for(patient)
    assert conversation.person_id == patient.person_id
    # Asking again continues the same check-in.
    assert checkins.start_patient_checkin(db_session, patient, now=now).id == checkin.id
    assert db_session.scalar(select(func.count()).select_from(Checkin)) == 1


def test_a_patient_request_continues_the_checkin_under_way(db_session: Session) -> None:
    patient = _enrol(db_session)
    checkin = _sent_checkin(db_session, patient, dt.date(2026, 11, 20), NOW - dt.timedelta(days=1))
    checkins.record_answer(db_session, checkin, "overall", "4", score=4,
                           now=NOW - dt.timedelta(hours=20))
    later = NOW + dt.timedelta(hours=1)
    again = checkins.start_patient_checkin(db_session, patient, now=later)
    db_session.expire_all()
    again = db_session.get(Checkin, again.id)
    assert again.id == checkin.id
    assert again.origin == CheckinOrigin.PATIENT.value
    assert again.status is CheckinStatus.IN_PROGRESS
    # The scheduler's send keeps its time (and still counts against the weekly cap).
    assert _utc(again.sent_at) == NOW - dt.timedelta(days=1)
    assert _utc(again.last_activity_at) == later
    assert checkins.scores(again) == {"overall": 4}


def test_a_patient_request_takes_over_a_scheduled_checkin(db_session: Session) -> None:
    patient = _enrol(db_session)
    scheduled = Checkin(patient_id=patient.id, due_on=dt.date(2026, 11, 17),
                        scheduled_for=NOW + dt.timedelta(hours=2),
                        status=CheckinStatus.SCHEDULED, attempts=1, last_error="HTTP 500")
    db_session.add(scheduled)
    db_session.flush()
    checkin = checkins.start_patient_checkin(db_session, patient, now=NOW)
    db_session.expire_all()
    checkin = db_session.get(Checkin, checkin.id)
    assert checkin.id == scheduled.id
    assert (checkin.status, checkin.origin, checkin.due_on) == (
        CheckinStatus.IN_PROGRESS, "patient", dt.date(2026, 11, 17))
    assert _utc(checkin.sent_at) == NOW
    assert db_session.scalar(select(func.count()).select_from(Checkin)) == 1


def test_a_patient_request_after_todays_checkin_closed_takes_the_next_free_date(
    db_session: Session,
) -> None:
    patient = _enrol(db_session)
    today = dt.date(2026, 11, 21)
    done = _sent_checkin(db_session, patient, today, NOW - dt.timedelta(hours=2))
    checkins.complete(db_session, done, now=NOW - dt.timedelta(hours=1))
    db_session.add(Checkin(patient_id=patient.id, due_on=today + dt.timedelta(days=1),
                           scheduled_for=NOW, status=CheckinStatus.SKIPPED))
    db_session.flush()
    checkin = checkins.start_patient_checkin(db_session, patient, now=NOW)
    assert checkin.id != done.id
    assert checkin.due_on == today + dt.timedelta(days=2)
    assert checkin.status is CheckinStatus.IN_PROGRESS
    assert checkins.open_checkin(db_session, patient.id).id == checkin.id


@pytest.mark.parametrize(
    ("name", "first"),
    [("Ana Diaz", "Ana"), ("Okafor, Ben", "Ben"), ("Mary Jane Watson", "Mary"), ("Cher", "Cher"),
     ("  ", ""), ("Lee,", "")],
)
def test_the_summary_carries_the_first_name_only(name: str, first: str) -> None:
    assert checkins.first_name(name) == first
