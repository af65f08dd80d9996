"""Text messages through Twilio: ``bot.channels.sms.TwilioSmsInput`` in ``credentials.yml``.

Routes (Rasa mounts the blueprint at ``/webhooks/twilio``):

* ``GET  /``        -> ``{"status": "ok"}``
* ``POST /webhook`` -> Twilio's incoming-message webhook; answered at once with an empty TwiML
  ``<Response/>``. Replies go out afterwards through Twilio's REST API.
* ``POST /status``  -> Twilio's delivery-status callback for messages sent.

Every webhook must carry a valid ``X-Twilio-Signature`` (the auth token comes from
``TWILIO_AUTH_TOKEN``); a bad or missing one gets 403, and nothing is recorded or sent. Twilio
retries slow webhooks, so a ``MessageSid`` seen before is answered and otherwise ignored (the
``sms_messages`` table remembers them; this process also keeps the latest in memory, so a retry
is recognised even while the database is down).

What happens to a message, in order (one message at a time per sender):

1. Empty texts and picture-only messages get a short "please reply in words".
2. **The crisis check** (:mod:`bot.safety.guard`) sees the text before anything else does.
   On a crisis the resources are texted at once and staff are alerted, whoever the sender is.
3. **Carrier keywords** (:mod:`bot.sms.keywords`), whatever state the conversation is in:
   STOP & co. record the opt-out in the patient ledger, close any open check-in (its answers
   go to staff) and confirm; START/UNSTOP re-subscribe; HELP sends the clinic's name and
   phone, how to stop, and 988.
4. **An unknown number** gets no patient data. It is offered a call back; accepting it (CALL,
   YES ...) writes a handoff with the number and what they wrote.
5. **An opted-out patient** gets no reply (they asked for none); their message is handed to
   staff so nothing is lost.
6. **An enrolled patient** talks to the assistant (Rasa), whose replies are texted back.

A patient's conversation id is ``"sms-"`` plus a prefix of the keyed blind index of their
number (:func:`bot.services.checkins.sender_id_for_mobile_index`), never the number itself, so
the tracker store holds no phone numbers. Logs hold masked numbers only and never a message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.exc import IntegrityError

from bot.channels.common import (
    RESPONSE_EMPTY_MESSAGE,
    channel_blueprint,
    check_for_crisis,
    response_text,
    run_dialogue,
)
from bot.channels.text import clean_user_text
from bot.db.crypto import blind_index
from bot.safety import guard
from bot.sms import keywords, phone
from bot.sms.signature import is_valid_request

logger = logging.getLogger(__name__)

INPUT_CHANNEL = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

RESPONSE_HELP = "utter_sms_help"
RESPONSE_OPTED_OUT = "utter_sms_opted_out"
RESPONSE_OPTED_IN = "utter_sms_opted_in"
RESPONSE_UNKNOWN_NUMBER = "utter_sms_unknown_number"
RESPONSE_CALLBACK_RECORDED = "utter_sms_callback_recorded"
RESPONSE_CALLBACK_ALREADY = "utter_sms_callback_already"
RESPONSE_MEDIA_ONLY = "utter_sms_media_only"

CHECKIN_CLOSED_INTENT = "/checkin_closed"
"""Sent into the patient's conversation after STOP, so an active check-in form is closed
there too (the action sends nothing)."""

CALLBACK_WORDS = frozenset({
    "call", "callback", "call back", "call me", "call me back", "please call",
    "please call me", "please call me back", "yes", "yes please", "y", "yeah", "ok", "okay",
    "sure",
})
"""Whole-message answers that accept the call back offered to an unknown number."""

MAX_BODY_CHARS = 1600
"""Twilio refuses a longer message body (error 21617); longer texts go out in parts."""
_SEEN_SIDS = 10_000
_SEND_ATTEMPTS = 3
_RETRY_DELAYS = (0.5, 1.5)
_MAX_FIELD_CHARS = 2000

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def split_body(text: str, limit: int = MAX_BODY_CHARS) -> list[str]:
    """Cut a text into parts Twilio accepts, at the last space before the limit if any."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        cut = cut if cut > limit // 2 else limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [*parts, rest] if rest else parts


def sender_id_for_mobile(mobile: str) -> str:
    """The conversation id of a number's SMS conversation (patient or not).

    Args:
        mobile: An E.164 number.

    Returns:
        ``"sms-"`` and a prefix of the number's keyed blind index.
    """
    from bot.services.checkins import sender_id_for_mobile_index

    return sender_id_for_mobile_index(blind_index(mobile))


def is_callback_request(text: str) -> bool:
    """Whether a whole message accepts the offered call back ("call", "yes please" ...)."""
    return keywords.normalize(text) in CALLBACK_WORDS


@dataclass(frozen=True)
class Inbound:
    """One incoming text, as Twilio described it.

    Attributes:
        sid: Twilio's ``MessageSid``.
        mobile: The sender's number (E.164).
        body: The text as received (may be empty).
        num_media: How many pictures or files came with it.
    """

    sid: str
    mobile: str
    body: str
    num_media: int

    @property
    def sender_id(self) -> str:
        """The conversation id for this sender."""
        return sender_id_for_mobile(self.mobile)


@dataclass(frozen=True)
class SenderInfo:
    """What the channel knows about who texted.

    Attributes:
        patient_id: The enrolled patient, or ``None`` for an unknown number.
        opted_out: Whether they are opted out of texts right now.
        conversation_id: Their conversation's row, once it exists.
    """

    patient_id: int | None
    opted_out: bool = False
    conversation_id: int | None = None


class SmsSendError(RuntimeError):
    """A text could not be handed to Twilio.

    Attributes:
        code: Twilio's error code, an HTTP status or an error type; never message text.
    """

    def __init__(self, code: str) -> None:
        """Create the error with its short code."""
        super().__init__(code)
        self.code = code


class SmsOutbox:
    """Sends texts through Twilio's REST API and records each in ``sms_messages``.

    A failed request is retried on 429, 5xx and connection errors (three attempts in all);
    every outcome is recorded with Twilio's SID, status and error code, never the text.
    """

    def __init__(
        self,
        account_sid: str | None,
        auth_token: str | None,
        from_number: str | None,
        base_url: str | None = None,
        status_callback: str | None = None,
    ) -> None:
        """Configure the outbox; the Twilio client is made on first use.

        Args:
            account_sid: The Twilio account SID.
            auth_token: Its auth token.
            from_number: The clinic's texting number (E.164).
            base_url: Where Twilio's API is (the local stand-in), or ``None`` for Twilio.
            status_callback: The public URL of ``/webhooks/twilio/status``, if any.
        """
        self._account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number
        self._base_url = base_url
        self._status_callback = status_callback
        self._client: Any = None

    @property
    def configured(self) -> bool:
        """Whether texts can be sent at all."""
        return bool(self._account_sid and self._auth_token and self.from_number)

    def _get_client(self) -> Any:
        if self._client is None:
            from bot.sms.outbound import make_client

            self._client = make_client(
                self._account_sid or "", self._auth_token or "", self._base_url
            )
        return self._client

    def send(
        self,
        to: str,
        body: str,
        *,
        patient_id: int | None = None,
        conversation_id: int | None = None,
    ) -> str:
        """Send one text (blocking; call it from a worker thread in async code).

        Args:
            to: The recipient (E.164).
            body: The text.
            patient_id: The patient it goes to, for the record.
            conversation_id: The conversation it belongs to, for the record.

        Returns:
            Twilio's message SID.

        Raises:
            SmsSendError: Twilio refused it, or could not be reached after the retries.
        """
        from twilio.base.exceptions import TwilioException, TwilioRestException

        if not self.configured:
            _record_outbound(None, "failed", "not_configured", patient_id, conversation_id)
            raise SmsSendError("not_configured")
        code = "unknown"
        for attempt in range(_SEND_ATTEMPTS):
            try:
                options: dict[str, Any] = {"to": to, "from_": self.from_number, "body": body}
                if self._status_callback:
                    options["status_callback"] = self._status_callback
                message = self._get_client().messages.create(**options)
            except TwilioRestException as error:
                code = str(error.code or f"HTTP {error.status}")
                retry = error.status == 429 or error.status >= 500
            except (TwilioException, OSError) as error:
                code, retry = type(error).__name__, True
            else:
                _record_outbound(message.sid, str(message.status or "queued"), None,
                                 patient_id, conversation_id)
                return str(message.sid)
            if not retry or attempt == _SEND_ATTEMPTS - 1:
                break
            time.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
        logger.error("Text to %s failed: %s", phone.mask(to), code)
        _record_outbound(None, "failed", code[:16], patient_id, conversation_id)
        raise SmsSendError(code)

    async def send_all(
        self, to: str, texts: Iterable[str], *, patient_id: int | None = None,
        conversation_id: int | None = None,
    ) -> int:
        """Send texts in order from a worker thread; returns how many went out.

        A failure is recorded and logged, and the remaining texts are still tried (the crisis
        resources must not wait on an earlier message's fate).
        """
        sent = 0
        for text in (part for whole in texts for part in split_body(whole)):
            try:
                await asyncio.to_thread(self.send, to, text, patient_id=patient_id,
                                        conversation_id=conversation_id)
                sent += 1
            except SmsSendError:
                pass
        return sent


def _record_outbound(
    sid: str | None, status: str, error_code: str | None, patient_id: int | None,
    conversation_id: int | None,
) -> None:
    from bot.db.models import SmsDirection, SmsMessage
    from bot.db.session import unit_of_work

    try:
        with unit_of_work() as session:
            session.add(SmsMessage(
                direction=SmsDirection.OUTBOUND, message_sid=sid, status=status,
                error_code=error_code, patient_id=patient_id, conversation_id=conversation_id,
            ))
    except Exception as error:
        logger.error("Outbound text not recorded: %s", type(error).__name__)


class TwilioOutput(OutputChannel):
    """Rasa's output channel for SMS: used when the scheduler starts a check-in through
    Rasa's ``trigger_intent`` with ``output_channel=twilio``.

    The recipient is a conversation id; the number is looked up from the patient ledger (an
    unknown or opted-out recipient is refused, so a check-in is never texted after STOP).
    """

    @classmethod
    def name(cls) -> str:
        """The channel name."""
        return INPUT_CHANNEL

    def __init__(self, outbox: SmsOutbox) -> None:
        """Send through ``outbox``."""
        self._outbox = outbox

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Text ``text`` to the patient of conversation ``recipient_id``.

        Raises:
            SmsSendError: No enrolled, opted-in patient has this conversation, or Twilio
                refused the text (Rasa then fails the request, and the scheduler records it).
        """
        target = await asyncio.to_thread(_patient_target, recipient_id)
        if target is None:
            raise SmsSendError("no_recipient")
        mobile, patient_id = target
        for part in split_body(text):
            await asyncio.to_thread(self._outbox.send, mobile, part, patient_id=patient_id)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        """Buttons do not exist in SMS: the text alone is sent."""
        await self.send_text_message(recipient_id, text)

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        """Custom payloads (the widget's crisis marker) mean nothing in SMS."""


def _patient_target(sender_id: str) -> tuple[str, int] | None:
    from bot.db.session import unit_of_work
    from bot.services.checkins import patient_for_sender

    with unit_of_work() as session:
        patient = patient_for_sender(session, sender_id)
        if patient is None or patient.opted_out_at is not None:
            return None
        return patient.mobile, patient.id


class _SeenSids:
    """The latest message SIDs this process accepted (the database is the lasting record)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, sid: str) -> bool:
        """Remember ``sid``; False if it was already there."""
        if sid in self._items:
            return False
        self._items[sid] = None
        while len(self._items) > _SEEN_SIDS:
            self._items.popitem(last=False)
        return True


class _SenderLocks:
    """One lock per conversation, so a sender's texts are handled in the order they came."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                await work()
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _form_params(request: Request) -> dict[str, list[str]]:
    """The POST's form fields (``application/x-www-form-urlencoded``) as lists of values."""
    from urllib.parse import parse_qs

    body = request.body or b""
    if len(body) > 64 * 1024:
        raise ValueError("too large")
    return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)


def _xml(status: int = 200) -> HTTPResponse:
    return response.text(EMPTY_TWIML, status=status, content_type="text/xml",
                         headers={"Cache-Control": "no-store"})


class TwilioSmsInput(InputChannel):
    """Twilio's SMS webhook with signature validation, deduplication, the crisis check first,
    carrier keywords, and replies through the REST API."""

    @classmethod
    def name(cls) -> str:
        """The channel name; also the URL prefix (``/webhooks/twilio``)."""
        return INPUT_CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TwilioSmsInput:
        """Build the channel from the settings (``credentials.yml`` entries override them).

        Recognised keys: ``account_sid``, ``auth_token``, ``from_number``, ``api_base_url``,
        ``status_callback``, ``trust_proxy``.
        """
        from bot.settings import get_settings

        settings = get_settings()
        values = dict(credentials or {})
        return cls(
            auth_token=values.get("auth_token") or settings.twilio_auth_token,
            trust_proxy=bool(values.get("trust_proxy", settings.sms_trust_proxy)),
            outbox=SmsOutbox(
                values.get("account_sid") or settings.twilio_account_sid,
                values.get("auth_token") or settings.twilio_auth_token,
                values.get("from_number") or settings.twilio_from_number,
                values.get("api_base_url") or settings.twilio_api_base_url,
                values.get("status_callback"),
            ),
        )

    def __init__(self, auth_token: str | None, outbox: SmsOutbox,
                 trust_proxy: bool = False) -> None:
        """Create the channel.

        Args:
            auth_token: Twilio's auth token; without one every webhook gets 403.
            outbox: Where replies are sent.
            trust_proxy: Rebuild the public URL from ``X-Forwarded-*`` headers for the
                signature check.
        """
        self._auth_token = auth_token
        self._trust_proxy = trust_proxy
        self.outbox = outbox
        self._seen = _SeenSids()
        self._locks = _SenderLocks()
        self._tasks: set[asyncio.Task[Any]] = set()
        if not auth_token:
            logger.error("TWILIO_AUTH_TOKEN is not set: every SMS webhook will get 403")

    def get_output_channel(self) -> OutputChannel:
        """The SMS output channel (for ``trigger_intent`` with ``output_channel=twilio``)."""
        return TwilioOutput(self.outbox)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every message received so far has been handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [task for task in self._tasks if not task.done()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))

    def _verified(self, request: Request) -> dict[str, list[str]] | None:
        try:
            params = _form_params(request)
        except (ValueError, UnicodeDecodeError):
            return None
        valid = is_valid_request(
            self._auth_token, request.method, request.url, params, request.headers,
            trust_proxy=self._trust_proxy,
        )
        return params if valid else None

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Build the channel's routes.

        Args:
            on_new_message: Rasa's callback that processes one ``UserMessage``.

        Returns:
            The blueprint.
        """
        blueprint = channel_blueprint(self)

        @blueprint.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            params = self._verified(request)
            if params is None:
                return response.text("Forbidden", status=403)
            sid = _first(params, "MessageSid") or _first(params, "SmsSid")
            sender = _first(params, "From") or ""
            if not sid or len(sid) > 64 or not phone.is_e164(sender):
                # Not something Twilio sends for a text; nothing to reply to.
                return _xml(400)
            try:
                num_media = max(0, int(_first(params, "NumMedia") or 0))
            except ValueError:
                num_media = 0
            inbound = Inbound(sid=sid, mobile=sender,
                              body=(_first(params, "Body") or "")[:_MAX_FIELD_CHARS],
                              num_media=num_media)
            if not await self._first_delivery(inbound):
                return _xml()
            agent = getattr(request.app.ctx, "agent", None)
            task = asyncio.get_running_loop().create_task(
                self._locks.run(inbound.sender_id,
                                lambda: self._handle(agent, on_new_message, inbound))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return _xml()

        @blueprint.route("/status", methods=["POST"])
        async def status(request: Request) -> HTTPResponse:
            params = self._verified(request)
            if params is None:
                return response.text("Forbidden", status=403)
            sid = _first(params, "MessageSid") or _first(params, "SmsSid")
            state = (_first(params, "MessageStatus") or _first(params, "SmsStatus") or "")[:32]
            if not sid or not state:
                return _xml(400)
            code = (_first(params, "ErrorCode") or "")[:16] or None
            await asyncio.to_thread(_update_status, sid, state, code)
            return _xml()

        return blueprint

    async def _first_delivery(self, inbound: Inbound) -> bool:
        """Record the message's SID; False if it was seen before (a Twilio retry)."""
        if not self._seen.add(inbound.sid):
            return False
        try:
            return await asyncio.to_thread(_record_inbound, inbound.sid)
        except Exception as error:
            # The database is down: the in-memory set still stops retries to this process.
            logger.error("Inbound text %s… not recorded: %s", inbound.sid[:10],
                         type(error).__name__)
            return True

    async def _handle(self, agent: Any, on_new_message: OnNewMessage, inbound: Inbound) -> None:
        try:
            await self._process(agent, on_new_message, inbound)
        except Exception as error:
            logger.error("Handling a text from %s failed: %s", phone.mask(inbound.mobile),
                         type(error).__name__)

    async def _reply(self, inbound: Inbound, texts: Iterable[str | None],
                     info: SenderInfo | None = None) -> None:
        await self.outbox.send_all(
            inbound.mobile, [text for text in texts if text],
            patient_id=info.patient_id if info else None,
            conversation_id=info.conversation_id if info else None,
        )

    async def _process(self, agent: Any, on_new_message: OnNewMessage, inbound: Inbound) -> None:
        sender_id = inbound.sender_id
        text = clean_user_text(inbound.body)
        try:
            info: SenderInfo | None = await asyncio.to_thread(
                _sender_info, inbound.mobile, sender_id, inbound.sid
            )
        except Exception as error:
            logger.error("Sender look-up failed: %s", type(error).__name__)
            info = None
        if not text:
            name = RESPONSE_MEDIA_ONLY if inbound.num_media else RESPONSE_EMPTY_MESSAGE
            if info is None or not info.opted_out:
                await self._reply(inbound, [response_text(agent, name)], info)
            return
        check = await check_for_crisis(agent, text=text, sender_id=sender_id,
                                       input_channel=INPUT_CHANNEL,
                                       metadata={"sms": {"num_media": inbound.num_media}})
        if check.crisis:
            # Safety first, whoever they are and whatever they opted out of.
            await self._reply(inbound, [m.get("text") for m in check.resources], info)
        keyword = keywords.classify(text, opted_out=bool(info and info.opted_out))
        if keyword is not keywords.Keyword.NONE and not check.crisis:
            await self._keyword(agent, on_new_message, inbound, info, keyword)
            return
        if info is None:
            # The database could not say who this is: no patient data, but an answer.
            if not check.crisis:
                await self._reply(inbound, [response_text(agent, "utter_technical_problem")])
            else:
                await self._reply(inbound, [m.get("text") for m in check.still_here])
            return
        if info.patient_id is None:
            await self._unknown_number(agent, inbound, text, check.crisis)
            return
        if info.opted_out:
            await asyncio.to_thread(_record_opted_out_message, sender_id, text)
            return
        result = await run_dialogue(agent, on_new_message, check, text=text,
                                    sender_id=sender_id, input_channel=INPUT_CHANNEL)
        await self._reply(inbound, [m.get("text") for m in result.messages], info)

    async def _keyword(self, agent: Any, on_new_message: OnNewMessage, inbound: Inbound,
                       info: SenderInfo | None, keyword: keywords.Keyword) -> None:
        if keyword is keywords.Keyword.HELP:
            await self._reply(inbound, [response_text(agent, RESPONSE_HELP)], info)
            return
        known = info is not None and info.patient_id is not None
        if keyword is keywords.Keyword.OPT_OUT:
            if known:
                closed = await asyncio.to_thread(_opt_out, inbound.mobile)
                if closed:
                    await self._tell_dialogue(on_new_message, inbound.sender_id)
            # The confirmation is the one text allowed after STOP.
            await self._reply(inbound, [response_text(agent, RESPONSE_OPTED_OUT)], info)
            return
        # Opt in (START, UNSTOP, or YES while opted out).
        if not known:
            await self._reply(inbound, [response_text(agent, RESPONSE_UNKNOWN_NUMBER)])
            return
        await asyncio.to_thread(_opt_in, inbound.mobile)
        await self._reply(inbound, [response_text(agent, RESPONSE_OPTED_IN)], info)

    async def _tell_dialogue(self, on_new_message: OnNewMessage, sender_id: str) -> None:
        """Close an active check-in form in the conversation; nothing is texted."""
        try:
            await on_new_message(UserMessage(
                CHECKIN_CLOSED_INTENT, CollectingOutputChannel(), sender_id,
                input_channel=INPUT_CHANNEL,
            ))
        except Exception as error:
            logger.warning("Check-in form not closed in the dialogue: %s", type(error).__name__)

    async def _unknown_number(self, agent: Any, inbound: Inbound, text: str,
                              crisis: bool) -> None:
        sender_id = inbound.sender_id
        if crisis:
            # The crisis path has recorded an urgent handoff with the message; stay with them.
            await self._reply(inbound, [
                response_text(agent, "utter_crisis_still_here"),
            ])
            return
        history = guard.recent_messages(sender_id)
        outcome = await asyncio.to_thread(
            _callback, sender_id, inbound.mobile, history, is_callback_request(text)
        )
        await self._reply(inbound, [response_text(agent, outcome)])


# -- database work (run in worker threads) --------------------------------------------------

def _record_inbound(sid: str) -> bool:
    from bot.db.models import SmsDirection, SmsMessage
    from bot.db.session import unit_of_work

    try:
        with unit_of_work() as session:
            session.add(SmsMessage(direction=SmsDirection.INBOUND, message_sid=sid,
                                   status="received"))
    except IntegrityError:
        return False
    return True


def _update_status(sid: str, status: str, error_code: str | None) -> None:
    from sqlalchemy import select

    from bot.db.models import SmsMessage
    from bot.db.session import unit_of_work

    try:
        with unit_of_work() as session:
            message = session.scalars(
                select(SmsMessage).where(SmsMessage.message_sid == sid)
            ).first()
            if message is not None:
                message.status = status
                message.error_code = error_code
    except Exception as error:
        logger.error("Delivery status not recorded: %s", type(error).__name__)


def _sender_info(mobile: str, sender_id: str, sid: str) -> SenderInfo:
    from sqlalchemy import select

    from bot.db.models import Channel, SmsMessage
    from bot.db.session import unit_of_work
    from bot.services import checkins, conversations, patients

    with unit_of_work() as session:
        patient = patients.find_by_phone(session, mobile)
        if patient is None:
            conversation = conversations.get_or_create(session, sender_id, Channel.SMS)
            info = SenderInfo(None, conversation_id=conversation.id)
        else:
            conversation = checkins.link_conversation(session, patient, sender_id)
            info = SenderInfo(patient.id, patient.opted_out_at is not None, conversation.id)
        message = session.scalars(select(SmsMessage).where(SmsMessage.message_sid == sid)).first()
        if message is not None:
            message.patient_id = info.patient_id
            message.conversation_id = info.conversation_id
        return info


def _opt_out(mobile: str) -> bool:
    """Record the opt-out and close an open check-in; True if one was closed."""
    from bot.db.models import utcnow
    from bot.db.session import unit_of_work
    from bot.services import checkins, patients

    now = utcnow()
    with unit_of_work() as session:
        patient = patients.opt_out(session, mobile, now=now)
        checkin = checkins.open_checkin(session, patient.id)
        if checkin is None:
            return False
        checkins.close_incomplete(session, checkin, now=now, reason="opted_out")
        return True


def _opt_in(mobile: str) -> None:
    from bot.db.session import unit_of_work
    from bot.services import patients

    with unit_of_work() as session:
        patients.opt_in(session, mobile)


def _record_opted_out_message(sender_id: str, text: str) -> None:
    """Hand an opted-out patient's message to staff (one open handoff collects them)."""
    from bot.db.models import Channel, HandoffPriority, HandoffReason, utcnow
    from bot.db.session import unit_of_work
    from bot.services import handoffs

    entry = {"text": text, "at": utcnow().isoformat()}
    with unit_of_work() as session:
        for handoff in reversed(handoffs.for_conversation(session, sender_id)):
            summary = dict(handoff.summary or {})
            if handoff.resolved_at is None and summary.get("kind") == "sms_while_opted_out":
                summary["messages"] = [*summary.get("messages", []), entry]
                handoff.summary = summary
                return
        handoffs.create(session, sender_id, Channel.SMS, HandoffReason.HUMAN_REQUESTED,
                        HandoffPriority.ROUTINE,
                        {"kind": "sms_while_opted_out", "messages": [entry],
                         "note": "The patient has opted out of texts; reply by phone."})


def _callback(sender_id: str, mobile: str, history: list[str], accepted: bool) -> str:
    """The unknown number's next step: offer a call back, record it, or say it is recorded."""
    from bot.db.models import Channel, HandoffPriority, HandoffReason, HandoffStatus, utcnow
    from bot.db.session import unit_of_work
    from bot.services import handoffs

    with unit_of_work() as session:
        existing = [
            handoff for handoff in handoffs.for_conversation(session, sender_id)
            if handoff.reason is HandoffReason.CALLBACK_REQUESTED
            and handoff.status is not HandoffStatus.RESOLVED
        ]
        if existing:
            return RESPONSE_CALLBACK_ALREADY
        if not accepted:
            return RESPONSE_UNKNOWN_NUMBER
        handoffs.create(
            session, sender_id, Channel.SMS, HandoffReason.CALLBACK_REQUESTED,
            HandoffPriority.ROUTINE,
            {"kind": "callback_request", "mobile": mobile, "messages": history,
             "requested_at": utcnow().isoformat(),
             "note": "Not an enrolled patient's number: confirm who they are before sharing "
                     "anything."},
        )
        return RESPONSE_CALLBACK_RECORDED


__all__ = [
    "INPUT_CHANNEL",
    "Inbound",
    "SmsOutbox",
    "SmsSendError",
    "TwilioOutput",
    "TwilioSmsInput",
    "is_callback_request",
    "sender_id_for_mobile",
]
