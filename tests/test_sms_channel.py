"""The Twilio SMS channel with Rasa replaced by a fake agent, the real database and the local
stand-in for Twilio's Messages API: signatures, retries, keywords, unknown numbers, bad input.

(A whole check-in through the real Rasa server and action server is in
tests/stack/test_checkin_sms.py.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic
from sqlalchemy import select, text

from bot.channels.common import response_text
from bot.channels.sms import SmsOutbox, TwilioSmsInput, is_callback_request, sender_id_for_mobile
from bot.clinic import get_clinic
from bot.db import migrate
from bot.db.models import (
    Checkin,
    CheckinOrigin,
    CheckinStatus,
    Handoff,
    HandoffPriority,
    HandoffReason,
    Patient,
    SmsDirection,
    SmsMessage,
)
from bot.db.session import get_engine, unit_of_work
from bot.services import checkins, patients
from bot.settings import get_settings
from bot.sms.signature import SIGNATURE_HEADER, compute_signature
from bot.sms.simulate import inbound_params
from bot.sms.standin import StandIn

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token-" + "x" * 16
CLINIC_NUMBER = "+15550100000"
PATIENT_NUMBER = "+15035550123"
STRANGER_NUMBER = "+15035550999"
WEBHOOK = "/webhooks/twilio/webhook"
PUBLIC_HOST = "mockserver"


class FakeTrackerStore:
    async def retrieve(self, sender_id: str) -> None:
        raise ConnectionError("no tracker store in these tests")


class FakeDomain:
    responses: dict[str, Any] = {}


class FakeAgent:
    """Records each ``UserMessage`` and answers "ok: <text>"."""

    def __init__(self) -> None:
        self.domain = FakeDomain()
        self.tracker_store = FakeTrackerStore()
        self.received: list[UserMessage] = []
        self.fail = False

    async def parse_message(self, text: str) -> dict[str, Any]:
        raise RuntimeError("no model in these tests")

    async def handle_message(self, message: UserMessage) -> None:
        self.received.append(message)
        if self.fail:
            raise RuntimeError("action server down")
        await message.output_channel.send_text_message(message.sender_id, f"ok: {message.text}")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(ACCOUNT, TOKEN) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
def sms_db(request: pytest.FixtureRequest, override_settings: Any,
           tmp_path: Path) -> Iterator[Any]:
    """The application database on SQLite and on PostgreSQL, emptied afterwards."""
    if request.param == "postgres":
        engine = request.getfixturevalue("postgres_engine")
        override_settings(BOT_DATA_DIR=str(tmp_path),
                          BOT_DATABASE_URL=engine.url.render_as_string(hide_password=False))
    else:
        override_settings(BOT_DATA_DIR=str(tmp_path))
        migrate.upgrade(get_settings().database_url)
    get_engine.cache_clear()
    app_db = get_engine()
    yield app_db
    get_engine.cache_clear()
    with app_db.begin() as connection:
        connection.execute(text("UPDATE checkins SET handoff_id = NULL"))
        for table in ("checkin_answers", "checkins", "sms_messages", "staff_alerts",
                      "handoffs", "patients", "conversations", "people"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


def make_channel(standin: StandIn, *, trust_proxy: bool = False,
                 token: str | None = TOKEN) -> TwilioSmsInput:
    outbox = SmsOutbox(ACCOUNT, TOKEN, CLINIC_NUMBER, standin.url)
    return TwilioSmsInput(token, outbox, trust_proxy=trust_proxy)


@pytest.fixture
def channel(standin: StandIn, sms_db: Any) -> TwilioSmsInput:
    return make_channel(standin)


@pytest.fixture
def app(agent: FakeAgent, channel: TwilioSmsInput) -> Sanic:
    app = Sanic(f"test_sms_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    register([channel], app, "/webhooks/")
    return app


def enrol(mobile: str = PATIENT_NUMBER, name: str = "Dana Whitfield") -> int:
    with unit_of_work() as session:
        result = patients.enrol_patient(
            session, name=name, mobile=mobile, timezone="America/Los_Angeles",
            induction_dates=["2026-08-03", "2026-08-05", "2026-08-07"],
            last_infusion="2026-10-01", consent_version="sms-v1",
        )
        return int(result.patient.id)


async def post(app: Sanic, params: dict[str, str], *, signature: str | None = None,
               url: str | None = None, headers: dict[str, str] | None = None) -> Any:
    signed_url = url or f"http://{PUBLIC_HOST}{WEBHOOK}"
    sent_headers = {
        "content-type": "application/x-www-form-urlencoded",
        SIGNATURE_HEADER: signature if signature is not None
        else compute_signature(TOKEN, signed_url, params),
        **(headers or {}),
    }
    if signature == "":
        del sent_headers[SIGNATURE_HEADER]
    from urllib.parse import urlencode

    _, resp = await app.asgi_client.post(WEBHOOK, content=urlencode(params).encode(),
                                         headers=sent_headers)
    return resp


def params_for(body: str, mobile: str = PATIENT_NUMBER, **extra: Any) -> dict[str, str]:
    return inbound_params(account_sid=ACCOUNT, from_=mobile, to=CLINIC_NUMBER, body=body,
                          **extra)


async def text_in(app: Sanic, channel: TwilioSmsInput, body: str,
                  mobile: str = PATIENT_NUMBER, **extra: Any) -> Any:
    resp = await post(app, params_for(body, mobile, **extra))
    await channel.drain()
    return resp


def sent_to(standin: StandIn, mobile: str) -> list[str]:
    return [m["body"] for m in standin.messages if m["to"] == mobile]


def expected(name: str, **values: Any) -> str:
    value = response_text(None, name, **values)
    assert value is not None
    return value


# ------------------------------------------------------------------------------- signatures
async def test_valid_signature_is_answered_and_reply_texted(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    enrol()
    resp = await text_in(app, channel, "hello there")
    assert resp.status == 200
    assert resp.content_type.startswith("text/xml")
    assert "<Response></Response>" in resp.text
    assert [m.text for m in agent.received] == ["hello there"]
    assert agent.received[0].sender_id == sender_id_for_mobile(PATIENT_NUMBER)
    assert sent_to(standin, PATIENT_NUMBER) == ["ok: hello there"]
    assert standin.messages[0]["from"] == CLINIC_NUMBER


@pytest.mark.parametrize("signature", ["", "bm90IHRoZSByaWdodCBzaWduYXR1cmU="])
async def test_missing_or_wrong_signature_is_refused_and_nothing_recorded(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn, signature: str
) -> None:
    enrol()
    resp = await post(app, params_for("STOP"), signature=signature)
    await channel.drain()
    assert resp.status == 403
    assert agent.received == []
    assert standin.messages == []
    with unit_of_work() as session:
        assert session.scalars(select(SmsMessage)).all() == []
        assert session.scalars(select(Patient)).one().opted_out_at is None


async def test_signature_over_other_fields_is_refused(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent
) -> None:
    params = params_for("hello")
    signature = compute_signature(TOKEN, f"http://{PUBLIC_HOST}{WEBHOOK}", params)
    tampered = {**params, "Body": "STOP"}
    resp = await post(app, tampered, signature=signature)
    assert resp.status == 403


async def test_no_auth_token_configured_refuses_everything(
    standin: StandIn, sms_db: Any, agent: FakeAgent
) -> None:
    channel = make_channel(standin, token=None)
    app = Sanic(f"test_sms_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    register([channel], app, "/webhooks/")
    resp = await post(app, params_for("hi"))
    assert resp.status == 403


@pytest.mark.parametrize("trust_proxy, status", [(True, 200), (False, 403)])
async def test_url_behind_a_proxy_uses_forwarded_headers(
    standin: StandIn, sms_db: Any, agent: FakeAgent, trust_proxy: bool, status: int
) -> None:
    channel = make_channel(standin, trust_proxy=trust_proxy)
    app = Sanic(f"test_sms_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    register([channel], app, "/webhooks/")
    enrol()
    public = f"https://sms.clinic.example{WEBHOOK}"
    resp = await post(app, params_for("hello"), url=public,
                      headers={"x-forwarded-proto": "https",
                               "x-forwarded-host": "sms.clinic.example"})
    await channel.drain()
    assert resp.status == status
    assert len(agent.received) == (1 if status == 200 else 0)


# ---------------------------------------------------------------------------- deduplication
async def test_twilio_retry_with_same_message_sid_is_handled_once(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    enrol()
    params = params_for("how are the hours?")
    first = await post(app, params)
    second = await post(app, params)
    await channel.drain()
    assert first.status == second.status == 200
    assert len(agent.received) == 1
    assert sent_to(standin, PATIENT_NUMBER) == ["ok: how are the hours?"]
    with unit_of_work() as session:
        inbound = session.scalars(
            select(SmsMessage).where(SmsMessage.direction == SmsDirection.INBOUND)).all()
        assert [m.message_sid for m in inbound] == [params["MessageSid"]]
        assert inbound[0].patient_id is not None


async def test_retry_reaching_another_process_is_still_deduplicated(
    standin: StandIn, sms_db: Any
) -> None:
    """Two channel instances (two Rasa servers) share the database's record of SIDs."""
    enrol()
    agents = [FakeAgent(), FakeAgent()]
    apps = []
    channels = []
    for agent in agents:
        channel = make_channel(standin)
        app = Sanic(f"test_sms_{uuid.uuid4().hex}")
        app.ctx.agent = agent
        register([channel], app, "/webhooks/")
        apps.append(app)
        channels.append(channel)
    params = params_for("hello")
    await post(apps[0], params)
    await post(apps[1], params)
    for channel in channels:
        await channel.drain()
    assert len(agents[0].received) + len(agents[1].received) == 1


# --------------------------------------------------------------------------------- keywords
def open_checkin_with_answer(patient_id: int) -> int:
    now = dt.datetime.now(dt.timezone.utc)
    with unit_of_work() as session:
        patient = session.get(Patient, patient_id)
        checkin = Checkin(patient_id=patient_id, due_on=now.date(), scheduled_for=now,
                          status=CheckinStatus.SENT, sent_at=now, last_activity_at=now,
                          origin=CheckinOrigin.SCHEDULE.value)
        session.add(checkin)
        session.flush()
        checkins.link_conversation(session, patient, checkins.sender_id_for(patient))
        checkins.record_answer(session, checkin, "overall", "4", score=4, now=now)
        return int(checkin.id)


async def test_stop_in_the_middle_of_a_checkin_opts_out_and_hands_over_the_answers(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    patient_id = enrol()
    checkin_id = open_checkin_with_answer(patient_id)
    await text_in(app, channel, "STOP")
    assert sent_to(standin, PATIENT_NUMBER) == [expected("utter_sms_opted_out")]
    # The dialogue is told to close its form; the word itself never reaches NLU.
    assert [m.text for m in agent.received] == ["/checkin_closed"]
    with unit_of_work() as session:
        patient = session.get(Patient, patient_id)
        assert patient.opted_out_at is not None
        checkin = session.get(Checkin, checkin_id)
        assert checkin.status is CheckinStatus.INCOMPLETE
        handoff = session.get(Handoff, checkin.handoff_id)
        assert handoff.reason is HandoffReason.CHECKIN
        assert [a["key"] for a in handoff.summary["answers"] if a.get("score") is not None] \
            == ["overall"]


async def test_start_resubscribes_and_help_names_the_clinic(
    app: Sanic, channel: TwilioSmsInput, standin: StandIn
) -> None:
    patient_id = enrol()
    await text_in(app, channel, "stop")
    await text_in(app, channel, "Start")
    await text_in(app, channel, "HELP")
    texts = sent_to(standin, PATIENT_NUMBER)
    assert texts == [expected("utter_sms_opted_out"), expected("utter_sms_opted_in"),
                     expected("utter_sms_help")]
    clinic = get_clinic()
    assert clinic.name in texts[2] and clinic.phone in texts[2]
    assert "STOP" in texts[2] and "988" in texts[2]
    with unit_of_work() as session:
        assert session.get(Patient, patient_id).opted_out_at is None


async def test_help_during_a_checkin_leaves_it_open(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent
) -> None:
    checkin_id = open_checkin_with_answer(enrol())
    await text_in(app, channel, "help")
    assert agent.received == []
    with unit_of_work() as session:
        assert session.get(Checkin, checkin_id).status is CheckinStatus.IN_PROGRESS


async def test_i_want_it_all_to_end_is_a_crisis_not_an_opt_out(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    patient_id = enrol()
    await text_in(app, channel, "I want it all to end")
    from bot.safety import guard

    await guard.drain()
    texts = sent_to(standin, PATIENT_NUMBER)
    assert texts[0] == expected("utter_crisis_resources")
    assert "988" in texts[0] and "911" in texts[0]
    assert agent.received[0].metadata["safety"]["handled"] is True
    with unit_of_work() as session:
        assert session.get(Patient, patient_id).opted_out_at is None
        crisis = session.scalars(
            select(Handoff).where(Handoff.reason == HandoffReason.CRISIS)).one()
        assert crisis.priority is HandoffPriority.URGENT


async def test_crisis_resources_are_texted_even_when_the_assistant_fails(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    enrol()
    agent.fail = True
    await text_in(app, channel, "i'm going to kill myself tonight")
    from bot.safety import guard

    await guard.drain()  # the crisis record and alert finish before the tables are emptied
    texts = sent_to(standin, PATIENT_NUMBER)
    assert texts[0] == expected("utter_crisis_resources")
    assert texts[-1] == expected("utter_crisis_still_here")


async def test_opted_out_patient_gets_no_reply_but_staff_get_the_message(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    enrol()
    await text_in(app, channel, "STOP")
    standin.clear()
    await text_in(app, channel, "actually can someone call me about my next appointment")
    assert standin.messages == []
    assert agent.received == []
    with unit_of_work() as session:
        handoff = session.scalars(
            select(Handoff).where(Handoff.reason == HandoffReason.HUMAN_REQUESTED)).one()
        assert handoff.summary["kind"] == "sms_while_opted_out"
        assert "next appointment" in handoff.summary["messages"][0]["text"]


# ---------------------------------------------------------------------------- unknown number
async def test_unknown_number_is_offered_a_callback_that_becomes_a_handoff(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    enrol()  # someone else is enrolled; nothing of theirs may reach the stranger
    await text_in(app, channel, "hi is this Dana's clinic? what was her last score",
                  STRANGER_NUMBER)
    await text_in(app, channel, "call me", STRANGER_NUMBER)
    await text_in(app, channel, "hello?", STRANGER_NUMBER)
    texts = sent_to(standin, STRANGER_NUMBER)
    assert texts == [expected("utter_sms_unknown_number"),
                     expected("utter_sms_callback_recorded"),
                     expected("utter_sms_callback_already")]
    assert not any("Dana" in body or "Whitfield" in body for body in texts)
    assert agent.received == []  # the assistant (and its patient data) is never involved
    with unit_of_work() as session:
        handoff = session.scalars(
            select(Handoff).where(Handoff.reason == HandoffReason.CALLBACK_REQUESTED)).one()
        assert handoff.summary["mobile"] == STRANGER_NUMBER
        assert handoff.person_id is None
        assert any("Dana" in m for m in handoff.summary["messages"])


def test_callback_words() -> None:
    assert is_callback_request("CALL")
    assert is_callback_request("yes please!")
    assert not is_callback_request("don't call me")
    assert not is_callback_request("who is this")


# -------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "body, extra, reply",
    [
        ("", {}, "utter_empty_message"),
        ("   ", {}, "utter_empty_message"),
        ("", {"media_urls": ("https://api.twilio.com/media/ME1",)}, "utter_sms_media_only"),
    ],
)
async def test_empty_and_picture_only_messages_get_a_clear_reply(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn,
    body: str, extra: dict[str, Any], reply: str
) -> None:
    enrol()
    resp = await text_in(app, channel, body, **extra)
    assert resp.status == 200
    assert sent_to(standin, PATIENT_NUMBER) == [expected(reply)]
    assert agent.received == []


@pytest.mark.parametrize(
    "body, parts",
    [("word " * 320, 2), ("🙂🙂🙂", 1), ("👍", 1), ("\u202eevil\u0000text", 1), ("é" * 1600, 2)],
    ids=["1600-chars", "emoji", "thumbs-up", "control-chars", "1600-accented"],
)
async def test_long_emoji_and_odd_texts_are_answered(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn, body: str,
    parts: int
) -> None:
    enrol()
    resp = await text_in(app, channel, body)
    assert resp.status == 200
    assert len(agent.received) == 1
    # The echo is longer than Twilio's 1,600-character limit for the long ones: sent in parts.
    texts = sent_to(standin, PATIENT_NUMBER)
    assert len(texts) == parts
    assert all(len(text) <= 1600 for text in texts)


def test_split_body_keeps_every_word() -> None:
    from bot.channels.sms import split_body

    text = " ".join(f"w{n}" for n in range(1000))
    parts = split_body(text, limit=100)
    assert all(len(part) <= 100 for part in parts)
    assert " ".join(parts) == text
    assert split_body("x" * 250, limit=100) == ["x" * 100, "x" * 100, "x" * 50]
    assert split_body("") == []


@pytest.mark.parametrize(
    "params",
    [
        {"Body": "hi"},  # no MessageSid, no From
        {"MessageSid": "SM1", "From": "not-a-number", "Body": "hi"},
        {"MessageSid": "SM" + "1" * 100, "From": PATIENT_NUMBER, "Body": "hi"},
    ],
)
async def test_malformed_webhooks_get_400_not_5xx(app: Sanic, params: dict[str, str]) -> None:
    resp = await post(app, params)
    assert resp.status == 400


async def test_undecodable_body_is_refused_not_crashed(app: Sanic) -> None:
    _, resp = await app.asgi_client.post(
        WEBHOOK, content=b"\xff\xfe\x00garbage",
        headers={"content-type": "application/x-www-form-urlencoded",
                 SIGNATURE_HEADER: "abc"})
    assert resp.status == 403


async def test_assistant_failure_gets_technical_problem_reply(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent, standin: StandIn
) -> None:
    enrol()
    agent.fail = True
    resp = await text_in(app, channel, "what are your hours")
    assert resp.status == 200
    assert sent_to(standin, PATIENT_NUMBER) == [expected("utter_technical_problem")]


# ------------------------------------------------------------------------------- outbound
async def test_send_is_retried_on_server_errors_and_failures_recorded(
    app: Sanic, channel: TwilioSmsInput, standin: StandIn
) -> None:
    enrol()
    standin.fail_next(1, 500)
    await text_in(app, channel, "first")
    assert sent_to(standin, PATIENT_NUMBER) == ["ok: first"]
    standin.fail_next(3, 503)
    await text_in(app, channel, "second")
    assert sent_to(standin, PATIENT_NUMBER) == ["ok: first"]
    with unit_of_work() as session:
        outbound = session.scalars(select(SmsMessage).where(
            SmsMessage.direction == SmsDirection.OUTBOUND).order_by(SmsMessage.id)).all()
        assert [m.status for m in outbound] == ["queued", "failed"]
        assert outbound[0].message_sid.startswith("SM")
        assert outbound[1].error_code and outbound[1].message_sid is None


async def test_delivery_status_callback_updates_the_record(
    app: Sanic, channel: TwilioSmsInput, standin: StandIn
) -> None:
    enrol()
    await text_in(app, channel, "hello")
    sid = standin.messages[0]["sid"]
    url = f"http://{PUBLIC_HOST}/webhooks/twilio/status"
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30007",
              "AccountSid": ACCOUNT}
    from urllib.parse import urlencode

    headers = {"content-type": "application/x-www-form-urlencoded",
               SIGNATURE_HEADER: compute_signature(TOKEN, url, params)}
    _, resp = await app.asgi_client.post("/webhooks/twilio/status",
                                         content=urlencode(params).encode(), headers=headers)
    assert resp.status == 200
    _, forged = await app.asgi_client.post(
        "/webhooks/twilio/status", content=urlencode({**params, "ErrorCode": "1"}).encode(),
        headers=headers)
    assert forged.status == 403
    with unit_of_work() as session:
        record = session.scalars(select(SmsMessage).where(SmsMessage.message_sid == sid)).one()
        assert (record.status, record.error_code) == ("undelivered", "30007")


async def test_messages_from_one_sender_are_handled_in_order(
    app: Sanic, channel: TwilioSmsInput, agent: FakeAgent
) -> None:
    enrol()
    bodies = [f"message {n}" for n in range(5)]
    await asyncio.gather(*(post(app, params_for(body)) for body in bodies))
    await channel.drain()
    assert sorted(m.text for m in agent.received) == bodies


def test_sender_id_holds_no_phone_digits() -> None:
    sender = sender_id_for_mobile(PATIENT_NUMBER)
    assert sender.startswith("sms-")
    assert "5550123" not in sender
    assert sender == sender_id_for_mobile(PATIENT_NUMBER)
    assert sender != sender_id_for_mobile(STRANGER_NUMBER)


def test_outbox_without_credentials_refuses(sms_db: Any) -> None:
    from bot.channels.sms import SmsSendError

    with pytest.raises(SmsSendError):
        SmsOutbox(None, None, None).send(PATIENT_NUMBER, "hi")

