"""Handing a conversation to a person: on request, for clinical questions, costs, or when the
assistant cannot understand."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import names
from actions.common import input_channel, latest_text, opening_hours_reply
from bot.db.models import HandoffPriority, HandoffReason
from bot.db.session import unit_of_work
from bot.services import handoffs, intake


def _hand_off(tracker: Tracker, reason: HandoffReason, priority: HandoffPriority,
              **details: object) -> None:
    """Record a handoff whose summary holds the intake so far plus ``details``."""
    with unit_of_work() as session:
        summary = intake.intake_summary(session, tracker.sender_id)
        summary.update(details)
        handoffs.create(session, tracker.sender_id, input_channel(tracker), reason, priority,
                        summary)


def _has_contact(tracker: Tracker) -> bool:
    return any(
        tracker.get_slot(slot) not in (None, names.SKIPPED)
        for slot in (names.SLOT_PHONE, names.SLOT_EMAIL)
    )


class ActionHumanHandoff(Action):
    """The person asked for a human: record a handoff and say when staff will respond."""

    def name(self) -> str:
        """The action's name."""
        return "action_human_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Record the request and reply with the clinic's hours."""
        _hand_off(tracker, HandoffReason.HUMAN_REQUESTED, HandoffPriority.ROUTINE,
                  request=latest_text(tracker))
        response, variables = opening_hours_reply("utter_human_handoff")
        dispatcher.utter_message(response=response, **variables)
        if not _has_contact(tracker) and tracker.active_loop_name is None:
            dispatcher.utter_message(response="utter_handoff_need_contact")
        return [SlotSet(names.SLOT_OFFERED_PERSON, False)]


class ActionClinicalQuestion(Action):
    """A question only a clinician can answer: never answered here, always passed on."""

    def name(self) -> str:
        """The action's name."""
        return "action_clinical_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Record the question for a clinician and say so."""
        _hand_off(tracker, HandoffReason.CLINICAL_QUESTION, HandoffPriority.ROUTINE,
                  question=latest_text(tracker))
        dispatcher.utter_message(response="utter_clinical_question")
        if not _has_contact(tracker) and tracker.active_loop_name is None:
            dispatcher.utter_message(response="utter_handoff_need_contact")
        return []


class ActionCostQuestion(Action):
    """Cost and insurance: the clinic's general answer, and the question passed to staff."""

    def name(self) -> str:
        """The action's name."""
        return "action_cost_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Answer in the clinic's words and record a handoff for staff."""
        _hand_off(tracker, HandoffReason.COST_QUESTION, HandoffPriority.ROUTINE,
                  question=latest_text(tracker))
        dispatcher.utter_message(response="utter_faq_cost")
        dispatcher.utter_message(response="utter_cost_passed_on")
        if not _has_contact(tracker) and tracker.active_loop_name is None:
            dispatcher.utter_message(response="utter_offer_intake")
        return []


class ActionNluFallback(Action):
    """Low NLU confidence: ask once to rephrase, and offer a person the second time.

    Also Rasa's core fallback (``core_fallback_action_name``). Like Rasa's default fallback it
    reverts the message it could not handle, so the dialogue state is as it was before it and
    the policies go back to listening instead of predicting the fallback again.
    """

    def name(self) -> str:
        """The action's name."""
        return "action_nlu_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Ask to rephrase, or offer a person if this is the second miss in a row."""
        if self._previous_turn_was_fallback(tracker):
            dispatcher.utter_message(response="utter_offer_person")
            # The slot is set after the revert, so the revert does not undo it.
            return [UserUtteranceReverted(), SlotSet(names.SLOT_OFFERED_PERSON, True)]
        dispatcher.utter_message(response="utter_rephrase")
        return [UserUtteranceReverted()]

    @staticmethod
    def _previous_turn_was_fallback(tracker: Tracker) -> bool:
        # Walk back past the current user message to the assistant's previous action,
        # ignoring listening, reverts and the bot's own messages.
        seen_current_user_message = False
        for event in reversed(tracker.events):
            kind = event.get("event")
            if kind == "user":
                if seen_current_user_message:
                    return False
                seen_current_user_message = True
            elif (seen_current_user_message and kind == "action"
                  and event.get("name") not in ("action_listen", None)):
                return event.get("name") == "action_nlu_fallback"
        return False


class ActionDeclinePerson(Action):
    """The person declined the offer of a human after a misunderstanding."""

    def name(self) -> str:
        """The action's name."""
        return "action_decline_person"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Acknowledge and carry on."""
        dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet(names.SLOT_OFFERED_PERSON, False)]
