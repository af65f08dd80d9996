"""SMS check-ins of enrolled patients: their conversation, their answers, and the one handoff that
closes each check-in.

Used by the check-in actions (a patient texts "booster", answers a question), by the scheduler
(:mod:`bot.checkins.scheduler`: it sends, reminds and closes) and by the staff console.

A patient's SMS conversation id is ``"sms-"`` plus the first 32 hex characters of the keyed blind
index of their number (:func:`sender_id_for`): unguessable without the index key, and never the
number itself.

Status changes that can race (the scheduler and the dialogue touch the same check-in) are
conditional ``UPDATE`` statements on the current status, so a check-in closed by one process is
never reopened, or closed a second time, by another.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from bot.checkins import questions
from bot.checkins.answers import is_nothing
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
from bot.services import conversations, handoffs, safety

logger = logging.getLogger(__name__)

SMS_SENDER_PREFIX = "sms-"
SENDER_INDEX_CHARS = 32
"""How much of the mobile number's blind index (64 hex characters) a sender id carries."""

OPEN_STATUSES = (CheckinStatus.SENDING, CheckinStatus.SENT, CheckinStatus.IN_PROGRESS)
"""A check-in in one of these is under way: it takes answers and can be closed."""
CLOSED_STATUSES = (CheckinStatus.COMPLETED, CheckinStatus.INCOMPLETE)
"""A check-in in one of these was answered (in full or in part) and handed to staff."""

TREND_LENGTH = 6
"""How many previous check-ins a summary's trend shows."""
SCORE_KEYS = ("overall", "phq2", "gad2", "phq9")
"""The scores a summary and its trend show: the overall question and the instrument totals."""
SCORE_LABELS = {
    "overall": questions.OVERALL.label,
    "phq2": "PHQ-2 total",
    "gad2": "GAD-2 total",
    "phq9": "PHQ-9 total",
}

SUMMARY_KIND = "checkin"
CLOSE_NO_REPLY = "no_reply"
CLOSE_CRISIS = "crisis"
"""A :func:`close_incomplete` reason that also marks the check-in as a crisis (urgent)."""

_INDEX_PREFIX = re.compile(f"[0-9a-f]{{{SENDER_INDEX_CHARS}}}")
_SENDER_ID = re.compile(re.escape(SMS_SENDER_PREFIX) + f"({_INDEX_PREFIX.pattern})")


class CheckinNotOpenError(ValueError):
    """The check-in is not under way (not sent yet, or already closed): it takes no answers and
    cannot be closed."""


# -- Conversation ids ---------------------------------------------------------------------------


def sender_id_for_mobile_index(index: str) -> str:
    """The Rasa conversation id of the SMS conversation of the number with blind index ``index``.

    Args:
        index: A mobile number's blind index (:func:`bot.db.crypto.blind_index`, 64 hex chars).

    Returns:
        ``"sms-"`` and the first 32 characters of the index.

    Raises:
        ValueError: ``index`` is not a blind index.
    """
    prefix = (index or "")[:SENDER_INDEX_CHARS].lower()
    if not _INDEX_PREFIX.fullmatch(prefix):
        raise ValueError("not a blind index")
    return SMS_SENDER_PREFIX + prefix


def sender_id_for(patient: Patient) -> str:
    """The Rasa conversation id of ``patient``'s SMS conversation (never their number)."""
    return sender_id_for_mobile_index(patient.mobile_index)


def patient_for_sender(session: Session, sender_id: str) -> Patient | None:
    """The enrolled patient whose SMS conversation is ``sender_id``.

    Args:
        session: The unit of work.
        sender_id: A Rasa conversation id.

    Returns:
        The patient, or ``None`` when ``sender_id`` is not an SMS conversation id or does not
        match exactly one enrolled number.
    """
    match = _SENDER_ID.fullmatch(sender_id or "")
    if match is None:
        return None
    # The prefix is validated hex, so it holds no LIKE wildcards.
    found = session.scalars(
        select(Patient).where(Patient.mobile_index.like(match.group(1) + "%")).limit(2)
    ).all()
    if len(found) != 1:
        if found:
            logger.warning("Two enrolled numbers share a conversation id prefix; none is used.")
        return None
    return found[0]


def link_conversation(session: Session, patient: Patient, sender_id: str) -> Conversation:
    """The patient's SMS conversation, created on first use and linked to their person.

    Args:
        session: The unit of work.
        patient: The enrolled patient.
        sender_id: Their SMS conversation id; must be :func:`sender_id_for` of ``patient``.

    Returns:
        The conversation, with ``person_id`` set to the patient's person.

    Raises:
        ValueError: ``sender_id`` is not this patient's SMS conversation id.
    """
    if sender_id != sender_id_for(patient):
        raise ValueError("sender id is not this patient's SMS conversation")
    conversation = conversations.get_or_create(session, sender_id, Channel.SMS)
    if conversation.person_id != patient.person_id:
        if conversation.person_id is not None:
            # The id is derived from the patient's own number, so the conversation is theirs.
            logger.warning("SMS conversation %s relinked from person %s to patient %s.",
                           conversation.id, conversation.person_id, patient.id)
        conversation.person_id = patient.person_id
        session.flush()
    return conversation


# -- Check-ins ----------------------------------------------------------------------------------


def open_checkin(session: Session, patient_id: int) -> Checkin | None:
    """The patient's check-in under way (sending, sent or in progress), newest first."""
    return session.scalars(
        select(Checkin)
        .where(Checkin.patient_id == patient_id, Checkin.status.in_(OPEN_STATUSES))
        .order_by(Checkin.due_on.desc(), Checkin.id.desc())
    ).first()


def local_today(patient: Patient, now: dt.datetime) -> dt.date:
    """The patient's local date at ``now``."""
    return as_utc(now).astimezone(ZoneInfo(patient.timezone)).date()


def start_patient_checkin(session: Session, patient: Patient, *, now: dt.datetime) -> Checkin:
    """Start (or continue) a check-in because the patient asked for one ("booster").

    In order of preference:

    1. The check-in under way, if any, is reused: its answers so far stand.
    2. Else a scheduled check-in not sent yet and due today or earlier is taken over, so the
       scheduler does not text them a second one.
    3. Else a new check-in is created, due on the patient's local today. ``due_on`` is unique
       per patient; if today's date is already taken by a closed (or failed, or skipped)
       check-in, the next free date is used: ``due_on`` is then only the check-in's key, and
       ``sent_at`` says when it really started. The scheduler counts from the latest due date,
       so the next scheduled check-in moves out by the same day.

    In every case the check-in ends ``in_progress`` with ``origin`` ``patient``,
    ``last_activity_at`` now, ``sent_at`` set (kept if it was set already) and linked to the
    patient's SMS conversation. ``origin`` ``patient`` therefore means "the patient started or
    asked for this check-in", even when the schedule sent it first and answers were already
    given: it is the one place the request is kept, and it raises the handoff to ``soon``. The
    weekly cap still counts the scheduler's text (it counts send attempts, not origins).

    Does not check the opt-out: the SMS channel does not run the dialogue for an opted-out
    patient.

    Args:
        session: The unit of work.
        patient: The patient who asked.
        now: The current time (aware).

    Returns:
        The check-in now in progress.
    """
    now = as_utc(now)
    values: dict[str, Any] = {
        "status": CheckinStatus.IN_PROGRESS,
        "origin": CheckinOrigin.PATIENT.value,
        "last_activity_at": now,
        "updated_at": now,
        "sent_at": func.coalesce(Checkin.sent_at, now),
    }
    today = local_today(patient, now)
    # Each step can lose a race with the scheduler (or with a second text from the patient);
    # the next pass then finds what the other process made of it.
    for _ in range(3):
        current = open_checkin(session, patient.id)
        if current is not None and _set_if_status(session, current, OPEN_STATUSES, **values):
            return _linked(session, patient, current)
        scheduled = session.scalars(
            select(Checkin)
            .where(Checkin.patient_id == patient.id, Checkin.status == CheckinStatus.SCHEDULED,
                   Checkin.due_on <= today)
            .order_by(Checkin.due_on.desc(), Checkin.id.desc())
        ).first()
        if scheduled is not None and _set_if_status(
            session, scheduled, (CheckinStatus.SCHEDULED,), **values
        ):
            return _linked(session, patient, scheduled)
        if current is None and scheduled is None:
            taken = set(session.scalars(
                select(Checkin.due_on).where(Checkin.patient_id == patient.id,
                                             Checkin.due_on >= today)
            ))
            due_on = today
            while due_on in taken:
                due_on += dt.timedelta(days=1)
            checkin = Checkin(
                patient_id=patient.id, due_on=due_on, scheduled_for=now,
                status=CheckinStatus.IN_PROGRESS, origin=CheckinOrigin.PATIENT.value,
                sent_at=now, last_activity_at=now, created_at=now, updated_at=now,
            )
            try:
                with session.begin_nested():
                    session.add(checkin)
            except IntegrityError:
                continue
            return _linked(session, patient, checkin)
    raise RuntimeError("check-in could not be started: it kept changing under us")


def _linked(session: Session, patient: Patient, checkin: Checkin) -> Checkin:
    conversation = link_conversation(session, patient, sender_id_for(patient))
    if checkin.conversation_id != conversation.id:
        checkin.conversation_id = conversation.id
        session.flush()
    return checkin


def _set_if_status(
    session: Session,
    checkin: Checkin,
    statuses: Iterable[CheckinStatus],
    *conditions: Any,
    **values: Any,
) -> bool:
    """Update ``checkin`` only if its status (in the database) is one of ``statuses``.

    Returns:
        Whether the row was updated; the changed attributes are reloaded on next access.
    """
    result = session.execute(
        update(Checkin)
        .where(Checkin.id == checkin.id, Checkin.status.in_(tuple(statuses)), *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    session.expire(checkin, [*values, "status"])
    return True


# -- Answers ------------------------------------------------------------------------------------


_SCORE_RANGES = {
    questions.Scale.ZERO_TO_TEN: range(0, 11),
    questions.Scale.FREQUENCY: range(0, 4),
    questions.Scale.SIGNS: range(0, len(questions.SIGN_KEYS) + 1),
}


def record_answer(
    session: Session,
    checkin: Checkin,
    question_key: str,
    raw_text: str,
    *,
    score: int | None,
    choices: Iterable[str] = (),
    now: dt.datetime,
) -> CheckinAnswer:
    """Store one answer as its own row; the check-in becomes ``in_progress``.

    Corrections add rows: the latest row for a question is the answer (:func:`latest_answers`).

    Args:
        session: The unit of work.
        checkin: A check-in under way.
        question_key: A key of :data:`bot.checkins.questions.BY_KEY`.
        raw_text: The patient's own words (stored encrypted).
        score: The item's score on its scale; ``None`` if it could not be read (and always for
            the free-text question).
        choices: For the signs question, the sign keys picked (:data:`questions.SIGN_KEYS`).
        now: When it was answered (aware).

    Returns:
        The new answer row.

    Raises:
        ValueError: Unknown question, a score off the question's scale, or choices that are not
            sign keys (or given for another question).
        CheckinNotOpenError: The check-in is not under way.
    """
    question = questions.BY_KEY.get(question_key)
    if question is None:
        raise ValueError(f"unknown check-in question {question_key!r}")
    if score is not None:
        allowed = _SCORE_RANGES.get(question.scale)
        if allowed is None or isinstance(score, bool) or score not in allowed:
            raise ValueError(f"score {score!r} is not on the scale of {question_key!r}")
    picked = list(dict.fromkeys(choices))
    if question.scale is questions.Scale.SIGNS:
        unknown = [key for key in picked if key not in questions.SIGN_LABELS]
        if unknown:
            raise ValueError(f"unknown sign(s) {unknown!r}")
        stored: list[str] | None = [key for key in questions.SIGN_KEYS if key in picked]
    elif picked:
        raise ValueError(f"{question_key!r} is not a multiple-choice question")
    else:
        stored = None
    now = as_utc(now)
    if not _set_if_status(session, checkin, OPEN_STATUSES, status=CheckinStatus.IN_PROGRESS,
                          last_activity_at=now, updated_at=now):
        raise CheckinNotOpenError(f"check-in {checkin.id} is not under way")
    answer = CheckinAnswer(question_key=question_key, raw_text=raw_text, score=score,
                           choices=stored, answered_at=now)
    checkin.answers.append(answer)
    session.flush()
    return answer


def latest_answers(checkin: Checkin) -> dict[str, CheckinAnswer]:
    """The latest answer to each question, in question order."""
    latest: dict[str, CheckinAnswer] = {}
    for answer in sorted(checkin.answers, key=lambda row: (row.id is None, row.id or 0)):
        latest[answer.question_key] = answer
    order = {question.key: index for index, question in enumerate(questions.ALL_QUESTIONS)}
    return dict(sorted(latest.items(), key=lambda item: order.get(item[0], len(order))))


def scores(checkin: Checkin) -> dict[str, int | None]:
    """Each answered question's latest score (``None`` where it could not be read)."""
    return {key: answer.score for key, answer in latest_answers(checkin).items()}


# -- Closing and the summary for staff ----------------------------------------------------------


def complete(
    session: Session, checkin: Checkin, *, now: dt.datetime, crisis: bool = False
) -> Handoff:
    """Close a check-in the patient finished, and hand it to staff.

    Args:
        session: The unit of work.
        checkin: The check-in (under way, or already closed).
        now: The current time (aware).
        crisis: The dialogue took the crisis path during this check-in.

    Returns:
        The check-in's handoff. A check-in closed before (completed or incomplete) keeps its
        status and returns its handoff unchanged: a crisis reported this late is on the crisis
        handoff the crisis path created, not on this one.

    Raises:
        CheckinNotOpenError: The check-in was never sent, failed, or was skipped.
    """
    return _close(session, checkin, CheckinStatus.COMPLETED, now, crisis=crisis, reason=None)


def close_incomplete(
    session: Session, checkin: Checkin, *, now: dt.datetime, reason: str = CLOSE_NO_REPLY
) -> Handoff:
    """Close a check-in the patient did not finish; staff get the answers given so far.

    Args:
        session: The unit of work.
        checkin: The check-in (under way, or already closed).
        now: The current time (aware).
        reason: Why, for staff: ``no_reply`` (the scheduler), ``opted_out`` (STOP),
            ``crisis`` (the dialogue took the crisis path: the handoff is urgent) ...

    Returns:
        The check-in's handoff; as for :func:`complete`, a closed check-in returns its handoff.

    Raises:
        CheckinNotOpenError: The check-in was never sent, failed, or was skipped.
    """
    return _close(session, checkin, CheckinStatus.INCOMPLETE, now,
                  crisis=reason == CLOSE_CRISIS, reason=reason)


def _close(
    session: Session,
    checkin: Checkin,
    status: CheckinStatus,
    now: dt.datetime,
    *,
    crisis: bool,
    reason: str | None,
) -> Handoff:
    now = as_utc(now)
    if checkin.handoff_id is None and not _set_if_status(
        session, checkin, OPEN_STATUSES, Checkin.handoff_id.is_(None),
        status=status, closed_at=now, updated_at=now,
    ):
        # Closed meanwhile by another process (its handoff is then visible), or never open.
        session.refresh(checkin)
    if checkin.handoff_id is not None:
        existing = session.get(Handoff, checkin.handoff_id)
        if existing is None:  # a foreign key makes this impossible
            raise LookupError(f"handoff of check-in {checkin.id} is missing")
        return existing
    if checkin.status is not status:
        raise CheckinNotOpenError(f"check-in {checkin.id} is {checkin.status.value}")
    patient = checkin.patient
    sender_id = sender_id_for(patient)
    conversation = link_conversation(session, patient, sender_id)
    summary = build_summary(session, checkin, now=now, crisis=crisis)
    summary["close_reason"] = reason
    handoff = handoffs.create(session, sender_id, Channel.SMS, HandoffReason.CHECKIN,
                              priority_for(summary), summary)
    checkin.handoff_id = handoff.id
    checkin.conversation_id = conversation.id
    session.flush()
    logger.info("Check-in %s closed %s; handoff %s (%s).", checkin.id, status.value,
                handoff.id, handoff.priority.value)
    return handoff


def build_summary(
    session: Session, checkin: Checkin, *, now: dt.datetime, crisis: bool = False
) -> dict[str, Any]:
    """The staff summary of a check-in: answers in the patient's words, scores, trend, flags.

    JSON-serialisable (enums as plain strings, dates and times as ISO text); stored encrypted
    as the handoff's summary. Scores inform staff; nothing here is a decision.

    Args:
        session: The unit of work.
        checkin: The check-in (usually just closed).
        now: The current time (aware), for the days since the last infusion.
        crisis: The dialogue took the crisis path during this check-in.

    Returns:
        The summary: ``kind``, ``checkin_id``, ``status``, ``origin``, ``patient_requested``,
        ``first_name``, ``due_on``, ``sent_at``, ``closed_at``, ``reminder_sent``,
        ``last_infusion_on``, ``days_since_last_infusion``, ``answers``, ``unanswered``,
        ``scores``, ``signs_present``, ``trend``, ``worse_than_last``, ``own_words``,
        ``crisis`` and ``priority_reasons``; closing adds ``close_reason`` (``None`` when
        completed).
    """
    now = as_utc(now)
    patient = checkin.patient
    zone = ZoneInfo(patient.timezone)
    latest = latest_answers(checkin)
    item_scores = {key: answer.score for key, answer in latest.items()}
    asked = [question.key for question in questions.questions_to_ask(item_scores)]

    answers: list[dict[str, Any]] = []
    own_words: list[dict[str, Any]] = []
    signs_present: list[str] = []
    for key, answer in latest.items():
        question = questions.BY_KEY[key]
        entry: dict[str, Any] = {
            "key": key,
            "label": question.label,
            "score": answer.score,
            "text": answer.raw_text,
            "answered_at": _iso(answer.answered_at),
        }
        if question.scale is questions.Scale.SIGNS:
            entry["choices"] = [questions.SIGN_LABELS[sign] for sign in answer.choices or []]
            signs_present = list(entry["choices"])
        answers.append(entry)
        if question.scale is questions.Scale.FREE_TEXT:
            kept = not is_nothing(answer.raw_text)
        else:  # a scored question whose answer could not be read: staff read the words
            kept = answer.score is None and not (answer.choices or [])
        if kept:
            own_words.append({"key": key, "label": question.label, "text": answer.raw_text})

    current_scores = score_summary(item_scores)
    previous = _previous_checkins(session, checkin)
    previous_scores = [(earlier, score_summary(scores(earlier))) for earlier in previous]
    trend = [_trend_entry(earlier, values, zone) for earlier, values in
             previous_scores[-TREND_LENGTH:]]
    trend.append({**_trend_entry(checkin, current_scores, zone), "current": True})
    worse = _worse_than_last(current_scores, [values for _, values in previous_scores])

    reasons: list[str] = []
    if crisis:
        reasons.append("Crisis path taken during the check-in")
    if (item_scores.get(questions.PHQ9_SELF_HARM) or 0) > 0:
        reasons.append("PHQ-9 item 9 (thoughts of death or self-harm) above 0")
    if _crisis_during(session, checkin, patient):
        reasons.append("Crisis messages on this conversation during the check-in")
    in_crisis = bool(reasons)
    requested = checkin.origin == CheckinOrigin.PATIENT.value
    if requested:
        reasons.append("The patient asked for this check-in")
    if worse:
        reasons.append("Worse than the last check-in: "
                       + ", ".join(SCORE_LABELS[key] for key in worse))

    today = now.astimezone(zone).date()
    return {
        "kind": SUMMARY_KIND,
        "checkin_id": checkin.id,
        "status": checkin.status.value,
        "origin": checkin.origin,
        "patient_requested": requested,
        "first_name": first_name(patient.name),
        "due_on": checkin.due_on.isoformat(),
        "sent_at": _iso(checkin.sent_at),
        "closed_at": _iso(checkin.closed_at),
        "reminder_sent": checkin.reminder_sent_at is not None,
        "last_infusion_on": patient.last_infusion_on.isoformat(),
        "days_since_last_infusion": (today - patient.last_infusion_on).days,
        "answers": answers,
        "unanswered": [key for key in asked if key not in latest],
        "scores": current_scores,
        "signs_present": signs_present,
        "trend": trend,
        "worse_than_last": worse,
        "own_words": own_words,
        "crisis": in_crisis,
        "priority_reasons": reasons,
    }


def priority_for(summary: Mapping[str, Any]) -> HandoffPriority:
    """The staff priority of a check-in summary from :func:`build_summary`.

    ``urgent`` on a crisis (reported by the dialogue, PHQ-9 item 9 above 0, or a crisis handoff
    opened during the check-in); ``soon`` when the patient asked for it or a score is worse
    than last time; ``routine`` otherwise.
    """
    if summary.get("crisis"):
        return HandoffPriority.URGENT
    if summary.get("patient_requested") or summary.get("worse_than_last"):
        return HandoffPriority.SOON
    return HandoffPriority.ROUTINE


def score_summary(item_scores: Mapping[str, int | None]) -> dict[str, int | None]:
    """The overall score and the instrument totals that can be computed (``None`` if not)."""
    totals = questions.totals(item_scores)
    return {
        key: item_scores.get(key) if key == questions.OVERALL.key else totals.get(key)
        for key in SCORE_KEYS
    }


def first_name(name: str | None) -> str:
    """The first word of a name ("Ana" of "Ana Diaz"; "Ben" of "Okafor, Ben")."""
    given = (name or "").split(",", 1)[1] if "," in (name or "") else (name or "")
    words = given.split()
    return words[0] if words else ""


def _previous_checkins(session: Session, checkin: Checkin) -> list[Checkin]:
    """The patient's closed check-ins before this one, oldest first."""
    return list(session.scalars(
        select(Checkin)
        .options(selectinload(Checkin.answers))
        .where(Checkin.patient_id == checkin.patient_id, Checkin.id != checkin.id,
               Checkin.status.in_(CLOSED_STATUSES), Checkin.due_on < checkin.due_on)
        .order_by(Checkin.due_on, Checkin.id)
    ))


def _trend_entry(checkin: Checkin, values: dict[str, int | None], zone: ZoneInfo
                 ) -> dict[str, Any]:
    started = checkin.sent_at
    day = as_utc(started).astimezone(zone).date() if started is not None else checkin.due_on
    return {
        "checkin_id": checkin.id,
        "date": day.isoformat(),
        "status": checkin.status.value,
        "scores": values,
    }


def _worse_than_last(current: Mapping[str, int | None],
                     previous: list[dict[str, int | None]]) -> list[str]:
    """Score keys higher (worse) now than in the latest previous check-in that has them."""
    worse = []
    for key in SCORE_KEYS:
        value = current.get(key)
        if value is None:
            continue
        earlier = next((values[key] for values in reversed(previous)
                        if values.get(key) is not None), None)
        if earlier is not None and value > earlier:
            worse.append(key)
    return worse


def _crisis_during(session: Session, checkin: Checkin, patient: Patient) -> bool:
    """Whether the conversation's unresolved crisis handoff was opened, or had a crisis message
    added, since the check-in started (a denial alone does not count)."""
    handoff = safety.open_crisis_handoff(session, sender_id_for(patient))
    if handoff is None:
        return False
    started = checkin.sent_at or checkin.created_at
    if started is None or as_utc(handoff.created_at) >= as_utc(started):
        return True
    for message in (handoff.summary or {}).get("messages", []):
        try:
            at = dt.datetime.fromisoformat(str(message.get("at")))
        except (AttributeError, ValueError):
            continue
        if as_utc(at) >= as_utc(started):
            return True
    return False


# -- History for the staff console's chart ------------------------------------------------------


def score_history(session: Session, patient_id: int) -> list[dict[str, Any]]:
    """The patient's check-in scores over time, for the chart next to their infusion dates.

    Args:
        session: The unit of work.
        patient_id: The enrolled patient.

    Returns:
        One entry per check-in with at least one score, oldest first: ``checkin_id``,
        ``date`` (ISO; the patient's local date it was sent, else its due date) and the
        scores of :data:`SCORE_KEYS` (``None`` where a score cannot be computed).
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        return []
    zone = ZoneInfo(patient.timezone)
    history: list[dict[str, Any]] = []
    for checkin in session.scalars(
        select(Checkin)
        .options(selectinload(Checkin.answers))
        .where(Checkin.patient_id == patient_id)
        .order_by(Checkin.due_on, Checkin.id)
    ):
        values = score_summary(scores(checkin))
        if all(value is None for value in values.values()):
            continue
        entry = _trend_entry(checkin, values, zone)
        history.append({"checkin_id": entry["checkin_id"], "date": entry["date"], **values})
    return history


def infusion_history(session: Session, patient_id: int) -> list[dict[str, str]]:
    """The infusion dates the clinic recorded for the patient, oldest first.

    The induction series, then the last infusion as a booster when it came after the series
    (only the most recent booster is recorded).

    Args:
        session: The unit of work.
        patient_id: The enrolled patient.

    Returns:
        ``{"date": ISO date, "kind": "induction" | "booster"}`` entries.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        return []
    series = sorted(patient.induction_days)
    history = [{"date": day.isoformat(), "kind": "induction"} for day in series]
    if not series or patient.last_infusion_on > series[-1]:
        history.append({"date": patient.last_infusion_on.isoformat(), "kind": "booster"})
    return history


def as_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC. A naive time is taken as UTC: SQLite returns stored UTC times naive."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat(timespec="seconds")


__all__ = [
    "CLOSED_STATUSES",
    "OPEN_STATUSES",
    "SMS_SENDER_PREFIX",
    "CheckinNotOpenError",
    "as_utc",
    "build_summary",
    "close_incomplete",
    "complete",
    "first_name",
    "infusion_history",
    "latest_answers",
    "link_conversation",
    "local_today",
    "open_checkin",
    "patient_for_sender",
    "priority_for",
    "record_answer",
    "score_history",
    "score_summary",
    "scores",
    "sender_id_for",
    "sender_id_for_mobile_index",
    "start_patient_checkin",
]
