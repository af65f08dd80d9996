"""The dialogue side of the crisis path: stay with the person, pause forms, record denials.

By the time these actions run, the channel layer (:mod:`bot.safety.guard`) has normally sent
the crisis resources, recorded the urgent handoff and alerted staff; it says so in the message's
``metadata.safety.handled``. When a message reached the assistant some other way (Rasa's HTTP
API, ``rasa shell``), :class:`ActionCrisisSupport` does those three things itself, so the crisis
intent is never handled by half.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import names
from actions.checkin import FORM as CHECKIN_FORM
from actions.checkin import close_after_crisis
from actions.common import input_channel, latest_text
from bot.db.session import unit_of_work
from bot.safety.detector import get_detector, guess_language
from bot.safety.guard import alert_staff_in_background, crisis_alert, resources_response
from bot.services import safety
from bot.services.safety import CrisisRecord

logger = logging.getLogger(__name__)

def _safety_metadata(tracker: Tracker) -> dict[str, Any]:
    metadata = tracker.latest_message.get("metadata") or {}
    value = metadata.get("safety") if isinstance(metadata, dict) else None
    return value if isinstance(value, dict) else {}


def _language(tracker: Tracker) -> str:
    language = _safety_metadata(tracker).get("language")
    return language if language in ("en", "es") else guess_language(latest_text(tracker))


def _alert_in_background(tracker: Tracker, record: CrisisRecord) -> None:
    if record.alert_kind is not None:
        alert_staff_in_background(
            crisis_alert(tracker.sender_id, input_channel(tracker), record,
                         dt.datetime.now(dt.timezone.utc))
        )


class ActionCrisisSupport(Action):
    """Keep the person company after the crisis resources, and pause any active form."""

    def name(self) -> str:
        """The action's name."""
        return "action_crisis_support"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Send the supportive follow-up; pause the form; cover a message the channel did not.

        Returns:
            ``ActiveLoop(None)`` and a cleared ``requested_slot``: an active form is paused (its
            slots and stored answers are kept, so it resumes where it stopped).
        """
        language = _language(tracker)
        suffix = "_es" if language == "es" else ""
        paused_form = tracker.active_loop_name
        if not _safety_metadata(tracker).get("handled"):
            text = latest_text(tracker)
            assessment = get_detector().assess(text)
            dispatcher.utter_message(response=resources_response(assessment))
            with unit_of_work() as session:
                record = safety.record_crisis(
                    session,
                    tracker.sender_id,
                    input_channel(tracker),
                    text=text,
                    detection={**assessment.as_metadata(), "crisis": True,
                               "layers": ["intent"]},
                    paused_form=paused_form,
                )
            _alert_in_background(tracker, record)
        dispatcher.utter_message(response=f"utter_crisis_support{suffix}")
        if paused_form == CHECKIN_FORM:
            # A check-in is not resumed after a crisis: it is closed with what was answered,
            # as an urgent handoff beside the crisis one, and no reminder follows.
            close_after_crisis(tracker.sender_id)
        elif paused_form is not None and language == "en":
            dispatcher.utter_message(response="utter_crisis_resume_offer")
        # Always: with no form active this changes nothing, and the rules stay consistent.
        return [ActiveLoop(None), SlotSet(names.SLOT_REQUESTED, None)]


class ActionCrisisDenial(Action):
    """ "You misunderstood" / "I'm fine" after a crisis reply: recorded, acknowledged, and the
    resources stay on offer; staff keep the flag at a lower priority."""

    def name(self) -> str:
        """The action's name."""
        return "action_crisis_denial"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Record the denial on the crisis handoff and acknowledge it."""
        with unit_of_work() as session:
            record = safety.record_denial(
                session, tracker.sender_id, input_channel(tracker), text=latest_text(tracker)
            )
        _alert_in_background(tracker, record)
        suffix = "_es" if _language(tracker) == "es" else ""
        dispatcher.utter_message(response=f"utter_crisis_denial_ack{suffix}")
        return []
