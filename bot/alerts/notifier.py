"""Staff alerts: tell the care team at once when a conversation needs a person (crisis first).

An alert goes out through every configured transport: an HTTP webhook signed with HMAC-SHA256
(for a pager or chat integration) and/or email over SMTP. Each transport is tried up to
``alert_attempts`` times with exponential backoff, and how each delivery ended is recorded in
``staff_alerts``. Delivery does not depend on the database: with the database down, alerts
still go out and only the failure to record them is logged.

Alerts carry no patient health information (no message text, no names, no phone numbers), so
they may pass through a pager, a chat tool or a mailbox. They carry what staff need to open the
record in the staff console: kind, priority, channel, a non-identifying conversation reference
and the handoff's console link.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiohttp

from bot.db.models import AlertStatus, HandoffPriority, StaffAlert, utcnow
from bot.db.session import get_engine, unit_of_work
from bot.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Clinic-Signature"
TIMESTAMP_HEADER = "X-Clinic-Timestamp"
WEBHOOK_TIMEOUT_SECONDS = 5.0
SMTP_TIMEOUT_SECONDS = 10.0
NO_TRANSPORT = "no alert transport configured"

# Column sizes in staff_alerts.
_MAX_KIND = 32
_MAX_REF = 64
_MAX_ERROR = 200

_KIND_LABELS = {
    "crisis": "Crisis flag",
    "crisis_repeat": "Crisis flag (repeat)",
    "crisis_denial": "Crisis flag (denial)",
    "phq9_item9": "PHQ-9 item 9 flag",
}

Sleep = Callable[[float], Awaitable[Any]]
# One try of one transport: None on success, else a short error such as "HTTP 500".
_Attempt = Callable[[], Awaitable[str | None]]


def _plain(value: str) -> str:
    # Callers may pass str enums (HandoffPriority, Channel); store and send their values.
    return str(value.value) if isinstance(value, enum.Enum) else value


@dataclass(frozen=True)
class Alert:
    """What staff are told: no patient data, only what they need to open the record.

    Attributes:
        kind: What happened, e.g. ``"crisis"``, ``"crisis_repeat"``, ``"crisis_denial"``,
            ``"phq9_item9"``.
        priority: ``"urgent"``, ``"soon"`` or ``"routine"``.
        conversation_ref: A short reference to the conversation that identifies nobody (never
            the sender id, a name or a phone number).
        channel: The channel the conversation is on, e.g. ``"widget"``.
        handoff_id: The handoff staff should open, when one was recorded.
        occurred_at: When it happened (timezone-aware; stored in UTC).
    """

    kind: str
    priority: str
    conversation_ref: str
    channel: str
    handoff_id: int | None
    occurred_at: datetime

    def __post_init__(self) -> None:
        """Normalise enums to their values and refuse values that cannot be stored.

        Raises:
            ValueError: An unknown priority, an empty or over-long kind or reference, or a
                naive ``occurred_at``.
        """
        object.__setattr__(self, "kind", _plain(self.kind))
        object.__setattr__(self, "channel", _plain(self.channel))
        object.__setattr__(self, "priority", HandoffPriority(_plain(self.priority)).value)
        if not 0 < len(self.kind) <= _MAX_KIND:
            raise ValueError(f"An alert kind has 1 to {_MAX_KIND} characters.")
        if not 0 < len(self.conversation_ref) <= _MAX_REF:
            raise ValueError(f"A conversation reference has 1 to {_MAX_REF} characters.")
        if self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware.")
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(timezone.utc))

    @property
    def title(self) -> str:
        """A one-line heading, e.g. ``[URGENT] Crisis flag - open the staff console``."""
        label = _KIND_LABELS.get(self.kind, f"Staff alert ({self.kind})")
        return f"[{self.priority.upper()}] {label} - open the staff console"

    def payload(self, settings: Settings | None = None) -> dict[str, Any]:
        """The alert as sent: JSON-serialisable, with no patient data.

        Args:
            settings: Where the staff console is (the process's settings by default).

        Returns:
            The fields of the alert, its title, and ``console_link`` (the handoff's page in the
            staff console, or None when no handoff was recorded).
        """
        console_url = (settings or get_settings()).console_url.rstrip("/")
        return {
            "kind": self.kind,
            "priority": self.priority,
            "title": self.title,
            "channel": self.channel,
            "conversation_ref": self.conversation_ref,
            "handoff_id": self.handoff_id,
            "occurred_at": self.occurred_at.isoformat(),
            "console_link": (
                f"{console_url}/handoffs/{self.handoff_id}" if self.handoff_id is not None
                else None
            ),
        }


@dataclass(frozen=True)
class Delivery:
    """How sending one alert through one transport ended.

    Attributes:
        transport: ``"webhook"``, ``"email"``, or ``"none"`` when nothing is configured.
        ok: Whether the alert was delivered.
        attempts: How many tries were made.
        error: The last error, short and without any response body (``"HTTP 500"``,
            ``"ConnectionRefusedError"``); None on success.
    """

    transport: str
    ok: bool
    attempts: int
    error: str | None = None


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Clinic-Signature`` value of a webhook body: ``sha256=<hex HMAC-SHA256>``.

    Args:
        secret: The shared webhook secret.
        body: The raw request body.

    Returns:
        The header value.
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _describe(error: BaseException) -> str:
    """A short name for an error, never its message (which may quote a response)."""
    if isinstance(error, aiohttp.ClientConnectorError) and error.os_error is not None:
        return type(error.os_error).__name__  # e.g. ConnectionRefusedError
    return type(error).__name__[:_MAX_ERROR]


def _webhook_attempt(url: str, secret: bytes, body: bytes) -> _Attempt:
    async def attempt() -> str | None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            TIMESTAMP_HEADER: str(int(time.time())),
        }
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
            # A redirect would send the signed alert somewhere nobody configured.
            url, data=body, headers=headers, allow_redirects=False
        ) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"

    return attempt


def email_message(alert: Alert, settings: Settings) -> EmailMessage:
    """The email for ``alert``: the payload's fields as plain text, no patient data.

    Args:
        alert: The alert.
        settings: Sender, recipients and the staff console's address.

    Returns:
        The message, ready for :meth:`smtplib.SMTP.send_message`.
    """
    payload = alert.payload(settings)
    sender = settings.alert_smtp_from or "staff-alerts@localhost"
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = sender
    message["To"] = ", ".join(settings.alert_smtp_to)
    message["Date"] = formatdate(usegmt=True)
    # The sender's domain, not socket.getfqdn(), which may wait on DNS.
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    if alert.priority == HandoffPriority.URGENT.value:
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    link = payload["console_link"] or "(no handoff recorded: search for the reference below)"
    message.set_content(
        "A conversation needs staff attention. Open it in the staff console:\n"
        f"{link}\n\n"
        f"Kind: {payload['kind']}\n"
        f"Priority: {payload['priority']}\n"
        f"Channel: {payload['channel']}\n"
        f"Conversation reference: {payload['conversation_ref']}\n"
        f"Handoff: {payload['handoff_id'] if payload['handoff_id'] is not None else '-'}\n"
        f"Occurred at: {payload['occurred_at']}\n\n"
        "This message deliberately contains no patient information.\n"
    )
    return message


def _send_email(message: EmailMessage, settings: Settings) -> None:
    assert settings.alert_smtp_host is not None
    with smtplib.SMTP(settings.alert_smtp_host, settings.alert_smtp_port,
                      timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.alert_smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.alert_smtp_username and settings.alert_smtp_password:
            smtp.login(settings.alert_smtp_username, settings.alert_smtp_password)
        refused = smtp.send_message(message)
    if refused:
        # Delivered to the others; a mailbox that refuses needs fixing, but not a resend.
        logger.warning("Staff alert email refused by %d of %d recipients",
                       len(refused), len(settings.alert_smtp_to))


def _email_attempt(message: EmailMessage, settings: Settings) -> _Attempt:
    async def attempt() -> str | None:
        # smtplib blocks; keep the event loop (the action server's) free meanwhile.
        await asyncio.to_thread(_send_email, message, settings)
        return None

    return attempt


async def _with_retries(alert: Alert, transport: str, attempt: _Attempt, settings: Settings,
                        sleep: Sleep) -> Delivery:
    tries = max(1, settings.alert_attempts)
    error: str | None = None
    for number in range(1, tries + 1):
        try:
            error = await attempt()
        except Exception as failure:  # any failure of one try is retried, never raised
            error = _describe(failure)
        if error is None:
            logger.info("Staff alert %s (%s) for handoff %s sent by %s (attempt %d)",
                        alert.kind, alert.priority, alert.handoff_id, transport, number)
            return Delivery(transport=transport, ok=True, attempts=number)
        logger.warning("Staff alert %s (%s) for handoff %s: %s attempt %d of %d failed: %s",
                       alert.kind, alert.priority, alert.handoff_id, transport, number, tries,
                       error)
        if number < tries:
            await sleep(settings.alert_retry_delay * 2 ** (number - 1))
    logger.error("Staff alert %s (%s) for handoff %s NOT delivered by %s after %d attempts: %s",
                 alert.kind, alert.priority, alert.handoff_id, transport, tries, error)
    return Delivery(transport=transport, ok=False, attempts=tries, error=error)


async def _send(alert: Alert, settings: Settings, sleep: Sleep) -> list[Delivery]:
    """Send through every configured transport at once; one Delivery per transport."""
    sends: list[Awaitable[Delivery]] = []
    if settings.alert_webhook_url:
        if settings.alert_webhook_secret:
            body = json.dumps(alert.payload(settings), sort_keys=True).encode()
            attempt = _webhook_attempt(settings.alert_webhook_url,
                                       settings.alert_webhook_secret, body)
            sends.append(_with_retries(alert, "webhook", attempt, settings, sleep))
        else:
            # load_settings refuses this; only a hand-built Settings gets here.
            sends.append(_failed("webhook", "webhook secret not configured"))
    if settings.alert_smtp_host:
        if settings.alert_smtp_to:
            attempt = _email_attempt(email_message(alert, settings), settings)
            sends.append(_with_retries(alert, "email", attempt, settings, sleep))
        else:
            sends.append(_failed("email", "no email recipients configured"))
    if not sends:
        logger.error("Staff alert %s (%s) for handoff %s NOT sent: %s (set "
                     "BOT_ALERT_WEBHOOK_URL and/or BOT_ALERT_SMTP_HOST)",
                     alert.kind, alert.priority, alert.handoff_id, NO_TRANSPORT)
        return [Delivery(transport="none", ok=False, attempts=0, error=NO_TRANSPORT)]
    return list(await asyncio.gather(*sends))


async def _failed(transport: str, error: str) -> Delivery:
    return Delivery(transport=transport, ok=False, attempts=0, error=error)


def _record(alert: Alert, deliveries: list[Delivery], started: datetime, database_url: str
            ) -> None:
    finished = utcnow()
    with unit_of_work(get_engine(database_url)) as session:
        session.add_all(
            StaffAlert(
                handoff_id=alert.handoff_id,
                kind=alert.kind,
                priority=alert.priority,
                transport=delivery.transport,
                status=AlertStatus.SENT if delivery.ok else AlertStatus.FAILED,
                attempts=delivery.attempts,
                last_error=delivery.error[:_MAX_ERROR] if delivery.error else None,
                conversation_ref=alert.conversation_ref,
                created_at=started,
                finished_at=finished,
            )
            for delivery in deliveries
        )


async def deliver(
    alert: Alert,
    settings: Settings | None = None,
    *,
    record: bool = True,
    sleep: Sleep = asyncio.sleep,
) -> list[Delivery]:
    """Alert staff through every configured transport, retrying failures. Never raises.

    Args:
        alert: What to tell staff.
        settings: Transports, retries, console and database (the process's settings by
            default).
        record: Whether to write one ``staff_alerts`` row per delivery. If the database is
            unavailable, the error type is logged and the deliveries are still returned.
        sleep: Waits between tries (tests pass a recorder instead of :func:`asyncio.sleep`).

    Returns:
        One :class:`Delivery` per configured transport (webhook first, then email), or a
        single failed ``"none"`` delivery when no transport is configured.
    """
    started = utcnow()
    try:
        settings = settings or get_settings()
    except Exception as error:  # a crisis path must not crash on configuration
        logger.error("Staff alert %s (%s) for handoff %s NOT sent: settings unavailable (%s)",
                     alert.kind, alert.priority, alert.handoff_id, type(error).__name__)
        return [Delivery(transport="none", ok=False, attempts=0,
                         error=f"settings unavailable: {type(error).__name__}")]
    deliveries = await _send(alert, settings, sleep)
    if record:
        try:
            # A blocking write (and, with the database down, a connect timeout) in a thread.
            await asyncio.to_thread(_record, alert, deliveries, started, settings.database_url)
        except Exception as error:  # the alert went out; only its record is missing
            logger.error("Staff alert %s (%s) for handoff %s: deliveries not recorded (%s)",
                         alert.kind, alert.priority, alert.handoff_id, type(error).__name__)
    return deliveries
