"""Reading phone numbers, emails, states, counts and yes/no from what people type."""

from __future__ import annotations

import pytest

from bot import parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("503 555 0199", "+15035550199"),
        ("(415) 555-2671", "+14155552671"),
        ("+1 415.555.2671", "+14155552671"),
        ("my cell is 971-555-0100 thanks", "+19715550100"),
        ("+44 20 7946 0958", "+442079460958"),
        ("555-1234", None),
        ("12", None),
        ("call me maybe", None),
        ("", None),
        ("1234567890123456789", None),
    ],
)
def test_parse_phone(text, expected):
    assert parsing.parse_phone(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Maria.Lopez@Example.com", "maria.lopez@example.com"),
        ("it's jo+clinic@mail.co.uk", "jo+clinic@mail.co.uk"),
        ("foo@bar", None),
        ("not an email", None),
        ("a@b..com", None),
        ("", None),
    ],
)
def test_parse_email(text, expected):
    assert parsing.parse_email(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Oregon", "OR"),
        ("or", "OR"),
        ("I live in Oregon", "OR"),
        ("tx", "TX"),
        ("West Virginia", "WV"),
        ("virginia", "VA"),
        ("new york city", "NY"),
        ("washington dc", "DC"),
        ("im in cali", "CA"),
        ("I'm in the middle of nowhere", None),
        ("Ontario", None),
        ("", None),
    ],
)
def test_parse_us_state(text, expected):
    assert parsing.parse_us_state(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3), ("three", 3), ("none", 0), ("zero", 0), ("maybe four or five", 5),
        ("3-4", 4), ("a couple", 2), ("twelve", 12), ("lots", None), ("200", None), ("", None),
    ],
)
def test_parse_count(text, expected):
    assert parsing.parse_count(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True), ("Yeah sure", True), ("ok", True), ("yes, twice last year", True),
        ("no", False), ("nope never", False), ("No thanks", False),
        ("not sure", None), ("I don't know", None), ("maybe", None), ("yes and no", None),
        ("purple", None),
    ],
)
def test_parse_yes_no(text, expected):
    assert parsing.parse_yes_no(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("skip", True), ("Skip this one", True), ("I'd rather not say", True), ("pass", True),
     ("Maria", False), ("no", False)],
)
def test_is_skip(text, expected):
    assert parsing.is_skip(text) is expected
