"""The intake form's actions: validation, storage, branching, summary, corrections, submission."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from rasa_sdk.events import SlotSet

from actions import names
from actions.common import opening_hours_reply
from actions.forms.intake_form import (
    ActionAskEmail,
    ActionAskIntakeConfirmed,
    ValidateIntakeForm,
    clean_first_name,
)
from actions.intake import ActionSubmitIntake
from bot.db.models import Channel, ConsentKind, HandoffPriority, HandoffReason
from bot.db.session import unit_of_work
from bot.services import handoffs, intake

pytestmark = pytest.mark.usefixtures("app_db")

FORM = ValidateIntakeForm()
SKIPPED = names.SKIPPED

# A complete, valid set of answers, as the slots hold them after validation.
COMPLETE = {
    "first_name": "Maria", "phone": "+15035550199", "email": "maria@example.com",
    "contact_time": "mornings", "us_state": "OR",
    "conditions": {"text": "depression", "ids": ["depression"]},
    "condition_duration": "ten years", "antidepressant_count": 4,
    "prior_treatments": {"text": "therapy", "ids": ["therapy"]}, "prior_ketamine": False,
    "current_medications": {"text": "none", "ids": []}, "referral_source": "my doctor",
    "consent_contact": True, "consent_sms": True,
}


def form_tracker(make_tracker, requested: str, text: str, slots: dict[str, Any] | None = None,
                 intent: str = "inform", entities: list[dict] | None = None,
                 sender_id: str | None = None):
    """A tracker whose latest user message filled ``requested`` with ``text``."""
    all_slots = {**(slots or {}), requested: text, names.SLOT_REQUESTED: requested}
    sender_id = sender_id or f"web-{uuid.uuid4().hex}"
    events = [
        {"event": "user", "text": text, "input_channel": "widget",
         "parse_data": {"intent": {"name": intent}, "entities": entities or []}},
        {"event": "slot", "name": requested, "value": text},
    ]
    return make_tracker(slots=all_slots, text=text, intent=intent, entities=entities,
                        sender_id=sender_id, active_loop="intake_form", events=events)


async def run_form(tracker, dispatcher, domain):
    return await FORM.run(dispatcher, tracker, domain)


def responses(dispatcher) -> list[str]:
    return [message["response"] for message in dispatcher.messages]


def stored(sender_id: str) -> dict[str, Any]:
    with unit_of_work() as session:
        return intake.latest_answers(session, sender_id)


@pytest.mark.parametrize(
    ("slot", "text", "value"),
    [
        ("first_name", "it's maria", "Maria"),
        ("phone", "(503) 555-0199", "+15035550199"),
        ("email", "Maria@Example.COM", "maria@example.com"),
        ("contact_time", "weekday mornings", "weekday mornings"),
        ("us_state", "I live in Oregon", "OR"),
        ("condition_duration", "since I was a teen", "since I was a teen"),
        ("antidepressant_count", "four or five", 5),
        ("prior_ketamine", "yes, twice", True),
        ("prior_ketamine_infusions", "6", 6),
        ("referral_source", "my psychiatrist", "my psychiatrist"),
    ],
)
async def test_valid_answer_is_set_stored_and_the_form_moves_on(
        make_tracker, dispatcher, domain, slot, text, value):
    tracker = form_tracker(make_tracker, slot, text, slots={"phone": "+15035550199",
                                                             "prior_ketamine": True})
    events = await run_form(tracker, dispatcher, domain)
    assert events[:2] == [SlotSet(slot, value), SlotSet(names.SLOT_VALIDATION_FAILURES, 0)]
    assert stored(tracker.sender_id)[slot] == value
    assert dispatcher.messages == []


@pytest.mark.parametrize(
    ("slot", "text", "response"),
    [
        ("first_name", "12345", "utter_invalid_first_name"),
        ("phone", "555-1234", "utter_invalid_phone"),
        ("email", "maria at example", "utter_invalid_email"),
        ("us_state", "Ontario", "utter_invalid_us_state"),
        ("antidepressant_count", "lots", "utter_invalid_count"),
        ("prior_ketamine", "purple", "utter_invalid_yes_no"),
        ("consent_contact", "hmm not sure", "utter_invalid_yes_no"),
    ],
)
async def test_invalid_answer_is_re_asked_and_not_stored(
        make_tracker, dispatcher, domain, slot, text, response):
    tracker = form_tracker(make_tracker, slot, text, slots={"phone": "+15035550199"})
    events = await run_form(tracker, dispatcher, domain)
    assert events[:2] == [SlotSet(slot, None), SlotSet(names.SLOT_VALIDATION_FAILURES, 1)]
    assert responses(dispatcher) == [response]
    assert slot not in stored(tracker.sender_id)


async def test_second_failure_offers_skip_or_a_person(make_tracker, dispatcher, domain):
    tracker = form_tracker(make_tracker, "phone", "not a number",
                           slots={names.SLOT_VALIDATION_FAILURES: 1})
    events = await run_form(tracker, dispatcher, domain)
    assert events[:2] == [SlotSet("phone", None), SlotSet(names.SLOT_VALIDATION_FAILURES, 2)]
    assert responses(dispatcher) == ["utter_still_invalid"]


async def test_phone_can_be_skipped_and_then_email_is_required(make_tracker, dispatcher, domain):
    tracker = form_tracker(make_tracker, "phone", "skip", intent="skip")
    events = await run_form(tracker, dispatcher, domain)
    assert events[0] == SlotSet("phone", SKIPPED)
    assert stored(tracker.sender_id)["phone"] == SKIPPED

    no_contact = form_tracker(make_tracker, "email", "skip", slots={"phone": SKIPPED},
                              intent="skip")
    dispatcher.messages.clear()
    events = await run_form(no_contact, dispatcher, domain)
    assert events[0] == SlotSet("email", None)
    assert responses(dispatcher) == ["utter_need_a_contact"]


@pytest.mark.parametrize("name", ["Sam", "Skip", "Pat"])
async def test_a_short_name_heard_as_skip_is_still_a_name(make_tracker, dispatcher, domain, name):
    tracker = form_tracker(make_tracker, "first_name", name, intent="skip")
    events = await run_form(tracker, dispatcher, domain)
    expected = None if name == "Skip" else name
    assert events[0] == SlotSet("first_name", expected)


async def test_a_longer_skip_phrasing_is_trusted(make_tracker, dispatcher, domain):
    tracker = form_tracker(make_tracker, "contact_time", "not something I want to say",
                           intent="skip")
    events = await run_form(tracker, dispatcher, domain)
    assert events[0] == SlotSet("contact_time", SKIPPED)


async def test_first_name_cannot_be_skipped(make_tracker, dispatcher, domain):
    tracker = form_tracker(make_tracker, "first_name", "skip", intent="skip")
    events = await run_form(tracker, dispatcher, domain)
    assert events[0] == SlotSet("first_name", None)
    assert responses(dispatcher) == ["utter_cannot_skip"]


@pytest.mark.parametrize(
    ("slot", "label", "text", "entity_text", "expected_ids"),
    [
        ("conditions", "condition", "treatment resistant depression and PTSD",
         ["treatment resistant depression", "PTSD"], ["trd", "ptsd"]),
        ("prior_treatments", "treatment", "therapy for years and TMS once",
         ["therapy", "TMS"], ["therapy", "tms"]),
        ("current_medications", "medication", "zoloft 100 and lamictal",
         ["zoloft", "lamictal"], ["sertraline", "lamotrigine"]),
    ],
)
async def test_free_text_keeps_own_words_and_recognised_entities(
        make_tracker, dispatcher, domain, slot, label, text, entity_text, expected_ids):
    entities = [{"entity": label, "value": value} for value in entity_text]
    tracker = form_tracker(make_tracker, slot, text, entities=entities)
    events = await run_form(tracker, dispatcher, domain)
    assert events[0] == SlotSet(slot, {"text": text, "ids": expected_ids})


async def test_consent_is_recorded_with_its_wording_version(make_tracker, dispatcher, domain):
    tracker = form_tracker(make_tracker, "consent_sms", "/affirm", intent="affirm",
                           slots={"phone": "+15035550199"})
    events = await run_form(tracker, dispatcher, domain)
    assert events[0] == SlotSet("consent_sms", True)
    with unit_of_work() as session:
        summary = intake.intake_summary(session, tracker.sender_id)
    assert [(c["kind"], c["granted"], c["text_version"]) for c in summary["consents"]] == [
        (ConsentKind.SMS.value, True, "sms-v1")]


@pytest.mark.parametrize(
    ("slots", "absent"),
    [
        ({"prior_ketamine": False, "phone": "+15035550199"},
         {"prior_ketamine_when", "prior_ketamine_infusions"}),
        ({"prior_ketamine": True, "phone": SKIPPED}, {"consent_sms"}),
        ({"prior_ketamine": True, "phone": "+15035550199"}, set()),
    ],
)
async def test_required_slots_branch_on_answers(make_tracker, dispatcher, domain, slots,
                                                absent):
    tracker = make_tracker(slots=slots, active_loop="intake_form")
    domain_slots = domain["forms"]["intake_form"]["required_slots"]
    required = await FORM.required_slots(domain_slots, dispatcher, tracker, domain)
    assert set(domain_slots) - set(required) == absent


async def test_summary_shows_every_answer_with_words_from_the_domain(
        make_tracker, dispatcher, domain):
    slots = {**COMPLETE, "email": SKIPPED}
    tracker = make_tracker(slots=slots, active_loop="intake_form")
    await ActionAskIntakeConfirmed().run(dispatcher, tracker, domain)
    [message] = dispatcher.messages
    assert message["response"] == "utter_intake_summary"
    assert message["first_name"] == "Maria"
    assert message["email"] == "skipped"
    assert message["us_state"] == "Oregon"
    assert message["prior_ketamine"] == "no"
    assert message["prior_ketamine_when"] == "-"
    assert message["conditions"] == "depression"
    assert message["antidepressant_count"] == "4"


@pytest.mark.parametrize(
    ("text", "intent", "entities", "expected"),
    [
        ("change my email", "correct_answer", [{"entity": "intake_field", "value": "email"}],
         {"email": None}),
        ("change 2", "correct_answer", [], {"phone": None, "consent_sms": None}),
        ("no, the ketamine part is wrong", "deny",
         [{"entity": "treatment", "value": "ketamine"}],
         {"prior_ketamine": None, "prior_ketamine_when": None,
          "prior_ketamine_infusions": None}),
    ],
)
async def test_correction_clears_the_answer_so_the_form_asks_again(
        make_tracker, dispatcher, domain, text, intent, entities, expected):
    tracker = form_tracker(make_tracker, "intake_confirmed", text, slots=COMPLETE,
                           intent=intent, entities=entities)
    events = await run_form(tracker, dispatcher, domain)
    cleared = {e["name"]: e["value"] for e in events if e["name"] != names.SLOT_REQUESTED}
    assert cleared == {**expected, "intake_confirmed": None}
    assert responses(dispatcher) == ["utter_correction_ok"]


async def test_yes_confirms_and_unclear_asks_which(make_tracker, dispatcher, domain):
    yes = form_tracker(make_tracker, "intake_confirmed", "/affirm", slots=COMPLETE,
                       intent="affirm")
    events = await run_form(yes, dispatcher, domain)
    assert events[0] == SlotSet("intake_confirmed", True)
    assert SlotSet(names.SLOT_REQUESTED, None) in events

    dispatcher.messages.clear()
    unclear = form_tracker(make_tracker, "intake_confirmed", "no", slots=COMPLETE,
                           intent="deny")
    events = await run_form(unclear, dispatcher, domain)
    assert events[0] == SlotSet("intake_confirmed", None)
    assert responses(dispatcher) == ["utter_correction_which"]


@pytest.mark.parametrize(
    ("phone", "response"),
    [("+15035550199", "utter_ask_email_optional"), (SKIPPED, "utter_ask_email_required")],
)
async def test_email_question_depends_on_phone(make_tracker, dispatcher, domain, phone,
                                               response):
    await ActionAskEmail().run(dispatcher, make_tracker(slots={"phone": phone}), domain)
    assert responses(dispatcher) == [response]


async def test_submit_writes_a_routine_handoff_once(make_tracker, dispatcher, domain):
    sender = f"web-{uuid.uuid4().hex}"
    with unit_of_work() as session:
        for key in ("first_name", "phone", "consent_contact"):
            intake.record_answer(session, sender, Channel.WIDGET, key, COMPLETE[key])
    tracker = make_tracker(slots=COMPLETE, sender_id=sender)
    await ActionSubmitIntake().run(dispatcher, tracker, domain)
    await ActionSubmitIntake().run(dispatcher, tracker, domain)
    with unit_of_work() as session:
        queue = handoffs.for_conversation(session, sender)
    assert [(h.reason, h.priority) for h in queue] == [
        (HandoffReason.INTAKE_SUBMITTED, HandoffPriority.ROUTINE)]
    assert queue[0].summary["answers"]["first_name"] == "Maria"
    first, second = responses(dispatcher)
    assert first in {"utter_intake_submitted_open", "utter_intake_submitted_closed"}
    assert second == "utter_intake_already_submitted"


async def test_submit_without_contact_consent_says_we_will_not_call(
        make_tracker, dispatcher, domain):
    tracker = make_tracker(slots={**COMPLETE, "consent_contact": False})
    await ActionSubmitIntake().run(dispatcher, tracker, domain)
    assert responses(dispatcher) == ["utter_intake_submitted_no_contact"]


@pytest.mark.parametrize(
    ("when", "response", "opening"),
    [
        (dt.datetime(2026, 11, 23, 18, 0, tzinfo=dt.timezone.utc), "utter_x_open", None),
        (dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc), "utter_x_closed",
         "Monday at 9:00 AM"),
    ],
)
def test_opening_hours_reply(when, response, opening):
    name, variables = opening_hours_reply("utter_x", when)
    assert name == response
    assert variables.get("next_opening") == opening


@pytest.mark.parametrize(
    ("text", "name"),
    [("Maria", "Maria"), ("it's maria", "Maria"), ("My name is Jo-Ann", "Jo-Ann"),
     ("call me dev", "Dev"), ("Mary Ann", "Mary Ann"), ("Zoë", "Zoë"), ("42", None),
     ("I want help with my depression please", None), ("", None)],
)
def test_clean_first_name(text, name):
    assert clean_first_name(text) == name


def interrupted_tracker(make_tracker, requested, text, intent, entities=None, slots=None):
    """A message whose intent interrupts the form, so no slot mapping filled ``requested``."""
    events = [{"event": "user", "text": text, "input_channel": "widget",
               "parse_data": {"intent": {"name": intent}, "entities": entities or []}}]
    return make_tracker(slots={**(slots or {}), names.SLOT_REQUESTED: requested}, text=text,
                        intent=intent, entities=entities, active_loop="intake_form",
                        events=events)


@pytest.mark.parametrize(
    ("requested", "text", "intent", "entities", "value"),
    [
        ("us_state", "montana", "human_handoff", [], "MT"),
        ("first_name", "call me Benny", "human_handoff", [], "Benny"),
        ("phone", "503 555 0199", "faq_hours", [], "+15035550199"),
        ("antidepressant_count", "3", "faq_initial_series", [], 3),
        ("consent_contact", "yes", "faq_cost", [], True),
        ("current_medications", "zoloft and lamictal", "clinical_question",
         [{"entity": "medication", "value": "zoloft"},
          {"entity": "medication", "value": "lamictal"}],
         {"text": "zoloft and lamictal", "ids": ["sertraline", "lamotrigine"]}),
    ],
)
async def test_a_valid_answer_is_claimed_despite_an_interrupting_intent(
        make_tracker, dispatcher, domain, requested, text, intent, entities, value):
    tracker = interrupted_tracker(make_tracker, requested, text, intent, entities)
    events = await run_form(tracker, dispatcher, domain)
    assert SlotSet(requested, value) in events
    assert stored(tracker.sender_id)[requested] == value


@pytest.mark.parametrize(
    ("requested", "text", "intent", "entities"),
    [
        ("current_medications", "can I take it with my lithium?", "clinical_question",
         [{"entity": "medication", "value": "lithium"}]),
        ("us_state", "where are you located?", "faq_location", []),
        ("first_name", "talk to a human", "human_handoff", []),
        ("contact_time", "what are your hours", "faq_hours", []),
        ("prior_ketamine", "is ketamine safe with my heart condition", "clinical_question", []),
    ],
)
async def test_a_real_interruption_is_left_to_the_rules(
        make_tracker, dispatcher, domain, requested, text, intent, entities):
    tracker = interrupted_tracker(make_tracker, requested, text, intent, entities)
    events = await run_form(tracker, dispatcher, domain)
    # Nothing validated, so Rasa's form rejects and the interruption rule answers.
    assert [e for e in events if e["name"] != names.SLOT_REQUESTED] == []
    assert stored(tracker.sender_id) == {}


async def test_reactivation_does_not_revalidate_or_restore_settled_answers(
        make_tracker, dispatcher, domain):
    """Rasa re-submits every filled slot when the form starts again; they stay as they are."""
    sender = f"web-{uuid.uuid4().hex}"
    settled = [{"event": "slot", "name": key, "value": value} for key, value in COMPLETE.items()]
    events = [{"event": "user", "text": "get started", "input_channel": "widget",
               "parse_data": {"intent": {"name": "start_intake"}, "entities": []}},
              {"event": "action", "name": "intake_form"},
              {"event": "active_loop", "name": "intake_form"}, *settled]
    tracker = make_tracker(slots={**COMPLETE, names.SLOT_REQUESTED: None}, text="get started",
                           intent="start_intake", sender_id=sender, active_loop="intake_form",
                           events=events)
    result = await run_form(tracker, dispatcher, domain)
    assert dispatcher.messages == []
    assert stored(sender) == {}
    # Nothing was reset; the form goes straight to the summary.
    assert result == [SlotSet(names.SLOT_REQUESTED, "intake_confirmed")]
