"""The scheduler's :class:`~bot.checkins.scheduler.Sender` in production: Rasa's HTTP API.

Each text the scheduler starts is an intent triggered in the patient's conversation::

    POST {rasa_url}/conversations/{sender_id}/trigger_intent?output_channel=twilio&token=...
    {"name": "start_checkin", "entities": {"checkin_id": 42}}

Rasa adds the intent to the conversation as if the patient had sent it (invisibly), runs the
dialogue, and sends the bot's responses through the output channel of the *registered input
channel* whose ``name()`` equals ``output_channel`` (Rasa 3.6, ``rasa/server.py``,
``_get_output_channel``). If no registered channel has that name, Rasa silently falls back to a
``CollectingOutputChannel``: nothing reaches the patient and the messages come back in the
response body under ``"messages"``. :class:`RasaTriggerSender` treats that as a failed send
(``SendError("not_delivered")``) instead of recording a check-in as sent that nobody received.

The API token travels in the query string (Rasa's ``token`` parameter), so the URL is never
logged, never put in an exception, and requests do not follow redirects or go through proxies.
The response body (the conversation's tracker, with everything the patient wrote) is never
logged either.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from bot.checkins.scheduler import CheckinRef, SendError

logger = logging.getLogger(__name__)

INTENT_START = "start_checkin"
INTENT_REMINDER = "checkin_reminder"
INTENT_CLOSED = "checkin_closed"
ENTITY_CHECKIN_ID = "checkin_id"

ERROR_TIMEOUT = "timeout"
ERROR_NOT_DELIVERED = "not_delivered"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would carry the token somewhere unconfigured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class RasaTriggerSender:
    """Starts, reminds and closes check-in dialogues through Rasa's ``trigger_intent``.

    Args:
        rasa_url: The Rasa server's base URL (``http://localhost:5005``).
        token: Rasa's API token (``--auth-token``), or ``None`` if the API has none.
        output_channel: The registered input channel whose output channel texts the patient.
        timeout: Seconds to wait for Rasa, which waits in turn for the action server and the
            SMS provider.
        check_delivery: Treat a reply that shows Rasa collected the messages instead of
            sending them (no channel named ``output_channel``) as a failed start or reminder.
    """

    def __init__(
        self,
        rasa_url: str,
        token: str | None,
        output_channel: str = "twilio",
        timeout: float = 30,
        *,
        check_delivery: bool = True,
    ) -> None:
        parts = urlsplit(rasa_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("The Rasa URL must be an http(s) URL with a host.")
        if parts.query or parts.fragment:
            raise ValueError("The Rasa URL has no query or fragment.")
        if not output_channel:
            raise ValueError("An output channel name is required.")
        self.rasa_url = rasa_url.rstrip("/")
        self.output_channel = output_channel
        self.timeout = timeout
        self.check_delivery = check_delivery
        self._token = token
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirects()
        )

    def __repr__(self) -> str:
        return (f"RasaTriggerSender({self.rasa_url!r}, token={'***' if self._token else None}, "
                f"output_channel={self.output_channel!r})")

    def start(self, checkin: CheckinRef) -> None:
        """Trigger ``start_checkin``: the dialogue sends the first question.

        Raises:
            SendError: Rasa did not answer with success, or did not send through the channel.
        """
        self._trigger(checkin, INTENT_START, expect_delivery=True)

    def remind(self, checkin: CheckinRef) -> None:
        """Trigger ``checkin_reminder``: the dialogue sends the reminder.

        Raises:
            SendError: As for :meth:`start`.
        """
        self._trigger(checkin, INTENT_REMINDER, expect_delivery=True)

    def closed(self, checkin: CheckinRef) -> None:
        """Trigger ``checkin_closed``: the dialogue ends the check-in form (no text).

        Raises:
            SendError: Rasa did not answer with success.
        """
        self._trigger(checkin, INTENT_CLOSED, expect_delivery=False)

    def _url_for(self, sender_id: str) -> str:
        """The request URL for a conversation, with the token (never log it)."""
        query = {"output_channel": self.output_channel}
        if self._token:
            query["token"] = self._token
        conversation = quote(sender_id, safe="")
        return f"{self.rasa_url}/conversations/{conversation}/trigger_intent?{urlencode(query)}"

    def _trigger(self, checkin: CheckinRef, intent: str, *, expect_delivery: bool) -> None:
        body = json.dumps(
            {"name": intent, "entities": {ENTITY_CHECKIN_ID: checkin.checkin_id}}
        ).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 (an http(s) URL, checked above)
            self._url_for(checkin.sender_id),
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        code: str | None
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                payload = response.read()
        except urllib.error.HTTPError as error:
            error.close()
            code = f"HTTP {error.code}"
        except urllib.error.URLError as error:
            code = _describe(error.reason)
        except OSError as error:  # TimeoutError included
            code = _describe(error)
        else:
            code = None if 200 <= status < 300 else f"HTTP {status}"
            if code is None and expect_delivery and self.check_delivery:
                code = _delivery_problem(payload)
        if code is not None:
            logger.warning("Rasa trigger %s for check-in %s failed: %s", intent,
                           checkin.checkin_id, code)
            # Raised without the cause: urllib's errors carry the URL, and with it the token.
            raise SendError(code) from None
        logger.info("Rasa trigger %s for check-in %s done.", intent, checkin.checkin_id)


def _describe(reason: object) -> str:
    """A short name for a transport failure, never its message."""
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return ERROR_TIMEOUT
    if isinstance(reason, BaseException):
        return type(reason).__name__
    return "URLError"


def _delivery_problem(payload: bytes) -> str | None:
    """``not_delivered`` if Rasa collected the bot's messages instead of sending them."""
    try:
        reply = json.loads(payload or b"{}")
    except ValueError:
        return "bad_response"
    if isinstance(reply, dict) and "messages" in reply:
        return ERROR_NOT_DELIVERED
    return None


__all__ = [
    "ENTITY_CHECKIN_ID",
    "INTENT_CLOSED",
    "INTENT_REMINDER",
    "INTENT_START",
    "RasaTriggerSender",
]
