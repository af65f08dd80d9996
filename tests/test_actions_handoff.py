"""Handoff actions: a person on request, clinical questions, costs and misunderstandings."""

from __future__ import annotations

import uuid

import pytest
from rasa_sdk.events import SlotSet, UserUtteranceReverted

from actions import names
from actions.handoff import (
    ActionClinicalQuestion,
    ActionCostQuestion,
    ActionDeclinePerson,
    ActionHumanHandoff,
    ActionNluFallback,
)
from bot.db.models import HandoffPriority, HandoffReason
from bot.db.session import unit_of_work
from bot.services import handoffs

pytestmark = pytest.mark.usefixtures("app_db")


def responses(dispatcher) -> list[str]:
    return [message["response"] for message in dispatcher.messages]


def queue_of(sender_id: str):
    with unit_of_work() as session:
        return handoffs.for_conversation(session, sender_id)


@pytest.mark.parametrize(
    ("action", "text", "reason", "detail_key", "replies"),
    [
        (ActionHumanHandoff(), "can I talk to a real person", HandoffReason.HUMAN_REQUESTED,
         "request", None),
        (ActionClinicalQuestion(), "can I take ketamine with lithium?",
         HandoffReason.CLINICAL_QUESTION, "question",
         ["utter_clinical_question", "utter_handoff_need_contact"]),
        (ActionCostQuestion(), "does aetna cover it", HandoffReason.COST_QUESTION, "question",
         ["utter_faq_cost", "utter_cost_passed_on", "utter_offer_intake"]),
    ],
)
async def test_handoff_is_recorded_with_the_persons_words(
        make_tracker, dispatcher, domain, action, text, reason, detail_key, replies):
    sender = f"web-{uuid.uuid4().hex}"
    tracker = make_tracker(text=text, sender_id=sender)
    await action.run(dispatcher, tracker, domain)
    [handoff] = queue_of(sender)
    assert (handoff.reason, handoff.priority) == (reason, HandoffPriority.ROUTINE)
    assert handoff.summary[detail_key] == text
    if replies is not None:
        assert responses(dispatcher) == replies


async def test_human_handoff_reply_uses_opening_hours(make_tracker, dispatcher, domain):
    tracker = make_tracker(text="human please", slots={"phone": "+15035550199"})
    events = await ActionHumanHandoff().run(dispatcher, tracker, domain)
    assert events == [SlotSet(names.SLOT_OFFERED_PERSON, False)]
    assert responses(dispatcher) in (["utter_human_handoff_open"],
                                     ["utter_human_handoff_closed"])
    if responses(dispatcher) == ["utter_human_handoff_closed"]:
        assert dispatcher.messages[0]["next_opening"]


async def test_handoff_during_intake_does_not_ask_for_contact_again(
        make_tracker, dispatcher, domain):
    tracker = make_tracker(text="let me talk to someone", active_loop="intake_form")
    await ActionClinicalQuestion().run(dispatcher, tracker, domain)
    assert responses(dispatcher) == ["utter_clinical_question"]


async def test_handoff_summary_includes_the_partial_intake(make_tracker, dispatcher, domain):
    from bot.db.models import Channel
    from bot.services import intake

    sender = f"web-{uuid.uuid4().hex}"
    with unit_of_work() as session:
        intake.record_answer(session, sender, Channel.WIDGET, "first_name", "Ana")
    await ActionClinicalQuestion().run(
        dispatcher, make_tracker(text="is it safe with my heart condition", sender_id=sender),
        domain)
    [handoff] = queue_of(sender)
    assert handoff.summary["answers"] == {"first_name": "Ana"}
    assert handoff.summary["question"] == "is it safe with my heart condition"


def _events(*actions: str) -> list[dict]:
    events: list[dict] = []
    for action in actions:
        events.append({"event": "user", "text": "???", "parse_data": {}})
        events.append({"event": "action", "name": action})
        events.append({"event": "bot", "text": "..."})
        if action == "action_nlu_fallback":
            events.append({"event": "rewind"})
        events.append({"event": "action", "name": "action_listen"})
    events.append({"event": "user", "text": "???", "parse_data": {}})
    return events


@pytest.mark.parametrize(
    ("history", "response", "events"),
    [
        ((), "utter_rephrase", [UserUtteranceReverted()]),
        (("utter_greet",), "utter_rephrase", [UserUtteranceReverted()]),
        (("action_nlu_fallback",), "utter_offer_person",
         [UserUtteranceReverted(), SlotSet(names.SLOT_OFFERED_PERSON, True)]),
        (("action_nlu_fallback", "utter_greet"), "utter_rephrase", [UserUtteranceReverted()]),
    ],
)
async def test_fallback_rephrases_once_then_offers_a_person(
        make_tracker, dispatcher, domain, history, response, events):
    tracker = make_tracker(text="???", intent="nlu_fallback", events=_events(*history))
    result = await ActionNluFallback().run(dispatcher, tracker, domain)
    assert responses(dispatcher) == [response]
    assert result == events


async def test_declining_a_person_resets_the_offer(make_tracker, dispatcher, domain):
    result = await ActionDeclinePerson().run(dispatcher, make_tracker(text="no"), domain)
    assert result == [SlotSet(names.SLOT_OFFERED_PERSON, False)]
    assert responses(dispatcher) == ["utter_anything_else"]
