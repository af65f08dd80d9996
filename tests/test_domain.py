"""The domain: consent wordings match their versions, every response the code names exists, and
no response makes a clinical decision."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from bot.clinic import FAQ_TOPICS
from bot.consent import CONSENT_WORDINGS
from bot.services.intake import INTAKE_FIELDS
from bot.settings import PROJECT_ROOT

# Statements the assistant must never make: eligibility, need for a booster, permission to take
# a drug, a dose, or safety for the person.
CLINICAL_DECISIONS = [
    r"\byou(?:'re| are)\s+(?:not\s+)?(?:eligible|a (?:good |great )?candidate|qualified)\b",
    r"\byou (?:do not |don't )?(?:need|should (?:get|have)) (?:a |another )?booster",
    r"\byou (?:can|may|should) (?:safely )?(?:take|stop|start|keep taking)\b",
    r"\b\d+(?:\.\d+)?\s?(?:mg|milligrams?|mg/kg)\b",
    r"\b(?:it is|it's) safe for you\b",
    r"\bketamine (?:will|would) (?:work|help) for you\b",
]


def _all_response_texts(raw_domain: dict) -> list[tuple[str, str]]:
    return [(name, variation.get("text", ""))
            for name, variations in raw_domain["responses"].items()
            for variation in variations]


def test_consent_wordings_match_their_registered_versions(raw_domain):
    for wording in CONSENT_WORDINGS.values():
        text = raw_domain["responses"][wording.response][0]["text"]
        assert hashlib.sha256(text.encode()).hexdigest() == wording.sha256, (
            f"{wording.response} changed: register a new version in bot/consent.py")


@pytest.mark.parametrize("pattern", CLINICAL_DECISIONS)
def test_no_response_makes_a_clinical_decision(raw_domain, pattern):
    offenders = [name for name, text in _all_response_texts(raw_domain)
                 if re.search(pattern, text, re.IGNORECASE)]
    assert offenders == []


@pytest.mark.parametrize("pattern", CLINICAL_DECISIONS)
def test_clinic_faq_answers_make_no_clinical_decision(pattern):
    raw = yaml.safe_load((PROJECT_ROOT / "clinic.yml").read_text())
    offenders = [topic for topic in FAQ_TOPICS
                 if re.search(pattern, raw["faq"][topic], re.IGNORECASE)]
    assert offenders == []


def test_the_guardrail_patterns_do_catch_clinical_decisions():
    samples = ["You're a good candidate for ketamine.", "You need a booster now.",
               "You can take it with lithium.", "The usual dose is 35 mg.",
               "It's safe for you to go ahead."]
    for sample in samples:
        assert any(re.search(p, sample, re.IGNORECASE) for p in CLINICAL_DECISIONS), sample


def test_every_form_question_has_a_question(raw_domain):
    asks = set(raw_domain["responses"]) | set(raw_domain["actions"])
    for slot in raw_domain["forms"]["intake_form"]["required_slots"]:
        assert f"utter_ask_{slot}" in asks or f"action_ask_{slot}" in asks, slot


def test_intake_fields_match_the_form_and_the_summary(raw_domain):
    form_slots = raw_domain["forms"]["intake_form"]["required_slots"]
    assert tuple(form_slots[:-1]) == INTAKE_FIELDS
    summary = raw_domain["responses"]["utter_intake_summary"][0]["text"]
    # The summary's numbers are what "change 3" refers to.
    for number, field in enumerate(INTAKE_FIELDS, start=1):
        assert re.search(rf"\n{number}\. [^\n]*\{{{field}\}}", summary), field


def test_every_response_the_code_names_exists(raw_domain):
    names = set()
    for path in list((PROJECT_ROOT / "actions").rglob("*.py")) + list(
            (PROJECT_ROOT / "bot").rglob("*.py")):
        names.update(re.findall(r"\"(utter_[a-z_]+)\"", Path(path).read_text()))
    responses = set(raw_domain["responses"])
    # opening_hours_reply() adds _open or _closed to the names it is given.
    missing = sorted(n for n in names if n not in responses
                     and not {f"{n}_open", f"{n}_closed"} <= responses)
    assert missing == []
    assert {"utter_intake_submitted_open", "utter_human_handoff_closed"} <= responses


def test_clinic_values_used_in_responses_are_configured(raw_domain):
    from bot.clinic import get_clinic

    provided = set(get_clinic().response_vars())
    slots = set(raw_domain["slots"])
    # Filled in by the action that sends the response (opening hours; check-in question
    # numbers; an SMS patient's first name from the patient ledger).
    action_supplied = {"next_opening", "number"}
    for name, text in _all_response_texts(raw_domain):
        for variable in re.findall(r"\{([a-z_]+)\}", text):
            assert variable in provided | slots | action_supplied, (name, variable)


def test_every_data_file_has_the_same_version_header():
    # data/safety/ holds the crisis detector's own pattern file, not Rasa training data.
    rasa_dirs = ("nlu", "rules", "stories")
    for path in (p for d in rasa_dirs for p in (PROJECT_ROOT / "data" / d).rglob("*.yml")):
        assert path.read_text().startswith('version: "3.1"'), path
