"""The scheduler's Rasa sender (bot.checkins.trigger) against a real HTTP server on loopback
standing in for Rasa's ``/conversations/{id}/trigger_intent`` endpoint."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.checkins.scheduler import CheckinRef, SendError
from bot.checkins.trigger import RasaTriggerSender

TOKEN = "rasa-token-3c8d0f"  # noqa: S105 - a test value
SENDER_ID = "sms-0123456789abcdef0123456789abcdef"
REF = CheckinRef(checkin_id=42, patient_id=7, sender_id=SENDER_ID)
# What Rasa answers when the output channel sent the messages itself: the tracker only.
DELIVERED = {"tracker": {"sender_id": SENDER_ID, "events": [{"event": "user", "text": "secret"}]}}


@dataclass
class FakeRasa:
    """Answers each request with the next planned reply (status, JSON body, delay)."""

    replies: list[tuple[int, Any, float]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def reply(self, status: int = 200, body: Any = None, delay: float = 0.0) -> None:
        self.replies.append((status, DELIVERED if body is None else body, delay))


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    fake = FakeRasa()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            fake.requests.append({
                "path": parts.path,
                "query": parse_qs(parts.query),
                "content_type": self.headers.get("Content-Type"),
                "body": json.loads(self.rfile.read(length) or b"null"),
            })
            status, body, delay = fake.replies.pop(0) if fake.replies else (200, DELIVERED, 0)
            if delay:
                time.sleep(delay)
            data = json.dumps(body).encode()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"{fake.url}/elsewhere?token=stolen")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            # The client may have given up already (a timeout).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("method", "intent"),
    [("start", "start_checkin"), ("remind", "checkin_reminder"), ("closed", "checkin_closed")],
)
def test_each_call_triggers_its_intent_in_the_patients_conversation(
    rasa: FakeRasa, method: str, intent: str
) -> None:
    sender = RasaTriggerSender(rasa.url + "/", TOKEN)
    getattr(sender, method)(REF)
    [request] = rasa.requests
    assert request["path"] == f"/conversations/{SENDER_ID}/trigger_intent"
    assert request["query"] == {"output_channel": ["twilio"], "token": [TOKEN]}
    assert request["content_type"] == "application/json"
    assert request["body"] == {"name": intent, "entities": {"checkin_id": 42}}


def test_without_a_token_none_is_sent_and_the_channel_is_configurable(rasa: FakeRasa) -> None:
    RasaTriggerSender(rasa.url, None, output_channel="sms", timeout=5).start(REF)
    assert rasa.requests[0]["query"] == {"output_channel": ["sms"]}


def test_the_conversation_id_is_quoted_into_one_path_segment(rasa: FakeRasa) -> None:
    RasaTriggerSender(rasa.url, TOKEN).start(CheckinRef(1, 1, "a/b?c"))
    assert rasa.requests[0]["path"] == "/conversations/a%2Fb%3Fc/trigger_intent"


@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
def test_an_http_error_is_a_send_error(rasa: FakeRasa, status: int) -> None:
    rasa.reply(status, {"status": "failure", "message": "An unexpected error occurred"})
    with pytest.raises(SendError) as caught:
        RasaTriggerSender(rasa.url, TOKEN).start(REF)
    assert caught.value.code == f"HTTP {status}"


def test_a_redirect_is_not_followed(rasa: FakeRasa) -> None:
    rasa.reply(307, {})
    with pytest.raises(SendError) as caught:
        RasaTriggerSender(rasa.url, TOKEN).remind(REF)
    assert caught.value.code == "HTTP 307"
    assert [request["path"] for request in rasa.requests] == [
        f"/conversations/{SENDER_ID}/trigger_intent"]


def test_a_slow_rasa_is_a_timeout(rasa: FakeRasa) -> None:
    rasa.reply(200, DELIVERED, delay=1.0)
    started = time.monotonic()
    with pytest.raises(SendError) as caught:
        RasaTriggerSender(rasa.url, TOKEN, timeout=0.2).start(REF)
    assert caught.value.code == "timeout"
    assert time.monotonic() - started < 0.9


def test_nobody_listening_is_a_connection_error() -> None:
    with pytest.raises(SendError) as caught:
        RasaTriggerSender("http://127.0.0.1:9", TOKEN, timeout=2).start(REF)
    assert caught.value.code == "ConnectionRefusedError"


def test_messages_collected_instead_of_sent_are_not_a_send(rasa: FakeRasa) -> None:
    # No registered channel has the output channel's name: Rasa 3.6 then collects the messages
    # and returns them, and the patient receives nothing.
    collected = {**DELIVERED, "messages": [{"recipient_id": SENDER_ID, "text": "How are you?"}]}
    sender = RasaTriggerSender(rasa.url, TOKEN)
    rasa.reply(200, collected)
    with pytest.raises(SendError) as caught:
        sender.start(REF)
    assert caught.value.code == "not_delivered"
    # The close sends no text: a collected (empty) reply is fine.
    rasa.reply(200, {**DELIVERED, "messages": []})
    sender.closed(REF)
    # The check can be switched off, e.g. for a channel that returns messages by design.
    rasa.reply(200, collected)
    RasaTriggerSender(rasa.url, TOKEN, check_delivery=False).start(REF)


def test_the_token_is_never_logged_nor_kept_in_errors(
    rasa: FakeRasa, caplog: pytest.LogCaptureFixture
) -> None:
    sender = RasaTriggerSender(rasa.url, TOKEN, timeout=0.3)
    rasa.reply(200)
    rasa.reply(500, {"message": f"echoing the token {TOKEN}"})
    rasa.reply(200, DELIVERED, delay=1.0)
    rasa.reply(302, {})
    errors: list[SendError] = []
    with caplog.at_level(logging.DEBUG):
        sender.start(REF)
        for call in (sender.remind, sender.start, sender.closed):
            with pytest.raises(SendError) as caught:
                call(REF)
            errors.append(caught.value)
    assert [error.code for error in errors] == ["HTTP 500", "timeout", "HTTP 302"]
    assert len(rasa.requests) == 4
    assert caplog.records  # the sends are logged (by check-in id) ...
    assert any("42" in record.getMessage() for record in caplog.records)
    for record in caplog.records:  # ... without the token, the URL or the patient's words
        logged = record.getMessage() + str(record.exc_info or "") + str(record.args)
        assert TOKEN not in logged and "/conversations/" not in logged
        assert "secret" not in logged
    for error in errors:
        assert TOKEN not in str(error) and TOKEN not in repr(error)
        assert error.__cause__ is None and error.__context__ is None
    assert TOKEN not in repr(sender)


@pytest.mark.parametrize("url", ["ftp://rasa:5005", "localhost:5005", "http://",
                                 "http://rasa:5005/?token=x", "http://rasa:5005/#x"])
def test_a_bad_rasa_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        RasaTriggerSender(url, TOKEN)
