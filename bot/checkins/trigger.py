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

from bot.checkins.scheduler import CheckinRef, SendError
from bot.console.rasa_api import RasaApi, RasaApiError

logger = logging.getLogger(__name__)

INTENT_START = "start_checkin"
INTENT_REMINDER = "checkin_reminder"
INTENT_CLOSED = "checkin_closed"
ENTITY_CHECKIN_ID = "checkin_id"

ERROR_NOT_DELIVERED = "not_delivered"


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
        if not output_channel:
            raise ValueError("An output channel name is required.")
        # The same client the staff console uses: no proxies, no redirects, the token never
        # logged or put in an error.
        self._api = RasaApi(rasa_url, token, timeout=timeout)
        self.rasa_url = self._api.base_url
        self.output_channel = output_channel
        self.timeout = timeout
        self.check_delivery = check_delivery
        self._token = token

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

    def _trigger(self, checkin: CheckinRef, intent: str, *, expect_delivery: bool) -> None:
        code: str | None
        try:
            payload = self._api.trigger_intent(
                checkin.sender_id, intent, {ENTITY_CHECKIN_ID: checkin.checkin_id},
                output_channel=self.output_channel)
        except RasaApiError as error:
            code = f"HTTP {error.status}" if error.status is not None else error.code
        else:
            code = None
            if expect_delivery and self.check_delivery:
                code = _delivery_problem(payload)
        if code is not None:
            logger.warning("Rasa trigger %s for check-in %s failed: %s", intent,
                           checkin.checkin_id, code)
            raise SendError(code) from None
        logger.info("Rasa trigger %s for check-in %s done.", intent, checkin.checkin_id)


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
