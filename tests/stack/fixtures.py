"""The whole product running: action server, Rasa server (trained model) and the demo page.

Started once per test session on free loopback ports, with its own throwaway database and
tracker store. The children's logs go to ``artifacts/logs``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from bot.db import migrate
from bot.run import MODEL_PATH, Stack, start_stack
from bot.settings import PROJECT_ROOT, get_settings
from tests.alerts_support import WebhookReceiver

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy (work the product does in the
    background: crisis records, alerts, texts), or give up after ``timeout`` seconds and return
    its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


RASA_API_TOKEN = "stack-test-rasa-token"
TWILIO_ACCOUNT_SID = "AC" + "5" * 32
TWILIO_AUTH_TOKEN = "stack-test-twilio-token"
TWILIO_FROM_NUMBER = "+15550100000"


@pytest.fixture(scope="session")
def staff_alerts() -> Iterator[WebhookReceiver]:
    """The staff-alert webhook the stack posts to (a local receiver that records requests)."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack(staff_alerts: WebhookReceiver) -> Iterator[Stack]:
    """The running product."""
    if not MODEL_PATH.exists():
        pytest.skip(f"{MODEL_PATH} is missing; `make test` trains it before running the suite")
    settings = get_settings()
    demo_port = free_port()
    env = dict(os.environ)
    env["BOT_ALERT_WEBHOOK_URL"] = staff_alerts.url
    env["BOT_ALERT_WEBHOOK_SECRET"] = "stack-test-alert-secret"
    env["BOT_ALERT_RETRY_DELAY"] = "0.05"
    env["BOT_RASA_API_TOKEN"] = RASA_API_TOKEN
    env["BOT_DATABASE_URL"] = f"sqlite:///{settings.data_dir / 'stack.db'}"
    env["BOT_TRACKER_DB"] = str(settings.data_dir / "stack-tracker.db")
    env["BOT_WIDGET_ALLOWED_ORIGINS"] = f"http://localhost:{demo_port},http://127.0.0.1:{demo_port}"
    env["TWILIO_ACCOUNT_SID"] = TWILIO_ACCOUNT_SID
    env["TWILIO_AUTH_TOKEN"] = TWILIO_AUTH_TOKEN
    env["TWILIO_FROM_NUMBER"] = TWILIO_FROM_NUMBER
    migrate.upgrade(env["BOT_DATABASE_URL"])
    sms_port = free_port()
    running = start_stack(env=env, action_port=free_port(), rasa_port=free_port(),
                          demo_port=demo_port, log_dir=PROJECT_ROOT / "artifacts" / "logs",
                          sms_port=sms_port)
    running.database_url = env["BOT_DATABASE_URL"]  # type: ignore[attr-defined]
    running.sms_url = f"http://127.0.0.1:{sms_port}"  # type: ignore[attr-defined]
    yield running
    running.stop()


def post_json(url: str, payload: Any, raw: bytes | None = None,
              timeout: float = 60) -> tuple[int, Any]:
    """POST JSON (or raw bytes); return the status and the decoded body (None if not JSON)."""
    data = raw if raw is not None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body = error.read()
        status = error.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


class RestChat:
    """One conversation over the REST channel."""

    def __init__(self, stack: Stack, sender: str | None = None) -> None:
        self.url = f"{stack.rasa_url}/webhooks/rest/webhook"
        self.sender = sender or f"rest-{uuid.uuid4().hex}"

    def say(self, message: str) -> list[str]:
        """Send a message and return the texts of the replies."""
        return [reply.get("text", "") for reply in self.send(message)]

    def send(self, message: str) -> list[dict[str, Any]]:
        """Send a message and return the replies as the channel sent them."""
        status, body = post_json(self.url, {"sender": self.sender, "message": message})
        assert status == 200, (status, body)
        return list(body)


@pytest.fixture
def chat(stack: Stack) -> RestChat:
    """A fresh REST conversation."""
    return RestChat(stack)
