"""The crisis check every channel runs on every message, before Rasa.

:func:`screen` reads the person's recent messages, asks the NLU model for its opinion (when the
model is loaded) and runs :meth:`CrisisDetector.assess`. On a crisis, the channel sends
:func:`resources_response` at once and calls :func:`escalate`, which records the urgent
handoff and alerts staff in the background, so the reply never waits for either.

Nothing here depends on the action server, and the database is only needed for the record:
when it is down, staff are still alerted (the alert then has no handoff link) and the record is
kept, encrypted, in a spool directory that is written to the database on the next chance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.safety.detector import (
    CRISIS_INTENT,
    WINDOW_MESSAGES,
    Assessment,
    get_detector,
)

logger = logging.getLogger(__name__)

EXTERNAL_MESSAGE_PREFIX = "EXTERNAL: "
"""How Rasa marks intents triggered through its HTTP API (a scheduled check-in, a reminder):
not the person's words, so not part of the crisis window."""

WINDOW_AGE = dt.timedelta(hours=1)
"""Earlier messages older than this do not count towards the window."""

RESPONSE_RESOURCES = "utter_crisis_resources"
RESPONSE_RESOURCES_OVERDOSE = "utter_crisis_resources_overdose"
RESPONSE_STILL_HERE = "utter_crisis_still_here"
SPANISH_SUFFIX = "_es"

_MEMORY_CONVERSATIONS = 10_000
_SPOOL_DIR = "spool/crisis"


def resources_response(assessment: Assessment) -> str:
    """The name of the crisis-resources response for an assessment (language, overdose)."""
    name = RESPONSE_RESOURCES_OVERDOSE if assessment.poison_control else RESPONSE_RESOURCES
    return name + (SPANISH_SUFFIX if assessment.language == "es" else "")


def still_here_response(assessment: Assessment) -> str:
    """The name of the "I'm still here" response, in the assessment's language."""
    return RESPONSE_STILL_HERE + (SPANISH_SUFFIX if assessment.language == "es" else "")


@dataclass
class ConversationContext:
    """What the crisis check needs to know about the conversation so far.

    Attributes:
        history: The person's earlier messages in the window, oldest first.
        paused: Whether staff have paused the assistant (human takeover).
        active_form: The form that is active, if any.
    """

    history: list[str] = field(default_factory=list)
    paused: bool = False
    active_form: str | None = None


class _RecentMessages:
    """Each conversation's last few messages, in process memory: the window's fallback when
    the tracker store cannot be read. Bounded in conversations and in age."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def add(self, sender_id: str, text: str) -> None:
        queue = self._items.pop(sender_id, None) or deque(maxlen=WINDOW_MESSAGES)
        queue.append((time.monotonic(), text))
        self._items[sender_id] = queue
        while len(self._items) > _MEMORY_CONVERSATIONS:
            self._items.popitem(last=False)

    def history(self, sender_id: str) -> list[str]:
        cutoff = time.monotonic() - WINDOW_AGE.total_seconds()
        return [text for at, text in self._items.get(sender_id, ()) if at >= cutoff]


_recent = _RecentMessages()


def recent_messages(sender_id: str) -> list[str]:
    """This process's memory of a conversation's last few messages (within the window's age),
    oldest first; used where no tracker holds them (SMS from an unknown number)."""
    return _recent.history(sender_id)


async def conversation_context(agent: Any, sender_id: str) -> ConversationContext:
    """Read the window, pause state and active form from the tracker store.

    Falls back to this process's memory of recent messages when the tracker store cannot be
    read (it is down, or no agent is loaded).

    Args:
        agent: The Rasa agent (``request.app.ctx.agent``), or ``None``.
        sender_id: The conversation.

    Returns:
        The context.
    """
    try:
        tracker = await agent.tracker_store.retrieve(sender_id)
    except Exception as error:
        logger.warning("Crisis window read from memory (tracker store: %s)", type(error).__name__)
        return ConversationContext(history=_recent.history(sender_id))
    if tracker is None:
        return ConversationContext(history=_recent.history(sender_id))
    cutoff = time.time() - WINDOW_AGE.total_seconds()
    texts = [
        event.text
        for event in tracker.events
        if getattr(event, "type_name", None) == "user"
        and isinstance(getattr(event, "text", None), str)
        and not event.text.startswith(("/", EXTERNAL_MESSAGE_PREFIX))
        and (event.timestamp or 0) >= cutoff
    ]
    return ConversationContext(
        history=texts[-(WINDOW_MESSAGES - 1):],
        paused=tracker.is_paused(),
        active_form=tracker.active_loop_name,
    )


async def nlu_parse(agent: Any, text: str) -> dict[str, Any] | None:
    """The model's parse of ``text`` (the second layer), or ``None`` when it is unavailable."""
    try:
        parse = await agent.parse_message(text)
    except Exception as error:
        logger.warning("NLU parse for the crisis check failed: %s", type(error).__name__)
        return None
    return parse if isinstance(parse, dict) else None


@dataclass
class Screening:
    """The crisis check's result for one message.

    Attributes:
        assessment: The decision.
        context: The conversation context it used.
        parse_data: The NLU parse to hand to Rasa (so the model runs once per message); its
            intent is ``crisis`` when the check says so. ``None`` when no parse is available.
    """

    assessment: Assessment
    context: ConversationContext
    parse_data: dict[str, Any] | None


async def screen(agent: Any, sender_id: str, text: str) -> Screening:
    """Run the crisis check on one incoming message.

    Args:
        agent: The Rasa agent, or ``None``.
        sender_id: The conversation.
        text: The cleaned message.

    Returns:
        The screening.
    """
    context = await conversation_context(agent, sender_id)
    parse = await nlu_parse(agent, text) if agent is not None else None
    try:
        assessment = get_detector().assess(text, history=context.history, nlu=parse)
    except Exception as error:  # pragma: no cover - the detector has no failure mode known
        logger.error("Crisis detector failed: %s", type(error).__name__)
        assessment = Assessment(crisis=False)
    _recent.add(sender_id, text)
    if parse is not None and assessment.crisis:
        parse = dict(parse)
        parse["intent"] = {"name": CRISIS_INTENT, "confidence": 1.0}
    return Screening(assessment=assessment, context=context, parse_data=parse)


# -- recording and alerting --------------------------------------------------------------

_tasks: set[asyncio.Task[Any]] = set()


def escalate(
    sender_id: str,
    input_channel: str,
    text: str,
    screening: Screening,
) -> asyncio.Task[Any]:
    """Record the crisis and alert staff, in the background.

    Args:
        sender_id: The conversation.
        input_channel: Rasa's channel name.
        text: The message.
        screening: The crisis check's result.

    Returns:
        The background task (kept referenced until it ends; tests may await it).
    """
    return _keep(
        asyncio.get_running_loop().create_task(
            _escalate(sender_id, input_channel, text, screening)
        )
    )


def _keep(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def drain(timeout: float = 30.0) -> None:
    """Wait for every pending escalation (tests and shutdown)."""
    pending = [task for task in _tasks if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


async def _escalate(
    sender_id: str, input_channel: str, text: str, screening: Screening
) -> None:
    from bot.alerts import deliver
    from bot.channels.common import sender_prefix
    from bot.services.conversations import channel_from_rasa

    channel = channel_from_rasa(input_channel)
    occurred_at = dt.datetime.now(dt.timezone.utc)
    record = None
    try:
        record = await asyncio.to_thread(
            _record, sender_id, input_channel, text, screening, occurred_at
        )
    except Exception as error:
        logger.error(
            "Crisis record for %s failed (%s); spooled, staff alerted without a link",
            sender_prefix(sender_id), type(error).__name__,
        )
        _spool(sender_id, input_channel, text, screening, occurred_at)
    if record is not None and record.alert_kind is None:
        return
    deliveries = await deliver(crisis_alert(sender_id, channel, record, occurred_at))
    if not any(delivery.ok for delivery in deliveries):
        logger.error("Crisis alert for %s could not be delivered", sender_prefix(sender_id))


def crisis_alert(
    sender_id: str, channel: Any, record: Any, occurred_at: dt.datetime
) -> Any:
    """The staff alert for a crisis record, or for a crisis that could not be recorded.

    Args:
        sender_id: The conversation (only a short prefix goes into the alert).
        channel: Its :class:`bot.db.models.Channel`.
        record: The :class:`bot.services.safety.CrisisRecord`, or ``None`` (then an urgent
            ``crisis`` alert without a handoff link).
        occurred_at: When it happened.

    Returns:
        The :class:`bot.alerts.Alert`.
    """
    from bot.alerts import Alert
    from bot.channels.common import sender_prefix

    return Alert(
        kind=(record.alert_kind if record is not None else None) or "crisis",
        priority=record.priority.value if record is not None else "urgent",
        conversation_ref=sender_prefix(sender_id),
        channel=channel.value,
        handoff_id=record.handoff_id if record is not None else None,
        occurred_at=occurred_at,
    )


def alert_staff_in_background(alert: Any) -> asyncio.Task[Any]:
    """Deliver a staff alert without making anyone wait for it (kept referenced until done)."""
    from bot.alerts import deliver

    return _keep(asyncio.get_running_loop().create_task(deliver(alert)))


def _record(
    sender_id: str,
    input_channel: str,
    text: str,
    screening: Screening,
    occurred_at: dt.datetime,
) -> Any:
    from bot.db.session import unit_of_work
    from bot.services import safety
    from bot.services.conversations import channel_from_rasa

    replay_spool()
    with unit_of_work() as session:
        return safety.record_crisis(
            session,
            sender_id,
            channel_from_rasa(input_channel),
            text=text,
            detection=screening.assessment.as_metadata(),
            context=screening.context.history,
            paused_form=screening.context.active_form,
            now=occurred_at,
        )


def _spool_dir() -> Path:
    from bot.settings import get_settings

    return get_settings().data_dir / _SPOOL_DIR


def _spool(
    sender_id: str,
    input_channel: str,
    text: str,
    screening: Screening,
    occurred_at: dt.datetime,
) -> None:
    """Keep a crisis record that could not reach the database, encrypted, on local disk."""
    from bot.db.crypto import encrypt

    try:
        directory = _spool_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = {
            "sender_id": sender_id,
            "input_channel": input_channel,
            "text": text,
            "detection": screening.assessment.as_metadata(),
            "context": screening.context.history,
            "paused_form": screening.context.active_form,
            "at": occurred_at.isoformat(),
        }
        path = directory / f"{occurred_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex}.json"
        path.write_text(encrypt(json.dumps(payload)))
        path.chmod(0o600)
    except Exception as error:
        logger.critical("Crisis record could not be spooled either: %s", type(error).__name__)


def replay_spool() -> int:
    """Write spooled crisis records to the database, oldest first; returns how many.

    Records that still cannot be written stay in the spool.
    """
    from bot.db.crypto import decrypt
    from bot.db.session import unit_of_work
    from bot.services import safety
    from bot.services.conversations import channel_from_rasa

    directory = _spool_dir()
    if not directory.is_dir():
        return 0
    written = 0
    for path in sorted(directory.glob("*.json")):
        payload: Mapping[str, Any] = json.loads(decrypt(path.read_text()))
        with unit_of_work() as session:
            safety.record_crisis(
                session,
                payload["sender_id"],
                channel_from_rasa(payload["input_channel"]),
                text=payload["text"],
                detection=dict(payload["detection"], spooled=True),
                context=list(payload.get("context") or []),
                paused_form=payload.get("paused_form"),
                now=dt.datetime.fromisoformat(payload["at"]),
            )
        path.unlink()
        written += 1
    return written
