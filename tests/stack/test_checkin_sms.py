"""SMS check-ins through the running product: the scheduler triggers Rasa, signed Twilio
webhooks carry the patient's answers, the action server stores them, and every text the
assistant sends is checked at the local stand-in for Twilio's Messages API."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot import gsm
from bot.checkins import scheduler
from bot.checkins.trigger import RasaTriggerSender
from bot.clinic import get_clinic
from bot.db.models import (
    Checkin,
    CheckinAnswer,
    CheckinStatus,
    Handoff,
    HandoffPriority,
    HandoffReason,
    Patient,
)
from bot.db.session import make_engine, session_factory
from bot.run import Stack
from bot.services import patients
from bot.sms import simulate
from tests.stack.fixtures import (
    RASA_API_TOKEN,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_FROM_NUMBER,
)

pytestmark = pytest.mark.stack

ZONE = "America/Chicago"


@pytest.fixture
def engine(stack: Stack) -> Iterator[Engine]:
    engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def new_mobile() -> str:
    return "+1503555" + str(uuid.uuid4().int % 10_000).zfill(4)


def enrol(engine: Engine, mobile: str, last_infusion_days_ago: int = 30) -> int:
    today = dt.date.today()
    with session_factory(engine)() as session, session.begin():
        result = patients.enrol_patient(
            session, name="Robin Okafor", mobile=mobile, timezone=ZONE,
            induction_dates=[(today - dt.timedelta(days=90)).isoformat()],
            last_infusion=(today - dt.timedelta(days=last_infusion_days_ago)).isoformat(),
            consent_version="sms-v1",
        )
        return int(result.patient.id)


class Phone:
    """A patient's phone: texts the assistant through signed webhooks, reads its replies."""

    def __init__(self, stack: Stack, mobile: str) -> None:
        self.stack = stack
        self.mobile = mobile
        self.webhook = f"{stack.rasa_url}/webhooks/twilio/webhook"
        self.sms_url: str = stack.sms_url  # type: ignore[attr-defined]

    def received(self) -> list[str]:
        return [m["body"] for m in simulate.standin_messages(self.sms_url)
                if m.get("to") == self.mobile]

    def wait_for(self, already: int, count: int = 1) -> list[str]:
        """Texts after the first ``already``, once at least ``count`` arrived and all is quiet."""
        texts: list[str] = []
        for _ in range(3):
            texts = [m["body"] for m in simulate.replies_since(
                self.sms_url, self.mobile, already, wait=30, quiet=2.0)]
            if len(texts) >= count:
                break
        return texts

    def text(self, body: str, count: int = 1) -> list[str]:
        before = len(self.received())
        params = simulate.inbound_params(account_sid=TWILIO_ACCOUNT_SID, from_=self.mobile,
                                         to=TWILIO_FROM_NUMBER, body=body)
        status = simulate.post_inbound(self.webhook, TWILIO_AUTH_TOKEN, params)
        assert status == 200
        return self.wait_for(before, count)


def in_window(now: dt.datetime | None = None) -> dt.datetime:
    """Today at 11:00 in the patient's zone: inside the send window."""
    from zoneinfo import ZoneInfo

    local = dt.datetime.now(ZoneInfo(ZONE)).replace(hour=11, minute=0, second=0, microsecond=0)
    return local.astimezone(dt.timezone.utc)


def in_window_after(moment: dt.datetime) -> dt.datetime:
    """``moment`` if it falls inside 09-20h in the patient's zone, else the next 11:00 there
    (the same day before 09h, the next day from 20h)."""
    from zoneinfo import ZoneInfo

    local = moment.astimezone(ZoneInfo(ZONE))
    if local.hour < 9:
        local = local.replace(hour=11, minute=0)
    elif local.hour >= 20:
        local = (local + dt.timedelta(days=1)).replace(hour=11, minute=0)
    return local.astimezone(dt.timezone.utc)


def run_scheduler(stack: Stack, engine: Engine, now: dt.datetime) -> scheduler.RunReport:
    return scheduler.run_once(now=now, policy=get_clinic().checkins,
                              sender=RasaTriggerSender(stack.rasa_url, RASA_API_TOKEN),
                              engine=engine)


def checkin_of(engine: Engine, patient_id: int) -> dict[str, Any]:
    with session_factory(engine)() as session:
        checkin = session.scalars(select(Checkin).where(Checkin.patient_id == patient_id)
                                  .order_by(Checkin.id.desc())).first()
        assert checkin is not None
        answers = session.scalars(select(CheckinAnswer).where(
            CheckinAnswer.checkin_id == checkin.id).order_by(CheckinAnswer.id)).all()
        handoff = session.get(Handoff, checkin.handoff_id) if checkin.handoff_id else None
        return {
            "status": checkin.status,
            "answers": [(a.question_key, a.raw_text, a.score) for a in answers],
            "handoff": handoff,
        }


def assert_sms_safe(texts: list[str]) -> None:
    for text in texts:
        assert gsm.is_gsm7(text), text
        assert gsm.segments(text) <= 2, text


def test_a_scheduled_checkin_from_trigger_to_handoff(stack: Stack, engine: Engine) -> None:
    mobile = new_mobile()
    patient_id = enrol(engine, mobile)
    phone = Phone(stack, mobile)
    report = run_scheduler(stack, engine, in_window())
    assert report.sent == 1
    opening = phone.wait_for(0, count=2)
    assert opening[0].startswith("Hi Robin,")
    assert opening[1].startswith("Q1.")
    assert "Okafor" not in " ".join(opening)  # a first name at most

    assert phone.text("2")[0].startswith("Q2.")
    assert phone.text("1 and 5")[0].startswith("Q3.")
    assert phone.text("not at all")[0].startswith("Q4.")
    assert phone.text("several days")[0].startswith("Q5.")  # PHQ-2 = 1: no PHQ-9 items
    # An unreadable answer is asked again, then the question is answered in words.
    retry = phone.text("hmm")
    assert retry[0].startswith("Sorry, I didn't catch that")
    assert phone.text("two")[0].startswith("Q6.")
    assert phone.text("pretty bad")[0].startswith("Q7.")
    done = phone.text("Sleep has been rough since the time change")
    assert done[0].startswith("Thank you, Robin.")
    assert "care team" in done[0] and get_clinic().hours_text in done[0]
    assert_sms_safe(phone.received())

    state = checkin_of(engine, patient_id)
    assert state["status"] is CheckinStatus.COMPLETED
    assert [(key, score) for key, _text, score in state["answers"]] == [
        ("overall", 2), ("signs", 2), ("phq1", 0), ("phq2", 1), ("gad1", None), ("gad1", 2),
        ("gad2", 2), ("notes", None)]
    handoff = state["handoff"]
    assert handoff.reason is HandoffReason.CHECKIN
    summary = handoff.summary
    assert summary["days_since_last_infusion"] in (29, 30, 31)
    assert summary["scores"]["phq2"] == 1 and summary["scores"]["gad2"] == 4
    assert set(summary["signs_present"]) == {"Mood sliding back", "Anxiety or panic attacks"}
    assert any("Sleep has been rough" in words["text"] for words in summary["own_words"])
    assert handoff.priority in (HandoffPriority.ROUTINE, HandoffPriority.SOON)


def test_booster_request_phq9_and_item_9_take_the_crisis_path(
    stack: Stack, engine: Engine
) -> None:
    mobile = new_mobile()
    patient_id = enrol(engine, mobile, last_infusion_days_ago=12)
    phone = Phone(stack, mobile)
    opening = phone.text("I think I need a booster", count=2)
    assert opening[0].startswith("Thanks for getting in touch, Robin.")
    assert opening[1].startswith("Q1.")
    for answer in ("8", "0", "3", "2", "1", "1"):  # PHQ-2 = 5: the PHQ-9 items follow
        phone.text(answer)
    for answer in ("2", "2", "1", "1", "0", "0"):  # PHQ-9 items 3 to 8
        phone.text(answer)
    item9 = phone.text("several days", count=2)
    assert "988" in item9[0] and "911" in item9[0]
    assert item9[-1].startswith("Q")  # then the last question
    done = phone.text("no")
    assert done[0].startswith("Thank you, Robin.")
    assert_sms_safe(phone.received())

    state = checkin_of(engine, patient_id)
    assert state["status"] is CheckinStatus.COMPLETED
    assert len(state["answers"]) == 14
    assert state["handoff"].priority is HandoffPriority.URGENT
    with session_factory(engine)() as session:
        patient = session.get(Patient, patient_id)
        crisis = session.scalars(select(Handoff).where(
            Handoff.person_id == patient.person_id,
            Handoff.reason == HandoffReason.CRISIS)).all()
        assert len(crisis) == 1 and crisis[0].priority is HandoffPriority.URGENT


def test_partial_checkin_is_reminded_once_then_closed_as_incomplete(
    stack: Stack, engine: Engine
) -> None:
    mobile = new_mobile()
    patient_id = enrol(engine, mobile)
    phone = Phone(stack, mobile)
    start = in_window()
    assert run_scheduler(stack, engine, start).sent == 1
    phone.wait_for(0, count=2)
    phone.text("3")
    phone.text("0")
    before = len(phone.received())
    # The answers were stored at the real time: remind a day after that, inside the window.
    remind_at = in_window_after(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=25))
    report = run_scheduler(stack, engine, remind_at)
    assert report.reminded == 1
    reminder = phone.wait_for(before, count=2)
    assert reminder[0].startswith("Hi Robin, a reminder")
    assert reminder[1].startswith("Q3.")
    before = len(phone.received())
    report = run_scheduler(stack, engine, remind_at + dt.timedelta(hours=25))
    assert report.closed_incomplete == 1
    state = checkin_of(engine, patient_id)
    assert state["status"] is CheckinStatus.INCOMPLETE
    assert [key for key, _t, _s in state["answers"]] == ["overall", "signs"]
    summary = state["handoff"].summary
    assert "phq1" in summary["unanswered"]
    # Closing sends nothing, and the patient's next text is no longer taken as an answer.
    assert phone.received()[before:] == []
    reply = phone.text("what are your hours?")
    assert not reply[0].startswith("Q") and "Sorry, I didn't catch" not in reply[0]


def test_stop_mid_checkin_and_unknown_number(stack: Stack, engine: Engine) -> None:
    mobile = new_mobile()
    patient_id = enrol(engine, mobile)
    phone = Phone(stack, mobile)
    assert run_scheduler(stack, engine, in_window()).sent == 1
    phone.wait_for(0, count=2)
    phone.text("4")
    stop = phone.text("STOP")
    assert stop[0].startswith("You're unsubscribed")
    state = checkin_of(engine, patient_id)
    assert state["status"] is CheckinStatus.INCOMPLETE
    assert state["handoff"] is not None
    with session_factory(engine)() as session:
        assert session.get(Patient, patient_id).opted_out_at is not None

    stranger = Phone(stack, new_mobile())
    offer = stranger.text("hello, who is this?")
    assert "call" in offer[0].lower() and "Robin" not in offer[0]
    recorded = stranger.text("CALL")
    assert recorded[0].startswith("Thanks. We've asked our team to call")


def test_bot_sms_send_texts_the_assistant_and_prints_the_replies(
    stack: Stack, engine: Engine
) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    mobile = new_mobile()
    enrol(engine, mobile)
    env = dict(stack.env)
    env.update({"BOT_RASA_URL": stack.rasa_url,
                "TWILIO_API_BASE_URL": stack.sms_url})  # type: ignore[attr-defined]
    bot = Path(sys.executable).parent / "bot"
    result = subprocess.run(  # noqa: S603 (fixed argv)
        [str(bot), "sms", "send", mobile, "booster", "--wait", "30"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
        cwd=os.getcwd(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("< ")]
    assert lines[0].startswith("< Thanks for getting in touch, Robin.")
    assert lines[1].startswith("< Q1.")
