"""Turning what people type into validated values: phone numbers, emails, states, counts, yes/no.

Pure functions with no Rasa or database dependency, shared by the intake form and the SMS
check-ins. Each returns ``None`` when it cannot read a value, so the caller can re-ask.
"""

from __future__ import annotations

import re

import phonenumbers

US_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin",
    "WY": "Wyoming", "PR": "Puerto Rico",
}
_STATE_BY_NAME = {name.lower(): code for code, name in US_STATES.items()}
_STATE_ALIASES = {"washington dc": "DC", "washington d.c.": "DC", "d.c.": "DC", "cali": "CA",
                  "mass": "MA", "jersey": "NJ", "penn": "PA", "pa.": "PA"}
# Two-letter codes that are also ordinary English words; only accepted when they are the
# whole answer, so "I live in Oregon" is not read as Indiana.
_AMBIGUOUS_CODES = {"IN", "OR", "ME", "HI", "OK", "OH", "LA", "MA", "PA", "DE", "ID", "AL", "CO"}

_NUMBER_WORDS = {
    "zero": 0, "none": 0, "no": 0, "nothing": 0, "nil": 0, "one": 1, "once": 1, "a": 1,
    "an": 1, "single": 1, "two": 2, "twice": 2, "couple": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
    "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "dozen": 12,
}

_YES = {"yes", "y", "yeah", "yep", "yup", "ya", "yea", "sure", "ok", "okay", "k", "correct",
        "right", "definitely", "absolutely", "of course", "please do", "i do", "i agree",
        "agree", "affirmative", "si", "sí", "that's right", "thats right", "yes please"}
_NO = {"no", "n", "nope", "nah", "not really", "never", "no thanks", "no thank you",
       "i don't", "i dont", "i do not", "negative", "don't", "dont", "do not", "not at all"}
_SKIP = {"skip", "skip it", "skip this", "pass", "next", "rather not", "i'd rather not",
         "id rather not", "prefer not to say", "prefer not to answer", "i'd rather not say",
         "rather not say", "no comment", "n/a", "na", "skip please", "next question"}

_UNSURE = ("not sure", "unsure", "don't know", "dont know", "do not know", "maybe", "idk",
           "no idea", "perhaps", "can't remember", "cant remember")

_SKIP_PREFIXES = ("skip", "pass on", "i'd rather not", "id rather not", "i would rather not",
                  "rather not", "prefer not", "i prefer not", "i'd prefer not", "no comment",
                  "next question", "i don't want to answer", "i dont want to answer")

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_WORD_RE = re.compile(r"[a-z']+|\d+")


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).strip(" .!?,")


def parse_phone(text: str, region: str = "US") -> str | None:
    """A valid phone number found in ``text``, in E.164 form.

    Args:
        text: What the person typed, e.g. ``"(503) 555-0199"`` or ``"+44 20 7946 0958"``.
        region: The region assumed for numbers written without a country code.

    Returns:
        ``"+15035550199"``-style text, or ``None`` if no valid number is there.
    """
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        if phonenumbers.is_valid_number(match.number):
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def parse_email(text: str) -> str | None:
    """The email address in ``text``, lower-cased, or ``None``."""
    match = _EMAIL_RE.search(text.strip())
    if match is None:
        return None
    email = match.group(0).lower()
    local, _, domain = email.partition("@")
    if len(email) > 254 or len(local) > 64 or ".." in email or domain.startswith("-"):
        return None
    return email


def parse_us_state(text: str) -> str | None:
    """The two-letter code of the US state named in ``text``, or ``None``."""
    folded = _fold(text)
    if not folded:
        return None
    if folded.upper() in US_STATES:
        return folded.upper()
    if folded in _STATE_BY_NAME:
        return _STATE_BY_NAME[folded]
    if folded in _STATE_ALIASES:
        return _STATE_ALIASES[folded]
    # Longest names first, so "west virginia" wins over "virginia".
    for name in sorted(_STATE_BY_NAME, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", folded):
            return _STATE_BY_NAME[name]
    for alias, code in _STATE_ALIASES.items():
        if re.search(rf"(?<![\w.]){re.escape(alias)}(?![\w])", folded):
            return code
    for token in re.findall(r"\b[a-z]{2}\b", folded):
        code = token.upper()
        if code in US_STATES and code not in _AMBIGUOUS_CODES:
            return code
    return None


def parse_count(text: str, maximum: int = 100) -> int | None:
    """A whole number from digits or words: ``"3"``, ``"three"``, ``"none"``, ``"4 or 5"``.

    A range ("four or five", "3-4") gives its upper end, so staff never under-read history.
    """
    folded = _fold(text)
    if not folded:
        return None
    numbers: list[int] = []
    for word in _WORD_RE.findall(folded.replace("-", " ")):
        if word.isdigit():
            numbers.append(int(word))
        elif word in _NUMBER_WORDS and word not in {"a", "an"}:
            numbers.append(_NUMBER_WORDS[word])
    if not numbers and folded in {"a couple", "a few"}:
        numbers.append(2 if folded == "a couple" else 3)
    if not numbers:
        return None
    value = max(numbers)
    return value if 0 <= value <= maximum else None


def parse_yes_no(text: str) -> bool | None:
    """``True`` for a yes, ``False`` for a no, ``None`` when it is neither or both."""
    folded = _fold(text)
    if folded in _YES:
        return True
    if folded in _NO:
        return False
    if any(phrase in folded for phrase in _UNSURE):
        return None
    words = set(_WORD_RE.findall(folded))
    has_yes = bool(words & {"yes", "yeah", "yep", "yup", "sure", "okay", "ok", "agree"})
    has_no = bool(words & {"no", "nope", "nah", "never"})
    if has_yes and not has_no:
        return True
    if has_no and not has_yes:
        return False
    return None


def is_skip(text: str) -> bool:
    """Whether the person asked to skip the question."""
    folded = _fold(text)
    return folded in _SKIP or folded.startswith(_SKIP_PREFIXES)
