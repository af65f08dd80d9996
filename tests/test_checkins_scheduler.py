"""The check-in scheduler (bot.checkins.scheduler): due dates, quiet hours across time zones, the
weekly cap, claiming, retries, reminders, closing, and two runs at once.

The scheduler commits, so these tests use their own databases (a SQLite file and a throwaway
PostgreSQL database, both migrated with Alembic), emptied after every test.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from bot.checkins import scheduler
from bot.checkins.scheduler import CheckinRef, RunReport, SendError
from bot.clinic import CheckinPolicy
from bot.db.models import Checkin, CheckinStatus, Handoff, HandoffReason, Patient
from bot.db.session import make_engine, unit_of_work
from bot.services import checkins, patients
from tests.conftest import own_database

UTC = dt.timezone.utc
POLICY = CheckinPolicy()  # every 28 days, 08:00-21:00, 2 texts a week, 24 h, 24 h, 3 attempts
# Tuesday 17 November 2026, 16:30 UTC: 11:30 in New York, 09:30 in Denver and Phoenix, 08:30 in
# Los Angeles, 07:30 in Anchorage and 06:30 in Honolulu.
NOW = dt.datetime(2026, 11, 17, 16, 30, tzinfo=UTC)
TABLES = ("checkin_answers", "sms_messages", "checkins", "staff_alerts", "handoffs", "answers",
          "consent_records", "conversations", "patients", "people")


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _at(zone: str, day: str, clock: str) -> dt.datetime:
    """A local wall time in ``zone``, in UTC."""
    local = dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC)


# -- Databases ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    """A migrated database of this module's own, on SQLite and on PostgreSQL."""
    with own_database(request.param, tmp_path_factory.mktemp("scheduler"), "sched") as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the module's database, emptied after the test."""
    engine = make_engine(database_url)
    yield engine
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)
    engine.dispose()


class FakeSender:
    """Records every call; fails the methods (or check-ins) it is told to."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failures: dict[str, list[str]] = {}
        self.delay = delay
        self._lock = threading.Lock()

    def fail(self, method: str, *codes: str) -> None:
        """Fail the next calls of ``method`` with these codes, one per call."""
        self.failures[method] = list(codes)

    def _call(self, method: str, ref: CheckinRef) -> None:
        assert ref.sender_id.startswith("sms-") and len(ref.sender_id) == 36
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append((method, ref.checkin_id))
            pending = self.failures.get(method)
            code = pending.pop(0) if pending else None
        if code is not None:
            raise SendError(code)

    def start(self, checkin: CheckinRef) -> None:
        self._call("start", checkin)

    def remind(self, checkin: CheckinRef) -> None:
        self._call("remind", checkin)

    def closed(self, checkin: CheckinRef) -> None:
        self._call("closed", checkin)


def _enrol(engine: Engine, mobile: str = "555 555 0101", **overrides) -> int:
    values = {
        "name": "Ana Diaz",
        "mobile": mobile,
        "timezone": "America/Denver",
        "induction_dates": ["2026-07-20"],
        "last_infusion": "2026-10-20",
        "consent_version": "sms-v1",
        "consented_at": "2026-07-20",
        "now": NOW,
    }
    values.update(overrides)
    with unit_of_work(engine) as session:
        return patients.enrol_patient(session, **values).patient.id


def _add(engine: Engine, patient_id: int, due_on: dt.date, **values) -> int:
    values.setdefault("scheduled_for", NOW)
    values.setdefault("status", CheckinStatus.SCHEDULED)
    values.setdefault("created_at", NOW - dt.timedelta(hours=1))
    values.setdefault("updated_at", values["created_at"])
    with unit_of_work(engine) as session:
        checkin = Checkin(patient_id=patient_id, due_on=due_on, **values)
        session.add(checkin)
        session.flush()
        return checkin.id


def _checkins(engine: Engine) -> list[Checkin]:
    with unit_of_work(engine) as session:
        return list(session.scalars(select(Checkin).order_by(Checkin.patient_id, Checkin.due_on)))


def _get(engine: Engine, checkin_id: int) -> Checkin:
    with unit_of_work(engine) as session:
        return session.get(Checkin, checkin_id)


def _run(engine: Engine, now: dt.datetime, sender: FakeSender,
         policy: CheckinPolicy = POLICY) -> RunReport:
    return scheduler.run_once(now=now, policy=policy, sender=sender, engine=engine)


# -- Quiet hours (no database) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "zone", "allowed", "next_time"),
    [
        # 12:30 UTC on 17 November: 07:30 in New York (EST), too early.
        (dt.datetime(2026, 11, 17, 12, 30, tzinfo=UTC), "America/New_York", False,
         dt.datetime(2026, 11, 17, 13, 0, tzinfo=UTC)),
        # 02:30 UTC on 18 November: 21:30 in New York (too late), 18:30 in Los Angeles,
        # 16:30 in Honolulu.
        (dt.datetime(2026, 11, 18, 2, 30, tzinfo=UTC), "America/New_York", False,
         dt.datetime(2026, 11, 18, 13, 0, tzinfo=UTC)),
        (dt.datetime(2026, 11, 18, 2, 30, tzinfo=UTC), "America/Los_Angeles", True, None),
        (dt.datetime(2026, 11, 18, 2, 30, tzinfo=UTC), "Pacific/Honolulu", True, None),
        # 05:30 UTC: 21:30 in Los Angeles on the 17th; the window opens at 08:00 PST.
        (dt.datetime(2026, 11, 18, 5, 30, tzinfo=UTC), "America/Los_Angeles", False,
         dt.datetime(2026, 11, 18, 16, 0, tzinfo=UTC)),
        # Honolulu (UTC-10, no DST) and Phoenix (UTC-7, no DST) at NOW.
        (NOW, "Pacific/Honolulu", False, dt.datetime(2026, 11, 17, 18, 0, tzinfo=UTC)),
        (NOW, "America/Phoenix", True, None),
        (NOW, "America/Anchorage", False, dt.datetime(2026, 11, 17, 17, 0, tzinfo=UTC)),
        # The window includes 08:00 and excludes 21:00.
        (_at("America/Chicago", "2026-11-17", "08:00"), "America/Chicago", True, None),
        (_at("America/Chicago", "2026-11-17", "21:00"), "America/Chicago", False,
         _at("America/Chicago", "2026-11-18", "08:00")),
        (_at("America/Chicago", "2026-11-17", "20:59:59"), "America/Chicago", True, None),
        # Spring forward, Sunday 8 March 2026: 08:00 in New York is 12:00 UTC that day (EDT),
        # 13:00 UTC the day before (EST); Phoenix keeps 15:00 UTC.
        (dt.datetime(2026, 3, 8, 6, 0, tzinfo=UTC), "America/New_York", False,
         dt.datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        (dt.datetime(2026, 3, 7, 6, 0, tzinfo=UTC), "America/New_York", False,
         dt.datetime(2026, 3, 7, 13, 0, tzinfo=UTC)),
        (dt.datetime(2026, 3, 8, 6, 0, tzinfo=UTC), "America/Phoenix", False,
         dt.datetime(2026, 3, 8, 15, 0, tzinfo=UTC)),
        # 12:30 UTC on 8 March is 08:30 EDT (in), though it would be 07:30 in EST.
        (dt.datetime(2026, 3, 8, 12, 30, tzinfo=UTC), "America/New_York", True, None),
        # Fall back, Sunday 1 November 2026: 08:00 EST is 13:00 UTC; 12:30 UTC is 07:30.
        (dt.datetime(2026, 11, 1, 12, 30, tzinfo=UTC), "America/New_York", False,
         dt.datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
        # A time given with another offset is the same instant.
        (dt.datetime(2026, 11, 17, 7, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
         "America/New_York", False, dt.datetime(2026, 11, 17, 13, 0, tzinfo=UTC)),
    ],
)
def test_send_window_in_the_patients_time_zone(now, zone, allowed, next_time) -> None:
    assert scheduler.in_send_window(now, zone, POLICY) is allowed
    expected = now.astimezone(UTC) if allowed else next_time
    assert scheduler.next_send_time(now, zone, POLICY) == expected
    assert scheduler.in_send_window(expected, zone, POLICY)


def test_a_window_start_inside_the_dst_gap_moves_past_the_gap() -> None:
    # 02:30 does not exist in New York on 8 March 2026 (02:00 EST -> 03:00 EDT).
    policy = CheckinPolicy(send_from=dt.time(2, 30), send_until=dt.time(21, 0))
    start = scheduler.next_send_time(dt.datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
                                     "America/New_York", policy)
    assert start == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert start.astimezone(ZoneInfo("America/New_York")).time() == dt.time(3, 30)


@pytest.mark.parametrize(
    ("last_infusion", "latest_due", "cadence", "today", "due"),
    [
        ("2026-10-20", None, 28, "2026-11-17", "2026-11-17"),
        ("2026-10-20", None, 28, "2026-11-16", "2026-11-17"),  # not yet
        ("2026-08-01", None, 28, "2026-11-17", "2026-10-24"),  # 3 missed: the latest one
        ("2026-08-01", "2026-10-24", 28, "2026-11-17", "2026-11-21"),
        ("2026-11-01", "2026-10-24", 14, "2026-11-17", "2026-11-15"),  # a booster since
        ("2026-10-20", "2026-11-19", 28, "2026-11-17", "2026-12-17"),
    ],
)
def test_next_due_on(last_infusion, latest_due, cadence, today, due) -> None:
    day = dt.date.fromisoformat
    assert scheduler.next_due_on(day(last_infusion), latest_due and day(latest_due), cadence,
                                 day(today)) == day(due)


def test_the_weekly_cap_frees_up_as_texts_age() -> None:
    texts = [NOW - dt.timedelta(days=6), NOW - dt.timedelta(days=2)]
    assert scheduler.cap_frees_at(texts[:1], 2) is None
    assert scheduler.cap_frees_at(texts, 2) == NOW + dt.timedelta(days=1)
    assert scheduler.cap_frees_at(texts, 1) == NOW + dt.timedelta(days=5)
    assert scheduler.cap_frees_at([], 1) is None


# -- Planning -----------------------------------------------------------------------------------


def test_planning_uses_the_default_or_the_patients_cadence_and_skips_missed_periods(
    engine: Engine,
) -> None:
    due_default = _enrol(engine, "555 555 0101", last_infusion="2026-10-20")
    not_yet = _enrol(engine, "555 555 0102", last_infusion="2026-10-21")
    own_cadence = _enrol(engine, "555 555 0103", last_infusion="2026-11-03", cadence_days=14)
    missed = _enrol(engine, "555 555 0104", last_infusion="2026-08-01")
    opted_out = _enrol(engine, "555 555 0105", last_infusion="2026-08-01")
    inactive = _enrol(engine, "555 555 0106", last_infusion="2026-08-01")
    honolulu = _enrol(engine, "555 555 0107", last_infusion="2026-10-20",
                      timezone="Pacific/Honolulu")
    with unit_of_work(engine) as session:
        patients.opt_out(session, "555 555 0105", now=NOW)
        session.get(Patient, inactive).active = False

    with unit_of_work(engine) as session:
        planned = scheduler.plan(session, now=NOW, policy=POLICY)
        assert len(planned) == 4
    rows = {c.patient_id: c for c in _checkins(engine)}
    assert set(rows) == {due_default, own_cadence, missed, honolulu}
    assert not {not_yet, opted_out, inactive} & set(rows)
    assert rows[due_default].due_on == dt.date(2026, 11, 17)
    assert rows[own_cadence].due_on == dt.date(2026, 11, 17)
    # Due 29 Aug, 26 Sep, 24 Oct and 21 Nov: one check-in, for the latest period passed.
    assert rows[missed].due_on == dt.date(2026, 10, 24)
    assert {c.status for c in rows.values()} == {CheckinStatus.SCHEDULED}
    assert {c.origin for c in rows.values()} == {"schedule"}
    # 09:30 in Denver: now. 06:30 in Honolulu: when its window opens, 08:00 HST.
    assert _utc(rows[due_default].scheduled_for) == NOW
    assert _utc(rows[honolulu].scheduled_for) == dt.datetime(2026, 11, 17, 18, tzinfo=UTC)

    # Planning again adds nothing: each patient's scheduled check-in is their latest.
    with unit_of_work(engine) as session:
        assert scheduler.plan(session, now=NOW + dt.timedelta(hours=1), policy=POLICY) == []
    assert len(_checkins(engine)) == 4


def test_the_next_checkin_counts_from_the_last_one_whatever_became_of_it(
    engine: Engine,
) -> None:
    # Counted from the last infusion, 22 Sep + 56 days would be due today (17 Nov); counted
    # from the failed check-in of 22 Oct, on 19 Nov.
    patient = _enrol(engine, last_infusion="2026-09-22")
    _add(engine, patient, dt.date(2026, 10, 22), status=CheckinStatus.FAILED)
    with unit_of_work(engine) as session:
        assert scheduler.plan(session, now=NOW, policy=POLICY) == []
    with unit_of_work(engine) as session:
        [checkin] = scheduler.plan(session, now=NOW + dt.timedelta(days=2), policy=POLICY)
        assert checkin.due_on == dt.date(2026, 11, 19)


def test_a_patient_with_a_checkin_under_way_is_not_planned(engine: Engine) -> None:
    patient = _enrol(engine, last_infusion="2026-08-01")
    _add(engine, patient, dt.date(2026, 9, 26), status=CheckinStatus.IN_PROGRESS,
         sent_at=NOW - dt.timedelta(hours=3))
    with unit_of_work(engine) as session:
        assert scheduler.plan(session, now=NOW, policy=POLICY) == []


# -- Sending ------------------------------------------------------------------------------------


def test_sending_across_time_zones_defers_quiet_hours(engine: Engine) -> None:
    zones = {"America/New_York": "0101", "America/Phoenix": "0102",
             "America/Los_Angeles": "0103", "America/Anchorage": "0104",
             "Pacific/Honolulu": "0105"}
    ids = {zone: _enrol(engine, f"555 555 {suffix}", timezone=zone)
           for zone, suffix in zones.items()}
    sender = FakeSender()
    report = _run(engine, NOW, sender)
    assert (report.planned, report.sent) == (5, 3)
    by_patient = {c.patient_id: c for c in _checkins(engine)}
    started = {by_patient[ids[zone]].id for zone in
               ("America/New_York", "America/Phoenix", "America/Los_Angeles")}
    assert sender.calls == [("start", cid) for cid in sorted(started)]
    for zone in ("America/New_York", "America/Phoenix", "America/Los_Angeles"):
        checkin = by_patient[ids[zone]]
        assert checkin.status is CheckinStatus.SENT
        assert _utc(checkin.sent_at) == _utc(checkin.last_activity_at) == NOW
        assert checkin.attempts == 1 and checkin.conversation_id is not None
    # 07:30 in Anchorage and 06:30 in Honolulu: held until 08:00 there.
    anchorage, honolulu = by_patient[ids["America/Anchorage"]], by_patient[ids["Pacific/Honolulu"]]
    assert (anchorage.status, honolulu.status) == (CheckinStatus.SCHEDULED,) * 2
    assert _utc(anchorage.scheduled_for) == dt.datetime(2026, 11, 17, 17, tzinfo=UTC)
    assert _utc(honolulu.scheduled_for) == dt.datetime(2026, 11, 17, 18, tzinfo=UTC)

    sender.calls.clear()
    assert _run(engine, dt.datetime(2026, 11, 17, 17, 30, tzinfo=UTC), sender).sent == 1
    assert _run(engine, dt.datetime(2026, 11, 17, 18, 0, tzinfo=UTC), sender).sent == 1
    assert sender.calls == [("start", anchorage.id), ("start", honolulu.id)]


def test_a_checkin_scheduled_for_a_window_is_rechecked_when_it_comes_due(
    engine: Engine,
) -> None:
    # Staff moved the patient to New York after the check-in was scheduled: 21:30 there.
    patient = _enrol(engine, timezone="America/New_York")
    checkin = _add(engine, patient, dt.date(2026, 11, 17), scheduled_for=NOW)
    report = _run(engine, dt.datetime(2026, 11, 18, 2, 30, tzinfo=UTC), FakeSender())
    assert (report.sent, report.deferred_quiet_hours) == (0, 1)
    assert _utc(_get(engine, checkin).scheduled_for) == dt.datetime(2026, 11, 18, 13, tzinfo=UTC)


def test_the_weekly_cap_holds_back_clinic_texts(engine: Engine) -> None:
    patient = _enrol(engine, last_infusion="2026-09-22")
    # Last week's check-in (sent 6 days ago, reminded 5 days ago): two clinic texts.
    _add(engine, patient, dt.date(2026, 10, 20), status=CheckinStatus.INCOMPLETE, attempts=1,
         sent_at=NOW - dt.timedelta(days=6), reminder_sent_at=NOW - dt.timedelta(days=5))
    checkin = _add(engine, patient, dt.date(2026, 11, 17))
    sender = FakeSender()
    report = _run(engine, NOW, sender)
    assert (report.sent, report.deferred_cap) == (0, 1)
    assert sender.calls == []
    # One text ages out 1 day later (16:30 UTC, 09:30 in Denver).
    assert _utc(_get(engine, checkin).scheduled_for) == NOW + dt.timedelta(days=1)
    assert _run(engine, NOW + dt.timedelta(hours=23), sender).sent == 0
    assert _run(engine, NOW + dt.timedelta(days=1), sender).sent == 1
    assert sender.calls == [("start", checkin)]


def test_a_checkin_the_patient_started_does_not_count_against_the_cap(engine: Engine) -> None:
    patient = _enrol(engine, last_infusion="2026-09-22")
    _add(engine, patient, dt.date(2026, 10, 20), status=CheckinStatus.COMPLETED, attempts=0,
         origin="patient", sent_at=NOW - dt.timedelta(days=1))
    checkin = _add(engine, patient, dt.date(2026, 11, 17))
    sender = FakeSender()
    report = _run(engine, NOW, sender, CheckinPolicy(weekly_cap=1))
    assert (report.sent, report.deferred_cap) == (1, 0)
    assert sender.calls == [("start", checkin)]


def test_opted_out_and_inactive_patients_are_skipped(engine: Engine) -> None:
    opted_out = _enrol(engine, "555 555 0101")
    inactive = _enrol(engine, "555 555 0102")
    first = _add(engine, opted_out, dt.date(2026, 11, 17))
    second = _add(engine, inactive, dt.date(2026, 11, 17))
    with unit_of_work(engine) as session:
        patients.opt_out(session, "555 555 0101", now=NOW)
        session.get(Patient, inactive).active = False
    sender = FakeSender()
    report = _run(engine, NOW, sender)
    assert (report.skipped_opted_out, report.sent, report.planned) == (2, 0, 0)
    assert sender.calls == []
    assert [(c.id, c.status, c.last_error) for c in _checkins(engine)] == [
        (first, CheckinStatus.SKIPPED, "opted_out"), (second, CheckinStatus.SKIPPED, "inactive")]
    assert _run(engine, NOW + dt.timedelta(days=2), sender) == RunReport()


def test_a_failed_send_is_retried_then_marked_failed(engine: Engine) -> None:
    patient = _enrol(engine)
    sender = FakeSender()
    sender.fail("start", "HTTP 500", "timeout", "HTTP 503")
    report = _run(engine, NOW, sender)
    assert (report.planned, report.sent, report.retried, report.failed) == (1, 0, 1, 0)
    [checkin] = _checkins(engine)
    assert checkin.patient_id == patient
    assert (checkin.status, checkin.attempts, checkin.last_error) == (
        CheckinStatus.SCHEDULED, 1, "HTTP 500")
    assert checkin.sent_at is None
    assert _utc(checkin.scheduled_for) == NOW + dt.timedelta(minutes=15)
    # Not before the retry time.
    assert _run(engine, NOW + dt.timedelta(minutes=10), sender) == RunReport()
    assert _run(engine, NOW + dt.timedelta(minutes=15), sender).retried == 1
    report = _run(engine, NOW + dt.timedelta(minutes=30), sender)
    assert (report.failed, report.retried) == (1, 0)
    checkin = _get(engine, checkin.id)
    assert (checkin.status, checkin.attempts, checkin.last_error) == (
        CheckinStatus.FAILED, 3, "HTTP 503")
    assert _run(engine, NOW + dt.timedelta(hours=2), sender) == RunReport()
    assert sender.calls == [("start", checkin.id)] * 3
    with unit_of_work(engine) as session:
        assert session.scalar(select(func.count()).select_from(Handoff)) == 0


def test_a_sender_bug_counts_as_a_failed_send(engine: Engine) -> None:
    _enrol(engine)

    class Broken(FakeSender):
        def start(self, checkin: CheckinRef) -> None:
            raise RuntimeError("Traceback with +15555550101 in it")

    report = _run(engine, NOW, Broken())
    assert report.retried == 1
    [checkin] = _checkins(engine)
    assert (checkin.status, checkin.last_error) == (CheckinStatus.SCHEDULED, "RuntimeError")


def test_a_checkin_left_sending_is_marked_failed_and_never_resent(engine: Engine) -> None:
    crashed = _enrol(engine, "555 555 0101")
    busy = _enrol(engine, "555 555 0102")
    stale = _add(engine, crashed, dt.date(2026, 11, 17), status=CheckinStatus.SENDING,
                 attempts=1, updated_at=NOW - dt.timedelta(minutes=16))
    recent = _add(engine, busy, dt.date(2026, 11, 17), status=CheckinStatus.SENDING,
                  attempts=1, updated_at=NOW - dt.timedelta(minutes=10))
    sender = FakeSender()
    report = _run(engine, NOW, sender)
    assert (report.failed, report.interrupted, report.sent, report.planned) == (1, 1, 0, 0)
    assert (_get(engine, stale).status, _get(engine, stale).last_error) == (
        CheckinStatus.FAILED, "interrupted")
    assert _get(engine, recent).status is CheckinStatus.SENDING
    # The other one is left alone until it is stale too; neither is ever sent again.
    assert _run(engine, NOW + dt.timedelta(minutes=6), sender).interrupted == 1
    for hours in (1, 5, 24):
        assert _run(engine, NOW + dt.timedelta(hours=hours), sender) == RunReport()
    assert sender.calls == []
    assert {_get(engine, stale).status, _get(engine, recent).status} == {CheckinStatus.FAILED}


def test_a_reply_while_the_question_goes_out_is_not_overwritten(engine: Engine) -> None:
    _enrol(engine)

    class AnsweredAtOnce(FakeSender):
        def start(self, checkin: CheckinRef) -> None:
            super().start(checkin)
            with unit_of_work(engine) as session:
                row = session.get(Checkin, checkin.checkin_id)
                checkins.record_answer(session, row, "overall", "3", score=3,
                                       now=NOW + dt.timedelta(seconds=5))

    assert _run(engine, NOW, AnsweredAtOnce()).sent == 1
    [checkin] = _checkins(engine)
    assert checkin.status is CheckinStatus.IN_PROGRESS
    assert _utc(checkin.sent_at) == NOW
    assert _utc(checkin.last_activity_at) == NOW + dt.timedelta(seconds=5)


# -- Reminders and closing ----------------------------------------------------------------------


def test_one_reminder_after_the_delay_then_closed_incomplete_with_a_handoff(
    engine: Engine,
) -> None:
    _enrol(engine)
    sender = FakeSender()
    assert _run(engine, NOW, sender).sent == 1
    [checkin] = _checkins(engine)
    # An answer two hours later moves the reminder to 24 hours after it.
    answered = NOW + dt.timedelta(hours=2)
    with unit_of_work(engine) as session:
        checkins.record_answer(session, session.get(Checkin, checkin.id), "overall", "6",
                               score=6, now=answered)
    assert _run(engine, NOW + dt.timedelta(hours=25), sender).reminded == 0
    report = _run(engine, answered + dt.timedelta(hours=24), sender)
    assert report.reminded == 1
    assert _utc(_get(engine, checkin.id).reminder_sent_at) == answered + dt.timedelta(hours=24)
    # Only one reminder.
    assert _run(engine, answered + dt.timedelta(hours=30), sender).reminded == 0
    assert _run(engine, answered + dt.timedelta(hours=47), sender).closed_incomplete == 0
    # Closing sends no text, so it happens at night too (01:30 in Denver).
    closing = answered + dt.timedelta(hours=62)
    assert not scheduler.in_send_window(closing, "America/Denver", POLICY)
    report = _run(engine, closing, sender)
    assert report.closed_incomplete == 1
    assert sender.calls == [("start", checkin.id), ("remind", checkin.id),
                            ("closed", checkin.id)]
    closed = _get(engine, checkin.id)
    assert (closed.status, _utc(closed.closed_at)) == (CheckinStatus.INCOMPLETE, closing)
    with unit_of_work(engine) as session:
        handoff = session.get(Handoff, closed.handoff_id)
        assert handoff.reason is HandoffReason.CHECKIN
        summary = handoff.summary
    assert (summary["status"], summary["close_reason"], summary["reminder_sent"]) == (
        "incomplete", "no_reply", True)
    assert [a["key"] for a in summary["answers"]] == ["overall"]
    assert summary["unanswered"][0] == "signs"
    # Nothing more happens to it.
    assert _run(engine, closing + dt.timedelta(days=3), sender) == RunReport()


def test_reminders_wait_for_the_window_and_a_failed_one_is_tried_again(engine: Engine) -> None:
    patient = _enrol(engine, timezone="America/New_York")
    sent = _at("America/New_York", "2026-11-16", "20:00")
    checkin = _add(engine, patient, dt.date(2026, 11, 16), status=CheckinStatus.SENT, attempts=1,
                   sent_at=sent, last_activity_at=sent, updated_at=sent)
    sender = FakeSender()
    sender.fail("remind", "HTTP 502")
    # 24 hours later it is 20:00 again, inside the window, but the send fails.
    report = _run(engine, sent + dt.timedelta(hours=24), sender)
    assert report.reminded == 0
    row = _get(engine, checkin)
    assert (row.reminder_sent_at, row.last_error) == (None, "HTTP 502")
    # Not again at once; 15 minutes later it is 20:15 and it goes.
    assert _run(engine, sent + dt.timedelta(hours=24, minutes=5), sender).reminded == 0
    assert _run(engine, sent + dt.timedelta(hours=24, minutes=15), sender).reminded == 1
    assert sender.calls == [("remind", checkin)] * 2


def test_a_reminder_outside_the_window_waits_until_it_opens(engine: Engine) -> None:
    patient = _enrol(engine, timezone="Pacific/Honolulu")
    sent = _at("Pacific/Honolulu", "2026-11-16", "20:50")
    checkin = _add(engine, patient, dt.date(2026, 11, 16), status=CheckinStatus.SENT, attempts=1,
                   sent_at=sent, last_activity_at=sent, updated_at=sent)
    sender = FakeSender()
    report = _run(engine, sent + dt.timedelta(hours=24, minutes=20), sender)  # 21:10 HST
    assert (report.reminded, report.deferred_quiet_hours) == (0, 1)
    assert _run(engine, _at("Pacific/Honolulu", "2026-11-18", "07:59"), sender).reminded == 0
    assert _run(engine, _at("Pacific/Honolulu", "2026-11-18", "08:00"), sender).reminded == 1
    assert sender.calls == [("remind", checkin)]


def test_without_a_possible_reminder_the_checkin_still_closes(engine: Engine) -> None:
    patient = _enrol(engine)
    checkin = _add(engine, patient, dt.date(2026, 11, 14), status=CheckinStatus.SENT, attempts=1,
                   sent_at=NOW - dt.timedelta(days=3), last_activity_at=NOW - dt.timedelta(days=3))
    with unit_of_work(engine) as session:
        patients.opt_out(session, "555 555 0101", now=NOW - dt.timedelta(days=2))
    sender = FakeSender()
    report = _run(engine, NOW, sender)
    assert (report.reminded, report.closed_incomplete) == (0, 1)
    assert sender.calls == [("closed", checkin)]
    with unit_of_work(engine) as session:
        summary = session.get(Handoff, session.get(Checkin, checkin).handoff_id).summary
    assert (summary["close_reason"], summary["reminder_sent"]) == ("opted_out", False)


def test_a_failure_telling_the_dialogue_of_the_close_is_only_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    patient = _enrol(engine)
    checkin = _add(engine, patient, dt.date(2026, 11, 14), status=CheckinStatus.SENT, attempts=1,
                   sent_at=NOW - dt.timedelta(days=3), last_activity_at=NOW - dt.timedelta(days=3),
                   reminder_sent_at=NOW - dt.timedelta(days=2))
    sender = FakeSender()
    sender.fail("closed", "HTTP 500")
    with caplog.at_level(logging.WARNING, logger="bot.checkins.scheduler"):
        assert _run(engine, NOW, sender).closed_incomplete == 1
    assert _get(engine, checkin).status is CheckinStatus.INCOMPLETE
    assert any("HTTP 500" in record.getMessage() for record in caplog.records)


# -- Two runs at once ---------------------------------------------------------------------------


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the race: both runs read a check-in as due before either claims it."""
    check = scheduler.in_send_window

    def slow(*args, **kwargs) -> bool:
        time.sleep(0.1)
        return check(*args, **kwargs)

    monkeypatch.setattr(scheduler, "in_send_window", slow)


@pytest.mark.usefixtures("slow_checks")
def test_two_concurrent_runs_send_each_checkin_exactly_once(database_url: str,
                                                           engine: Engine) -> None:
    for suffix in ("0101", "0102", "0103", "0104"):
        _enrol(engine, f"555 555 {suffix}")
    sender = FakeSender(delay=0.2)
    barrier = threading.Barrier(2)
    reports: list[RunReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        own_engine = make_engine(database_url)
        try:
            barrier.wait()
            reports.append(_run(own_engine, NOW, sender))
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            own_engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(reports) == 2
    rows = _checkins(engine)
    assert len(rows) == 4
    assert sorted(sender.calls) == sorted(("start", row.id) for row in rows)
    assert sum(report.planned for report in reports) == 4
    assert sum(report.sent for report in reports) == 4
    assert {row.status for row in rows} == {CheckinStatus.SENT}
    assert {row.attempts for row in rows} == {1}
    # Running again sends nothing new.
    again = _run(engine, NOW + dt.timedelta(minutes=1), sender)
    assert again == RunReport()
    assert len(sender.calls) == 4


@pytest.mark.usefixtures("slow_checks")
def test_two_concurrent_runs_remind_and_close_once(database_url: str, engine: Engine) -> None:
    patient = _enrol(engine, "555 555 0101")
    other = _enrol(engine, "555 555 0102")
    remind = _add(engine, patient, dt.date(2026, 11, 16), status=CheckinStatus.SENT, attempts=1,
                  sent_at=NOW - dt.timedelta(days=1), last_activity_at=NOW - dt.timedelta(days=1))
    close = _add(engine, other, dt.date(2026, 11, 13), status=CheckinStatus.SENT, attempts=1,
                 sent_at=NOW - dt.timedelta(days=4), last_activity_at=NOW - dt.timedelta(days=4),
                 reminder_sent_at=NOW - dt.timedelta(days=3))
    sender = FakeSender(delay=0.2)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        own_engine = make_engine(database_url)
        try:
            barrier.wait()
            _run(own_engine, NOW, sender)
        except BaseException as error:
            errors.append(error)
        finally:
            own_engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(sender.calls) == sorted([("remind", remind), ("closed", close)])
    with unit_of_work(engine) as session:
        assert session.scalar(select(func.count()).select_from(Handoff)) == 1


# -- The loop -----------------------------------------------------------------------------------


def test_serve_runs_until_stopped_and_survives_a_failing_run(
    engine: Engine, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    _enrol(engine)
    # The first run meets a database without tables; later runs the real one.
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    engines = iter([broken])
    stop = threading.Event()
    times: list[dt.datetime] = []
    sender = FakeSender()

    def clock() -> dt.datetime:
        times.append(NOW + dt.timedelta(minutes=len(times)))
        if len(times) == 3:
            stop.set()
        return times[-1]

    original = scheduler.run_once

    def run_once(**kwargs):
        kwargs["engine"] = next(engines, engine)
        return original(**kwargs)

    with caplog.at_level(logging.INFO, logger="bot.checkins.scheduler"), \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr(scheduler, "run_once", run_once)
        thread = threading.Thread(target=scheduler.serve,
                                  kwargs={"policy": POLICY, "sender": sender, "interval": 0.01,
                                          "stop": stop, "clock": clock})
        thread.start()
        thread.join(timeout=30)
    broken.dispose()
    assert not thread.is_alive()
    assert len(times) == 3
    messages = [record.getMessage() for record in caplog.records]
    assert "Check-in run failed: OperationalError" in messages
    assert sender.calls == [("start", _checkins(engine)[0].id)]
