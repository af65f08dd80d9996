"""Carrier keywords (STOP, START, HELP...): only a whole message is a keyword."""

from __future__ import annotations

import pytest

from bot.sms.keywords import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    Keyword,
    classify,
    normalize,
)


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop",
        "STOP.",
        "stop!",
        "Stop!!!",
        "  stop  ",
        "stop\n",
        "STOP\u200b",  # a zero-width space some keyboards append
        "STOPALL",
        "Unsubscribe",
        "CANCEL",
        "cancel?",
        "end",
        "End.",
        "END",
        "quit",
        "OPTOUT",
        "revoke",
    ],
)
@pytest.mark.parametrize("opted_out", [False, True])
def test_opt_out_keywords(text, opted_out):
    assert classify(text, opted_out=opted_out) is Keyword.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        # A keyword inside a sentence is never an opt-out. The first one is why: it must reach
        # the crisis path, not unsubscribe the person.
        "I want it all to end",
        "I want it to end.",
        "make it end",
        "end it all",
        "please don't stop texting me",
        "stop please",  # Twilio opts out on the single word only; the conversation can ask
        "please stop",
        "STOP STOP",
        "can I cancel my appointment",
        "quit my job today",
        "stop.please",
        "s t o p",
        "stopp",
        "stop 🙏",  # an emoji is not punctuation
        "'stop'",  # nor is a leading quote ignored
        "",
        "   ",
        None,
    ],
)
@pytest.mark.parametrize("opted_out", [False, True])
def test_sentences_containing_keywords_are_not_keywords(text, opted_out):
    assert classify(text, opted_out=opted_out) is Keyword.NONE


@pytest.mark.parametrize("text", ["START", "start", "Start.", "UNSTOP", "unstop!"])
@pytest.mark.parametrize("opted_out", [False, True])
def test_start_and_unstop_always_opt_in(text, opted_out):
    assert classify(text, opted_out=opted_out) is Keyword.OPT_IN


@pytest.mark.parametrize("text", ["YES", "yes", "Yes.", "yes!"])
def test_yes_opts_back_in_only_when_opted_out(text):
    assert classify(text, opted_out=True) is Keyword.OPT_IN
    # To a subscribed patient "yes" answers the last question; it must reach the conversation.
    assert classify(text, opted_out=False) is Keyword.NONE


@pytest.mark.parametrize("text", ["yes please", "yeah", "y", "yes I can talk"])
def test_other_yeses_are_never_opt_ins(text):
    assert classify(text, opted_out=True) is Keyword.NONE


@pytest.mark.parametrize("text", ["HELP", "help", "Help?", "INFO", "info."])
@pytest.mark.parametrize("opted_out", [False, True])
def test_help_keywords(text, opted_out):
    assert classify(text, opted_out=opted_out) is Keyword.HELP


@pytest.mark.parametrize("text", ["help me", "I need help", "please help", "more info please"])
def test_help_in_a_sentence_is_an_ordinary_message(text):
    assert classify(text, opted_out=False) is Keyword.NONE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Stop!! ", "stop"),
        ("End.", "end"),
        ("I want it all to end", "i want it all to end"),
        ("\ufeffHELP", "help"),
        ("stop ?!", "stop"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_keyword_sets_are_disjoint():
    assert not OPT_OUT_KEYWORDS & OPT_IN_KEYWORDS
    assert not OPT_OUT_KEYWORDS & HELP_KEYWORDS
    assert not OPT_IN_KEYWORDS & HELP_KEYWORDS
