"""The website chat widget's channel: ``bot.channels.widget.WidgetInput`` in ``credentials.yml``.

Routes (Rasa mounts the blueprint at ``/webhooks/widget``):

* ``GET  /``            -> ``{"status": "ok"}``
* ``GET  /widget.js``   -> the embeddable script (``bot/web/static/widget.js``)
* ``GET  /widget.css``  -> its stylesheet
* ``POST /session``     -> ``{}`` or ``{"session": token}`` in, ``{"session": token}`` out
* ``POST /webhook``     -> ``{"session": token, "message": text}`` in,
  ``{"messages": [{"text": ..., "buttons": [{"title", "payload"}]?}]}`` out
* ``GET  /stream?session=TOKEN[&after=CURSOR]`` -> server-sent events: what reaches the
  conversation without the visitor asking (see "Live delivery" below)

Sessions: a token is ``<24 random bytes, base64url>.<HMAC-SHA256(random part), base64url>``,
signed with ``settings.widget_secret``. The conversation's sender id is ``"web-" + random
part``, so it is derived only from a token the server issued: a browser cannot choose or guess
another visitor's sender id. A token whose signature does not verify is answered with 403. Tokens
do not expire on their own; rotating ``BOT_WIDGET_SECRET`` invalidates all of them (the widget
then starts a new session).

CORS: the channel decides CORS for its own routes. It allows exactly the origins in
``settings.widget_allowed_origins`` and always sends ``Vary: Origin``. Rasa's ``--cors`` option
installs Sanic-CORS on the whole app, which would *add* a second ``Access-Control-Allow-Origin``
header to these responses; to prevent that, the channel's middleware marks each request as
already evaluated for Sanic-CORS (``request.ctx._sanic_cors_e``) and replaces any
``Access-Control-*`` headers on the way out. Sanic-CORS also answers every ``OPTIONS`` request
itself before any route runs; the response middleware here still rewrites that answer to this
channel's policy. The widget avoids preflights altogether by posting JSON as ``text/plain``.
Responses to ``/session`` carry ``X-Widget-Stream: 1`` (exposed to allowed origins): the widget
opens the live stream only for a server that says it has one.

Live delivery: when staff take a conversation over in the staff console
(:mod:`bot.console.takeover`), their replies are added to the conversation in Rasa as bot events
marked ``{"staff": name, "source": "console"}``, and Rasa sends them nowhere. ``/stream``
delivers them to the visitor's open widget. It reads the conversation from the agent's tracker
store about once a second and sends every bot event newer than the widget's cursor that the
visitor has not received in a ``/webhook`` response: staff lines always, and any other bot event
written outside the visitor's own turns (a turn runs from the visitor's message to the
assistant's ``action_listen``). Each event's id is the tracker timestamp of what it carries, so
the cursor (``after=`` or the ``Last-Event-ID`` header; the later one wins) lets a reconnecting
widget pick up exactly where it stopped. Without a cursor the stream starts after the newest
event and says so in a ``ready`` event carrying that cursor. Comments keep idle connections open,
and each stream ends after :data:`STREAM_SECONDS`, so the widget reconnects with its cursor.
The conversation is only ever the one the signed session token stands for.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel
from sanic import Blueprint, response
from sanic.exceptions import ServerError
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.common import (
    BadRequestBody,
    OnNewMessage,
    channel_blueprint,
    error_response,
    json_response,
    parse_json_object,
    process_user_message,
    required_string,
)
from bot.settings import get_settings

logger = logging.getLogger(__name__)

STREAM_SECONDS = 25.0
"""How long one live stream stays open before the widget reconnects."""
STREAM_POLL_SECONDS = 1.0
"""How often an open stream reads the conversation."""
STREAM_KEEPALIVE_SECONDS = 10.0
"""The longest silence on an open stream; a comment line is sent after it."""
STREAM_RETRY_MS = 3000
"""The reconnection delay the stream suggests to the browser."""
STREAM_MAX_PER_SESSION = 4
"""Open streams allowed per conversation (a few tabs); more get 429."""
STREAM_MAX_OPEN = 200
"""Open streams allowed in this process; more get 429. Each reads the tracker store once a
second, so this bounds the load the streams put on it."""
STREAM_HEADER = "X-Widget-Stream"
"""Set on ``/session`` responses: this server has the live stream."""
STAFF_METADATA_KEY = "staff"
"""The key of a staff line's bot-event metadata that holds the staff member's display name."""
_CURSOR_PATTERN = re.compile(r"\d{1,12}(\.\d{1,20})?")

SENDER_PREFIX = "web-"
TOKEN_RANDOM_BYTES = 24
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}")

# Sanic-CORS skips a request whose context carries this attribute (sanic_cors.core).
_SANIC_CORS_EVALUATED = "_sanic_cors_e"
_PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Last-Event-ID",
    "Access-Control-Max-Age": "600",
}
_STATIC_FILES = {
    "widget.js": "text/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signature(random_part: str, secret: bytes) -> str:
    return _b64url(hmac.new(secret, random_part.encode("ascii"), hashlib.sha256).digest())


def mint_session_token(secret: bytes) -> str:
    """Create a new signed session token.

    Args:
        secret: The widget secret (``settings.widget_secret``).

    Returns:
        ``<random part>.<signature>``, both base64url without padding.
    """
    random_part = _b64url(secrets.token_bytes(TOKEN_RANDOM_BYTES))
    return f"{random_part}.{_signature(random_part, secret)}"


def verify_session_token(token: object, secret: bytes) -> str | None:
    """Check a session token and return the sender id it stands for.

    Args:
        token: The token as received (any JSON value).
        secret: The widget secret.

    Returns:
        ``"web-" + random part`` if the token is well-formed and its signature verifies,
        else ``None``.
    """
    if not isinstance(token, str) or not _TOKEN_PATTERN.fullmatch(token):
        return None
    random_part, signature = token.split(".")
    try:
        base64.urlsafe_b64decode(random_part)
    except (ValueError, binascii.Error):
        return None
    if not hmac.compare_digest(signature, _signature(random_part, secret)):
        return None
    return SENDER_PREFIX + random_part


def widget_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reduce Rasa's collected bot messages to what the widget renders: text, buttons, and the
    crisis flag.

    Images, attachments, custom payloads (except ``{"crisis": true}``, which the widget uses to
    keep crisis resources highlighted) and anything else are dropped, as are buttons without
    a string title and payload (e.g. URL buttons). A message left with neither text nor buttons
    is dropped.

    Args:
        messages: ``CollectingOutputChannel.messages``.

    Returns:
        ``[{"text": ..., "buttons": [{"title": ..., "payload": ...}], "crisis": true}]`` with
        optional keys.
    """
    result: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {}
        text = message.get("text")
        if isinstance(text, str) and text:
            item["text"] = text
        buttons = [
            {"title": button["title"], "payload": button["payload"]}
            for button in message.get("buttons") or []
            if isinstance(button, dict)
            and isinstance(button.get("title"), str)
            and isinstance(button.get("payload"), str)
            and button["title"]
            and button["payload"]
        ]
        if buttons:
            item["buttons"] = buttons
        custom = message.get("custom")
        if item and isinstance(custom, dict) and custom.get("crisis") is True:
            item["crisis"] = True
        if item:
            result.append(item)
    return result


def static_dir() -> Path:
    """The directory the widget's script and stylesheet are served from."""
    import bot.web

    return Path(bot.web.__file__).resolve().parent / "static"


def _static_response(request: Request, name: str) -> HTTPResponse:
    try:
        data = (static_dir() / name).read_bytes()
    except OSError as error:
        logger.error("Widget static file %s unavailable: %s", name, type(error).__name__)
        return error_response("Not found.", status=404)
    etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
    headers = {
        "Cache-Control": "no-cache",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # The script is meant to be embedded by other origins' pages.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.headers.get("if-none-match") == etag:
        return HTTPResponse(status=304, headers=headers)
    return response.raw(data, content_type=_STATIC_FILES[name], headers=headers)


def _apply_cors(request: Request, resp: HTTPResponse) -> None:
    """Set this channel's CORS headers on a response, replacing any set by others."""
    for key in [key for key in resp.headers if key.lower().startswith("access-control-")]:
        del resp.headers[key]
    vary = resp.headers.get("Vary", "")
    if "origin" not in vary.lower():
        resp.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
    origin = request.headers.get("origin")
    if origin and origin in get_settings().widget_allowed_origins:
        resp.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            resp.headers.update(_PREFLIGHT_HEADERS)
        elif STREAM_HEADER in resp.headers:
            resp.headers["Access-Control-Expose-Headers"] = STREAM_HEADER


# -- live delivery -----------------------------------------------------------------------

def parse_cursor(*values: str | None) -> float | None:
    """The latest of the cursors a widget sent (``after=``, ``Last-Event-ID``).

    Args:
        *values: The raw values; ``None`` or empty where absent.

    Returns:
        The cursor (a tracker timestamp), or ``None`` when none was sent.

    Raises:
        ValueError: A value is not a non-negative decimal number.
    """
    cursors: list[float] = []
    for value in values:
        if value is None or value == "":
            continue
        if not _CURSOR_PATTERN.fullmatch(value):
            raise ValueError("bad cursor")
        cursors.append(float(value))
    return max(cursors) if cursors else None


def format_cursor(timestamp: float) -> str:
    """A cursor as sent in an event id: the exact float, so it parses back to the same one."""
    return repr(float(timestamp))


def staff_name(event: Any) -> str | None:
    """The staff member's display name if a Rasa event is a staff line, else ``None``."""
    if getattr(event, "type_name", None) != "bot":
        return None
    metadata = getattr(event, "metadata", None)
    name = metadata.get(STAFF_METADATA_KEY) if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else None


def stream_items(events: Iterable[Any], after: float) -> list[tuple[float, dict[str, Any]]]:
    """The bot messages newer than ``after`` that a visitor's widget has not received.

    A bot event inside one of the visitor's own turns (from a ``user`` event that came through
    this channel to the next ``action_listen``, ``pause`` or ``resume``) was in the reply to
    ``/webhook`` and is skipped; staff lines, and bot events written outside such a turn (through
    Rasa's HTTP API), are delivered.

    Args:
        events: The conversation's Rasa events, oldest first.
        after: The widget's cursor.

    Returns:
        ``(timestamp, message)`` pairs, oldest first; a message is ``{"text", "staff"}`` for a
        staff line, else what :func:`widget_messages` makes of the event.
    """
    items: list[tuple[float, dict[str, Any]]] = []
    in_visitor_turn = False
    for event in events:
        kind = getattr(event, "type_name", None)
        if kind == "user":
            in_visitor_turn = getattr(event, "input_channel", None) == WidgetInput.name()
        elif kind in ("pause", "resume") or (
            kind == "action" and getattr(event, "action_name", None) == "action_listen"
        ):
            in_visitor_turn = False
        elif kind == "bot":
            timestamp = float(getattr(event, "timestamp", 0) or 0)
            name = staff_name(event)
            if name is not None:
                # Whatever came before, the visitor's turn is over once staff write.
                in_visitor_turn = False
                text = getattr(event, "text", None)
                if timestamp > after and isinstance(text, str) and text:
                    items.append((timestamp, {"text": text, "staff": name}))
                continue
            if in_visitor_turn or timestamp <= after:
                continue
            data = getattr(event, "data", None)
            data = data if isinstance(data, dict) else {}
            shaped = widget_messages([{
                "text": getattr(event, "text", None),
                "buttons": data.get("buttons"),
                "custom": data.get("custom"),
            }])
            items.extend((timestamp, message) for message in shaped)
    return items


async def read_events(agent: Any, sender_id: str) -> list[Any] | None:
    """The conversation's events from the agent's tracker store.

    Args:
        agent: The Rasa agent (``request.app.ctx.agent``), or ``None``.
        sender_id: The conversation.

    Returns:
        The events (empty for a conversation not yet stored), or ``None`` when the tracker store
        cannot be read (logged, without the conversation).
    """
    store = getattr(agent, "tracker_store", None)
    if store is None:
        return None
    try:
        tracker = await store.retrieve(sender_id)
    except Exception as error:
        logger.warning("Widget stream: tracker store unavailable: %s", type(error).__name__)
        return None
    return list(tracker.events) if tracker is not None else []


def _sse(data: dict[str, Any], *, event_id: str | None = None, event: str | None = None) -> str:
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    # json.dumps escapes line breaks, so the data is always exactly one line.
    lines.append("data: " + json.dumps(data, ensure_ascii=False))
    return "\n".join(lines) + "\n\n"


class _StreamCounter:
    """Open streams per conversation and in all, to refuse floods of connections."""

    def __init__(self) -> None:
        self.per_sender: dict[str, int] = {}
        self.total = 0

    def acquire(self, sender_id: str) -> bool:
        if self.total >= STREAM_MAX_OPEN or self.per_sender.get(sender_id, 0) >= \
                STREAM_MAX_PER_SESSION:
            return False
        self.per_sender[sender_id] = self.per_sender.get(sender_id, 0) + 1
        self.total += 1
        return True

    def release(self, sender_id: str) -> None:
        self.total -= 1
        left = self.per_sender.get(sender_id, 1) - 1
        if left > 0:
            self.per_sender[sender_id] = left
        else:
            self.per_sender.pop(sender_id, None)


class WidgetInput(InputChannel):
    """Input channel for the website chat widget (``bot/web/static/widget.js``)."""

    def __init__(self) -> None:
        """Create the channel."""
        super().__init__()
        self._streams = _StreamCounter()

    @classmethod
    def name(cls) -> str:
        """The channel name; also the URL prefix (``/webhooks/widget``)."""
        return "widget"

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Build the widget's routes.

        Args:
            on_new_message: Rasa's callback that processes one ``UserMessage``.

        Returns:
            The blueprint (see the module docstring for the routes).
        """
        blueprint = channel_blueprint(self)

        @blueprint.middleware("request")
        async def claim_cors(request: Request) -> None:
            setattr(request.ctx, _SANIC_CORS_EVALUATED, "1")

        @blueprint.middleware("response")
        async def cors(request: Request, resp: HTTPResponse) -> None:
            setattr(request.ctx, _SANIC_CORS_EVALUATED, "1")
            _apply_cors(request, resp)

        @blueprint.route("/widget.js", methods=["GET"])
        async def script(request: Request) -> HTTPResponse:
            return _static_response(request, "widget.js")

        @blueprint.route("/widget.css", methods=["GET"])
        async def stylesheet(request: Request) -> HTTPResponse:
            return _static_response(request, "widget.css")

        @blueprint.route("/session", methods=["POST", "OPTIONS"])
        async def session(request: Request) -> HTTPResponse:
            if request.method == "OPTIONS":
                return response.empty()
            secret = get_settings().widget_secret
            try:
                body = parse_json_object(request.body) if request.body else {}
            except BadRequestBody as error:
                return error_response(error.message, error.status)
            token = body.get("session")
            if token is None:
                token = mint_session_token(secret)
            elif verify_session_token(token, secret) is None:
                logger.info("Widget session rejected: the token does not verify")
                return error_response("Invalid session.", status=403)
            answer = json_response({"session": token})
            answer.headers[STREAM_HEADER] = "1"
            return answer

        @blueprint.route("/webhook", methods=["POST", "OPTIONS"])
        async def webhook(request: Request) -> HTTPResponse:
            if request.method == "OPTIONS":
                return response.empty()
            try:
                body = parse_json_object(request.body)
                token = required_string(body, "session")
                message = required_string(body, "message")
            except BadRequestBody as error:
                return error_response(error.message, error.status)
            sender_id = verify_session_token(token, get_settings().widget_secret)
            if sender_id is None:
                logger.info("Widget message rejected: the session token does not verify")
                return error_response("Invalid session.", status=403)
            result = await process_user_message(
                request,
                on_new_message,
                raw_text=message,
                sender_id=sender_id,
                input_channel=self.name(),
            )
            reply: dict[str, Any] = {"messages": widget_messages(result.messages)}
            if result.failed:
                # Lets the widget show its own notice if even the apology is unavailable.
                reply["failed"] = True
            return json_response(reply)

        @blueprint.route("/stream", methods=["GET", "OPTIONS"])
        async def stream(request: Request) -> HTTPResponse | None:
            if request.method == "OPTIONS":
                return response.empty()
            sender_id = verify_session_token(request.args.get("session"),
                                             get_settings().widget_secret)
            if sender_id is None:
                logger.info("Widget stream rejected: the session token does not verify")
                return error_response("Invalid session.", status=403)
            try:
                cursor = parse_cursor(request.args.get("after"),
                                      request.headers.get("last-event-id"))
            except ValueError:
                return error_response("Invalid cursor.", status=400)
            if not self._streams.acquire(sender_id):
                return error_response("Too many open streams.", status=429)
            try:
                await self._stream(request, sender_id, cursor)
            finally:
                self._streams.release(sender_id)
            return None

        return blueprint

    async def _stream(self, request: Request, sender_id: str, cursor: float | None) -> None:
        """Send the conversation's undelivered bot messages until :data:`STREAM_SECONDS` pass."""
        agent = getattr(request.app.ctx, "agent", None)
        started = time.monotonic()
        events = await read_events(agent, sender_id)
        resp = await request.respond(
            content_type="text/event-stream; charset=utf-8",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                     "X-Accel-Buffering": "no"},
        )
        try:
            await resp.send(f"retry: {STREAM_RETRY_MS}\n\n")
            if cursor is None:
                latest = [float(getattr(e, "timestamp", 0) or 0) for e in events or []]
                # Unreadable store: start from now; events are stamped when they are written.
                cursor = max(latest) if latest else (time.time() if events is None else 0.0)
                await resp.send(_sse({}, event="ready", event_id=format_cursor(cursor)))
            last_sent = time.monotonic()
            while True:
                for timestamp, message in stream_items(events or [], cursor):
                    await resp.send(_sse(message, event_id=format_cursor(timestamp)))
                    cursor, last_sent = timestamp, time.monotonic()
                if time.monotonic() - started >= STREAM_SECONDS:
                    break
                if time.monotonic() - last_sent >= STREAM_KEEPALIVE_SECONDS:
                    await resp.send(": keep-alive\n\n")
                    last_sent = time.monotonic()
                await asyncio.sleep(STREAM_POLL_SECONDS)
                events = await read_events(agent, sender_id)
            await resp.eof()
        except (ConnectionError, OSError, ServerError) as error:
            # The visitor left (tab closed, network gone): nothing to tell anyone.
            logger.debug("Widget stream closed early: %s", type(error).__name__)
