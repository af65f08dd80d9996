"""Loopback stand-ins for the staff-alert transports: a webhook endpoint and an SMTP server.

Both run in background threads on 127.0.0.1 and a free port, record what they receive, and are
context managers::

    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        ...  # BOT_ALERT_WEBHOOK_URL=hook.url, BOT_ALERT_SMTP_HOST=smtp.host, _PORT=smtp.port

The ``webhook_receiver`` and ``smtp_receiver`` fixtures wrap them; a test module imports them,
or a conftest lists ``"tests.alerts_support"`` in ``pytest_plugins``.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- Webhook ------------------------------------------------------------------------------


def serve_in_background(server: socketserver.BaseServer, name: str) -> None:
    """Run ``server`` on a daemon thread until ``stop_serving``."""
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()


def stop_serving(server: socketserver.BaseServer | None) -> None:
    """Stop a server started by :func:`serve_in_background` and close its socket."""
    assert server is not None
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as the webhook endpoint saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value, whatever its case."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def json(self) -> Any:
        """The body, decoded from JSON."""
        return json.loads(self.body)


# Sent with failures, so a test can check it never reaches an error message or a log.
FAILURE_BODY = b"upstream exploded: do-not-copy-this-response-body"


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _WebhookServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver = self.server.receiver
        status = receiver._record(ReceivedRequest("POST", self.path, dict(self.headers), body))
        if receiver.delay:
            time.sleep(receiver.delay)
        payload = b"" if 200 <= status < 300 else FAILURE_BODY
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/redirected")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass


class _WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


class WebhookReceiver:
    """An HTTP endpoint that records every request and fails on demand.

    Attributes:
        requests: Every request received, in order.
        delay: Seconds to wait before answering (to provoke client timeouts).
    """

    def __init__(self, status: int = 204) -> None:
        """Prepare the endpoint (it listens from ``__enter__``).

        Args:
            status: The answer when not told to fail.
        """
        self.status = status
        self.requests: list[ReceivedRequest] = []
        self.delay = 0.0
        self._fail_next = 0
        self._fail_always = False
        self._fail_status = 500
        self._lock = threading.Lock()
        self._server: _WebhookServer | None = None

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status``."""
        with self._lock:
            self._fail_next, self._fail_status = count, status

    def always_fail(self, status: int = 500) -> None:
        """Answer every request with ``status`` from now on."""
        with self._lock:
            self._fail_always, self._fail_status = True, status

    def succeed(self) -> None:
        """Stop failing: answer every request normally again."""
        with self._lock:
            self._fail_always, self._fail_next = False, 0

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        assert self._server is not None, "use the receiver as a context manager"
        return f"http://{HOST}:{self._server.server_address[1]}/alerts"

    def _record(self, request: ReceivedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            if self._fail_always:
                return self._fail_status
            if self._fail_next:
                self._fail_next -= 1
                return self._fail_status
            return self.status

    def __enter__(self) -> WebhookReceiver:
        self._server = _WebhookServer((HOST, 0), _WebhookHandler)
        self._server.receiver = self
        serve_in_background(self._server, "test-webhook")
        return self

    def __exit__(self, *exc_info: object) -> None:
        stop_serving(self._server)


# --- SMTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP server received it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        """The message, parsed."""
        return cast(EmailMessage, message_from_bytes(self.data, policy=policy.default))


_ADDRESS = re.compile(r"<([^>]*)>")


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.

    STARTTLS is neither offered nor accepted, so a client that insists on it must fail.
    """

    server: _SmtpServer

    def _reply(self, *lines: str) -> None:
        code, texts = lines[0][:3], [line[4:] for line in lines]
        out = [f"{code}-{text}" for text in texts[:-1]] + [f"{code} {texts[-1]}"]
        self.wfile.write("".join(f"{line}\r\n" for line in out).encode())

    def handle(self) -> None:
        receiver = self.server.receiver
        self._reply("220 localhost test SMTP")
        mail_from: str | None = None
        rcpt_tos: list[str] = []
        while line := self.rfile.readline():
            verb, _, argument = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            verb = verb.upper()
            address = _ADDRESS.search(argument)
            if verb == "EHLO":
                extensions = ["250 AUTH PLAIN"] if receiver.credentials else []
                self._reply("250 localhost", *extensions)
            elif verb == "HELO":
                self._reply("250 localhost")
            elif verb == "AUTH" and receiver.credentials:
                mechanism, _, encoded = argument.partition(" ")
                _, user, password = base64.b64decode(encoded).decode().split("\0")
                receiver.logins.append((user, password))
                ok = mechanism.upper() == "PLAIN" and (user, password) == receiver.credentials
                self._reply("235 OK" if ok else "535 authentication failed")
            elif verb == "MAIL" and address:
                mail_from, rcpt_tos = address.group(1), []
                self._reply("250 OK")
            elif verb == "RCPT" and address and mail_from is not None:
                if address.group(1) in receiver.refuse:
                    self._reply("550 no such mailbox")
                else:
                    rcpt_tos.append(address.group(1))
                    self._reply("250 OK")
            elif verb == "DATA" and mail_from is not None and rcpt_tos:
                self._reply("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b".") else chunk
                receiver._record(ReceivedMail(mail_from, rcpt_tos, bytes(data)))
                mail_from, rcpt_tos = None, []
                self._reply("250 OK queued")
            elif verb == "RSET":
                mail_from, rcpt_tos = None, []
                self._reply("250 OK")
            elif verb == "NOOP":
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 command not implemented here")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: SmtpReceiver


class SmtpReceiver:
    """A minimal SMTP server that records messages.

    Attributes:
        messages: Every message accepted, in order.
        logins: Every ``(user, password)`` a client authenticated with.
        refuse: Recipients answered with 550.
        credentials: When set, AUTH PLAIN is offered and only these credentials accepted.
    """

    def __init__(self, refuse: Iterable[str] = (),
                 credentials: tuple[str, str] | None = None) -> None:
        """Prepare the server (it listens from ``__enter__``)."""
        self.refuse = set(refuse)
        self.credentials = credentials
        self.messages: list[ReceivedMail] = []
        self.logins: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: _SmtpServer | None = None

    @property
    def host(self) -> str:
        """The host to connect to."""
        return HOST

    @property
    def port(self) -> int:
        """The port to connect to."""
        assert self._server is not None, "use the receiver as a context manager"
        return int(self._server.server_address[1])

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.messages.append(mail)

    def __enter__(self) -> SmtpReceiver:
        self._server = _SmtpServer((HOST, 0), _SmtpHandler)
        self._server.receiver = self
        serve_in_background(self._server, "test-smtp")
        return self

    def __exit__(self, *exc_info: object) -> None:
        stop_serving(self._server)


# --- Fixtures -----------------------------------------------------------------------------


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running webhook endpoint that answers 204 until told to fail."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """A running SMTP server that accepts every recipient."""
    with SmtpReceiver() as receiver:
        yield receiver
