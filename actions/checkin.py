"""The SMS check-in: start it, ask its numbered questions, store each answer as it is given,
and hand the result to staff.

The scheduler starts a check-in with Rasa's ``trigger_intent`` (``start_checkin``); a patient
starts the same screen by texting "booster" (``request_booster``). The questions, their order
and scales are in :mod:`bot.checkins.questions`, their words in ``domain.yml``, and reading the
answers ("2", "two", "pretty bad", "not at all") in :mod:`bot.checkins.answers`.

Nothing here tells the patient what their answers mean: they hear only that the care team will
review them and reach out. An answer above 0 to PHQ-9 item 9 takes the crisis path at once.
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import names
from actions.common import input_channel, latest_intent, latest_text
from bot.checkins import questions
from bot.checkins.answers import read_answer
from bot.checkins.questions import Question, Scale
from bot.db.models import Checkin, HandoffPriority, HandoffReason, Patient, utcnow
from bot.db.session import unit_of_work
from bot.safety.guard import alert_staff_in_background, crisis_alert
from bot.services import checkins, handoffs, safety

logger = logging.getLogger(__name__)

FORM = "checkin_form"
SLOT_STARTED = "checkin_started"
SLOT_FAILURES = "checkin_failures"
INTENT_REQUEST = "request_booster"
INTENT_START = "start_checkin"
UNREAD = "unread"
"""The slot value of an answer that could not be scored and was kept in the patient's words."""

MAX_FAILURES = 2
"""After this many unreadable answers to one question, the words are kept and the check-in
moves on: staff read them, and the patient is not stuck."""

_INVALID_RESPONSES = {
    Scale.ZERO_TO_TEN: "utter_checkin_invalid_zero_to_ten",
    Scale.FREQUENCY: "utter_checkin_invalid_frequency",
    Scale.SIGNS: "utter_checkin_invalid_signs",
}


def first_name(patient: Patient) -> str:
    """The first word of the patient's name: the only personal detail a text may hold."""
    return (patient.name or "").split()[0] if (patient.name or "").split() else "there"


def _scores(tracker: Tracker) -> dict[str, int | None]:
    """The scores so far, from the form's slots (an unreadable answer counts as no score)."""
    result: dict[str, int | None] = {}
    for question in questions.ALL_QUESTIONS:
        value = tracker.get_slot(question.slot)
        result[question.key] = value if isinstance(value, int) and not isinstance(
            value, bool) else None
    return result


def question_number(tracker: Tracker, question: Question) -> int:
    """The question's number in this check-in (1-based, as the patient sees it)."""
    asked = questions.questions_to_ask(_scores(tracker))
    return [q.key for q in asked].index(question.key) + 1 if question in asked else 1


def ask(dispatcher: CollectingDispatcher, tracker: Tracker, question: Question) -> None:
    """Send a question with its number."""
    dispatcher.utter_message(response=f"utter_ask_{question.slot}",
                             number=question_number(tracker, question))


def _reset_slots() -> list[EventType]:
    return [SlotSet(question.slot, None) for question in questions.ALL_QUESTIONS] + [
        SlotSet(SLOT_FAILURES, 0)
    ]


def _open(session: Any, sender_id: str) -> tuple[Patient | None, Checkin | None]:
    patient = checkins.patient_for_sender(session, sender_id)
    if patient is None:
        return None, None
    return patient, checkins.open_checkin(session, patient.id)


class ActionStartCheckin(Action):
    """Start the check-in: from the schedule (``start_checkin``) or because the patient asked
    (``request_booster``). Anyone who is not an enrolled patient on SMS has their request
    passed to staff instead; nobody is told whether they need a booster."""

    def name(self) -> str:
        """The action's name."""
        return "action_start_checkin"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Open (or find) the check-in and introduce it; the form asks the questions."""
        now = utcnow()
        requested = latest_intent(tracker) == INTENT_REQUEST
        with unit_of_work() as session:
            patient = checkins.patient_for_sender(session, tracker.sender_id)
            started = None
            if patient is not None and patient.opted_out_at is None:
                if requested:
                    started = checkins.start_patient_checkin(session, patient, now=now)
                else:
                    started = checkins.open_checkin(session, patient.id)
                name = first_name(patient)
            if started is None:
                if requested:
                    summary = {"kind": "booster_request", "request": latest_text(tracker)}
                    handoffs.create(session, tracker.sender_id, input_channel(tracker),
                                    HandoffReason.HUMAN_REQUESTED, HandoffPriority.SOON,
                                    summary)
            else:
                started.last_activity_at = now
        if started is None:
            if requested:
                dispatcher.utter_message(response="utter_checkin_unavailable")
            else:
                logger.warning("start_checkin with no open check-in for %s…",
                               tracker.sender_id[:12])
            return [SlotSet(SLOT_STARTED, False)]
        dispatcher.utter_message(
            response="utter_checkin_intro_requested" if requested else "utter_checkin_intro",
            first_name=name,
        )
        return [*_reset_slots(), SlotSet(SLOT_STARTED, True)]


class _AskCheckinQuestion(Action, abc.ABC):
    """``action_ask_checkin_<key>``: the question with its number in this check-in."""

    question: Question

    @abc.abstractmethod
    def name(self) -> str:
        """The action's name."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Ask the question."""
        ask(dispatcher, tracker, self.question)
        return []


def _ask_action(question: Question) -> type[Action]:
    action_name = f"action_ask_{question.slot}"
    return type(
        f"ActionAsk{question.key.title().replace('_', '')}",
        (_AskCheckinQuestion,),
        {"question": question, "name": lambda self: action_name, "__module__": __name__},
    )


ASK_ACTIONS = [_ask_action(question) for question in questions.ALL_QUESTIONS]


class ValidateCheckinForm(FormValidationAction):
    """Reads each answer, stores it as its own row the moment it is given, and decides which
    questions remain (PHQ-9 items 3-9 only after a positive PHQ-2)."""

    def name(self) -> str:
        """The action's name."""
        return "validate_checkin_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        """The questions still to ask, in order."""
        return [question.slot for question in questions.questions_to_ask(_scores(tracker))]

    async def _validate(self, question: Question, value: Any, dispatcher: CollectingDispatcher,
                        tracker: Tracker) -> dict[str, Any]:
        text = str(value or "").strip()
        reading = read_answer(question.scale, text)
        failures = int(tracker.get_slot(SLOT_FAILURES) or 0)
        now = utcnow()
        record = None
        with unit_of_work() as session:
            _patient, checkin = _open(session, tracker.sender_id)
            if checkin is not None:
                # Stored as given, readable or not: nothing the patient writes is lost.
                checkins.record_answer(
                    session, checkin, question.key, text,
                    score=reading.score if question.scale is not Scale.FREE_TEXT else None,
                    choices=reading.choices, now=now,
                )
            else:
                logger.warning("Check-in answer with no open check-in for %s…",
                               tracker.sender_id[:12])
            if (question.key == questions.PHQ9_SELF_HARM and reading.score is not None
                    and reading.score > 0):
                record = safety.record_phq9_item9(
                    session, tracker.sender_id, input_channel(tracker),
                    score=reading.score, answer_text=text, now=now,
                )
        if record is not None:
            # The crisis path, at once: the resources, and staff alerted in the background.
            dispatcher.utter_message(response="utter_crisis_resources")
            if record.alert_kind is not None:
                alert_staff_in_background(
                    crisis_alert(tracker.sender_id, input_channel(tracker), record, now)
                )
        if question.scale is Scale.FREE_TEXT:
            return {question.slot: text, SLOT_FAILURES: 0}
        if reading.score is not None:
            return {question.slot: reading.score, SLOT_FAILURES: 0}
        if failures + 1 >= MAX_FAILURES:
            dispatcher.utter_message(response="utter_checkin_kept_in_words")
            return {question.slot: UNREAD, SLOT_FAILURES: 0}
        dispatcher.utter_message(response=_INVALID_RESPONSES[question.scale])
        return {question.slot: None, SLOT_FAILURES: failures + 1}


def _validator(question: Question) -> Any:
    async def validate(self: ValidateCheckinForm, slot_value: Any,
                       dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        return await self._validate(question, slot_value, dispatcher, tracker)

    validate.__name__ = f"validate_{question.slot}"
    validate.__doc__ = f"Read and store the answer to {question.key}."
    return validate


for _question in questions.ALL_QUESTIONS:
    setattr(ValidateCheckinForm, f"validate_{_question.slot}", _validator(_question))


class ActionSubmitCheckin(Action):
    """Every question answered: close the check-in, hand it to staff, thank the patient."""

    def name(self) -> str:
        """The action's name."""
        return "action_submit_checkin"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Write the handoff and tell the patient only that the team will review and reach out."""
        name = "there"
        with unit_of_work() as session:
            patient, checkin = _open(session, tracker.sender_id)
            if patient is not None:
                name = first_name(patient)
            if checkin is not None:
                checkins.complete(session, checkin, now=utcnow())
        dispatcher.utter_message(response="utter_checkin_done", first_name=name)
        return [*_reset_slots(), SlotSet(SLOT_STARTED, False)]


class ActionCheckinReminder(Action):
    """The scheduler's one reminder: say the check-in is still open (the form then asks again
    where the patient left off). Sends nothing when no check-in form is running."""

    def name(self) -> str:
        """The action's name."""
        return "action_checkin_reminder"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Say the check-in is still open."""
        if tracker.active_loop_name != FORM:
            return []
        with unit_of_work() as session:
            patient, checkin = _open(session, tracker.sender_id)
            name = first_name(patient) if patient is not None else "there"
        if checkin is None:
            return []
        dispatcher.utter_message(response="utter_checkin_reminder", first_name=name)
        return []


class ActionCheckinClosed(Action):
    """The check-in was closed elsewhere (no reply after the reminder, or STOP): end the form
    quietly. Its answers are already stored and handed to staff."""

    def name(self) -> str:
        """The action's name."""
        return "action_checkin_closed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Deactivate the form and clear its slots; no text."""
        if tracker.active_loop_name not in (None, FORM):
            # Another form (the intake) is running: leave it alone.
            return [SlotSet(SLOT_STARTED, False)]
        return [ActiveLoop(None), SlotSet(names.SLOT_REQUESTED, None), *_reset_slots(),
                SlotSet(SLOT_STARTED, False)]


def close_after_crisis(sender_id: str, now: dt.datetime | None = None) -> bool:
    """A crisis during a check-in: close it as incomplete (its handoff is urgent), so no
    reminder follows; staff take it from here. Returns whether one was closed."""
    with unit_of_work() as session:
        _patient, checkin = _open(session, sender_id)
        if checkin is None:
            return False
        checkins.close_incomplete(session, checkin, now=now or utcnow(), reason="crisis")
        return True
