"""Who is due a check-in, and sending it: plan, send, remind, close.

:func:`run_once` is one pass of the scheduler, :func:`serve` runs it in a loop. Texts go out
through a :class:`Sender` (in production :class:`bot.checkins.trigger.RasaTriggerSender`, which
asks Rasa to start the check-in dialogue); nothing here knows about Rasa.

Every step is safe to run twice, or in two processes at once, on SQLite and PostgreSQL:

* Planning inserts at most one check-in per patient and due date: the unique constraint
  ``uq_checkins_patient_due_on`` refuses the second insert, inside a savepoint.
* A check-in is *claimed* before it is sent, by an ``UPDATE`` that moves it from ``scheduled``
  to ``sending`` (and counts the attempt). Only the run whose update changed the row sends it,
  after committing the claim. A reminder is claimed the same way, on ``reminder_sent_at IS
  NULL``.
* A check-in left in ``sending`` (the run crashed mid-send) is marked ``failed`` after
  :data:`STALE_SENDING_AFTER`, never sent again automatically: nobody gets a question twice.

Texts the clinic starts (check-ins, reminders) go out only inside the patient's local send
window (``policy.send_from`` to ``policy.send_until``) and at most ``policy.weekly_cap`` times in
any 7 days. Closing an unanswered check-in sends no text and may happen at any hour.

Logs name check-ins and patients by id only: no names, numbers or answers.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only, sessionmaker

from bot.clinic import CheckinPolicy
from bot.db.models import Checkin, CheckinOrigin, CheckinStatus, Patient, utcnow
from bot.db.session import session_factory
from bot.services import checkins
from bot.services.checkins import CLOSED_STATUSES, OPEN_STATUSES, as_utc

logger = logging.getLogger(__name__)

RETRY_DELAY = dt.timedelta(minutes=15)
"""A failed send is tried again this long after (and a failed reminder no sooner than this)."""
STALE_SENDING_AFTER = dt.timedelta(minutes=15)
"""A check-in still ``sending`` this long after its claim was left by a crashed run. Must be
well above the sender's own timeout."""
CAP_PERIOD = dt.timedelta(days=7)
"""The weekly cap counts clinic-started texts in this period."""

ERROR_INTERRUPTED = "interrupted"
ERROR_OPTED_OUT = "opted_out"
ERROR_INACTIVE = "inactive"
ERROR_SUPERSEDED = "superseded"
MAX_ERROR_CHARS = 200

_ANSWERABLE = (CheckinStatus.SENT, CheckinStatus.IN_PROGRESS)


@dataclass(frozen=True)
class CheckinRef:
    """What a :class:`Sender` needs to know about a check-in: ids only, no patient data.

    Attributes:
        checkin_id: The check-in.
        patient_id: Its patient.
        sender_id: The patient's SMS conversation id (:func:`checkins.sender_id_for`).
    """

    checkin_id: int
    patient_id: int
    sender_id: str


class SendError(Exception):
    """A text could not be sent.

    Attributes:
        code: A short reason without patient data (``"HTTP 500"``, ``"timeout"``, an error
            type); stored as the check-in's ``last_error``.
    """

    def __init__(self, code: str) -> None:
        self.code = (code or "error")[:MAX_ERROR_CHARS]
        super().__init__(self.code)


class Sender(Protocol):
    """Starts, reminds and closes check-in dialogues (in production through Rasa)."""

    def start(self, checkin: CheckinRef) -> None:
        """Send the check-in's first question.

        Raises:
            SendError: It was not sent.
        """

    def remind(self, checkin: CheckinRef) -> None:
        """Send the one reminder of an unanswered check-in.

        Raises:
            SendError: It was not sent.
        """

    def closed(self, checkin: CheckinRef) -> None:
        """Tell the dialogue the check-in was closed (sends no text); failures are only logged.

        Raises:
            SendError: The dialogue was not told.
        """


@dataclass
class RunReport:
    """What one :func:`run_once` did (counts of check-ins).

    Attributes:
        planned: Check-ins newly scheduled.
        sent: First questions sent.
        failed: Check-ins marked failed: after ``max_send_attempts`` failed sends, or left
            ``sending`` by an interrupted run (those are counted in ``interrupted`` too).
        retried: Failed sends put back to be tried again.
        skipped_opted_out: Scheduled check-ins skipped because the patient opted out or was
            made inactive.
        skipped_superseded: Scheduled check-ins skipped because another check-in of the same
            patient started meanwhile (the patient texted in).
        deferred_quiet_hours: Starts and reminders held back until the patient's send window.
        deferred_cap: Starts and reminders held back by the weekly cap.
        reminded: Reminders sent.
        closed_incomplete: Unanswered check-ins closed and handed to staff.
        interrupted: Check-ins found left ``sending`` and marked failed.
    """

    planned: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped_opted_out: int = 0
    skipped_superseded: int = 0
    deferred_quiet_hours: int = 0
    deferred_cap: int = 0
    reminded: int = 0
    closed_incomplete: int = 0
    interrupted: int = 0

    def describe(self) -> str:
        """The non-zero counts, e.g. ``"planned=2 sent=2"`` (``"nothing to do"`` if none)."""
        parts = [f"{name}={value}" for name, value in asdict(self).items() if value]
        return " ".join(parts) or "nothing to do"


# -- Time: quiet hours, due dates, the weekly cap -----------------------------------------------


def in_send_window(now: dt.datetime, tz_name: str, policy: CheckinPolicy) -> bool:
    """Whether ``now`` is inside the send window in the time zone ``tz_name``.

    The window includes ``policy.send_from`` and excludes ``policy.send_until``, in local wall
    time, so it follows daylight-saving changes.
    """
    local = as_utc(now).astimezone(ZoneInfo(tz_name)).time()
    return policy.send_from <= local < policy.send_until


def next_send_time(now: dt.datetime, tz_name: str, policy: CheckinPolicy) -> dt.datetime:
    """The first moment at or after ``now`` inside the send window of ``tz_name``, in UTC.

    ``now`` itself when it is inside the window; otherwise the window's start, today (local) if
    it is still ahead, else tomorrow. A start that falls in a daylight-saving gap moves to the
    first valid time after it.
    """
    now = as_utc(now)
    if in_send_window(now, tz_name, policy):
        return now
    zone = ZoneInfo(tz_name)
    local = now.astimezone(zone)
    day = local.date() if local.time() < policy.send_from else local.date() + dt.timedelta(1)
    for offset in range(3):
        start = dt.datetime.combine(day + dt.timedelta(days=offset), policy.send_from,
                                    tzinfo=zone).astimezone(dt.timezone.utc)
        if start >= now and in_send_window(start, tz_name, policy):
            return start
    raise ValueError("the send window is empty")


def next_due_on(
    last_infusion_on: dt.date, latest_due_on: dt.date | None, cadence_days: int, today: dt.date
) -> dt.date:
    """A patient's next check-in date.

    Counted ``cadence_days`` from the later of the last infusion and the latest check-in's due
    date (whatever became of that check-in: answered, failed or skipped, it was that period's).
    When periods were missed, the latest due date not after ``today`` is returned: one
    check-in, not one per missed period.
    """
    base = max(last_infusion_on, latest_due_on) if latest_due_on else last_infusion_on
    cadence = dt.timedelta(days=cadence_days)
    due = base + cadence
    if due <= today:
        due = base + cadence * ((today - base).days // cadence_days)
    return due


def clinic_texts_since(session: Session, patient_id: int, now: dt.datetime) -> list[dt.datetime]:
    """When the clinic texted the patient in the :data:`CAP_PERIOD` before ``now``, oldest first.

    Counted: check-in starts the scheduler sent (``attempts > 0`` with ``sent_at``, whatever
    the origin became since: a patient may ask for the check-in the schedule sent) and
    reminders. A check-in the patient started by texting in is their own conversation.
    """
    since = as_utc(now) - CAP_PERIOD
    starts = session.scalars(select(Checkin.sent_at).where(
        Checkin.patient_id == patient_id, Checkin.attempts > 0, Checkin.sent_at > since))
    reminders = session.scalars(select(Checkin.reminder_sent_at).where(
        Checkin.patient_id == patient_id, Checkin.reminder_sent_at > since))
    return sorted(as_utc(moment) for moment in [*starts, *reminders])


def cap_frees_at(texts: list[dt.datetime], cap: int) -> dt.datetime | None:
    """When the weekly cap allows another text, given :func:`clinic_texts_since`.

    Returns:
        ``None`` if it allows one now; else the moment enough of the texts are older than
        :data:`CAP_PERIOD`.
    """
    if len(texts) < cap:
        return None
    return texts[len(texts) - cap] + CAP_PERIOD


# -- Planning -----------------------------------------------------------------------------------


def plan(session: Session, *, now: dt.datetime, policy: CheckinPolicy) -> list[Checkin]:
    """Schedule the check-ins that are due, at most one per patient and due date.

    For each active patient who has not opted out and has no check-in under way, the next due
    date is :func:`next_due_on`; if it is on or before the patient's local today, a
    ``scheduled`` check-in is added for the first moment of the send window at or after now.
    A patient whose scheduled check-in is not sent yet is not due again (its due date counts).

    Each insert runs in a savepoint: if another run planned the same check-in first, the
    unique constraint refuses this one and it is left out.

    Args:
        session: The unit of work (the caller commits).
        now: The current time (aware).
        policy: The clinic's check-in policy.

    Returns:
        The check-ins this call added.
    """
    now = as_utc(now)
    under_way = select(Checkin.patient_id).where(Checkin.status.in_(OPEN_STATUSES))
    latest_due: dict[int, dt.date] = {
        patient_id: due_on
        for patient_id, due_on in session.execute(
            select(Checkin.patient_id, func.max(Checkin.due_on)).group_by(Checkin.patient_id)
        )
    }
    # Only the plain columns: planning decrypts no patient data.
    candidates = session.execute(
        select(Patient.id, Patient.timezone, Patient.last_infusion_on, Patient.cadence_days)
        .where(Patient.active.is_(True), Patient.opted_out_at.is_(None),
               Patient.id.not_in(under_way))
        .order_by(Patient.id)
    ).all()
    planned: list[Checkin] = []
    for patient_id, tz_name, last_infusion_on, cadence_days in candidates:
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            logger.error("Patient %s has an unknown time zone; no check-in planned.", patient_id)
            continue
        today = now.astimezone(zone).date()
        due_on = next_due_on(last_infusion_on, latest_due.get(patient_id),
                             cadence_days or policy.cadence_days, today)
        if due_on > today:
            continue
        day_start = as_utc(dt.datetime.combine(due_on, dt.time(), tzinfo=zone))
        checkin = Checkin(
            patient_id=patient_id, due_on=due_on, status=CheckinStatus.SCHEDULED,
            origin=CheckinOrigin.SCHEDULE.value,
            scheduled_for=next_send_time(max(now, day_start), tz_name, policy),
            created_at=now, updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(checkin)
        except IntegrityError:
            logger.info("Check-in of patient %s was already planned by another run.", patient_id)
            continue
        planned.append(checkin)
    if planned:
        logger.info("Planned %d check-in(s): %s.", len(planned),
                    ", ".join(str(checkin.id) for checkin in planned))
    return planned


# -- One run ------------------------------------------------------------------------------------


def run_once(
    *,
    now: dt.datetime,
    policy: CheckinPolicy,
    sender: Sender,
    engine: Engine | None = None,
) -> RunReport:
    """One pass of the scheduler.

    In order, each step in its own transaction(s):

    1. :func:`plan` the check-ins that are due.
    2. Skip scheduled check-ins of patients who opted out or were made inactive.
    3. Mark check-ins left ``sending`` by a crashed run as ``failed`` (``interrupted``).
    4. Close unanswered check-ins as incomplete and hand them to staff (any hour), then tell
       the dialogue: the reminder went out and ``close_after`` passed since it (and since the
       last answer), or no reminder could go out (opted out, the weekly cap, failures) and
       ``reminder_after + close_after`` passed since the last activity.
    5. Remind check-ins unanswered for ``reminder_after`` (in the window, under the cap).
    6. Send the scheduled check-ins whose time has come: in the window and under the cap
       (else ``scheduled_for`` moves to when they will be), claimed, sent, then marked
       ``sent``; a failed send is retried after :data:`RETRY_DELAY` until
       ``max_send_attempts``, then the check-in is ``failed``.

    Args:
        now: The current time (aware); every step uses it.
        policy: The clinic's check-in policy.
        sender: Sends the texts.
        engine: The database (the configured one by default).

    Returns:
        What the run did.
    """
    now = as_utc(now)
    factory = session_factory(engine)
    report = RunReport()
    with factory() as session, session.begin():
        report.planned = len(plan(session, now=now, policy=policy))
    report.skipped_opted_out += _skip_unreachable(factory, now)
    _fail_interrupted(factory, now, report)
    for checkin_id in _ids(factory, _close_due(now, policy)):
        _guarded(_close_one, factory, checkin_id, now, policy, sender, report)
    for checkin_id in _ids(factory, _reminder_due(now, policy)):
        _guarded(_remind_one, factory, checkin_id, now, policy, sender, report)
    due = and_(Checkin.status == CheckinStatus.SCHEDULED, Checkin.scheduled_for <= now)
    for checkin_id in _ids(factory, due, Checkin.scheduled_for):
        _guarded(_send_one, factory, checkin_id, now, policy, sender, report)
    return report


def serve(
    *,
    policy: CheckinPolicy,
    sender: Sender,
    interval: float = 60.0,
    stop: threading.Event | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
    engine: Engine | None = None,
) -> None:
    """Run :func:`run_once` every ``interval`` seconds until ``stop`` is set.

    A run that fails is logged (its error type; the traceback at DEBUG) and the next one
    goes ahead.

    Args:
        policy: The clinic's check-in policy.
        sender: Sends the texts.
        interval: Seconds between the start of one wait and the next run.
        stop: Set it to stop the loop (checked between runs and while waiting).
        clock: The current time (tests pass their own).
        engine: The database (the configured one by default).
    """
    stop = stop or threading.Event()
    logger.info("Check-in scheduler started (every %.0f s).", interval)
    while not stop.is_set():
        try:
            report = run_once(now=clock(), policy=policy, sender=sender, engine=engine)
        except Exception as error:  # one bad run must not stop the schedule
            logger.error("Check-in run failed: %s", type(error).__name__)
            logger.debug("Check-in run failure", exc_info=True)
        else:
            logger.info("Check-in run: %s.", report.describe())
        stop.wait(interval)
    logger.info("Check-in scheduler stopped.")


# -- The steps ----------------------------------------------------------------------------------


def _ids(factory: sessionmaker, condition: Any, *order: Any) -> list[int]:
    with factory() as session:
        return list(session.scalars(
            select(Checkin.id).where(condition).order_by(*order, Checkin.id)
        ))


def _guarded(step: Callable[..., None], factory: sessionmaker, checkin_id: int,
             *args: Any) -> None:
    # One check-in's trouble (a database error, a bug) must not hold up the others.
    try:
        step(factory, checkin_id, *args)
    except Exception as error:
        logger.error("Check-in %s: %s failed: %s", checkin_id, step.__name__.strip("_"),
                     type(error).__name__)
        logger.debug("Check-in step failure", exc_info=True)


def _set(session: Session, checkin_id: int, *conditions: Any, **values: Any) -> bool:
    """A conditional update of one check-in; whether it changed the row."""
    result = session.execute(
        update(Checkin)
        .where(Checkin.id == checkin_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _patient(session: Session, patient_id: int) -> Patient:
    # Only what scheduling needs: nothing encrypted is read (or decrypted).
    patient: Patient = session.scalars(
        select(Patient)
        .options(load_only(Patient.id, Patient.person_id, Patient.mobile_index,
                           Patient.timezone, Patient.opted_out_at, Patient.active))
        .where(Patient.id == patient_id)
    ).one()
    return patient


def _ref(checkin_id: int, patient: Patient) -> CheckinRef:
    return CheckinRef(checkin_id, patient.id, checkins.sender_id_for(patient))


def _skip_unreachable(factory: sessionmaker, now: dt.datetime) -> int:
    skipped = 0
    with factory() as session, session.begin():
        for error, unreachable in ((ERROR_OPTED_OUT, Patient.opted_out_at.is_not(None)),
                                   (ERROR_INACTIVE, Patient.active.is_(False))):
            result = session.execute(
                update(Checkin)
                .where(Checkin.status == CheckinStatus.SCHEDULED,
                       Checkin.patient_id.in_(select(Patient.id).where(unreachable)))
                .values(status=CheckinStatus.SKIPPED, last_error=error, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            skipped += result.rowcount
    if skipped:
        logger.info("Skipped %d scheduled check-in(s) of patients opted out or inactive.",
                    skipped)
    return skipped


def _fail_interrupted(factory: sessionmaker, now: dt.datetime, report: RunReport) -> None:
    stale = and_(Checkin.status == CheckinStatus.SENDING,
                 Checkin.updated_at <= now - STALE_SENDING_AFTER)
    for checkin_id in _ids(factory, stale):
        with factory() as session, session.begin():
            if not _set(session, checkin_id, stale, status=CheckinStatus.FAILED,
                        last_error=ERROR_INTERRUPTED, updated_at=now):
                continue
        report.failed += 1
        report.interrupted += 1
        # Whether the question reached the patient is unknown; sending again could text it
        # twice, so staff decide.
        logger.error("Check-in %s was left sending by an interrupted run: marked failed, "
                     "not sent again.", checkin_id)


def _activity() -> Any:
    return func.coalesce(Checkin.last_activity_at, Checkin.sent_at)


def _close_due(now: dt.datetime, policy: CheckinPolicy) -> Any:
    after_reminder = and_(
        Checkin.reminder_sent_at.is_not(None),
        Checkin.reminder_sent_at <= now - policy.close_after,
        _activity() <= now - policy.close_after,
    )
    without_reminder = and_(
        Checkin.reminder_sent_at.is_(None),
        _activity() <= now - (policy.reminder_after + policy.close_after),
    )
    return and_(Checkin.status.in_(_ANSWERABLE), or_(after_reminder, without_reminder))


def _close_one(factory: sessionmaker, checkin_id: int, now: dt.datetime, policy: CheckinPolicy,
               sender: Sender, report: RunReport) -> None:
    with factory() as session, session.begin():
        # Re-checked in one statement that also locks the row: an answer that arrived since
        # the candidates were listed keeps the check-in open.
        if not _set(session, checkin_id, _close_due(now, policy), updated_at=now):
            return
        checkin = session.get(Checkin, checkin_id)
        patient = _patient(session, checkin.patient_id)
        reason = ERROR_OPTED_OUT if patient.opted_out_at is not None else checkins.CLOSE_NO_REPLY
        handoff = checkins.close_incomplete(session, checkin, now=now, reason=reason)
        ref = _ref(checkin_id, patient)
    report.closed_incomplete += 1
    logger.info("Check-in %s closed unanswered (%s); handoff %s.", checkin_id, reason,
                handoff.id)
    try:
        sender.closed(ref)
    except Exception as error:  # the check-in is closed either way; the form ends on reply
        logger.warning("Check-in %s: dialogue not told of the close: %s", checkin_id,
                       error.code if isinstance(error, SendError) else type(error).__name__)


def _reminder_due(now: dt.datetime, policy: CheckinPolicy) -> Any:
    return and_(
        Checkin.status.in_(_ANSWERABLE),
        Checkin.reminder_sent_at.is_(None),
        _activity() <= now - policy.reminder_after,
        # After a failed reminder, wait before trying again.
        or_(Checkin.last_error.is_(None), Checkin.updated_at <= now - RETRY_DELAY),
    )


def _remind_one(factory: sessionmaker, checkin_id: int, now: dt.datetime, policy: CheckinPolicy,
                sender: Sender, report: RunReport) -> None:
    with factory() as session, session.begin():
        checkin = session.get(Checkin, checkin_id)
        patient = _patient(session, checkin.patient_id)
        if patient.opted_out_at is not None or not patient.active:
            return  # no text; closed as incomplete later
        if not in_send_window(now, patient.timezone, policy):
            report.deferred_quiet_hours += 1
            return
        if cap_frees_at(clinic_texts_since(session, patient.id, now), policy.weekly_cap):
            report.deferred_cap += 1
            logger.info("Check-in %s: reminder held back by the weekly cap.", checkin_id)
            return
        if not _set(session, checkin_id, _reminder_due(now, policy), reminder_sent_at=now,
                    updated_at=now):
            return  # answered meanwhile, or another run reminded
        ref = _ref(checkin_id, patient)
    try:
        sender.remind(ref)
    except Exception as error:
        code = _code(error)
        with factory() as session, session.begin():
            _set(session, checkin_id, Checkin.reminder_sent_at == now, reminder_sent_at=None,
                 last_error=code, updated_at=now)
        logger.warning("Check-in %s: reminder not sent: %s", checkin_id, code)
        return
    report.reminded += 1
    logger.info("Check-in %s: reminder sent.", checkin_id)


def _send_one(factory: sessionmaker, checkin_id: int, now: dt.datetime, policy: CheckinPolicy,
              sender: Sender, report: RunReport) -> None:
    scheduled = Checkin.status == CheckinStatus.SCHEDULED
    with factory() as session, session.begin():
        checkin = session.get(Checkin, checkin_id)
        if checkin is None or checkin.status is not CheckinStatus.SCHEDULED:
            return
        patient = _patient(session, checkin.patient_id)
        if patient.opted_out_at is not None or not patient.active:
            error = ERROR_OPTED_OUT if patient.opted_out_at is not None else ERROR_INACTIVE
            if _set(session, checkin_id, scheduled, status=CheckinStatus.SKIPPED,
                    last_error=error, updated_at=now):
                report.skipped_opted_out += 1
            return
        if _superseded(session, checkin):
            if _set(session, checkin_id, scheduled, status=CheckinStatus.SKIPPED,
                    last_error=ERROR_SUPERSEDED, updated_at=now):
                report.skipped_superseded += 1
                logger.info("Check-in %s skipped: another check-in started.", checkin_id)
            return
        if not in_send_window(now, patient.timezone, policy):
            _set(session, checkin_id, scheduled, updated_at=now,
                 scheduled_for=next_send_time(now, patient.timezone, policy))
            report.deferred_quiet_hours += 1
            return
        frees_at = cap_frees_at(clinic_texts_since(session, patient.id, now), policy.weekly_cap)
        if frees_at is not None:
            _set(session, checkin_id, scheduled, updated_at=now,
                 scheduled_for=next_send_time(max(now, frees_at), patient.timezone, policy))
            report.deferred_cap += 1
            logger.info("Check-in %s held back by the weekly cap.", checkin_id)
            return
        # The claim: only the run whose update moves the row out of "scheduled" sends it.
        if not _set(session, checkin_id, scheduled, Checkin.scheduled_for <= now,
                    status=CheckinStatus.SENDING, attempts=Checkin.attempts + 1,
                    updated_at=now):
            return
        conversation = checkins.link_conversation(session, patient,
                                                  checkins.sender_id_for(patient))
        _set(session, checkin_id, conversation_id=conversation.id)
        attempts: int = session.execute(
            select(Checkin.attempts).where(Checkin.id == checkin_id)).scalar_one()
        ref = _ref(checkin_id, patient)
    # The claim is committed before the text goes out: a second run cannot send it too.
    sending = Checkin.status == CheckinStatus.SENDING
    try:
        sender.start(ref)
    except Exception as error:
        code = _code(error)
        final = attempts >= policy.max_send_attempts
        with factory() as session, session.begin():
            if final:
                _set(session, checkin_id, sending, status=CheckinStatus.FAILED,
                     last_error=code, updated_at=now)
            else:
                _set(session, checkin_id, sending, status=CheckinStatus.SCHEDULED,
                     last_error=code, scheduled_for=now + RETRY_DELAY, updated_at=now)
        if final:
            report.failed += 1
            logger.error("Check-in %s failed after %d attempt(s): %s", checkin_id, attempts,
                         code)
        else:
            report.retried += 1
            logger.warning("Check-in %s not sent (attempt %d of %d): %s; trying again later.",
                           checkin_id, attempts, policy.max_send_attempts, code)
        return
    with factory() as session, session.begin():
        if not _set(session, checkin_id, sending, status=CheckinStatus.SENT, sent_at=now,
                    last_activity_at=now, updated_at=now):
            # The patient answered (or texted in) while the question was going out: the
            # check-in is in progress already; only the send time is missing.
            _set(session, checkin_id, Checkin.sent_at.is_(None), sent_at=now)
    report.sent += 1
    logger.info("Check-in %s sent (attempt %d).", checkin_id, attempts)


def _superseded(session: Session, checkin: Checkin) -> bool:
    """Whether another check-in of the patient is under way, or was answered for this date or
    later: then this one would be a second text for the same period."""
    other = session.scalar(
        select(Checkin.id)
        .where(
            Checkin.patient_id == checkin.patient_id,
            Checkin.id != checkin.id,
            or_(Checkin.status.in_(OPEN_STATUSES),
                and_(Checkin.status.in_(CLOSED_STATUSES), Checkin.due_on >= checkin.due_on)),
        )
        .limit(1)
    )
    return other is not None


def _code(error: BaseException) -> str:
    if isinstance(error, SendError):
        return error.code
    # Not a send failure the sender foresaw: its message might hold anything, so only the type.
    logger.debug("Sender failure", exc_info=True)
    return type(error).__name__[:MAX_ERROR_CHARS]


__all__ = [
    "CheckinRef",
    "RunReport",
    "SendError",
    "Sender",
    "cap_frees_at",
    "clinic_texts_since",
    "in_send_window",
    "next_due_on",
    "next_send_time",
    "plan",
    "run_once",
    "serve",
]
