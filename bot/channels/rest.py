"""A stricter drop-in for Rasa's REST channel, for development and benchmarks.

Registered in ``credentials.yml`` as ``bot.channels.rest.SafeRestInput:`` (instead of, not next
to, Rasa's own ``rest:``; both claim ``/webhooks/rest/webhook``). The JSON contract is Rasa's:
``POST {"sender": ..., "message": ..., "metadata": {...}?}`` answers with a list of
``{"recipient_id", "text", ...}``. Differences:

* malformed bodies, a missing or malformed ``sender`` and a non-string ``message`` are answered
  with ``400 {"error": ...}`` instead of an exception;
* the message is cleaned with :func:`bot.channels.text.clean_user_text`;
* a failure inside Rasa is answered with ``utter_technical_problem`` (HTTP 200), not a 5xx, and
  is logged without the user's text;
* streaming (``?stream=true`` or ``"stream": true``) is not supported (400), and the input
  channel is always ``rest`` (an ``input_channel`` field is ignored).

This channel trusts the sender id it is given, so it must not be exposed to the public internet.
"""

from __future__ import annotations

import re
from typing import Any

import rasa.utils.endpoints
from rasa.core.channels.rest import RestInput
from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.common import (
    BadRequestBody,
    OnNewMessage,
    channel_blueprint,
    error_response,
    json_response,
    process_user_message,
    read_json_object,
    required_string,
)

SENDER_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
"""What a sender id sent to this channel must look like."""


def parse_rest_body(body: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    """Validate a REST webhook body.

    Args:
        body: The parsed JSON object.

    Returns:
        ``(sender, message, metadata)``; the message is still raw (uncleaned).

    Raises:
        BadRequestBody: The sender is missing or malformed, the message is not a string, or the
            metadata is not an object.
    """
    sender = required_string(body, "sender")
    if not SENDER_PATTERN.fullmatch(sender):
        raise BadRequestBody("'sender' must be 1-128 characters of A-Z a-z 0-9 _ . : -")
    message = required_string(body, "message")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequestBody("'metadata' must be an object.")
    return sender, message, metadata


class SafeRestInput(RestInput):
    """Rasa's REST channel with input hygiene and a guaranteed answer."""

    @classmethod
    def name(cls) -> str:
        """The channel name; also the URL prefix, so the URL stays ``/webhooks/rest/webhook``."""
        return "rest"

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Build the channel's routes.

        Args:
            on_new_message: Rasa's callback that processes one ``UserMessage``.

        Returns:
            The blueprint with ``GET /`` and ``POST /webhook``.
        """
        blueprint = channel_blueprint(self)

        @blueprint.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                body = read_json_object(request)
                if body.get("stream") or rasa.utils.endpoints.bool_arg(
                    request, "stream", default=False
                ):
                    raise BadRequestBody("Streaming is not supported by this channel.")
                sender, message, metadata = parse_rest_body(body)
            except BadRequestBody as error:
                return error_response(error.message, error.status)
            result = await process_user_message(
                request,
                on_new_message,
                raw_text=message,
                sender_id=sender,
                input_channel=self.name(),
                metadata=metadata,
            )
            return json_response(result.messages)

        return blueprint
