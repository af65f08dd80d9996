"""Staff takeover through the running product: Rasa's HTTP API pauses and resumes real
conversations, staff replies reach the visitor's widget through the live stream and the
patient's phone through the Twilio stand-in, and the crisis check still runs first while staff
hold a conversation."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.channels.widget import verify_session_token
from bot.console import takeover
from bot.console.rasa_api import SYSTEM_CRISIS, SYSTEM_PAUSED, SYSTEM_RESUMED, RasaApi
from bot.db.models import (
    AuditEvent,
    Handoff,
    HandoffPriority,
    HandoffReason,
    SmsDirection,
    SmsMessage,
    StaffRole,
    StaffUser,
)
from bot.db.session import get_engine, make_engine, session_factory
from bot.run import Stack
from bot.services import conversations, staff
from bot.settings import get_settings
from bot.sms import simulate
from tests.stack.fixtures import (
    RASA_API_TOKEN,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_FROM_NUMBER,
    eventually,
    post_json,
)
from tests.stack.test_checkin_sms import enrol, new_mobile

pytestmark = pytest.mark.stack

T = TypeVar("T")


@pytest.fixture
def engine(stack: Stack) -> Iterator[Engine]:
    engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


@pytest.fixture
def api(stack: Stack) -> RasaApi:
    return RasaApi(stack.rasa_url, RASA_API_TOKEN)


@pytest.fixture
def nurse(engine: Engine) -> StaffUser:
    with session_factory(engine)() as session, session.begin():
        return staff.create_user(session, f"dana.{uuid.uuid4().hex[:8]}@clinic.example",
                                 "Dana Reyes", StaffRole.CLINICIAN, "correct horse battery")


def run(engine: Engine, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One takeover step in its own committed unit of work, as the console runs it."""
    with session_factory(engine)() as session, session.begin():
        user = session.get(StaffUser, args[2].id)
        return step(session, args[0], args[1], user, *args[3:], **kwargs)


class Visitor:
    """A website visitor talking through the widget channel, as widget.js does."""

    def __init__(self, stack: Stack) -> None:
        self.base = f"{stack.rasa_url}/webhooks/widget"
        status, body = post_json(f"{self.base}/session", {})
        assert status == 200
        self.token: str = body["session"]
        sender_id = verify_session_token(self.token, get_settings().widget_secret)
        assert sender_id is not None
        self.sender_id = sender_id

    def send(self, message: str) -> list[dict[str, Any]]:
        status, body = post_json(f"{self.base}/webhook",
                                 {"session": self.token, "message": message})
        assert status == 200, (status, body)
        return list(body["messages"])

    def say(self, message: str) -> list[str]:
        return [m.get("text", "") for m in self.send(message)]

    def stream(self, **kwargs: Any) -> EventStream:
        return EventStream(self.base, self.token, **kwargs)


class EventStream:
    """``GET /webhooks/widget/stream`` read in a background thread, as a browser would."""

    def __init__(self, base: str, token: str, *, after: str | None = None,
                 last_event_id: str | None = None, origin: str | None = None) -> None:
        url = f"{base}/stream?session={token}" + (f"&after={after}" if after else "")
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        if origin is not None:
            headers["Origin"] = origin
        self.events: list[dict[str, str]] = []
        self.lines: list[str] = []
        self.ended = threading.Event()
        self.response = urllib.request.urlopen(  # noqa: S310 (loopback)
            urllib.request.Request(url, headers=headers), timeout=60)
        self.headers = self.response.headers
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        current: dict[str, str] = {}
        try:
            for raw in self.response:
                line = raw.decode("utf-8").rstrip("\r\n")
                self.lines.append(line)
                if not line:
                    if current:
                        self.events.append(current)
                    current = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    current[name] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError, AttributeError):
            pass  # closed by the test (http.client drops its socket under the reader)
        finally:
            self.ended.set()

    def messages(self) -> list[dict[str, Any]]:
        """The data of the message events so far, with their ids."""
        return [{**json.loads(e["data"]), "id": e.get("id")} for e in self.events
                if e.get("event", "message") == "message" and "data" in e]

    def wait_for_messages(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        eventually(lambda: len(self.messages()) >= count, timeout)
        return self.messages()

    def ready_cursor(self, timeout: float = 10.0) -> str:
        eventually(lambda: any(e.get("event") == "ready" for e in self.events), timeout)
        return next(e["id"] for e in self.events if e.get("event") == "ready")

    def close(self) -> None:
        self.response.close()


def get_status(url: str, **headers: str) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def audit_actions(engine: Engine, conversation_id: int) -> list[tuple[str, dict[str, Any]]]:
    with session_factory(engine)() as session:
        rows = session.scalars(select(AuditEvent).where(
            AuditEvent.target_type == "conversation",
            AuditEvent.target_id == str(conversation_id)).order_by(AuditEvent.id))
        return [(row.action, row.detail) for row in rows]


def handoff_for(engine: Engine, sender_id: str, reason: HandoffReason) -> Handoff | None:
    with session_factory(engine)() as session:
        conversation = conversations.find(session, sender_id)
        if conversation is None:
            return None
        return session.scalars(select(Handoff).where(
            Handoff.conversation_id == conversation.id, Handoff.reason == reason)).first()


def requested_person(stack: Stack, engine: Engine) -> tuple[Visitor, int]:
    """A visitor who asked for a person: the handoff staff open to take over."""
    visitor = Visitor(stack)
    assert visitor.say("/greet")
    assert visitor.say("I'd like to talk to a person")
    handoff = eventually(lambda: handoff_for(engine, visitor.sender_id,
                                             HandoffReason.HUMAN_REQUESTED))
    assert handoff is not None
    return visitor, int(handoff.conversation_id)


# ----------------------------------------------------------------------------------- widget
def test_takeover_reply_in_the_open_widget_and_hand_back(
    stack: Stack, engine: Engine, api: RasaApi, nurse: StaffUser
) -> None:
    visitor, conversation_id = requested_person(stack, engine)
    stream = visitor.stream()
    try:
        stream.ready_cursor()
        run(engine, takeover.take_over, api, visitor.sender_id, nurse)
        assert api.is_paused(visitor.sender_id)

        # Paused: the visitor's message gets no reply from the assistant, and staff see it.
        assert visitor.send("are you still there? my name is Nadia") == []
        transcript = api.transcript(visitor.sender_id)
        assert [(line.who, line.text) for line in transcript[-2:]] == [
            ("system", SYSTEM_PAUSED), ("patient", "are you still there? my name is Nadia")]

        text = "Hi Nadia, this is Dana, a nurse here. How can I help?"
        result = run(engine, takeover.reply, api, visitor.sender_id, nurse, text)
        assert result.took_over is False and result.recorded is True
        # The reply shows in the open widget without the visitor sending anything; the
        # assistant's earlier answers (already in webhook replies) are not sent again.
        [message] = stream.wait_for_messages(1)
        assert (message["text"], message["staff"]) == (text, "Dana Reyes")
        last = api.tracker(visitor.sender_id)["events"][-1]
        assert float(message["id"]) == last["timestamp"]
        assert api.transcript(visitor.sender_id)[-1].as_dict() | {"at": None} == {
            "who": "staff", "text": text, "at": None, "staff_name": "Dana Reyes", "buttons": []}
    finally:
        stream.close()

    run(engine, takeover.hand_back, api, visitor.sender_id, nurse)
    assert api.is_paused(visitor.sender_id) is False
    with session_factory(engine)() as session:
        assert conversations.holder(session, visitor.sender_id) is None
    assert api.transcript(visitor.sender_id)[-1].text == SYSTEM_RESUMED
    # The assistant answers the next message again.
    answer = " ".join(visitor.say("what are your opening hours?")).lower()
    assert "hours" in answer or "open" in answer

    actions = audit_actions(engine, conversation_id)
    assert [action for action, _ in actions] == [
        "conversation.takeover", "conversation.reply", "conversation.handback"]
    assert actions[1][1] == {"channel": "widget", "characters": len(text), "recorded": True}
    assert "Nadia" not in json.dumps(actions)


def test_a_held_conversation_stays_quiet_even_when_rasa_has_unpaused_it(
    stack: Stack, engine: Engine, api: RasaApi, nurse: StaffUser
) -> None:
    visitor, _ = requested_person(stack, engine)
    run(engine, takeover.take_over, api, visitor.sender_id, nurse)
    # Rasa unpauses a conversation by itself when it starts a new session after a long
    # silence; the console's record still says the nurse holds it.
    api.resume(visitor.sender_id)
    assert api.is_paused(visitor.sender_id) is False
    with session_factory(engine)() as session:
        assert conversations.holder(session, visitor.sender_id) is not None

    assert visitor.send("hello? what are your opening hours?") == []
    assert api.is_paused(visitor.sender_id) is True
    # The message is there for the nurse, and the assistant is marked paused again after it.
    assert [(line.who, line.text) for line in api.transcript(visitor.sender_id)[-2:]] == [
        ("patient", "hello? what are your opening hours?"), ("system", SYSTEM_PAUSED)]

    run(engine, takeover.hand_back, api, visitor.sender_id, nurse)
    answer = " ".join(visitor.say("what are your opening hours?")).lower()
    assert "hours" in answer or "open" in answer


def test_crisis_while_staff_hold_the_conversation(
    stack: Stack, engine: Engine, api: RasaApi, nurse: StaffUser
) -> None:
    visitor, _ = requested_person(stack, engine)
    run(engine, takeover.take_over, api, visitor.sender_id, nurse)
    try:
        assert visitor.send("ok, I'll wait for the nurse") == []
        messages = visitor.send("honestly I can't do this anymore, I want to end my life")
        # The crisis check runs before Rasa, paused or not: resources at once, and only them.
        assert len(messages) == 1
        assert messages[0]["crisis"] is True
        assert "988" in messages[0]["text"] and "911" in messages[0]["text"]
        handoff = eventually(lambda: handoff_for(engine, visitor.sender_id,
                                                 HandoffReason.CRISIS))
        assert handoff is not None and handoff.priority is HandoffPriority.URGENT
        lines = [(line.who, line.text) for line in api.transcript(visitor.sender_id)]
        assert lines[-3:] == [
            ("patient", "ok, I'll wait for the nurse"),
            ("patient", "honestly I can't do this anymore, I want to end my life"),
            ("system", SYSTEM_CRISIS),
        ]
        assert api.is_paused(visitor.sender_id)  # the nurse still has the conversation
    finally:
        run(engine, takeover.hand_back, api, visitor.sender_id, nurse)


def test_the_stream_only_ever_carries_its_own_conversation(
    stack: Stack, engine: Engine, api: RasaApi, nurse: StaffUser
) -> None:
    mine, _ = requested_person(stack, engine)
    theirs, _ = requested_person(stack, engine)
    stream = mine.stream()
    other = theirs.stream()
    try:
        stream.ready_cursor()
        other.ready_cursor()
        run(engine, takeover.reply, api, theirs.sender_id, nurse, "Private note for them")
        run(engine, takeover.reply, api, mine.sender_id, nurse, "Hello you")
        assert [m["text"] for m in stream.wait_for_messages(1)] == ["Hello you"]
        assert [m["text"] for m in other.wait_for_messages(1)] == ["Private note for them"]
        time.sleep(2.5)  # a couple more polls: nothing else arrives on either
        assert [m["text"] for m in stream.messages()] == ["Hello you"]
        assert [m["text"] for m in other.messages()] == ["Private note for them"]
        assert not any("Private" in line for line in stream.lines)
    finally:
        stream.close()
        other.close()
        run(engine, takeover.hand_back, api, mine.sender_id, nurse)
        run(engine, takeover.hand_back, api, theirs.sender_id, nurse)


def test_stream_cursor_what_it_carries_and_how_it_ends(
    stack: Stack, engine: Engine, api: RasaApi, nurse: StaffUser
) -> None:
    visitor, _ = requested_person(stack, engine)
    assert visitor.say("what are your opening hours?")
    # Written outside the visitor's turns through the API: delivered although not staff.
    api._append(visitor.sender_id, {"event": "bot", "text": "A note from the clinic."})
    run(engine, takeover.reply, api, visitor.sender_id, nurse, "First")
    run(engine, takeover.reply, api, visitor.sender_id, nurse, "Second")
    try:
        # From the start of the conversation: none of the assistant's webhook replies.
        everything = visitor.stream(after="0")
        texts = [(m["text"], m.get("staff")) for m in everything.wait_for_messages(3)]
        assert texts == [("A note from the clinic.", None), ("First", "Dana Reyes"),
                         ("Second", "Dana Reyes")]
        first_id = everything.messages()[1]["id"]
        # Picking up after "First", by after= or by the Last-Event-ID header (later one wins).
        for stream in (visitor.stream(after=first_id),
                       visitor.stream(last_event_id=first_id),
                       visitor.stream(after="1", last_event_id=first_id)):
            assert [m["text"] for m in stream.wait_for_messages(1)] == ["Second"]
            stream.close()
        # Without a cursor: nothing old, a "ready" event with the newest cursor.
        fresh = visitor.stream()
        assert float(fresh.ready_cursor()) >= float(everything.messages()[-1]["id"])
        # Keep-alive comments, then the stream ends by itself so the browser reconnects.
        assert everything.ended.wait(40)
        assert everything.lines[0] == "retry: 3000"
        assert ": keep-alive" in everything.lines
        assert len(everything.messages()) == 3 and fresh.messages() == []
        fresh.close()
    finally:
        run(engine, takeover.hand_back, api, visitor.sender_id, nurse)


def test_stream_refuses_bad_sessions_and_follows_the_widget_cors_policy(stack: Stack) -> None:
    visitor = Visitor(stack)
    base = visitor.base
    forged = visitor.token[:-2] + ("AA" if not visitor.token.endswith("AA") else "BB")
    for url in (f"{base}/stream", f"{base}/stream?session={forged}",
                f"{base}/stream?session=web-{visitor.sender_id[4:]}"):
        status, body, _ = get_status(url)
        assert (status, body) == (403, {"error": "Invalid session."})
    status, body, _ = get_status(f"{base}/stream?session={visitor.token}&after=soon")
    assert (status, body) == (400, {"error": "Invalid cursor."})

    allowed = stack.demo_url  # the demo page's origin is allowed; nothing else is
    stream = visitor.stream(origin=allowed)
    try:
        assert stream.headers.get_all("Access-Control-Allow-Origin") == [allowed]
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-store"
    finally:
        stream.close()
    stream = visitor.stream(origin="https://evil.example")
    try:
        assert stream.headers.get_all("Access-Control-Allow-Origin") is None
    finally:
        stream.close()
    status, _, headers = get_status(f"{base}/stream?session=x", Origin="https://evil.example")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers

    # The session answer says there is a stream, readable by the allowed origin's script.
    request = urllib.request.Request(f"{base}/session", data=b"{}", method="POST",
                                     headers={"Origin": allowed})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.headers["X-Widget-Stream"] == "1"
        assert response.headers["Access-Control-Expose-Headers"] == "X-Widget-Stream"
    request = urllib.request.Request(f"{base}/stream", method="OPTIONS", headers={
        "Origin": allowed, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.headers.get_all("Access-Control-Allow-Origin") == [allowed]
        assert "Last-Event-ID" in response.headers["Access-Control-Allow-Headers"]


# ----------------------------------------------------------------------------------- SMS
def test_sms_reply_reaches_the_patient_and_the_assistant_waits(
    stack: Stack, engine: Engine, api: RasaApi, nurse: StaffUser, override_settings
) -> None:
    # The console's settings: the stack's database and the Twilio stand-in.
    override_settings(BOT_DATABASE_URL=stack.database_url,  # type: ignore[attr-defined]
                      TWILIO_ACCOUNT_SID=TWILIO_ACCOUNT_SID,
                      TWILIO_AUTH_TOKEN=TWILIO_AUTH_TOKEN,
                      TWILIO_FROM_NUMBER=TWILIO_FROM_NUMBER,
                      TWILIO_API_BASE_URL=stack.sms_url)  # type: ignore[attr-defined]
    sms_url: str = stack.sms_url  # type: ignore[attr-defined]
    mobile = new_mobile()
    patient_id = enrol(engine, mobile)
    webhook = f"{stack.rasa_url}/webhooks/twilio/webhook"

    def text_in(body: str) -> None:
        params = simulate.inbound_params(account_sid=TWILIO_ACCOUNT_SID, from_=mobile,
                                         to=TWILIO_FROM_NUMBER, body=body)
        assert simulate.post_inbound(webhook, TWILIO_AUTH_TOKEN, params) == 200

    def texts_to_patient() -> list[str]:
        return [m["body"] for m in simulate.standin_messages(sms_url) if m.get("to") == mobile]

    text_in("hello")
    assert eventually(texts_to_patient)
    from bot.services.checkins import sender_id_for_mobile_index

    with session_factory(engine)() as session:
        from bot.db.models import Patient

        sender_id = sender_id_for_mobile_index(session.get(Patient, patient_id).mobile_index)
    try:
        run(engine, takeover.take_over, api, sender_id, nurse)
        before = len(texts_to_patient())
        text_in("ok thanks, waiting for the nurse")
        assert eventually(lambda: api.transcript(sender_id)[-1].text
                          == "ok thanks, waiting for the nurse")
        time.sleep(2)
        assert len(texts_to_patient()) == before  # paused: the assistant texts nothing

        reply = "Hi Robin \u2014 Dana here \U0001f642 Can you talk at 3pm?"
        result = run(engine, takeover.reply, api, sender_id, nurse, reply)
        assert (result.encoding, result.segments) == ("UCS-2", 1)
        assert texts_to_patient()[before:] == [reply]  # exactly as written
        [sent] = [m for m in simulate.standin_messages(sms_url) if m.get("body") == reply]
        assert sent["from"] == TWILIO_FROM_NUMBER
        assert api.transcript(sender_id)[-1].as_dict() | {"at": None} == {
            "who": "staff", "text": reply, "at": None, "staff_name": "Dana Reyes",
            "buttons": []}
        with session_factory(engine)() as session:
            outbound = session.scalars(select(SmsMessage).where(
                SmsMessage.patient_id == patient_id,
                SmsMessage.direction == SmsDirection.OUTBOUND,
            ).order_by(SmsMessage.id.desc())).first()
            assert outbound is not None and outbound.message_sid
    finally:
        run(engine, takeover.hand_back, api, sender_id, nurse)
        get_engine.cache_clear()

    count = len(texts_to_patient())
    text_in("hello again")
    assert eventually(lambda: len(texts_to_patient()) > count)  # the assistant answers again
