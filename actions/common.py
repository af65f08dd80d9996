"""Helpers shared by the actions: the conversation's channel and opening-hours replies."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rasa_sdk import Tracker

from bot.clinic import get_clinic
from bot.db.models import Channel
from bot.services.conversations import channel_from_rasa


def input_channel(tracker: Tracker) -> Channel:
    """The channel the conversation's latest message came in on."""
    return channel_from_rasa(tracker.get_latest_input_channel())


def latest_text(tracker: Tracker) -> str:
    """The text of the latest user message ("" if there is none)."""
    return str(tracker.latest_message.get("text") or "")


def latest_intent(tracker: Tracker) -> str | None:
    """The name of the latest user message's intent."""
    return (tracker.latest_message.get("intent") or {}).get("name")


def opening_hours_reply(prefix: str, now: dt.datetime | None = None) -> tuple[str, dict[str, Any]]:
    """Pick the ``<prefix>_open`` or ``<prefix>_closed`` response and its variables.

    Args:
        prefix: The response name without its ``_open``/``_closed`` suffix.
        now: The current time (aware); defaults to now.

    Returns:
        The response name and the keyword arguments it needs.
    """
    clinic = get_clinic()
    now = now or dt.datetime.now(dt.timezone.utc)
    if clinic.is_open(now):
        return f"{prefix}_open", {}
    opening = clinic.next_opening(now)
    return f"{prefix}_closed", {"next_opening": opening.strftime("%A at %-I:%M %p")}
