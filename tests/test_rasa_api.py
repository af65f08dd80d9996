"""The staff console's use of Rasa's HTTP API, against a local fake Rasa server.

:class:`FakeRasa` answers ``GET /conversations/{id}/tracker`` and
``POST /conversations/{id}/tracker/events`` the way Rasa 3.6 does (token in the query string,
``pause`` / ``resume`` set the tracker's ``paused`` flag, events are stamped when appended), and
records every request. The first part tests :class:`bot.console.rasa_api.RasaApi` and the
transcript; the second tests :mod:`bot.console.takeover` with it, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.sms import SmsSendError
from bot.console import takeover
from bot.console.rasa_api import (
    SYSTEM_CRISIS,
    SYSTEM_PAUSED,
    SYSTEM_RESUMED,
    RasaApi,
    RasaApiError,
    TranscriptLine,
    transcript_from_events,
)
from bot.db.models import AuditEvent, Channel, Conversation, StaffRole, StaffUser
from bot.services import checkins, conversations, patients
from tests.stack.fixtures import free_port

TOKEN = "fake-rasa-token-0123456789"


# ----------------------------------------------------------------------------------- fake Rasa
class FakeRasa:
    """A stand-in for the Rasa server's tracker endpoints, on a loopback port."""

    def __init__(self) -> None:
        self.trackers: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail: int | None = None
        self.fail_event: str | None = None
        self.raw_reply: bytes | None = None
        self.delay = 0.0
        self.lock = threading.Lock()
        self.url = ""

    def tracker(self, sender_id: str) -> dict[str, Any]:
        return self.trackers.setdefault(sender_id, {"paused": False, "events": []})

    def events(self, sender_id: str) -> list[dict[str, Any]]:
        """The events appended to a conversation (without their timestamps)."""
        return [{k: v for k, v in e.items() if k != "timestamp"}
                for e in self.tracker(sender_id)["events"]]

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segments = parts.path.split("/")
        with self.lock:
            self.requests.append({"method": method, "path": parts.path, "query": query,
                                  "body": json.loads(body) if body else None})
        time.sleep(self.delay)
        if parts.path == "/elsewhere":
            return 200, b"{}", {}
        if query.get("token") != TOKEN:
            return 401, b'{"reason": "NotAuthenticated"}', {}
        if self.fail_event is not None and method == "POST" and \
                json.loads(body).get("event") == self.fail_event:
            return 500, b'{"message": "boom"}', {}
        if self.fail is not None:
            if self.fail == 302:
                return 302, b"", {"Location": f"{self.url}/elsewhere?token={TOKEN}"}
            return self.fail, b'{"message": "boom"}', {}
        if self.raw_reply is not None:
            return 200, self.raw_reply, {}
        if len(segments) < 4 or segments[1] != "conversations":
            return 404, b"{}", {}
        sender_id = unquote(segments[2])
        with self.lock:
            state = self.tracker(sender_id)
            if method == "POST":
                event = dict(json.loads(body))
                event.setdefault("timestamp", time.time())
                state["events"].append(event)
                if event["event"] in ("pause", "resume"):
                    state["paused"] = event["event"] == "pause"
            reply = {"sender_id": sender_id, "paused": state["paused"],
                     "events": None if query.get("include_events") == "NONE"
                     else list(state["events"])}
        return 200, json.dumps(reply).encode(), {}


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    fake = FakeRasa()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, body, headers = fake.handle(method, self.path, self.rfile.read(length))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api(rasa: FakeRasa) -> RasaApi:
    return RasaApi(rasa.url, TOKEN, timeout=5)


# ----------------------------------------------------------------------------------- RasaApi
def test_pause_staff_line_and_resume_are_appended_as_rasa_events(rasa: FakeRasa,
                                                                 api: RasaApi) -> None:
    sender = "web-abc"
    assert api.is_paused(sender) is False
    api.pause(sender)
    assert api.is_paused(sender) is True
    api.append_staff_message(sender, "Hi, this is Dana from the clinic.", "Dana R.")
    api.resume(sender)
    assert api.is_paused(sender) is False
    assert rasa.events(sender) == [
        {"event": "pause"},
        {"event": "bot", "text": "Hi, this is Dana from the clinic.",
         "metadata": {"staff": "Dana R.", "source": "console"}},
        {"event": "resume"},
    ]
    posts = [r for r in rasa.requests if r["method"] == "POST"]
    assert {r["path"] for r in posts} == {"/conversations/web-abc/tracker/events"}
    assert all(r["query"] == {"include_events": "NONE", "token": TOKEN} for r in posts)
    gets = [r for r in rasa.requests if r["method"] == "GET"]
    assert all(r["query"]["include_events"] == "NONE" for r in gets)  # is_paused reads no events


def test_tracker_reads_every_event_and_quotes_the_conversation_id(rasa: FakeRasa,
                                                                  api: RasaApi) -> None:
    sender = "odd/id?x=1&token=stolen"
    api.pause(sender)
    state = api.tracker(sender)
    assert state["paused"] is True and [e["event"] for e in state["events"]] == ["pause"]
    assert rasa.requests[-1]["path"] == "/conversations/odd%2Fid%3Fx%3D1%26token%3Dstolen/tracker"
    assert rasa.requests[-1]["query"] == {"include_events": "ALL", "token": TOKEN}
    assert list(rasa.trackers) == [sender]


def test_transcript_through_the_api(rasa: FakeRasa, api: RasaApi) -> None:
    sender = "web-transcript"
    rasa.tracker(sender)["events"] = [
        {"event": "action", "name": "action_session_start", "timestamp": 100.0},
        {"event": "user", "text": "/greet", "timestamp": 101.0},
        {"event": "bot", "text": "Hi!", "timestamp": 102.0,
         "data": {"buttons": [{"title": "Talk to a person", "payload": "/human"}]}},
        {"event": "user", "text": "/human", "timestamp": 103.0},
        {"event": "pause", "timestamp": 104.0},
        {"event": "bot", "text": "Dana here.", "timestamp": 105.0,
         "metadata": {"staff": "Dana", "source": "console"}},
    ]
    assert [(line.who, line.text, line.staff_name, line.at.timestamp())
            for line in api.transcript(sender)] == [
        ("assistant", "Hi!", None, 102.0),
        ("patient", "Talk to a person", None, 103.0),
        ("system", SYSTEM_PAUSED, None, 104.0),
        ("staff", "Dana here.", "Dana", 105.0),
    ]


def test_without_the_token_rasa_refuses(rasa: FakeRasa) -> None:
    with pytest.raises(RasaApiError) as refused:
        RasaApi(rasa.url, "wrong-token").pause("web-x")
    assert refused.value.code == "unauthorized"
    assert rasa.trackers == {}


@pytest.mark.parametrize(
    ("fail", "raw", "code"),
    [
        (500, None, "HTTP 500"),
        (404, None, "HTTP 404"),
        (403, None, "unauthorized"),
        (None, b"<html>not json</html>", "bad_response"),
        (None, b"[1, 2]", "bad_response"),
    ],
    ids=["500", "404", "403", "not-json", "not-an-object"],
)
def test_failures_become_short_codes_without_token_or_body(
    rasa: FakeRasa, api: RasaApi, caplog: pytest.LogCaptureFixture, fail: int | None,
    raw: bytes | None, code: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    rasa.fail, rasa.raw_reply = fail, raw
    for call in (lambda: api.tracker("web-x"), lambda: api.pause("web-x"),
                 lambda: api.append_staff_message("web-x", "private words", "Dana")):
        with pytest.raises(RasaApiError) as failed:
            call()
        assert failed.value.code == code
        # No chained urllib error (it would carry the URL, and with it the token).
        assert failed.value.__cause__ is None
        assert failed.value.__context__ is None or failed.value.__suppress_context__
        assert TOKEN not in str(failed.value)
    assert TOKEN not in caplog.text
    assert "private words" not in caplog.text and "boom" not in caplog.text
    assert "HTTP 500" in caplog.text if fail == 500 else True


def test_redirects_are_not_followed(rasa: FakeRasa, api: RasaApi) -> None:
    rasa.fail = 302
    with pytest.raises(RasaApiError) as failed:
        api.pause("web-x")
    assert failed.value.code == "HTTP 302"
    assert [r["path"] for r in rasa.requests] == ["/conversations/web-x/tracker/events"]


def test_unreachable_and_slow_rasa(rasa: FakeRasa) -> None:
    with pytest.raises(RasaApiError) as refused:
        RasaApi(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2).is_paused("web-x")
    assert refused.value.code == "ConnectionRefusedError"
    rasa.delay = 1.0
    with pytest.raises(RasaApiError) as slow:
        RasaApi(rasa.url, TOKEN, timeout=0.3).is_paused("web-x")
    assert slow.value.code == "timeout"


def test_bad_arguments_are_refused_before_any_request(rasa: FakeRasa, api: RasaApi) -> None:
    for url in ("ftp://rasa.example", "localhost:5005", "http://rasa.example/?token=x", ""):
        with pytest.raises(ValueError):
            RasaApi(url, TOKEN)
    with pytest.raises(ValueError):
        api.append_staff_message("web-x", "  \n ", "Dana")
    with pytest.raises(ValueError):
        api.append_staff_message("web-x", "Hello", " ")
    with pytest.raises(ValueError):
        api.pause("")
    assert rasa.requests == []
    assert TOKEN not in repr(api)


def test_from_settings_reads_the_rasa_url_and_token(override_settings) -> None:
    override_settings(BOT_RASA_URL="http://rasa.internal:5005/", BOT_RASA_API_TOKEN="tok-123")
    api = RasaApi.from_settings()
    assert api.base_url == "http://rasa.internal:5005"
    assert api._url("web-x", "tracker", {}) == (
        "http://rasa.internal:5005/conversations/web-x/tracker?token=tok-123")


# ----------------------------------------------------------------------------------- transcript
def _at(seconds: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(
            [{"event": "user", "text": "hello", "timestamp": 1.0},
             {"event": "bot", "text": "Hi, how can I help?", "timestamp": 2.0}],
            [TranscriptLine("patient", "hello", _at(1.0)),
             TranscriptLine("assistant", "Hi, how can I help?", _at(2.0))],
            id="plain-exchange",
        ),
        pytest.param(
            [{"event": "bot", "text": "Pick one", "timestamp": 1.0,
              "data": {"buttons": [{"title": "Yes", "payload": "/affirm"},
                                   {"title": "No", "payload": "/deny"}]}},
             {"event": "user", "text": "/deny", "timestamp": 2.0},
             {"event": "user", "text": "/affirm", "timestamp": 3.0}],
            [TranscriptLine("assistant", "Pick one", _at(1.0), buttons=("Yes", "No")),
             TranscriptLine("patient", "No", _at(2.0)),
             TranscriptLine("patient", "Yes", _at(3.0))],
            id="button-payloads-become-titles",
        ),
        pytest.param(
            [{"event": "user", "text": "/greet", "timestamp": 1.0},
             {"event": "user", "text": "EXTERNAL: start_checkin", "timestamp": 2.0},
             {"event": "user", "text": "   ", "timestamp": 3.0},
             {"event": "user", "text": None, "timestamp": 4.0}],
            [],
            id="invisible-intents-dropped",
        ),
        pytest.param(
            [{"event": "action", "name": "action_listen", "timestamp": 1.0},
             {"event": "slot", "name": "first_name", "value": "Nadia", "timestamp": 2.0},
             {"event": "active_loop", "name": "intake_form", "timestamp": 3.0},
             {"event": "session_started", "timestamp": 4.0},
             {"event": "bot", "text": None, "data": {"custom": {"crisis": True}},
              "timestamp": 5.0},
             {"event": "followup", "name": "x", "timestamp": 6.0}],
            [],
            id="internal-events-dropped",
        ),
        pytest.param(
            [{"event": "pause", "timestamp": 1.0},
             {"event": "user", "text": "are you there?", "timestamp": 2.0},
             {"event": "bot", "text": "Yes, Dana here.", "timestamp": 3.0,
              "metadata": {"staff": "Dana", "source": "console"}},
             {"event": "resume", "timestamp": 4.0}],
            [TranscriptLine("system", SYSTEM_PAUSED, _at(1.0)),
             TranscriptLine("patient", "are you there?", _at(2.0)),
             TranscriptLine("staff", "Yes, Dana here.", _at(3.0), staff_name="Dana"),
             TranscriptLine("system", SYSTEM_RESUMED, _at(4.0))],
            id="takeover",
        ),
        pytest.param(
            [{"event": "user", "text": "i want to end it", "timestamp": 1.0,
              "metadata": {"safety": {"crisis": True, "handled": True}}},
             {"event": "bot", "text": "You're not alone.", "timestamp": 2.0,
              "metadata": {"utter_action": "utter_crisis_followup"}}],
            [TranscriptLine("patient", "i want to end it", _at(1.0)),
             TranscriptLine("system", SYSTEM_CRISIS, _at(1.0)),
             TranscriptLine("assistant", "You're not alone.", _at(2.0))],
            id="crisis-note",
        ),
        pytest.param(
            [{"event": "bot", "text": "Not staff", "timestamp": 1.0,
              "metadata": {"staff": "", "source": "console"}},
             {"event": "bot", "text": "Not staff either", "timestamp": 2.0,
              "metadata": {"staff": 42}}],
            [TranscriptLine("assistant", "Not staff", _at(1.0)),
             TranscriptLine("assistant", "Not staff either", _at(2.0))],
            id="staff-needs-a-name",
        ),
    ],
)
def test_transcript_from_events(events: list[dict[str, Any]],
                                expected: list[TranscriptLine]) -> None:
    assert transcript_from_events(events) == expected


def test_transcript_line_as_dict() -> None:
    line = TranscriptLine("staff", "Hello", _at(0.0), staff_name="Dana")
    assert line.as_dict() == {"who": "staff", "text": "Hello",
                              "at": "1970-01-01T00:00:00+00:00", "staff_name": "Dana",
                              "buttons": []}


# ----------------------------------------------------------------------------------- takeover
WIDGET_SENDER = "web-takeover-visitor"
REST_SENDER = "rest-takeover-visitor"


def make_user(session: Session, name: str, role: StaffRole = StaffRole.CLINICIAN,
              active: bool = True) -> StaffUser:
    user = StaffUser(email=f"{name.lower().replace(' ', '.')}@clinic.example",
                     display_name=name, role=role, password_hash="not-a-real-hash",
                     active=active)
    session.add(user)
    session.flush()
    return user


def holder_id(session: Session, sender_id: str) -> int | None:
    holder = conversations.holder(session, sender_id)
    return None if holder is None else int(holder.id)


def audit_rows(session: Session, action: str | None = None) -> list[AuditEvent]:
    statement = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        statement = statement.where(AuditEvent.action == action)
    return list(session.scalars(statement))


class FakeOutbox:
    """Records texts instead of sending them (the stack test uses the real outbox)."""

    def __init__(self, error: str | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.error = error

    def send(self, to: str, body: str, *, patient_id: int | None = None,
             conversation_id: int | None = None) -> str:
        if self.error:
            raise SmsSendError(self.error)
        self.sent.append({"to": to, "body": body, "patient_id": patient_id,
                          "conversation_id": conversation_id})
        return "SM" + "0" * 32


@pytest.fixture
def widget_conversation(db_session: Session) -> Conversation:
    return conversations.get_or_create(db_session, WIDGET_SENDER, Channel.WIDGET)


@pytest.fixture
def clinician(db_session: Session) -> StaffUser:
    return make_user(db_session, "Dana Reyes")


def enrol(session: Session, mobile: str = "+15035550177") -> tuple[str, int]:
    result = patients.enrol_patient(
        session, name="Robin Okafor", mobile=mobile, timezone="America/Chicago",
        induction_dates=["2026-01-05"], last_infusion="2026-02-01", consent_version="sms-v1",
    )
    patient = result.patient
    sender_id = checkins.sender_id_for(patient)
    checkins.link_conversation(session, patient, sender_id)
    return sender_id, int(patient.id)


def test_take_over_pauses_holds_and_audits_once(db_session: Session, rasa: FakeRasa,
                                                api: RasaApi, widget_conversation: Conversation,
                                                clinician: StaffUser) -> None:
    takeover.take_over(db_session, api, WIDGET_SENDER, clinician)
    assert rasa.events(WIDGET_SENDER) == [{"event": "pause"}]
    assert holder_id(db_session, WIDGET_SENDER) == clinician.id
    # Again: nothing changes, nothing is appended, nothing more is audited.
    takeover.take_over(db_session, api, WIDGET_SENDER, clinician)
    assert rasa.events(WIDGET_SENDER) == [{"event": "pause"}]
    [entry] = audit_rows(db_session, "conversation.takeover")
    assert (entry.staff_user_id, entry.target_type, entry.target_id, entry.detail) == (
        clinician.id, "conversation", str(widget_conversation.id),
        {"channel": "widget", "previous_holder_id": None, "repaused": False})
    # A new Rasa session unpauses the tracker; taking over again pauses it again.
    rasa.tracker(WIDGET_SENDER)["paused"] = False
    takeover.take_over(db_session, api, WIDGET_SENDER, clinician)
    assert rasa.events(WIDGET_SENDER) == [{"event": "pause"}, {"event": "pause"}]
    assert audit_rows(db_session, "conversation.takeover")[-1].detail["repaused"] is True


def test_widget_reply_is_a_staff_line_and_is_audited_without_its_text(
    db_session: Session, rasa: FakeRasa, api: RasaApi, widget_conversation: Conversation,
    clinician: StaffUser,
) -> None:
    text = "  Hi, this is Dana, a nurse at the clinic. I can help with that.\n"
    result = takeover.reply(db_session, api, WIDGET_SENDER, clinician, text)
    # Not held before: the reply took the conversation over first.
    assert result == takeover.ReplyResult(Channel.WIDGET, len(text.strip()), None, None,
                                          took_over=True, recorded=True)
    assert rasa.events(WIDGET_SENDER) == [
        {"event": "pause"},
        {"event": "bot", "text": text.strip(),
         "metadata": {"staff": "Dana Reyes", "source": "console"}},
    ]
    assert holder_id(db_session, WIDGET_SENDER) == clinician.id
    assert [e.action for e in audit_rows(db_session)] == ["conversation.takeover",
                                                        "conversation.reply"]
    reply_entry = audit_rows(db_session, "conversation.reply")[0]
    assert reply_entry.detail == {"channel": "widget", "characters": len(text.strip()),
                                  "recorded": True}
    assert "nurse" not in json.dumps([e.detail for e in audit_rows(db_session)])
    # A second reply while held does not take over again.
    second = takeover.reply(db_session, api, WIDGET_SENDER, clinician, "Still here.")
    assert second.took_over is False
    assert [e.action for e in audit_rows(db_session)][-1] == "conversation.reply"
    assert len(audit_rows(db_session, "conversation.takeover")) == 1


def test_hand_back_resumes_releases_and_audits(db_session: Session, rasa: FakeRasa,
                                               api: RasaApi, widget_conversation: Conversation,
                                               clinician: StaffUser) -> None:
    takeover.take_over(db_session, api, WIDGET_SENDER, clinician)
    takeover.hand_back(db_session, api, WIDGET_SENDER, clinician)
    assert rasa.events(WIDGET_SENDER) == [{"event": "pause"}, {"event": "resume"}]
    assert rasa.tracker(WIDGET_SENDER)["paused"] is False
    assert conversations.holder(db_session, WIDGET_SENDER) is None
    db_session.refresh(widget_conversation)
    assert widget_conversation.held_since is None
    entry = audit_rows(db_session, "conversation.handback")[0]
    assert entry.detail == {"channel": "widget", "holder_id": clinician.id}


def test_a_colleague_holding_the_conversation_blocks_others_unless_forced(
    db_session: Session, rasa: FakeRasa, api: RasaApi, widget_conversation: Conversation,
    clinician: StaffUser,
) -> None:
    colleague = make_user(db_session, "Sam Ortiz", StaffRole.ADMIN)
    takeover.take_over(db_session, api, WIDGET_SENDER, clinician)
    for step in (lambda: takeover.take_over(db_session, api, WIDGET_SENDER, colleague),
                 lambda: takeover.reply(db_session, api, WIDGET_SENDER, colleague, "Hi"),
                 lambda: takeover.hand_back(db_session, api, WIDGET_SENDER, colleague)):
        with pytest.raises(takeover.TakeoverError, match="Dana Reyes is already replying"):
            step()
    assert rasa.events(WIDGET_SENDER) == [{"event": "pause"}]
    takeover.take_over(db_session, api, WIDGET_SENDER, colleague, force=True)
    assert holder_id(db_session, WIDGET_SENDER) == colleague.id
    assert audit_rows(db_session, "conversation.takeover")[-1].detail == {
        "channel": "widget", "previous_holder_id": clinician.id, "repaused": False}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 1601, "1,601 characters long; the limit is 1,600"),
        ("hello\x00there", "control characters"),
        ("line\rbreak", "control characters"),
        (None, "must be text"),
        (["hi"], "must be text"),
    ],
    ids=["empty", "blank", "too-long", "nul", "carriage-return", "none", "list"],
)
def test_bad_reply_text_is_refused_before_anything_happens(
    db_session: Session, rasa: FakeRasa, api: RasaApi, widget_conversation: Conversation,
    clinician: StaffUser, text: Any, message: str,
) -> None:
    with pytest.raises(takeover.TakeoverError, match=message):
        takeover.reply(db_session, api, WIDGET_SENDER, clinician, text)
    assert rasa.requests == []
    assert audit_rows(db_session, "conversation.reply") == []
    assert conversations.holder(db_session, WIDGET_SENDER) is None


def test_reply_of_exactly_the_limit_is_sent_unaltered(db_session: Session, rasa: FakeRasa,
                                                      api: RasaApi,
                                                      widget_conversation: Conversation,
                                                      clinician: StaffUser) -> None:
    text = ("Caf\u00e9 \u201cquotes\u201d \U0001f642\n\ttabbed " * 100)[:1600]
    takeover.reply(db_session, api, WIDGET_SENDER, clinician, text.strip() or text)
    assert rasa.events(WIDGET_SENDER)[-1]["text"] == text.strip()


def test_unknown_conversation_wrong_role_and_inactive_user(db_session: Session,
                                                           rasa: FakeRasa, api: RasaApi,
                                                           widget_conversation: Conversation,
                                                           clinician: StaffUser) -> None:
    with pytest.raises(takeover.TakeoverError, match="Unknown conversation"):
        takeover.take_over(db_session, api, "web-never-seen", clinician)
    with pytest.raises(takeover.TakeoverError, match="Unknown conversation"):
        takeover.reply(db_session, api, "web-never-seen", clinician, "Hello")
    with pytest.raises(takeover.TakeoverError, match="Unknown conversation"):
        takeover.hand_back(db_session, api, "", clinician)
    front_desk = make_user(db_session, "Lee Park", StaffRole.FRONT_DESK)
    retired = make_user(db_session, "Old Account", StaffRole.ADMIN, active=False)
    for user in (front_desk, retired):
        for step in (lambda u=user: takeover.take_over(db_session, api, WIDGET_SENDER, u),
                     lambda u=user: takeover.reply(db_session, api, WIDGET_SENDER, u, "Hi"),
                     lambda u=user: takeover.hand_back(db_session, api, WIDGET_SENDER, u)):
            with pytest.raises(takeover.TakeoverError, match="does not allow"):
                step()
    assert rasa.requests == []
    assert audit_rows(db_session, "conversation.takeover") == []


def test_rest_conversations_cannot_receive_replies(db_session: Session, rasa: FakeRasa,
                                                   api: RasaApi, clinician: StaffUser) -> None:
    conversations.get_or_create(db_session, REST_SENDER, Channel.REST)
    with pytest.raises(takeover.TakeoverError, match="REST API"):
        takeover.reply(db_session, api, REST_SENDER, clinician, "Hello")
    assert rasa.requests == []


def test_rasa_failures_leave_nothing_half_done(db_session: Session, rasa: FakeRasa,
                                               api: RasaApi, widget_conversation: Conversation,
                                               clinician: StaffUser) -> None:
    rasa.fail = 500
    # The caller's unit of work (here a savepoint) rolls back on the error.
    with pytest.raises(takeover.TakeoverError, match=r"could not be paused \(Rasa: HTTP 500\)"), \
            db_session.begin_nested():
        takeover.take_over(db_session, api, WIDGET_SENDER, clinician)
    assert conversations.holder(db_session, WIDGET_SENDER) is None
    # A reply writes nothing before it is delivered.
    with pytest.raises(takeover.TakeoverError, match="could not be paused"):
        takeover.reply(db_session, api, WIDGET_SENDER, clinician, "Hi")
    assert conversations.holder(db_session, WIDGET_SENDER) is None
    # Rasa pauses but refuses the staff line: the pause this reply made is undone.
    rasa.fail, rasa.fail_event = None, "bot"
    with pytest.raises(takeover.TakeoverError, match=r"could not be delivered \(Rasa: HTTP 500"):
        takeover.reply(db_session, api, WIDGET_SENDER, clinician, "Hello")
    assert rasa.events(WIDGET_SENDER) == [{"event": "pause"}, {"event": "resume"}]
    assert conversations.holder(db_session, WIDGET_SENDER) is None
    assert audit_rows(db_session, "conversation.reply") == []
    assert audit_rows(db_session, "conversation.takeover") == []


def test_sms_reply_goes_to_the_patient_unaltered(db_session: Session, rasa: FakeRasa,
                                                 api: RasaApi, clinician: StaffUser) -> None:
    sender_id, patient_id = enrol(db_session)
    outbox = FakeOutbox()
    text = "Hi Robin \u2019 it\u2019s Dana \U0001f642 call us at (503) 555-0100"
    result = takeover.reply(db_session, api, sender_id, clinician, text, outbox=outbox)
    conversation = conversations.find(db_session, sender_id)
    assert conversation is not None
    assert outbox.sent == [{"to": "+15035550177", "body": text, "patient_id": patient_id,
                            "conversation_id": conversation.id}]
    assert (result.channel, result.encoding, result.segments) == (Channel.SMS, "UCS-2", 1)
    assert rasa.events(sender_id)[-1] == {
        "event": "bot", "text": text, "metadata": {"staff": "Dana Reyes", "source": "console"}}
    entry = audit_rows(db_session, "conversation.reply")[0]
    assert entry.detail == {"channel": "sms", "characters": len(text), "recorded": True,
                            "encoding": "UCS-2", "segments": 1}
    assert entry.person_id == conversation.person_id is not None
    plain = takeover.reply(db_session, api, sender_id, clinician, "See you Tuesday at 10.",
                           outbox=outbox)
    assert (plain.encoding, plain.segments) == ("GSM-7", 1)


def test_sms_reply_refused_after_stop_and_for_unknown_numbers(db_session: Session,
                                                              rasa: FakeRasa, api: RasaApi,
                                                              clinician: StaffUser) -> None:
    sender_id, _ = enrol(db_session, "+15035550178")
    patients.opt_out(db_session, "+15035550178")
    outbox = FakeOutbox()
    with pytest.raises(takeover.TakeoverError, match="opted out"):
        takeover.reply(db_session, api, sender_id, clinician, "Hello", outbox=outbox)
    stranger = "sms-" + "ab" * 16
    conversations.get_or_create(db_session, stranger, Channel.SMS)
    with pytest.raises(takeover.TakeoverError, match="not an enrolled patient"):
        takeover.reply(db_session, api, stranger, clinician, "Hello", outbox=outbox)
    assert outbox.sent == [] and rasa.requests == []


def test_sms_send_failure_undoes_the_pause(db_session: Session, rasa: FakeRasa, api: RasaApi,
                                           clinician: StaffUser) -> None:
    sender_id, _ = enrol(db_session, "+15035550179")
    with pytest.raises(takeover.TakeoverError, match=r"could not be sent \(21610\)"):
        takeover.reply(db_session, api, sender_id, clinician, "Hello",
                       outbox=FakeOutbox(error="21610"))
    assert rasa.events(sender_id) == [{"event": "pause"}, {"event": "resume"}]
    assert audit_rows(db_session, "conversation.reply") == []


def test_sms_sent_but_not_recorded_is_reported_and_audited(db_session: Session,
                                                           rasa: FakeRasa, api: RasaApi,
                                                           clinician: StaffUser) -> None:
    sender_id, _ = enrol(db_session, "+15035550180")
    takeover.take_over(db_session, api, sender_id, clinician)
    rasa.fail_event = "bot"
    outbox = FakeOutbox()
    result = takeover.reply(db_session, api, sender_id, clinician, "Hello", outbox=outbox)
    assert len(outbox.sent) == 1
    assert result.recorded is False
    assert audit_rows(db_session, "conversation.reply")[0].detail["recorded"] is False


def test_sms_encoding_and_default_outbox(override_settings) -> None:
    assert takeover.sms_encoding("Plain [text] {ok}") == ("GSM-7", 1)
    assert takeover.sms_encoding("x" * 161) == ("GSM-7", 2)
    assert takeover.sms_encoding("\u2019" * 71) == ("UCS-2", 2)
    override_settings(TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN="t",
                      TWILIO_FROM_NUMBER="+15550100000",
                      TWILIO_API_BASE_URL="http://127.0.0.1:9")
    outbox = takeover.default_outbox()
    assert outbox.configured and outbox.from_number == "+15550100000"
