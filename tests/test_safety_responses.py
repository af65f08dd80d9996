"""What a person in crisis reads: fixed words, the right numbers, GSM-7, at most two SMS
segments, and never "I can't help"."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.clinic import get_clinic
from bot.gsm import is_gsm7, non_gsm7_characters, segments
from bot.safety.detector import Assessment
from bot.safety.guard import resources_response, still_here_response

CRISIS_RESPONSES = [
    "utter_crisis_resources",
    "utter_crisis_resources_overdose",
    "utter_crisis_resources_es",
    "utter_crisis_resources_overdose_es",
    "utter_crisis_still_here",
    "utter_crisis_still_here_es",
    "utter_crisis_support",
    "utter_crisis_support_es",
    "utter_crisis_denial_ack",
    "utter_crisis_denial_ack_es",
]
RESOURCES = [name for name in CRISIS_RESPONSES if name.startswith("utter_crisis_resources")]


def _text(raw_domain: dict[str, Any], name: str) -> str:
    [variation] = raw_domain["responses"][name]
    return variation["text"].format(**get_clinic().response_vars())


@pytest.mark.parametrize("name", CRISIS_RESPONSES)
def test_crisis_replies_fit_sms(raw_domain: dict[str, Any], name: str) -> None:
    text = _text(raw_domain, name)
    assert is_gsm7(text), non_gsm7_characters(text)
    assert segments(text) <= 2, (len(text), text)


@pytest.mark.parametrize("name", RESOURCES)
def test_resources_name_988_911_and_the_clinic(raw_domain: dict[str, Any], name: str) -> None:
    text = _text(raw_domain, name)
    assert "988" in text
    assert "911" in text
    assert get_clinic().name in text


@pytest.mark.parametrize("name", RESOURCES)
def test_poison_control_only_in_the_overdose_replies(raw_domain: dict[str, Any], name: str) -> None:
    assert ("1-800-222-1222" in _text(raw_domain, name)) == ("overdose" in name)


@pytest.mark.parametrize("name", [n for n in RESOURCES if n.endswith("_es")])
def test_spanish_replies_name_the_988_spanish_line(raw_domain: dict[str, Any], name: str) -> None:
    assert re.search(r"marca 2 para español", _text(raw_domain, name))


@pytest.mark.parametrize("name", CRISIS_RESPONSES)
def test_crisis_replies_never_give_up(raw_domain: dict[str, Any], name: str) -> None:
    text = _text(raw_domain, name).lower()
    for phrase in ("can't help", "cannot help", "unable to help", "goodbye", "no puedo ayudar"):
        assert phrase not in text


@pytest.mark.parametrize(
    ("assessment", "resources", "still_here"),
    [
        (Assessment(crisis=True), "utter_crisis_resources", "utter_crisis_still_here"),
        (Assessment(crisis=True, poison_control=True), "utter_crisis_resources_overdose",
         "utter_crisis_still_here"),
        (Assessment(crisis=True, language="es"), "utter_crisis_resources_es",
         "utter_crisis_still_here_es"),
        (Assessment(crisis=True, language="es", poison_control=True),
         "utter_crisis_resources_overdose_es", "utter_crisis_still_here_es"),
    ],
)
def test_reply_choice(assessment: Assessment, resources: str, still_here: str) -> None:
    assert resources_response(assessment) == resources
    assert still_here_response(assessment) == still_here


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("é" * 160, 1),
     ("á", 1), ("á" * 71, 2), ("{" * 80, 1), ("{" * 81, 2), ("", 0), ("😔" * 35, 1)],
)
def test_segment_counting(text: str, expected: int) -> None:
    assert segments(text) == expected


def test_gsm7_alphabet() -> None:
    assert is_gsm7("Llama al 988 (marca 2 para español). ¿Estas bien?")
    assert not is_gsm7("Llama al 988, envía un mensaje")
    assert non_gsm7_characters("it’s “fine” 😔") == ["’", "“", "”", "😔"]
