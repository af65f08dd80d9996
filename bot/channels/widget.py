"""The website chat widget's channel: ``bot.channels.widget.WidgetInput`` in ``credentials.yml``.

Routes (Rasa mounts the blueprint at ``/webhooks/widget``):

* ``GET  /``            -> ``{"status": "ok"}``
* ``GET  /widget.js``   -> the embeddable script (``bot/web/static/widget.js``)
* ``GET  /widget.css``  -> its stylesheet
* ``POST /session``     -> ``{}`` or ``{"session": token}`` in, ``{"session": token}`` out
* ``POST /webhook``     -> ``{"session": token, "message": text}`` in,
  ``{"messages": [{"text": ..., "buttons": [{"title", "payload"}]?}]}`` out

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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import logging
import re
import secrets
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.common import (
    BadRequestBody,
    OnNewMessage,
    error_response,
    json_response,
    parse_json_object,
    process_user_message,
    required_string,
)
from bot.settings import get_settings

logger = logging.getLogger(__name__)

SENDER_PREFIX = "web-"
TOKEN_RANDOM_BYTES = 24
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}")

# Sanic-CORS skips a request whose context carries this attribute (sanic_cors.core).
_SANIC_CORS_EVALUATED = "_sanic_cors_e"
_PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
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


class WidgetInput(InputChannel):
    """Input channel for the website chat widget (``bot/web/static/widget.js``)."""

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
        module = inspect.getmodule(self)
        blueprint = Blueprint(
            f"custom_webhook_{type(self).__name__}",
            module.__name__ if module is not None else None,
        )

        @blueprint.middleware("request")
        async def claim_cors(request: Request) -> None:
            setattr(request.ctx, _SANIC_CORS_EVALUATED, "1")

        @blueprint.middleware("response")
        async def cors(request: Request, resp: HTTPResponse) -> None:
            setattr(request.ctx, _SANIC_CORS_EVALUATED, "1")
            _apply_cors(request, resp)

        @blueprint.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

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
                return json_response({"session": mint_session_token(secret)})
            if verify_session_token(token, secret) is None:
                logger.info("Widget session rejected: the token does not verify")
                return error_response("Invalid session.", status=403)
            return json_response({"session": token})

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

        return blueprint
