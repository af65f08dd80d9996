"""A local stand-in for Twilio's Messages REST API, for tests and the local demo.

It answers ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` as Twilio does for what the
``twilio`` library (8.2.2) sends from ``client.messages.create(to=..., from_=..., body=...)``,
with the client made by :func:`bot.sms.outbound.make_client` and ``base_url`` set to the
stand-in's URL. It:

- checks HTTP Basic auth against one account SID and auth token (401, error 20003);
- checks ``To`` is E.164 (21604 missing, 21211 invalid), that there is a ``From`` or a
  ``MessagingServiceSid`` (21603), and that ``Body`` is there (21602) and at most 1600
  characters (21617). It is stricter than Twilio about ``To``, which Twilio normalises: code
  that passes here sends canonical numbers;
- answers 201 with a Twilio-shaped message resource (``sid`` ``SM`` + 32 hex digits, ``status``
  ``queued``, ``num_segments`` by the GSM-7/UCS-2 rules of :mod:`bot.gsm`);
- keeps every accepted message in memory and, if given a file, appends it there as one JSON
  line. Nothing is sent anywhere.

For tests there are control endpoints (no auth; the stand-in listens on 127.0.0.1 only):

- ``GET /_standin/messages``: ``{"messages": [...]}``, oldest first;
- ``DELETE /_standin/messages``: forget the messages held in memory (the file is kept);
- ``POST /_standin/fail`` with form fields ``count`` and ``status`` (default 500): the next
  ``count`` authenticated sends fail with that status and a Twilio-style error, without being
  recorded, e.g. to test retries on 500 or 429.

In a test, run it in a thread with :class:`StandIn`; as a process::

    python -m bot.sms.standin --port 8026 --record var/sms-outbox.jsonl
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import copy
import functools
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import parse_qs, urlsplit

from bot import gsm
from bot.sms.phone import is_e164, mask

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
MAX_REQUEST_BYTES = 64 * 1024
CONTROL_PREFIX = "/_standin"

_MESSAGES_PATH = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>[A-Za-z0-9]+)/Messages\.json")
_MORE_INFO = "https://www.twilio.com/docs/errors/{code}"

Message: TypeAlias = dict[str, Any]
"""A message resource, as Twilio returns it."""


@dataclass(frozen=True)
class ApiError:
    """A Twilio REST error: the HTTP status, Twilio's error code and its message."""

    status: int
    code: int
    message: str

    def payload(self) -> dict[str, Any]:
        """The JSON body Twilio sends with this error."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": _MORE_INFO.format(code=self.code),
            "status": self.status,
        }


AUTH_ERROR = ApiError(401, 20003, "Authentication Error - invalid username")


def check_message(form: dict[str, list[str]]) -> ApiError | None:
    """The error Twilio would give for a Messages create request, if any.

    Args:
        form: The request's form fields, each with its list of values.

    Returns:
        The first problem found, in the order Twilio checks them, or ``None``.
    """
    to = _field(form, "To")
    if not to:
        return ApiError(400, 21604, "A 'To' phone number is required.")
    if not is_e164(to):
        return ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if not _field(form, "From") and not _field(form, "MessagingServiceSid"):
        return ApiError(400, 21603, "A 'From' phone number is required.")
    body = _field(form, "Body")
    if not body or not body.strip():
        return ApiError(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY_CHARS:
        return ApiError(
            400,
            21617,
            f"The concatenated message body exceeds the {MAX_BODY_CHARS} character limit.",
        )
    return None


def _field(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def new_message(account_sid: str, form: dict[str, list[str]], now: datetime) -> Message:
    """The resource for an accepted message, as Twilio answers a create.

    Args:
        account_sid: The account the message belongs to.
        form: The (valid) request's form fields.
        now: The creation time.

    Returns:
        The message resource, ``status`` ``queued`` (``accepted`` when sent through a
        Messaging Service with no ``From``, as Twilio does).
    """
    sid = "SM" + secrets.token_hex(16)
    body = _field(form, "Body") or ""
    sender = _field(form, "From")
    service = _field(form, "MessagingServiceSid")
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    stamp = format_datetime(now.astimezone(timezone.utc))
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": stamp,
        "date_sent": None,
        "date_updated": stamp,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": str(gsm.segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued" if sender else "accepted",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": _field(form, "To"),
        "uri": f"{uri}.json",
    }


class _Outbox:
    """The stand-in's state, shared by its request threads."""

    def __init__(self, account_sid: str, auth_token: str, record: Path | None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.record = record
        self.messages: list[Message] = []
        self.failures: deque[int] = deque()
        self.lock = threading.Lock()

    def authenticated(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, _, password = decoded.partition(":")
        # Both compared, always, so the time taken does not tell which one was wrong.
        sid_ok = hmac.compare_digest(username.encode(), self.account_sid.encode())
        token_ok = hmac.compare_digest(password.encode(), self.auth_token.encode())
        return sid_ok and token_ok

    def next_failure(self) -> int | None:
        with self.lock:
            return self.failures.popleft() if self.failures else None

    def add(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)
            if self.record is not None:
                self.record.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(message, sort_keys=True) + "\n")


class _StandInHandler(BaseHTTPRequestHandler):
    """Answers the Messages API and the control endpoints."""

    server: _StandInServer
    server_version = "twilio-standin"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """Create a message, or set up failures through the control endpoint."""
        body = self._read_body()
        if body is None:
            return
        form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        path = urlsplit(self.path).path
        if path == f"{CONTROL_PREFIX}/fail":
            self._set_failures(form)
            return
        match = _MESSAGES_PATH.fullmatch(path)
        if match is None:
            self._not_found(path)
            return
        self._create_message(match["account"], form)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """List the recorded messages."""
        path = urlsplit(self.path).path
        if path == f"{CONTROL_PREFIX}/messages":
            outbox = self.server.outbox
            with outbox.lock:
                messages = copy.deepcopy(outbox.messages)
            self._json(HTTPStatus.OK, {"messages": messages})
        elif _MESSAGES_PATH.fullmatch(path):
            self._error(ApiError(405, 20004, "Method not allowed"))
        else:
            self._not_found(path)

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's naming
        """Forget the messages held in memory."""
        path = urlsplit(self.path).path
        if path != f"{CONTROL_PREFIX}/messages":
            self._not_found(path)
            return
        with self.server.outbox.lock:
            self.server.outbox.messages.clear()
        self._answer(HTTPStatus.NO_CONTENT, b"")

    def _create_message(self, account: str, form: dict[str, list[str]]) -> None:
        outbox = self.server.outbox
        authenticated = outbox.authenticated(self.headers.get("Authorization"))
        if not authenticated or not hmac.compare_digest(
            account.encode(), outbox.account_sid.encode()
        ):
            self._error(AUTH_ERROR, {"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return
        injected = outbox.next_failure()
        if injected is not None:
            phrase = HTTPStatus(injected).phrase
            self._error(ApiError(injected, 20000 + injected, phrase))
            return
        error = check_message(form)
        if error is not None:
            self._error(error)
            return
        message = new_message(account, form, datetime.now(timezone.utc))
        outbox.add(message)
        logger.info(
            "Stand-in accepted %s to %s (%s segments)",
            message["sid"],
            mask(message["to"]),
            message["num_segments"],
        )
        self._json(HTTPStatus.CREATED, message)

    def _set_failures(self, form: dict[str, list[str]]) -> None:
        try:
            count = int(_field(form, "count") or "1")
            status = int(_field(form, "status") or "500")
            self.server.outbox_fail(count, status)
        except ValueError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return
        self._answer(HTTPStatus.NO_CONTENT, b"")

    def _read_body(self) -> bytes | None:
        # The body is always read, even when the answer is an error: closing the socket with
        # unread data makes the client see a connection reset instead of the answer.
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self._error(ApiError(413, 20413, "Request entity too large"))
            return None
        return self.rfile.read(length)

    def _not_found(self, path: str) -> None:
        self._error(ApiError(404, 20404, f"The requested resource {path} was not found"))

    def _error(self, error: ApiError, headers: dict[str, str] | None = None) -> None:
        self._json(HTTPStatus(error.status), error.payload(), headers)

    def _json(
        self, status: HTTPStatus, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        self._answer(status, data, {"Content-Type": "application/json", **(headers or {})})

    def _answer(
        self, status: HTTPStatus, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        """Send access logs to :mod:`logging` instead of stderr."""
        logger.debug("sms stand-in: " + format, *args)


class _StandInServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, outbox: _Outbox) -> None:
        super().__init__((HOST, port), _StandInHandler)
        self.outbox = outbox

    def outbox_fail(self, count: int, status: int) -> None:
        if count < 0:
            raise ValueError("count must not be negative")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        HTTPStatus(status)  # raises ValueError for a status http.server cannot send
        with self.outbox.lock:
            self.outbox.failures.extend([status] * count)


class StandIn:
    """The stand-in, served from a background thread (for tests) or the foreground (CLI).

    Example::

        with StandIn("AC" + "0" * 32, "token") as standin:
            client = make_client("AC" + "0" * 32, "token", standin.url)
            client.messages.create(to="+15555550123", from_="+15555550100", body="Hi")
            assert standin.messages[0]["body"] == "Hi"
    """

    def __init__(
        self, account_sid: str, auth_token: str, *, port: int = 0, record: Path | None = None
    ) -> None:
        """Configure the stand-in; nothing listens until :meth:`start`.

        Args:
            account_sid: The one account SID it accepts.
            auth_token: That account's auth token.
            port: The port on 127.0.0.1; 0 picks a free one (see :attr:`url`).
            record: A JSON-lines file each accepted message is appended to, if any.

        Raises:
            ValueError: A credential is empty.
        """
        if not account_sid or not auth_token:
            raise ValueError("An account SID and auth token are required.")
        self._outbox = _Outbox(account_sid, auth_token, record)
        self._port = port
        self._server: _StandInServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> StandIn:
        """Bind 127.0.0.1 and serve from a daemon thread.

        Returns:
            The stand-in itself, for chaining.
        """
        if self._server is not None:
            raise RuntimeError("The stand-in is already running.")
        self._server = _StandInServer(self._port, self._outbox)
        # A short poll interval makes stop() quick: shutdown() waits for the next poll.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="sms-standin", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Bind 127.0.0.1 and serve in this thread until interrupted (for the CLI).

        Args:
            on_ready: Called with :attr:`url` once the port is bound.
        """
        if self._server is not None:
            raise RuntimeError("The stand-in is already running.")
        self._server = _StandInServer(self._port, self._outbox)
        try:
            if on_ready is not None:
                on_ready(self.url)
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving and release the port. Messages stay readable."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give :func:`bot.sms.outbound.make_client`."""
        if self._server is None:
            raise RuntimeError("The stand-in is not running.")
        return f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def messages(self) -> list[Message]:
        """Copies of the accepted messages, oldest first."""
        with self._outbox.lock:
            return copy.deepcopy(self._outbox.messages)

    def clear(self) -> None:
        """Forget the messages held in memory (the record file is kept)."""
        with self._outbox.lock:
            self._outbox.messages.clear()

    def fail_next(self, count: int, status: int = 500) -> None:
        """Make the next ``count`` authenticated sends fail, e.g. to test retries.

        Args:
            count: How many sends fail.
            status: The HTTP status they get, e.g. 500 or 429 (Twilio error ``20000 +
                status``).

        Raises:
            ValueError: ``count`` is negative or ``status`` is not a 4xx/5xx status.
            RuntimeError: The stand-in is not running.
        """
        if self._server is None:
            raise RuntimeError("The stand-in is not running.")
        self._server.outbox_fail(count, status)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: serve the stand-in until interrupted.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        description="A local stand-in for Twilio's Messages API, on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=8026, help="port (default 8026)")
    parser.add_argument(
        "--record",
        type=Path,
        default=Path("var/sms-outbox.jsonl"),
        help="JSON-lines file accepted messages are appended to",
    )
    # The same variables the twilio library itself reads, so the stand-in and the client
    # agree without either credential on a command line (visible in ps).
    parser.add_argument(
        "--account-sid",
        default=os.environ.get("TWILIO_ACCOUNT_SID"),
        help="account SID to accept (default $TWILIO_ACCOUNT_SID)",
    )
    args = parser.parse_args(argv)
    auth_token = os.environ.get("TWILIO_AUTH_TOKEN")
    if not args.account_sid or not auth_token:
        parser.error("Set TWILIO_ACCOUNT_SID (or --account-sid) and TWILIO_AUTH_TOKEN.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    standin = StandIn(args.account_sid, auth_token, port=args.port, record=args.record)

    def announce(url: str) -> None:
        print(f"Twilio stand-in on {url}, recording to {args.record}; Ctrl-C stops it.", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        standin.serve_forever(announce)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
