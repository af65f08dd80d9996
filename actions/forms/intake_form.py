"""The website intake form: validation, branching, summary and corrections.

Every accepted answer is stored in the application database the moment it is given
(:func:`bot.services.intake.record_answer`), so a visitor who leaves halfway still leaves a
partial intake that staff can see.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import names
from actions.common import input_channel, latest_intent, latest_text
from bot import parsing
from bot.consent import CONSENT_WORDINGS
from bot.db.models import ConsentKind
from bot.db.session import unit_of_work
from bot.nlp.patterns import normalize
from bot.services import intake

_NAME_PREFIX = re.compile(
    r"^(?:hi|hello|hey)?[,!\s]*(?:my name is|my name's|name is|names|name's|i am|i'm|im|"
    r"it's|its|it is|this is|call me|you can call me)\s+",
    re.IGNORECASE,
)
_NAME_WORD = re.compile(r"^[^\W\d_][^\W\d_'\-.]*(?:['\-.][^\W\d_]+)*$")
_SUMMARY_NUMBER = re.compile(r"\b(\d{1,2})\b")
_QUESTION_START = re.compile(
    r"^(?:can|could|should|would|will|is|are|am|do|does|did|how|what|when|where|why|who|"
    r"which|may|might|has|have)\b",
    re.IGNORECASE,
)

# Free-text answers kept with the entities recognised in them, by slot and entity label. Such an
# answer is also claimed over an interrupting intent when it names one of those entities.
_ENTITY_ANSWERS = {"conditions": "condition", "prior_treatments": "treatment",
                   "current_medications": "medication"}

# Answers that depend on another: changing the key also re-asks the values.
_DEPENDENT_SLOTS = {
    names.SLOT_PRIOR_KETAMINE: (names.SLOT_PRIOR_KETAMINE_WHEN,
                                names.SLOT_PRIOR_KETAMINE_INFUSIONS),
    names.SLOT_PHONE: (names.SLOT_CONSENT_SMS,),
}


def clean_first_name(text: str) -> str | None:
    """The first name in an answer such as "it's maria" or "Jo-Ann", or ``None``."""
    stripped = _NAME_PREFIX.sub("", text.strip()).strip(" .!,")
    words = [word for word in stripped.split() if word]
    if not words or len(words) > 3:
        return None
    if not all(_NAME_WORD.match(word) for word in words[:2]):
        return None
    name = " ".join(words[:2])[:50]
    return name.title() if name.islower() else name


def interrupting_intents(domain: DomainDict, slot: str) -> set[str]:
    """The intents that interrupt the form instead of answering ``slot``.

    They are the ``not_intent`` list of the slot's ``from_text`` mapping in the domain, so the
    domain stays the one place that says what interrupts.
    """
    mappings = (domain.get("slots", {}).get(slot) or {}).get("mappings") or []
    return {intent for mapping in mappings for intent in mapping.get("not_intent") or []}


def looks_like_question(text: str) -> bool:
    """Whether ``text`` is phrased as a question."""
    stripped = text.strip()
    return stripped.endswith("?") or bool(_QUESTION_START.match(stripped))


def parses_as_answer(slot: str, text: str, entities: list[dict[str, Any]]) -> bool:
    """Whether ``text`` is a valid answer to the question that fills ``slot``."""
    if slot == "first_name":
        return bool(_NAME_PREFIX.match(text.strip())) and clean_first_name(text) is not None
    if slot == "phone":
        return parsing.parse_phone(text) is not None
    if slot == "email":
        return parsing.parse_email(text) is not None
    if looks_like_question(text):
        return False
    if slot == "us_state":
        return parsing.parse_us_state(text) is not None
    if slot in ("antidepressant_count", "prior_ketamine_infusions"):
        return parsing.parse_count(text) is not None
    if slot in ("prior_ketamine", "consent_contact", "consent_sms"):
        return parsing.parse_yes_no(text) is not None
    if slot in _ENTITY_ANSWERS:
        return any(e.get("entity") == _ENTITY_ANSWERS[slot] for e in entities)
    return False


def entity_ids(tracker: Tracker, label: str) -> list[str]:
    """Normalised ids of the latest message's entities with ``label``, in order, unique."""
    found: list[str] = []
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") != label:
            continue
        normalised = normalize(label, str(entity.get("value", "")))
        if normalised and normalised not in found:
            found.append(normalised)
    return found


class ValidateIntakeForm(FormValidationAction):
    """Validates each intake answer, stores it, and decides which questions apply."""

    def name(self) -> str:
        """The action's name, which ties it to ``intake_form``."""
        return "validate_intake_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        """The domain's questions, minus those that do not apply to this person."""
        skipped: set[str] = set()
        if tracker.get_slot(names.SLOT_PRIOR_KETAMINE) is not True:
            skipped.update(_DEPENDENT_SLOTS[names.SLOT_PRIOR_KETAMINE])
        if tracker.get_slot(names.SLOT_PHONE) in (None, names.SKIPPED):
            skipped.add(names.SLOT_CONSENT_SMS)
        return [slot for slot in domain_slots if slot not in skipped]

    async def get_extraction_events(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[EventType]:
        """Claim an answer the slot mappings skipped because of an interrupting intent.

        A message with an interrupting intent is still the answer when it parses as a valid
        answer to the question being asked: "montana" to "which state?" is a state even if
        the classifier heard a request for a person, and "zoloft and lamictal" to "which
        medications?" is a list, not a clinical question.
        """
        events = await super().get_extraction_events(dispatcher, tracker, domain)
        requested = tracker.get_slot(names.SLOT_REQUESTED)
        text = latest_text(tracker)
        if (
            requested
            and latest_intent(tracker) in interrupting_intents(domain, requested)
            and tracker.get_slot(requested) is None
            and parses_as_answer(requested, text, tracker.latest_message.get("entities") or [])
        ):
            events.append(SlotSet(requested, text))
        return events

    async def get_validation_events(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[EventType]:
        """Validate new answers only.

        When the form (re)activates, Rasa submits every slot that is already filled for
        validation. Those values were validated, and stored, when they were given; parsing
        them again would misread them (``True`` is not a typed "yes") and store them twice.
        A new answer is the latest message's text for the question being asked.
        """
        trailing: list[dict[str, Any]] = []
        while tracker.events and tracker.events[-1].get("event") == "slot":
            trailing.insert(0, tracker.events.pop())
        requested = tracker.get_slot(names.SLOT_REQUESTED)
        text = latest_text(tracker)
        new = [e for e in trailing if e.get("name") == requested and e.get("value") == text]
        tracker.events.extend(new)
        try:
            return await super().get_validation_events(dispatcher, tracker, domain)
        finally:
            del tracker.events[len(tracker.events) - len(new):]
            tracker.events.extend(trailing)

    # Shared outcomes ----------------------------------------------------------------------

    @staticmethod
    def _accept(tracker: Tracker, slot: str, value: Any) -> dict[str, Any]:
        with unit_of_work() as session:
            intake.record_answer(session, tracker.sender_id, input_channel(tracker), slot, value)
        return {slot: value, names.SLOT_VALIDATION_FAILURES: 0}

    @staticmethod
    def _reject(
        dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, response: str
    ) -> dict[str, Any]:
        failures = int(tracker.get_slot(names.SLOT_VALIDATION_FAILURES) or 0) + 1
        # After two failed tries, offer a way out rather than repeating the same request.
        dispatcher.utter_message(response=response if failures < 2 else "utter_still_invalid")
        return {slot: None, names.SLOT_VALIDATION_FAILURES: failures}

    @staticmethod
    def _wants_skip(tracker: Tracker, text: str) -> bool:
        # The words decide first. The skip intent alone is trusted only for longer phrasings:
        # the classifier's character n-grams hear "skip" in short names such as "Sam".
        if parsing.is_skip(text):
            return True
        intent = tracker.latest_message.get("intent") or {}
        return (intent.get("name") == names.INTENT_SKIP
                and float(intent.get("confidence") or 0) >= 0.9
                and len(text.split()) >= 3)

    def _free_text(
        self, slot: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        if self._wants_skip(tracker, text):
            return self._accept(tracker, slot, names.SKIPPED)
        if not text:
            return self._reject(dispatcher, tracker, slot, "utter_invalid_answer")
        return self._accept(tracker, slot, text)

    def _text_with_entities(
        self, slot: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        if self._wants_skip(tracker, text):
            return self._accept(tracker, slot, names.SKIPPED)
        if not text:
            return self._reject(dispatcher, tracker, slot, "utter_invalid_answer")
        ids = entity_ids(tracker, _ENTITY_ANSWERS[slot])
        return self._accept(tracker, slot, {"text": text, "ids": ids})

    def _yes_no(self, value: Any, tracker: Tracker) -> bool | None:
        answer = parsing.parse_yes_no(str(value or ""))
        if answer is None:
            intent = latest_intent(tracker)
            if intent == names.INTENT_AFFIRM:
                answer = True
            elif intent == names.INTENT_DENY:
                answer = False
        return answer

    def _count(
        self, slot: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        text = str(value or "")
        if self._wants_skip(tracker, text):
            return self._accept(tracker, slot, names.SKIPPED)
        count = parsing.parse_count(text)
        if count is None and latest_intent(tracker) == names.INTENT_DENY:
            count = 0
        if count is None:
            return self._reject(dispatcher, tracker, slot, "utter_invalid_count")
        return self._accept(tracker, slot, count)

    def _consent(
        self, slot: str, kind: ConsentKind, value: Any, dispatcher: CollectingDispatcher,
        tracker: Tracker,
    ) -> dict[str, Any]:
        answer = self._yes_no(value, tracker)
        if answer is None:
            return self._reject(dispatcher, tracker, slot, "utter_invalid_yes_no")
        wording = CONSENT_WORDINGS[kind]
        with unit_of_work() as session:
            intake.record_consent(
                session, tracker.sender_id, input_channel(tracker), kind, answer,
                wording.version, wording.sha256,
            )
        return self._accept(tracker, slot, answer)

    # One validator per question ------------------------------------------------------------

    def validate_first_name(self, value: Any, dispatcher: CollectingDispatcher,
                            tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept a plausible first name; this one cannot be skipped."""
        text = str(value or "")
        if self._wants_skip(tracker, text):
            dispatcher.utter_message(response="utter_cannot_skip")
            return {names.SLOT_FIRST_NAME: None}
        name = clean_first_name(text)
        if name is None:
            return self._reject(dispatcher, tracker, names.SLOT_FIRST_NAME,
                                "utter_invalid_first_name")
        return self._accept(tracker, names.SLOT_FIRST_NAME, name)

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher,
                       tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept a valid phone number, stored in E.164, or a skip."""
        text = str(value or "")
        if self._wants_skip(tracker, text):
            return self._accept(tracker, names.SLOT_PHONE, names.SKIPPED)
        phone = parsing.parse_phone(text)
        if phone is None:
            return self._reject(dispatcher, tracker, names.SLOT_PHONE, "utter_invalid_phone")
        return self._accept(tracker, names.SLOT_PHONE, phone)

    def validate_email(self, value: Any, dispatcher: CollectingDispatcher,
                       tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept an email address; a skip only when there is a phone number to use."""
        text = str(value or "")
        if self._wants_skip(tracker, text):
            if tracker.get_slot(names.SLOT_PHONE) in (None, names.SKIPPED):
                return self._reject(dispatcher, tracker, names.SLOT_EMAIL,
                                    "utter_need_a_contact")
            return self._accept(tracker, names.SLOT_EMAIL, names.SKIPPED)
        email = parsing.parse_email(text)
        if email is None:
            return self._reject(dispatcher, tracker, names.SLOT_EMAIL, "utter_invalid_email")
        return self._accept(tracker, names.SLOT_EMAIL, email)

    def validate_contact_time(self, value: Any, dispatcher: CollectingDispatcher,
                              tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept any answer about when to call."""
        return self._free_text("contact_time", value, dispatcher, tracker)

    def validate_us_state(self, value: Any, dispatcher: CollectingDispatcher,
                          tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept a US state, stored as its two-letter code."""
        text = str(value or "")
        if self._wants_skip(tracker, text):
            return self._accept(tracker, "us_state", names.SKIPPED)
        code = parsing.parse_us_state(text)
        if code is None:
            return self._reject(dispatcher, tracker, "us_state", "utter_invalid_us_state")
        return self._accept(tracker, "us_state", code)

    def validate_conditions(self, value: Any, dispatcher: CollectingDispatcher,
                            tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Keep the person's own words plus the conditions recognised in them."""
        return self._text_with_entities("conditions", value, dispatcher, tracker)

    def validate_condition_duration(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept any answer about how long."""
        return self._free_text("condition_duration", value, dispatcher, tracker)

    def validate_antidepressant_count(self, value: Any, dispatcher: CollectingDispatcher,
                                      tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept a number of antidepressants tried."""
        return self._count("antidepressant_count", value, dispatcher, tracker)

    def validate_prior_treatments(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Keep the person's words plus the treatments recognised (therapy, TMS, ECT ...)."""
        return self._text_with_entities("prior_treatments", value, dispatcher, tracker)

    def validate_prior_ketamine(self, value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept yes or no."""
        if self._wants_skip(tracker, str(value or "")):
            return self._accept(tracker, names.SLOT_PRIOR_KETAMINE, names.SKIPPED)
        answer = self._yes_no(value, tracker)
        if answer is None:
            return self._reject(dispatcher, tracker, names.SLOT_PRIOR_KETAMINE,
                                "utter_invalid_yes_no")
        return self._accept(tracker, names.SLOT_PRIOR_KETAMINE, answer)

    def validate_prior_ketamine_when(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept any answer about when."""
        return self._free_text(names.SLOT_PRIOR_KETAMINE_WHEN, value, dispatcher, tracker)

    def validate_prior_ketamine_infusions(self, value: Any, dispatcher: CollectingDispatcher,
                                          tracker: Tracker,
                                          domain: DomainDict) -> dict[str, Any]:
        """Accept a number of ketamine sessions."""
        return self._count(names.SLOT_PRIOR_KETAMINE_INFUSIONS, value, dispatcher, tracker)

    def validate_current_medications(self, value: Any, dispatcher: CollectingDispatcher,
                                     tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Keep the person's words plus the medications recognised in them."""
        return self._text_with_entities("current_medications", value, dispatcher, tracker)

    def validate_referral_source(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Accept any answer about how they heard of the clinic."""
        return self._free_text("referral_source", value, dispatcher, tracker)

    def validate_consent_contact(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Record consent to be contacted, with the wording version shown."""
        return self._consent(names.SLOT_CONSENT_CONTACT, ConsentKind.CONTACT, value,
                             dispatcher, tracker)

    def validate_consent_sms(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Record consent to text messages, with the wording version shown."""
        return self._consent(names.SLOT_CONSENT_SMS, ConsentKind.SMS, value, dispatcher,
                             tracker)

    def validate_intake_confirmed(self, value: Any, dispatcher: CollectingDispatcher,
                                  tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Confirm the summary, or reset the one answer the person wants to change."""
        text = str(value or "")
        target = self._correction_target(tracker, text)
        if target is not None:
            dispatcher.utter_message(response="utter_correction_ok")
            reset: dict[str, Any] = {target: None, names.SLOT_INTAKE_CONFIRMED: None}
            reset.update({slot: None for slot in _DEPENDENT_SLOTS.get(target, ())})
            return reset
        if latest_intent(tracker) != names.INTENT_CORRECT and self._yes_no(text, tracker):
            return {names.SLOT_INTAKE_CONFIRMED: True}
        dispatcher.utter_message(response="utter_correction_which")
        return {names.SLOT_INTAKE_CONFIRMED: None}

    @staticmethod
    def _correction_target(tracker: Tracker, text: str) -> str | None:
        # Any entity's text may name a field: "ketamine" is tagged as a treatment, not as an
        # intake field, because spaCy gives each span one label.
        for entity in tracker.latest_message.get("entities") or []:
            field = normalize("intake_field", str(entity.get("value", "")))
            if field in intake.INTAKE_FIELDS:
                return field
        match = _SUMMARY_NUMBER.search(text)
        if match and 1 <= int(match.group(1)) <= len(intake.INTAKE_FIELDS):
            return intake.INTAKE_FIELDS[int(match.group(1)) - 1]
        return None


class ActionAskEmail(Action):
    """Asks for an email: optional when we have a phone number, required when we don't."""

    def name(self) -> str:
        """The form calls this instead of ``utter_ask_email``."""
        return "action_ask_email"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Send the right wording of the email question."""
        has_phone = tracker.get_slot(names.SLOT_PHONE) not in (None, names.SKIPPED)
        dispatcher.utter_message(
            response="utter_ask_email_optional" if has_phone else "utter_ask_email_required"
        )
        return []


def _response_text(domain: DomainDict, response: str) -> str:
    return str(domain["responses"][response][0]["text"])


def summary_values(tracker: Tracker, domain: DomainDict) -> dict[str, str]:
    """Each intake answer as shown in the summary, keyed by slot name."""
    words = {
        True: _response_text(domain, "utter_summary_yes"),
        False: _response_text(domain, "utter_summary_no"),
    }
    skipped = _response_text(domain, "utter_summary_skipped")
    not_applicable = _response_text(domain, "utter_summary_not_applicable")
    values: dict[str, str] = {}
    for slot in intake.INTAKE_FIELDS:
        value = tracker.get_slot(slot)
        if value == names.SKIPPED:
            shown = skipped
        elif value is None:
            shown = not_applicable
        elif isinstance(value, bool):
            shown = words[value]
        elif isinstance(value, dict):
            shown = str(value.get("text", ""))
        elif slot == "us_state":
            shown = parsing.US_STATES.get(str(value), str(value))
        else:
            shown = str(value)
        values[slot] = shown
    return values


class ActionAskIntakeConfirmed(Action):
    """Shows the summary of every answer and asks the person to confirm or correct it."""

    def name(self) -> str:
        """The form calls this instead of ``utter_ask_intake_confirmed``."""
        return "action_ask_intake_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Send the summary."""
        dispatcher.utter_message(response="utter_intake_summary",
                                 **summary_values(tracker, domain))
        return []
