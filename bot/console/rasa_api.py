"""Rasa's HTTP API as the staff console uses it: read a conversation, pause and resume the
assistant, and add what staff write to the conversation.

The Rasa server runs with ``--enable-api --auth-token`` (``bot run`` does so whenever
``BOT_RASA_API_TOKEN`` is set). The endpoints used (Rasa 3.6, ``rasa/server.py``):

* ``GET  /conversations/{id}/tracker?include_events=ALL|NONE`` -- the conversation's state and
  events, across sessions.
* ``POST /conversations/{id}/tracker/events`` -- appends one event, under the conversation's
  lock, so it lands between two turns and never inside one:

  * ``{"event": "pause"}``: from now on Rasa logs each message but predicts no action
    (``MessageProcessor._should_handle_message``), so the assistant stays silent. Our channels
    still run the crisis check before Rasa on every message, paused or not, so crisis language
    gets the resources and an urgent handoff whoever holds the conversation.
  * ``{"event": "resume"}``: the assistant answers again from the next message on.
  * ``{"event": "bot", "text": ..., "metadata": {"staff": name, "source": "console"}}``: a
    staff line. Rasa sends nothing anywhere for it: the widget's live stream
    (:mod:`bot.channels.widget`) delivers it, and SMS replies are texted by
    :mod:`bot.console.takeover`. The metadata is what tells a staff line from the assistant's
    in transcripts.

The token travels in the query string (Rasa's ``token`` parameter), so request URLs are never
logged or put into an exception, requests do not follow redirects or use proxies, and response
bodies (everything the person wrote) are never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

logger = logging.getLogger(__name__)

STAFF_SOURCE = "console"
"""``metadata.source`` of a staff line written in the staff console."""

EXTERNAL_MESSAGE_PREFIX = "EXTERNAL: "
"""How Rasa marks an intent triggered through its API (a scheduled check-in): not the person's
words, so not a line of the transcript."""

SYSTEM_PAUSED = "Staff took over the conversation; the assistant is paused."
SYSTEM_RESUMED = "The conversation was handed back to the assistant."
SYSTEM_CRISIS = "Crisis language: the resources were sent at once and staff were alerted."

Who = Literal["patient", "assistant", "staff", "system"]

ERROR_TIMEOUT = "timeout"
ERROR_UNAUTHORIZED = "unauthorized"
ERROR_BAD_RESPONSE = "bad_response"


class RasaApiError(RuntimeError):
    """Rasa's HTTP API could not do what was asked.

    Attributes:
        code: A short reason: ``"HTTP 500"``, ``"unauthorized"``, ``"timeout"``, an error type.
            Never a URL (it holds the token) and never a response body.
        status: The HTTP status Rasa answered with, when it answered.
    """

    def __init__(self, code: str, status: int | None = None) -> None:
        """Create the error with its short reason (and the HTTP status, if any)."""
        super().__init__(f"Rasa's HTTP API failed: {code}")
        self.code = code
        self.status = status


@dataclass(frozen=True)
class TranscriptLine:
    """One line of a conversation as staff read it.

    Attributes:
        who: ``"patient"``, ``"assistant"``, ``"staff"`` or ``"system"`` (what happened, not
            what anyone wrote: a takeover, a hand back, crisis resources sent by the channel).
        text: What was written (a button the patient picked shows as its title).
        at: When, in UTC.
        staff_name: The staff member's display name, for staff lines.
        buttons: The titles of the buttons offered with an assistant line.
    """

    who: Who
    text: str
    at: dt.datetime
    staff_name: str | None = None
    buttons: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """The line as JSON-ready values (``at`` in ISO 8601)."""
        return {
            "who": self.who,
            "text": self.text,
            "at": self.at.isoformat(),
            "staff_name": self.staff_name,
            "buttons": list(self.buttons),
        }


def staff_metadata(staff_name: str) -> dict[str, str]:
    """The metadata that marks a bot event as written by ``staff_name`` in the console."""
    return {"staff": staff_name, "source": STAFF_SOURCE}


def staff_name_of(event: Mapping[str, Any]) -> str | None:
    """The staff member's name if ``event`` is a staff line, else ``None``.

    Args:
        event: A serialised Rasa event (``{"event": "bot", "metadata": {...}, ...}``).

    Returns:
        The name from ``metadata.staff``, or ``None`` for anything else.
    """
    if event.get("event") != "bot":
        return None
    metadata = event.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    name = metadata.get("staff")
    return name if isinstance(name, str) and name else None


def _at(event: Mapping[str, Any]) -> dt.datetime:
    timestamp = event.get("timestamp")
    seconds = float(timestamp) if isinstance(timestamp, (int, float)) else 0.0
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _buttons(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(title, payload)`` of the buttons of a bot event."""
    data = event.get("data")
    raw = data.get("buttons") if isinstance(data, Mapping) else None
    return [
        (button["title"], button["payload"])
        for button in raw or []
        if isinstance(button, Mapping)
        and isinstance(button.get("title"), str)
        and isinstance(button.get("payload"), str)
    ]


def transcript_from_events(events: Iterable[Mapping[str, Any]]) -> list[TranscriptLine]:
    """Turn a tracker's events into the lines staff read, oldest first.

    Kept: what the person wrote (a button payload becomes the title of the button offered just
    before; other ``/intent`` payloads, such as the widget's invisible ``/greet``, and intents
    triggered through the API are not the person's words and are dropped); what the assistant
    and staff sent; takeovers and hand backs; and a note where the channel's crisis check sent
    the resources (they never reach the tracker as bot events). Everything else (actions, slots,
    forms, sessions) is internal and dropped.

    Args:
        events: Serialised Rasa events, oldest first.

    Returns:
        The transcript.
    """
    lines: list[TranscriptLine] = []
    offered: dict[str, str] = {}
    for event in events:
        kind = event.get("event")
        at = _at(event)
        if kind == "user":
            text = event.get("text")
            if not isinstance(text, str) or not text.strip():
                continue
            if text.startswith(EXTERNAL_MESSAGE_PREFIX):
                continue
            if text.startswith("/"):
                title = offered.get(text)
                if title is None:
                    continue
                text = title
            lines.append(TranscriptLine("patient", text, at))
            metadata = event.get("metadata")
            safety = metadata.get("safety") if isinstance(metadata, Mapping) else None
            if isinstance(safety, Mapping) and safety.get("handled") is True:
                lines.append(TranscriptLine("system", SYSTEM_CRISIS, at))
        elif kind == "bot":
            buttons = _buttons(event)
            if buttons:
                offered = {payload: title for title, payload in buttons}
            text = event.get("text")
            text = text if isinstance(text, str) else ""
            if not text and not buttons:
                continue
            name = staff_name_of(event)
            if name is not None:
                lines.append(TranscriptLine("staff", text, at, staff_name=name))
            else:
                lines.append(TranscriptLine("assistant", text, at,
                                            buttons=tuple(title for title, _ in buttons)))
        elif kind == "pause":
            lines.append(TranscriptLine("system", SYSTEM_PAUSED, at))
        elif kind == "resume":
            lines.append(TranscriptLine("system", SYSTEM_RESUMED, at))
    return lines


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would carry the token somewhere unconfigured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _describe(reason: object) -> str:
    """A short name for a transport failure, never its message."""
    if isinstance(reason, TimeoutError):
        return ERROR_TIMEOUT
    if isinstance(reason, BaseException):
        return type(reason).__name__
    return "URLError"


class RasaApi:
    """A client of the Rasa server's HTTP API (blocking; run it in a worker thread from async
    code).

    Args:
        base_url: The Rasa server, e.g. ``http://localhost:5005``.
        token: The API token (``--auth-token``), or ``None`` if the API has none.
        timeout: Seconds to wait for each request.
    """

    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("The Rasa URL must be an http(s) URL with a host.")
        if parts.query or parts.fragment:
            raise ValueError("The Rasa URL has no query or fragment.")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirects()
        )

    @classmethod
    def from_settings(cls, settings: Any = None) -> RasaApi:
        """The client for the configured Rasa server (``BOT_RASA_URL``, ``BOT_RASA_API_TOKEN``).

        Args:
            settings: A :class:`bot.settings.Settings`; the process's settings by default.

        Returns:
            The client.
        """
        if settings is None:
            from bot.settings import get_settings

            settings = get_settings()
        return cls(settings.rasa_url, settings.rasa_api_token)

    def __repr__(self) -> str:
        return f"RasaApi({self.base_url!r}, token={'***' if self._token else None})"

    # -- reading ---------------------------------------------------------------------------
    def tracker(self, sender_id: str, *, include_events: str = "ALL") -> dict[str, Any]:
        """The conversation's tracker state.

        Args:
            sender_id: The conversation.
            include_events: Rasa's event verbosity: ``ALL`` (every session), ``AFTER_RESTART``,
                ``APPLIED`` or ``NONE``.

        Returns:
            The state (``sender_id``, ``slots``, ``paused``, ``events`` ...).

        Raises:
            RasaApiError: Rasa did not answer with a tracker.
        """
        state = self._request("GET", sender_id, "tracker", {"include_events": include_events})
        if not isinstance(state, dict):
            raise RasaApiError(ERROR_BAD_RESPONSE)
        return state

    def transcript(self, sender_id: str) -> list[TranscriptLine]:
        """The conversation as staff read it (see :func:`transcript_from_events`).

        Raises:
            RasaApiError: As for :meth:`tracker`.
        """
        events = self.tracker(sender_id).get("events") or []
        return transcript_from_events(event for event in events if isinstance(event, dict))

    def is_paused(self, sender_id: str) -> bool:
        """Whether the assistant is paused in the conversation.

        Raises:
            RasaApiError: As for :meth:`tracker`.
        """
        return self.tracker(sender_id, include_events="NONE").get("paused") is True

    # -- writing ---------------------------------------------------------------------------
    def pause(self, sender_id: str) -> None:
        """Pause the assistant: messages are still logged, the assistant answers none.

        Raises:
            RasaApiError: Rasa did not append the event.
        """
        self._append(sender_id, {"event": "pause"})

    def resume(self, sender_id: str) -> None:
        """Let the assistant answer again from the next message on.

        Raises:
            RasaApiError: Rasa did not append the event.
        """
        self._append(sender_id, {"event": "resume"})

    def append_staff_message(self, sender_id: str, text: str, staff_name: str) -> None:
        """Add a staff member's message to the conversation, marked as theirs.

        Rasa sends it nowhere; the channel delivers it (see the module docstring).

        Args:
            sender_id: The conversation.
            text: The message.
            staff_name: The staff member's display name, shown with the message.

        Raises:
            ValueError: ``text`` or ``staff_name`` is empty.
            RasaApiError: Rasa did not append the event.
        """
        if not text or not text.strip():
            raise ValueError("A staff message needs text.")
        if not staff_name or not staff_name.strip():
            raise ValueError("A staff message needs the staff member's name.")
        self._append(
            sender_id, {"event": "bot", "text": text, "metadata": staff_metadata(staff_name)}
        )

    # -- transport -------------------------------------------------------------------------
    def _append(self, sender_id: str, event: dict[str, Any]) -> None:
        state = self._request("POST", sender_id, "tracker/events", {"include_events": "NONE"},
                              body=event)
        if not isinstance(state, dict):
            raise RasaApiError(ERROR_BAD_RESPONSE)

    def _url(self, sender_id: str, path: str, query: dict[str, str]) -> str:
        """The request URL, with the token (never log it)."""
        if not isinstance(sender_id, str) or not sender_id:
            raise ValueError("A conversation id is required.")
        values = dict(query)
        if self._token:
            values["token"] = self._token
        conversation = quote(sender_id, safe="")
        return f"{self.base_url}/conversations/{conversation}/{path}?{urlencode(values)}"

    def trigger_intent(self, sender_id: str, intent: str, entities: dict[str, Any],
                       *, output_channel: str) -> bytes:
        """``POST /conversations/{id}/trigger_intent``: the dialogue runs as if the person had
        sent ``intent``, and its replies go out through ``output_channel``.

        Returns:
            Rasa's response body, unread (it holds the conversation's tracker: never log it).

        Raises:
            RasaApiError: Rasa did not answer with success.
        """
        return self._send("POST", sender_id, "trigger_intent", {"output_channel": output_channel},
                          {"name": intent, "entities": entities})

    def _request(self, method: str, sender_id: str, path: str, query: dict[str, str],
                 body: Any = None) -> Any:
        payload = self._send(method, sender_id, path, query, body)
        try:
            return json.loads(payload)
        except ValueError:
            logger.warning("Rasa API %s %s failed: %s", method, path, ERROR_BAD_RESPONSE)
            raise RasaApiError(ERROR_BAD_RESPONSE) from None

    def _send(self, method: str, sender_id: str, path: str, query: dict[str, str],
              body: Any = None) -> bytes:
        """One request; the response body on success.

        Raises:
            RasaApiError: No answer, or not a success.
        """
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (an http(s) URL, checked in __init__)
            self._url(sender_id, path, query),
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        code: str
        status: int | None = None
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                payload: bytes = response.read()
        except urllib.error.HTTPError as error:
            error.close()
            status = error.code
            code = ERROR_UNAUTHORIZED if error.code in (401, 403) else f"HTTP {error.code}"
        except urllib.error.URLError as error:
            code = _describe(error.reason)
        except OSError as error:  # TimeoutError included
            code = _describe(error)
        else:
            if 200 <= status < 300:
                return payload
            code = f"HTTP {status}"
        logger.warning("Rasa API %s %s failed: %s", method, path, code)
        # Raised without the cause: urllib's errors carry the URL, and with it the token.
        raise RasaApiError(code, status) from None


__all__ = [
    "RasaApi",
    "RasaApiError",
    "STAFF_SOURCE",
    "TranscriptLine",
    "staff_metadata",
    "staff_name_of",
    "transcript_from_events",
]
