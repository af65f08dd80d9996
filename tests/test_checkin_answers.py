"""Reading SMS check-in answers into scores (:mod:`bot.checkins.answers`)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from bot.checkins.answers import (
    MAX_ANSWER_CHARS,
    Reading,
    is_nothing,
    read_answer,
    read_frequency,
    read_signs,
    read_zero_to_ten,
)
from bot.checkins.questions import SIGN_KEYS, Scale

UNREAD = Reading(score=None)


def exact(score: int) -> Reading:
    return Reading(score=score)


def vague(score: int) -> Reading:
    return Reading(score=score, approximate=True)


def signs(*keys: str) -> Reading:
    return Reading(score=len(keys), choices=keys)


# --------------------------------------------------------------------------------------------
# 0-10: how much symptoms have come back
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("0", 0),
        ("2", 2),
        (" 2 ", 2),
        ("2!", 2),
        ("#2", 2),
        ("option 2", 2),
        ("a 2", 2),
        ("10", 10),
        ("7/10", 7),
        ("7 / 10", 7),
        ("0/10", 0),
        ("10/10", 10),
        ("7 out of 10", 7),
        ("7 of 10", 7),
        ("seven out of ten", 7),
        ("seven", 7),
        ("Seven!", 7),
        ("zero", 0),
        ("ten", 10),
        ("Two.", 2),
        ("TWO", 2),
        ("two (2)", 2),
        ("2 2", 2),
        ("I'd say a 6 today", 6),
        ("I\u2019d say a 6 today", 6),
        ("i'm at a seven", 7),
        ("probably a 4", 4),
        ("maybe 4?", 4),
        ("6ish", 6),
        ("a 3 this week", 3),
        ("a 6 for 3 days", 6),
        ("8 \U0001f614", 8),
        ("\U0001f614\U0001f614 5", 5),
        ("2\ufe0f\u20e3", 2),  # keycap emoji
        ("\uff17", 7),  # full-width digit
        ("cero", 0),
        ("uno", 1),
        ("dos", 2),
        ("tres", 3),
        ("cuatro", 4),
        ("cinco", 5),
        ("seis", 6),
        ("siete", 7),
        ("ocho", 8),
        ("nueve", 9),
        ("diez", 10),
        ("7\x00", 7),
        ("\u202e7", 7),
    ],
)
def test_zero_to_ten_reads_numbers_exactly(text: str, score: int) -> None:
    assert read_zero_to_ten(text) == exact(score)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not at all", exact(0)),  # the scale's own wording
        ("Not at all.", exact(0)),
        ("none", vague(0)),
        ("no change", vague(0)),
        ("same as after", vague(0)),
        ("the same as right after", vague(0)),
        ("still great", vague(0)),
        ("feel great", vague(0)),
        ("I feel great!", vague(0)),
        ("a little", vague(2)),
        ("a little bit", vague(2)),
        ("slightly", vague(2)),
        ("a bit", vague(2)),
        ("somewhat", vague(5)),
        ("some", vague(5)),
        ("moderately", vague(5)),
        ("about halfway", vague(5)),
        ("pretty bad", vague(7)),
        ("a lot", vague(7)),
        ("quite a bit", vague(7)),
        ("completely", vague(10)),
        ("all the way back", vague(10)),
        ("worse than ever", vague(10)),
        ("back to square one", vague(10)),
        ("as bad as before", exact(10)),  # the scale's own wording
        ("as bad as before treatment", exact(10)),
        ("as bad as before treatmnt", exact(10)),  # a typo in the scale's wording
    ],
)
def test_zero_to_ten_reads_words(text: str, expected: Reading) -> None:
    assert read_zero_to_ten(text) == expected


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("a little, maybe a 3", 3),
        ("2 - a little", 2),
        ("pretty bad, 7", 7),
        ("somewhat, a 4", 4),
        ("completely, 9", 9),
        ("not at all, 0", 0),
        ("10 - as bad as before", 10),
    ],
)
def test_zero_to_ten_number_with_agreeing_words_is_exact(text: str, score: int) -> None:
    assert read_zero_to_ten(text) == exact(score)


@pytest.mark.parametrize(
    "text",
    [
        # out of range
        "11",
        "12",
        "-1",
        "100",
        "eleven",
        "11/10",
        "50%",
        # two different numbers
        "2 or 3",
        "1-2",
        "1 - 2",
        "5 to 6",
        "between 5 and 6",
        "5 6",
        "seven or eight",
        "I was a 9 before, now a 3",
        # decimals
        "6.5",
        "6,5",
        "7.0",
        # fractions not over 10
        "2/3",
        "3/5",
        "1 out of 2",
        # a number that counts something
        "6 days ago",
        "it's been 6 days",
        "2 bad days",
        "3 weeks",
        "2 times",
        "5mg",
        "2 pills",
        "since 3",
        "6 of the last 14 days",
        "one of those weeks",
        # hedges, negations, comparisons
        "not a 6",
        "not sure, maybe 5",
        "idk",
        "idk 5",
        "almost a 10",
        "nearly 10",
        "5 or more",
        "more than 6",
        "at least 4",
        "5+",
        "not a lot",
        "not much",
        # number words in longer sentences
        "one thing at a time",
        "no one cares",
        # words and number disagree
        "a little, 8",
        "pretty bad, 2",
        "not at all, 5",
        "completely, 5",
        # words that are not on the list
        "no",
        "yes",
        "same",
        "great",
        "fine",
        "hard to say",
        "some days",
        "a little and a lot",
        "2nd",
        "#",
        "?",
    ],
)
def test_zero_to_ten_leaves_unclear_answers_unread(text: str) -> None:
    assert read_zero_to_ten(text) == UNREAD


# --------------------------------------------------------------------------------------------
# 0-3: PHQ/GAD frequency
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("0", 0),
        ("1", 1),
        ("2", 2),
        ("3", 3),
        ("#3", 3),
        ("option 1", 1),
        ("zero", 0),
        ("one", 1),
        ("two", 2),
        ("Three.", 3),
        ("cero", 0),
        ("uno", 1),
        ("dos", 2),
        ("tres", 3),
        ("2 out of 3", 2),
        ("3/3", 3),
        ("2\ufe0f\u20e3", 2),
    ],
)
def test_frequency_reads_numbers_exactly(text: str, score: int) -> None:
    assert read_frequency(text) == exact(score)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("not at all", 0),
        ("Not at all!", 0),
        ("several days", 1),
        ("Several days.", 1),
        ("I'd say several days", 1),
        ("more than half the days", 2),
        ("more than half of the days", 2),
        ("more than half", 2),
        ("nearly every day", 3),
        ("nearly everyday", 3),
    ],
)
def test_frequency_reads_the_scale_wording_exactly(text: str, score: int) -> None:
    assert read_frequency(text) == exact(score)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("never", 0),
        ("no", 0),
        ("No.", 0),
        ("none", 0),
        ("nope", 0),
        ("nah", 0),
        ("some days", 1),
        ("a few days", 1),
        ("a couple of days", 1),
        ("sometimes", 1),
        ("a little", 1),
        ("occasionally", 1),
        ("a bit", 1),
        ("most days", 2),
        ("often", 2),
        ("very often", 2),
        ("a lot", 2),
        ("pretty bad", 2),
        ("quite a bit", 2),
        ("most of the time", 2),
        ("almost every day", 3),
        ("every day", 3),
        ("everyday", 3),
        ("all the time", 3),
        ("always", 3),
        ("constantly", 3),
        ("daily", 3),
        ("24/7", 3),
        ("Always \U0001f62d", 3),
    ],
)
def test_frequency_reads_everyday_words_approximately(text: str, score: int) -> None:
    assert read_frequency(text) == vague(score)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("severel days", exact(1)),
        ("sevral days", exact(1)),
        ("several day", exact(1)),
        ("more then half the days", exact(2)),
        ("more than half the dayz", exact(2)),
        ("nearly evrey day", exact(3)),
        ("evry day", vague(3)),
        ("everday", vague(3)),
        ("almost evry day", vague(3)),
    ],
)
def test_frequency_forgives_a_typo_in_the_scale_wording(text: str, expected: Reading) -> None:
    assert read_frequency(text) == expected


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("1 - several days", 1),
        ("several days (1)", 1),
        ("1 several days", 1),
        ("0 - not at all", 0),
        ("2 - more than half the days", 2),
        ("3 nearly every day", 3),
        ("3, every day", 3),
        ("1 severel days", 1),
    ],
)
def test_frequency_number_and_agreeing_words_are_exact(text: str, score: int) -> None:
    assert read_frequency(text) == exact(score)


@pytest.mark.parametrize(
    "text",
    [
        # number and words disagree
        "3 several days",
        "1 not at all",
        "2 - nearly every day",
        "0 sometimes",
        "2 evry day",
        # out of range, several numbers, decimals, fractions
        "4",
        "10",
        "ten",
        "7/10",
        "2/3",  # "2 or 3" as often as "2 out of 3"
        "1/2",
        "1 out of 2",
        "2 or 3",
        "1-2",
        "between 1 and 2",
        "1.5",
        "2.0",
        # counts, not answers
        "2 days",
        "3 days a week",
        "two days",
        "a lot, 3 days a week",
        "once or twice",
        # hedges and negations
        "not really",  # could mean "a little"; see the module docstring
        "not often",
        "not every day",
        "not always",
        "not a lot",
        "almost never",
        "rarely",
        "hardly ever",
        "no idea",
        "never mind",
        "idk 2",
        "2 or more",
        # unknown words, or two readings
        "some",
        "yes",
        "sometimes always",
        "never and always",
        "severe days",
        "seven days",
        "it depends",
    ],
)
def test_frequency_leaves_unclear_answers_unread(text: str) -> None:
    assert read_frequency(text) == UNREAD


# --------------------------------------------------------------------------------------------
# Signs: multiple choice
# --------------------------------------------------------------------------------------------

ALL_SIGNS = signs(*SIGN_KEYS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", signs("mood")),
        ("6", signs("sleep")),
        ("1 3 5", signs("mood", "negative_thoughts", "anxiety")),
        ("1,3,5", signs("mood", "negative_thoughts", "anxiety")),
        ("1, 3 and 5", signs("mood", "negative_thoughts", "anxiety")),
        ("135", signs("mood", "negative_thoughts", "anxiety")),
        ("531", signs("mood", "negative_thoughts", "anxiety")),  # in SIGN_KEYS order
        ("5 & 2", signs("motivation", "anxiety")),
        ("2+4", signs("motivation", "coping")),
        ("#2 #4", signs("motivation", "coping")),
        ("1 1 3", signs("mood", "negative_thoughts")),
        ("1 2 3 4 5 6", ALL_SIGNS),
        ("one and three", signs("mood", "negative_thoughts")),
        ("2\ufe0f\u20e3 5\ufe0f\u20e3", signs("motivation", "anxiety")),
        ("all", ALL_SIGNS),
        ("All of them", ALL_SIGNS),
        ("all of the above", ALL_SIGNS),
        ("all 6", ALL_SIGNS),
        ("everything", ALL_SIGNS),
        ("0", Reading(score=0)),
        ("zero", Reading(score=0)),
        ("none", Reading(score=0)),
        ("None of them.", Reading(score=0)),
        ("no", Reading(score=0)),
        ("nothing", Reading(score=0)),
        ("n/a", Reading(score=0)),
        ("mood", signs("mood")),
        ("sad", signs("mood")),
        ("feeling down", signs("mood")),
        ("motivation", signs("motivation")),
        ("interest", signs("motivation")),
        ("unmotivated", signs("motivation")),
        ("less motivation", signs("motivation")),
        ("negative thoughts", signs("negative_thoughts")),
        ("negative thinking", signs("negative_thoughts")),
        ("coping", signs("coping")),
        ("stress", signs("coping")),
        ("overwhelmed", signs("coping")),
        ("anxiety", signs("anxiety")),
        ("anxious", signs("anxiety")),
        ("panic attacks", signs("anxiety")),
        ("sleep", signs("sleep")),
        ("insomnia", signs("sleep")),
        ("Sleeping", signs("sleep")),
        ("1 and sleep", signs("mood", "sleep")),
        ("sleep and 1", signs("mood", "sleep")),
        ("trouble sleeping and some anxiety", signs("anxiety", "sleep")),
        ("anxious all the time", signs("anxiety")),
        ("1 - mood, 3 - negative thoughts", signs("mood", "negative_thoughts")),
        ("Stress + SLEEP \U0001f634", signs("coping", "sleep")),
    ],
)
def test_signs_reads_picks(text: str, expected: Reading) -> None:
    assert read_signs(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "7",
        "1 7",
        "9",
        "1 3 8",
        "17",
        "0 and 2",
        "0 2",
        "none, just sleep",
        "10",
        "11",  # eleven, not "1 and 1"
        "1-3",
        "2 to 4",
        "1 or 2",
        "1.3",
        "all but 3",
        "all except sleep",
        "all and 1",
        "no anxiety",
        "not sleep",
        "one of them is sleep",
        "one, sleep",
        "seven",
        "my mood is better but sleep is bad",
        "sleep for 2 weeks",
        "negative",
        "xyz",
        "yes",
        "some",
        "?",
    ],
)
def test_signs_leaves_unclear_answers_unread(text: str) -> None:
    assert read_signs(text) == UNREAD


# --------------------------------------------------------------------------------------------
# Free text and dispatch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "no",
        "No.",
        "NO",
        "nope",
        "Nope \U0001f60a",
        "nah",
        "nothing",
        "none",
        "no thanks",
        "No thanks!",
        "no thank you",
        "that's all",
        "that\u2019s all for now",
        "thats it",
        "n/a",
        "N/A",
        "nothing else, thank you",
        "not really",
        "I'm good",
        "nah im good",
        "all good thanks",
    ],
)
def test_is_nothing_recognises_nothing_to_add(text: str) -> None:
    assert is_nothing(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\U0001f44d",
        "no, but I've had headaches",
        "nothing except my sleep is off",
        "headaches",
        "no idea",
        "no good",
        "yes",
        "I have a question about my next infusion",
        "none of your business",
        "no " * 200,
    ],
)
def test_is_nothing_keeps_anything_else(text: str) -> None:
    assert is_nothing(text) is False


@pytest.mark.parametrize(
    ("scale", "text", "expected"),
    [
        (Scale.ZERO_TO_TEN, "7/10", exact(7)),
        (Scale.ZERO_TO_TEN, "pretty bad", vague(7)),
        (Scale.ZERO_TO_TEN, "4", exact(4)),
        (Scale.FREQUENCY, "4", UNREAD),
        (Scale.FREQUENCY, "pretty bad", vague(2)),
        (Scale.FREQUENCY, "several days", exact(1)),
        (Scale.SIGNS, "4", signs("coping")),
        (Scale.SIGNS, "135", signs("mood", "negative_thoughts", "anxiety")),
        (Scale.FREE_TEXT, "5", UNREAD),
        (Scale.FREE_TEXT, "not at all", UNREAD),
        (Scale.FREE_TEXT, "my sleep has been off", UNREAD),
        (Scale.FREE_TEXT, "", UNREAD),
    ],
)
def test_read_answer_dispatches_on_the_scale(scale: Scale, text: str, expected: Reading) -> None:
    assert read_answer(scale, text) == expected


def test_reading_defaults_and_is_frozen() -> None:
    reading = Reading(score=3)
    assert reading.choices == ()
    assert reading.approximate is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.score = 4  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Robustness: nothing crashes, everything stays in range
# --------------------------------------------------------------------------------------------

ODD_STRINGS = [
    "",
    " ",
    "\t\n\r",
    "\x00",
    "\x00\x01\x02\x1b[31m",
    "\u202e\u2066\ufeff",
    "\ud800",
    "\udfff2",
    "\U0001f600",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f44d\U0001f3fd",
    "\u0301\u0301\u0301",
    "None",
    "null",
    "undefined",
    "NaN",
    "inf",
    "-0",
    "0x10",
    "1e3",
    "\u00bd",
    "\u00b2",
    "\u0663",  # Arabic-Indic three
    "\u2167",  # Roman numeral eight
    "9" * 5000,
    "1" * 301,
    "2 " + " " * 400,
    "a" * 2000,
    "several days " * 200,
    "1 3 5 " * 60,
    "/" * 50,
    "-" * 50,
    "#" * 50,
    "?" * 50,
    "n/a/n/a",
    "'''",
    "\u2019\u2019",
    "<script>alert(1)</script>",
    "'; DROP TABLE checkin_answers; --",
    "{{ 7 }}",
    "%s %d",
    "\\n",
    "1/0",
    "0/0",
    "out of",
    "7 out of",
    "out of 10",
    "of of of",
    "a a a",
    "ish",
    "2ish3",
    "x2",
    "\u00e9\u00e8\u00ea",
    "\u0130",  # dotted capital I: casefolds to two characters
    "\u00df",
    "\ufb01",  # ligature fi
]


def _odd_inputs() -> list[str]:
    rng = random.Random(20240601)  # fixed seed: the same inputs on every run
    alphabet = "0123456789 abcdefghilmnorstuvwy/-.,#&+?%'\u2019\U0001f60a\u200d\u0301\x00\n"
    generated = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)
    ]
    return ODD_STRINGS + generated


def _check(reading: Reading, maximum: int) -> None:
    assert isinstance(reading, Reading)
    assert reading.score is None or 0 <= reading.score <= maximum
    if reading.score is None:
        assert reading.choices == ()
        assert reading.approximate is False


def test_no_odd_input_raises_and_scores_stay_in_range() -> None:
    for text in _odd_inputs():
        _check(read_zero_to_ten(text), 10)
        _check(read_frequency(text), 3)
        reading = read_signs(text)
        _check(reading, len(SIGN_KEYS))
        if reading.score is not None:
            assert reading.score == len(reading.choices)
            assert reading.choices == tuple(key for key in SIGN_KEYS if key in reading.choices)
            assert reading.approximate is False
        assert isinstance(is_nothing(text), bool)
        for scale in Scale:
            assert isinstance(read_answer(scale, text), Reading)


@pytest.mark.parametrize("value", [None, 7, b"7", ["7"]])
def test_non_text_is_unread_not_an_error(value: object) -> None:
    assert read_zero_to_ten(value) == UNREAD  # type: ignore[arg-type]
    assert read_frequency(value) == UNREAD  # type: ignore[arg-type]
    assert read_signs(value) == UNREAD  # type: ignore[arg-type]
    assert is_nothing(value) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "7" + " " * MAX_ANSWER_CHARS + "x",
        "I'd say a 6 today. " + "More words. " * 30,
        "1 3 5 " * 60,
        "no thanks " * 40,
    ],
)
def test_long_answers_are_not_read(text: str) -> None:
    assert len(text.strip()) > MAX_ANSWER_CHARS
    assert read_zero_to_ten(text) == UNREAD
    assert read_frequency(text) == UNREAD
    assert read_signs(text) == UNREAD
    assert is_nothing(text) is False


def test_answer_at_the_length_limit_is_still_read() -> None:
    text = "2" + " " * (MAX_ANSWER_CHARS - 2) + "!"
    assert len(text) == MAX_ANSWER_CHARS
    assert read_frequency(text) == exact(2)
