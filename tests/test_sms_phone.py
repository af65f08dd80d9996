"""Phone numbers as SMS addresses: E.164 normalisation, validation and masking."""

from __future__ import annotations

import pytest

from bot.sms import phone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(555) 555-0123", "+15555550123"),
        ("555-555-0123", "+15555550123"),
        ("555.555.0123", "+15555550123"),
        ("5555550123", "+15555550123"),
        ("1 555 555 0123", "+15555550123"),
        ("1-555-555-0123", "+15555550123"),
        ("+1 555 555 0123", "+15555550123"),
        ("+1 (555) 555-0123", "+15555550123"),
        ("  +15555550123  ", "+15555550123"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),  # 10 digits, a short German landline
        ("+882123456789012", "+882123456789012"),  # 15 digits, the E.164 maximum
    ],
)
def test_to_e164_accepts(text, expected):
    assert phone.to_e164(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "555-0123",  # 7 digits: no area code
        "555 555 012",  # 9 digits
        "2 555 555 0123",  # 11 digits not starting with the country code
        "555-555-01234",  # 11 digits
        "1-800-FLOWERS",  # letters
        "555-555-0123 ext 4",
        "555-555-0123x4",
        "call me at 555-555-0123",
        "+1 555 555 012",  # +1 with nine national digits
        "+1 555 555 01234",  # +1 with eleven national digits
        "+1 055 555 0123",  # NANP area codes start with 2-9
        "+1 555 155 0123",  # NANP exchanges start with 2-9
        "(055) 555-0123",
        "+0 555 555 0123",  # country codes do not start with 0
        "+1234567",  # 7 digits: too short
        "+1234567890123456",  # 16 digits: too long
        "1+5555550123",  # + in the middle
        "++15555550123",
        "+1 555 555 0123#",
        "+١٥٥٥٥٥٥٠١٢٣",  # Arabic-Indic digits are digits to str.isdigit(), not to E.164
        "+1 555 555 0123" + " " * 40,  # absurdly padded
    ],
)
def test_to_e164_rejects(text):
    assert phone.to_e164(text) is None


def test_without_default_country_only_international_numbers_are_read():
    assert phone.to_e164("+1 555 555 0123", default_country=None) == "+15555550123"
    assert phone.to_e164("555 555 0123", default_country=None) is None


def test_canada_shares_the_north_american_plan():
    assert phone.to_e164("(416) 555-0123", default_country="CA") == "+14165550123"


def test_an_unsupported_default_country_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="Unsupported default country"):
        phone.to_e164("020 7946 0958", default_country="GB")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+15555550123", True),
        ("+442079460958", True),
        ("+1 555 555 0123", False),  # valid, but not canonical
        ("15555550123", False),
        ("5555550123", False),
        ("+1555555012", False),  # ten digits after +1
        ("+0123456789", False),
        ("", False),
    ],
)
def test_is_e164(value, expected):
    assert phone.is_e164(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+15555550123", "+1******0123"),
        ("+442079460958", "+4*******0958"),
        ("+4930901820", "+4*****1820"),
        ("5555550123", "***"),  # not E.164: nothing of it is shown
        ("12345", "***"),  # a short code
        ("", "***"),
        (None, "***"),
    ],
)
def test_mask(value, expected):
    assert phone.mask(value) == expected


def test_mask_keeps_length_but_never_the_middle_digits():
    masked = phone.mask("+15035550199")
    assert len(masked) == len("+15035550199")
    assert "503555" not in masked
