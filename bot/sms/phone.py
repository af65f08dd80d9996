"""Phone numbers as SMS addresses: E.164 normalisation, validation and masking for logs.

This module is deliberately structural and strict. It is for numbers that address a text
message: the ``From`` and ``To`` of Twilio webhooks, and numbers staff or code pass to the
outbound client. Free text typed in a conversation ("my cell is 503 555 0199") is read by
:func:`bot.parsing.parse_phone` instead, which searches a sentence and checks the number against
the numbering plan's metadata.

The rules:

- E.164 is ``+``, then 8 to 15 digits, the first one non-zero.
- A ``+1`` number is North American (NANP): exactly ten digits after the ``1``, and both the
  area code and the exchange start with 2-9. ``+1555555012`` is not a phone number anywhere.
- Without a ``+``, the number is read in the default country. Only the NANP countries
  (``US``, ``CA``) are supported: ten digits, or eleven starting with ``1``.
- Spaces, hyphens, dots and parentheses are separators. Anything else (letters, ``ext``, ``#``,
  a ``+`` that is not the first character) makes the input invalid rather than guessed at.

The fictional 555 numbers used in tests and docs (``(555) 555-0123``) are structurally valid.
"""

from __future__ import annotations

import re

# Countries whose numbers may be written without a country code, and that code.
NATIONAL_PREFIXES: dict[str, str] = {"US": "1", "CA": "1"}

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_NANP_NATIONAL = re.compile(r"[2-9][0-9]{2}[2-9][0-9]{6}")
_SEPARATORS = re.compile(r"[\s().-]+")
# Longer input is rejected before any work: no real number is written with this much padding.
_MAX_INPUT_CHARS = 40


def to_e164(text: str, default_country: str | None = "US") -> str | None:
    """Normalise a phone number to E.164.

    Args:
        text: The number as written, e.g. ``"(555) 555-0123"``, ``"1 555 555 0123"`` or
            ``"+44 20 7946 0958"``.
        default_country: The ISO country code assumed for a number written without ``+``;
            ``None`` accepts only numbers that start with ``+``.

    Returns:
        The number as ``"+15555550123"``, or ``None`` if it is not a valid number.

    Raises:
        ValueError: ``default_country`` is not one of :data:`NATIONAL_PREFIXES`.
    """
    if default_country is not None and default_country not in NATIONAL_PREFIXES:
        raise ValueError(f"Unsupported default country {default_country!r}.")
    if not isinstance(text, str) or len(text) > _MAX_INPUT_CHARS:
        return None
    compact = _SEPARATORS.sub("", text.strip())
    international = compact.startswith("+")
    digits = compact[1:] if international else compact
    # str.isdigit() accepts other scripts' digits and superscripts; only ASCII digits are kept.
    if not digits or not (digits.isascii() and digits.isdigit()):
        return None
    if not international:
        if default_country is None:
            return None
        country_code = NATIONAL_PREFIXES[default_country]
        if len(digits) == 10:
            digits = country_code + digits
        elif not (len(digits) == 11 and digits.startswith(country_code)):
            return None
    candidate = "+" + digits
    if not _E164.fullmatch(candidate):
        return None
    if digits.startswith("1") and not _NANP_NATIONAL.fullmatch(digits[1:]):
        return None
    return candidate


def is_e164(value: str) -> bool:
    """Whether ``value`` is already a valid number in canonical E.164 form.

    Args:
        value: The text to check, e.g. a webhook's ``From``.

    Returns:
        True for ``"+15555550123"``; False for ``"5555550123"``, ``"+1 555 555 0123"`` or
        anything :func:`to_e164` rejects.
    """
    return isinstance(value, str) and to_e164(value, default_country=None) == value


def mask(value: str | None) -> str:
    """A phone number with its middle hidden, for logs.

    Only the first digit (enough to tell the country region) and the last four digits are kept,
    which is how support staff usually confirm a number without the log holding it.

    Args:
        value: A number, ideally in E.164 form.

    Returns:
        ``"+1******0123"`` for ``"+15555550123"``. Anything that is not an E.164 number
        (a short code, a malformed ``From``, ``None``) becomes ``"***"``, so a log never holds
        more of it than that.
    """
    if value is None or not _E164.fullmatch(value):
        return "***"
    return value[:2] + "*" * (len(value) - 6) + value[-4:]
