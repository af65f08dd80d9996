"""Submitting the website intake to the care team."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import names
from actions.common import input_channel, opening_hours_reply
from bot.db.session import unit_of_work
from bot.services import intake


class ActionSubmitIntake(Action):
    """Hands the completed intake to staff (routine priority) and says when they'll call."""

    def name(self) -> str:
        """The action's name."""
        return "action_submit_intake"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Submit the intake and reply with what happens next."""
        with unit_of_work() as session:
            result = intake.submit(session, tracker.sender_id, input_channel(tracker))
        first_name = tracker.get_slot(names.SLOT_FIRST_NAME) or ""
        if not result.created:
            dispatcher.utter_message(response="utter_intake_already_submitted")
        elif tracker.get_slot(names.SLOT_CONSENT_CONTACT) is False:
            dispatcher.utter_message(response="utter_intake_submitted_no_contact",
                                     first_name=first_name)
        else:
            response, variables = opening_hours_reply("utter_intake_submitted")
            dispatcher.utter_message(response=response, first_name=first_name, **variables)
        return []
