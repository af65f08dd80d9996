"""Every text the assistant can send by SMS is GSM-7 and at most two segments once the clinic's
values are filled in, and check-in texts carry no clinical conclusion."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot import gsm
from bot.channels.common import response_text
from bot.checkins import questions

SMS_RESPONSES = [
    "utter_sms_help", "utter_sms_opted_out", "utter_sms_opted_in", "utter_sms_unknown_number",
    "utter_sms_callback_recorded", "utter_sms_callback_already", "utter_sms_media_only",
    "utter_checkin_intro", "utter_checkin_intro_requested", "utter_checkin_invalid_zero_to_ten",
    "utter_checkin_invalid_frequency", "utter_checkin_invalid_signs",
    "utter_checkin_kept_in_words", "utter_checkin_done", "utter_checkin_reminder",
    "utter_checkin_unavailable", "utter_crisis_resources", "utter_crisis_resources_overdose",
    "utter_crisis_still_here", "utter_crisis_support", "utter_crisis_denial_ack",
    "utter_empty_message", "utter_technical_problem",
    *[f"utter_ask_{question.slot}" for question in questions.ALL_QUESTIONS],
]
# The longest values a text may be filled with: a long first name, a two-digit question number.
WORST_CASE = {"first_name": "Maximiliana", "number": 16, "next_opening": "Wednesday at 9:00 AM"}


@pytest.mark.parametrize("name", SMS_RESPONSES)
def test_sms_text_is_gsm7_and_at_most_two_segments(name: str, raw_domain: dict[str, Any]) -> None:
    assert name in raw_domain["responses"], name
    text = response_text(None, name, **WORST_CASE)
    assert text is not None and "{" not in text, text
    assert gsm.is_gsm7(text), (name, gsm.non_gsm7_characters(text))
    assert gsm.segments(text) <= 2, (name, len(text))


def test_every_checkin_question_has_a_response_and_numbered(raw_domain: dict[str, Any]) -> None:
    for question in questions.ALL_QUESTIONS:
        text = raw_domain["responses"][f"utter_ask_{question.slot}"][0]["text"]
        assert text.startswith("Q{number}. "), question.key


@pytest.mark.parametrize("key", ["phq1", "phq2", "phq3", "phq4", "phq5", "phq6", "phq7",
                                 "phq9", "gad1", "gad2"])
def test_phq_and_gad_items_use_the_published_scale(key: str, raw_domain: dict[str, Any]) -> None:
    text = raw_domain["responses"][f"utter_ask_checkin_{key}"][0]["text"]
    assert "2 weeks" in text
    assert "0 not at all, 1 several days, 2 more than half the days, 3 nearly every day" in text


# Words that would tell a patient what their answers mean, or what to do clinically.
CLINICAL_CONCLUSIONS = re.compile(
    r"\b(eligible|you need a booster|you should|your score|severe|moderate|mild|diagnos|"
    r"dose|relapse)", re.IGNORECASE)


@pytest.mark.parametrize("name", [n for n in SMS_RESPONSES if "checkin" in n or "sms" in n])
def test_checkin_texts_carry_no_clinical_conclusion(name: str) -> None:
    text = response_text(None, name, **WORST_CASE)
    assert text is not None
    assert not CLINICAL_CONCLUSIONS.search(text), text
