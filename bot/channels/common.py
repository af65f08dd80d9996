"""What the widget and REST channels share.

* :func:`read_json_object` reads a request body that must be a JSON object, and turns every way
  it can be wrong into a :class:`BadRequestBody` (answered as ``400 {"error": ...}``) instead of
  an exception that would become a 500.
* :func:`domain_response_text` fetches one of the running assistant's responses by name, so the
  sentences a patient reads are all in ``domain.yml``, none in this code.
* :func:`process_user_message` runs a cleaned message through the crisis check
  (:mod:`bot.safety.guard`) and then Rasa, and guarantees an answer: an empty message gets
  ``utter_empty_message`` without bothering Rasa; crisis language gets the crisis resources first,
  whatever happens next; and *any* failure inside Rasa (action server down, tracker store
  down ...) is logged and answered with ``utter_technical_problem`` (or, in a crisis, with
  ``utter_crisis_still_here``, never with "something went wrong").

Logging rule for this package: never log what a user wrote or any slot value. Log a short
prefix of the sender id and the type of an error, nothing else.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.nlg.interpolator import interpolate_text
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.text import clean_user_text
from bot.safety import guard
from bot.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
"""Largest request body read. Generous: a 2,000-character emoji message is ~25 kB as JSON."""

RESPONSE_TECHNICAL_PROBLEM = "utter_technical_problem"
RESPONSE_EMPTY_MESSAGE = "utter_empty_message"

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

_NO_STORE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class BadRequestBody(ValueError):
    """The request body is not what the endpoint accepts; answered with HTTP 400.

    Attributes:
        status: The HTTP status to answer with.
        message: A short, developer-facing explanation (never contains the body).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        """Create the error.

        Args:
            message: What is wrong with the body, for the ``error`` field of the answer.
            status: The HTTP status to answer with.
        """
        super().__init__(message)
        self.message = message
        self.status = status


def json_response(body: Any, status: int = 200) -> HTTPResponse:
    """A JSON answer that no browser or proxy caches (replies can contain patient data).

    Args:
        body: The JSON-serialisable body.
        status: The HTTP status.

    Returns:
        The response.
    """
    return response.json(body, status=status, headers=dict(_NO_STORE_HEADERS), dumps=json.dumps)


def error_response(message: str, status: int = 400) -> HTTPResponse:
    """The ``{"error": message}`` answer used for every rejected request.

    Args:
        message: A short, developer-facing explanation.
        status: The HTTP status (4xx).

    Returns:
        The response.
    """
    return json_response({"error": message}, status=status)


def parse_json_object(body: bytes | None) -> dict[str, Any]:
    """Parse a request body that must be a UTF-8 JSON object.

    Args:
        body: The raw body.

    Returns:
        The parsed object.

    Raises:
        BadRequestBody: The body is missing, too large, not UTF-8, not JSON, or not an object.
    """
    if not body:
        raise BadRequestBody("The request body must be a JSON object.")
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestBody("The request body is too large.", status=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestBody("The request body is not valid UTF-8.") from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequestBody("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise BadRequestBody("The request body must be a JSON object.")
    return value


def read_json_object(request: Request) -> dict[str, Any]:
    """Read a request's body as a JSON object, whatever its ``Content-Type`` says.

    The content type is ignored on purpose: the widget posts JSON as ``text/plain`` so that the
    browser sends a "simple" cross-origin request without a CORS preflight.

    Args:
        request: The incoming request.

    Returns:
        The parsed object.

    Raises:
        BadRequestBody: See :func:`parse_json_object`.
    """
    return parse_json_object(request.body)


def optional_string(body: Mapping[str, Any], key: str) -> str | None:
    """Return ``body[key]`` if it is a string, ``None`` if it is missing or null.

    Args:
        body: The parsed JSON object.
        key: The field name.

    Returns:
        The value, or ``None``.

    Raises:
        BadRequestBody: The field is present with a type other than string.
    """
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestBody(f"'{key}' must be a string.")
    return value


def required_string(body: Mapping[str, Any], key: str) -> str:
    """Return ``body[key]``, which must be a string.

    Args:
        body: The parsed JSON object.
        key: The field name.

    Returns:
        The value (possibly empty).

    Raises:
        BadRequestBody: The field is missing or not a string.
    """
    value = optional_string(body, key)
    if value is None:
        raise BadRequestBody(f"'{key}' is required.")
    return value


def sender_prefix(sender_id: str | None) -> str:
    """A short prefix of a sender id, for logs (enough to correlate, not to hijack).

    Args:
        sender_id: The conversation's sender id.

    Returns:
        The first 12 characters followed by an ellipsis.
    """
    return f"{(sender_id or '')[:12]}…"


def _response_vars() -> dict[str, str]:
    """The clinic's template values; empty (logged) if the clinic configuration is broken."""
    # Imported here so importing this module does not pull in the settings machinery.
    from bot.clinic import get_clinic

    try:
        return get_clinic().response_vars()
    except Exception as error:
        logger.error("Clinic configuration unavailable for responses: %s", type(error).__name__)
        return {}


@lru_cache(maxsize=1)
def _domain_file_responses() -> dict[str, Any]:
    """The responses of ``domain.yml`` on disk: the fallback when no model is loaded."""
    with (PROJECT_ROOT / "domain.yml").open(encoding="utf-8") as handle:
        return dict(yaml.safe_load(handle).get("responses") or {})


def response_text(agent: Any, name: str, **values: Any) -> str | None:
    """The text of one of the running assistant's responses, with the clinic's values filled in.

    Reads the first variation of ``name`` from the agent's domain (or, when no model is loaded,
    from ``domain.yml`` itself, so the crisis resources never depend on a model) and
    interpolates it with :meth:`bot.clinic.Clinic.response_vars` plus ``values``.

    Args:
        agent: The Rasa agent (``app.ctx.agent``), or ``None``.
        name: The response name, e.g. ``utter_technical_problem``.
        **values: Extra template values (e.g. ``first_name``).

    Returns:
        The text, or ``None`` (logged) if neither the model nor the file has the response.
    """
    try:
        responses = agent.domain.responses if agent is not None and agent.domain else {}
        variations = responses.get(name) or _domain_file_responses()[name]
        text = variations[0]["text"]
    except Exception as error:
        logger.error("Domain response %s unavailable: %s", name, type(error).__name__)
        return None
    if not isinstance(text, str) or not text:
        logger.error("Domain response %s has no text in its first variation", name)
        return None
    return interpolate_text(text, {**_response_vars(), **values})


def domain_response_text(request: Request, name: str) -> str | None:
    """:func:`response_text` for the agent of the app serving ``request``."""
    return response_text(getattr(request.app.ctx, "agent", None), name)


@dataclass
class ProcessResult:
    """The outcome of handing one message to Rasa.

    Attributes:
        messages: The bot's messages, as collected by ``CollectingOutputChannel`` (dicts with
            ``recipient_id``, ``text``, ``buttons`` ...).
        failed: Whether Rasa raised while processing; ``messages`` then ends with
            ``utter_technical_problem`` if the domain has it.
        empty: Whether the message was empty after cleaning and so never reached Rasa.
        crisis: Whether the crisis check flagged the message (``messages`` then starts with
            the crisis resources).
        paused: Whether staff hold the conversation (the assistant stays silent, except for
            crisis resources).
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    failed: bool = False
    empty: bool = False
    crisis: bool = False
    paused: bool = False


def text_message(
    sender_id: str, text: str | None, *, crisis: bool = False
) -> list[dict[str, Any]]:
    if text is None:
        return []
    message: dict[str, Any] = {"recipient_id": sender_id, "text": text}
    if crisis:
        # Lets a client keep the crisis resources on screen (the widget highlights them).
        message["custom"] = {"crisis": True}
    return [message]


def _failure_location(error: BaseException) -> str:
    """``file:line in function`` of the innermost frame: code locations only, never values."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown location"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"


@dataclass
class CrisisCheck:
    """The crisis check of one message, and what the channel sends at once because of it.

    Attributes:
        screening: The guard's screening (assessment, context, parse).
        resources: The crisis resources to send first (empty when there is no crisis).
        still_here: The "I'm still here" message, for when Rasa cannot answer in a crisis.
        metadata: The ``UserMessage`` metadata, marked as handled when there is a crisis.
    """

    screening: guard.Screening
    resources: list[dict[str, Any]]
    still_here: list[dict[str, Any]]
    metadata: dict[str, Any] | None

    @property
    def crisis(self) -> bool:
        """Whether the message took the crisis path."""
        return self.screening.assessment.crisis


async def check_for_crisis(
    agent: Any,
    *,
    text: str,
    sender_id: str,
    input_channel: str,
    metadata: dict[str, Any] | None = None,
) -> CrisisCheck:
    """Run the crisis check on a cleaned message; on a crisis, escalate in the background.

    The resources do not wait for anything: not for Rasa, the action server, the database or
    the staff alert (which runs in the background).

    Args:
        agent: The Rasa agent, or ``None``.
        text: The cleaned, non-empty message.
        sender_id: The conversation.
        input_channel: The channel name.
        metadata: Metadata for the ``UserMessage``.

    Returns:
        The check.
    """
    screening = await guard.screen(agent, sender_id, text)
    assessment = screening.assessment
    if not assessment.crisis:
        return CrisisCheck(screening, [], [], metadata)
    resources = text_message(
        sender_id, response_text(agent, guard.resources_response(assessment)), crisis=True
    )
    guard.escalate(sender_id, input_channel, text, screening)
    logger.warning(
        "Crisis path for sender %s (layers: %s)",
        sender_prefix(sender_id), ",".join(assessment.layers),
    )
    return CrisisCheck(
        screening,
        resources,
        text_message(sender_id, response_text(agent, guard.still_here_response(assessment))),
        {**(metadata or {}), "safety": {**assessment.as_metadata(), "handled": True}},
    )


def channel_blueprint(channel: object) -> Blueprint:
    """A blueprint for one of the project's input channels, named the way Rasa names custom
    channels' blueprints, with the ``GET /`` health route every channel answers.

    Args:
        channel: The input channel.

    Returns:
        The blueprint; the channel adds its own routes.
    """
    module = inspect.getmodule(channel)
    blueprint = Blueprint(
        f"custom_webhook_{type(channel).__name__}",
        module.__name__ if module is not None else None,
    )

    @blueprint.route("/", methods=["GET"])
    async def health(request: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    return blueprint


async def held_by_staff(sender_id: str) -> bool:
    """Whether a staff member holds the conversation (took it over in the console).

    The database is the record of who holds a conversation; Rasa's pause is how the assistant
    is kept quiet. The two can part: Rasa starts a new session after a long silence, and a new
    session is no longer paused. A database that cannot be read leaves it to Rasa's pause.
    """

    def holder() -> bool:
        from bot.db.session import unit_of_work
        from bot.services import conversations

        with unit_of_work() as session:
            return conversations.holder(session, sender_id) is not None

    try:
        return await asyncio.to_thread(holder)
    except Exception as error:  # the database is down: Rasa's own pause still applies
        logger.warning("Could not check whether staff hold sender %s: %s",
                       sender_prefix(sender_id), type(error).__name__)
        return False


async def _log_while_held(agent: Any, message: UserMessage) -> None:
    """Record a message for the staff member who holds the conversation, without the assistant
    answering, and pause the conversation again if a new Rasa session had unpaused it."""
    from rasa.shared.core.events import ConversationPaused

    processor = agent.processor
    async with agent.lock_store.lock(message.sender_id):
        tracker = await processor.log_message(message, should_save_tracker=False)
        if not tracker.is_paused():
            tracker.update(ConversationPaused())
        await processor.save_tracker(tracker)


async def run_dialogue(
    agent: Any,
    on_new_message: OnNewMessage,
    check: CrisisCheck,
    *,
    text: str,
    sender_id: str,
    input_channel: str,
    first: list[dict[str, Any]] | None = None,
) -> ProcessResult:
    """Hand a checked message to Rasa and always answer.

    Args:
        agent: The Rasa agent, or ``None``.
        on_new_message: The callback Rasa gave the channel's blueprint.
        check: The message's crisis check.
        text: The cleaned message.
        sender_id: The conversation.
        input_channel: The channel name stored on the ``UserMessage``.
        first: Messages to put before Rasa's (the crisis resources, unless the channel has
            sent them already).

    Returns:
        The bot's messages and what happened.
    """
    first = list(first or [])
    crisis = check.crisis
    collector = CollectingOutputChannel()
    message = UserMessage(
        text,
        collector,
        sender_id,
        parse_data=check.screening.parse_data,
        input_channel=input_channel,
        metadata=check.metadata,
    )
    try:
        if agent is not None and await held_by_staff(sender_id):
            await _log_while_held(agent, message)
            return ProcessResult(messages=first, crisis=crisis, paused=True)
        await on_new_message(message)
    except Exception as error:
        # The exception's message may quote the tracker (user text, slot values): log its type
        # and where it was raised, never its text or its traceback's values.
        logger.error(
            "Processing a %s message for sender %s failed: %s at %s",
            input_channel,
            sender_prefix(sender_id),
            type(error).__name__,
            _failure_location(error),
        )
        if crisis:
            return ProcessResult(
                messages=first + list(collector.messages) + check.still_here,
                failed=True, crisis=True,
            )
        return ProcessResult(
            messages=list(collector.messages)
            + text_message(sender_id, response_text(agent, RESPONSE_TECHNICAL_PROBLEM)),
            failed=True,
        )
    if not collector.messages:
        if check.screening.context.paused:
            # Staff hold the conversation: the message is in the tracker for them, and the
            # assistant says nothing of its own (apart from crisis resources).
            return ProcessResult(messages=first, crisis=crisis, paused=True)
        # Every turn of this assistant's dialogue replies. Silence means Rasa swallowed a
        # failure (it logs a failing custom action and carries on), so say so rather than
        # leave the person waiting.
        logger.error("No reply to a %s message for sender %s", input_channel,
                     sender_prefix(sender_id))
        if crisis:
            return ProcessResult(messages=first + check.still_here, failed=True, crisis=True)
        return ProcessResult(
            messages=text_message(
                sender_id, response_text(agent, RESPONSE_TECHNICAL_PROBLEM)),
            failed=True,
        )
    return ProcessResult(messages=first + list(collector.messages), crisis=crisis)


async def process_user_message(
    request: Request,
    on_new_message: OnNewMessage,
    *,
    raw_text: str,
    sender_id: str,
    input_channel: str,
    metadata: dict[str, Any] | None = None,
) -> ProcessResult:
    """Clean a message, check it for crisis language, hand it to Rasa, and always answer.

    Args:
        request: The incoming request (its app holds the agent).
        on_new_message: The callback Rasa gave the channel's blueprint.
        raw_text: The message as received.
        sender_id: The conversation's sender id (already validated).
        input_channel: The channel name stored on the ``UserMessage``.
        metadata: Optional metadata for the ``UserMessage``.

    Returns:
        The bot's messages and what happened.
    """
    agent = getattr(request.app.ctx, "agent", None)
    text = clean_user_text(raw_text)
    if not text:
        return ProcessResult(
            messages=text_message(sender_id, response_text(agent, RESPONSE_EMPTY_MESSAGE)),
            empty=True,
        )
    check = await check_for_crisis(
        agent, text=text, sender_id=sender_id, input_channel=input_channel, metadata=metadata
    )
    return await run_dialogue(
        agent, on_new_message, check, text=text, sender_id=sender_id,
        input_channel=input_channel, first=check.resources,
    )
