"""GSM-7, the SMS alphabet: which texts fit it, and how many SMS segments a text takes.

A text made only of GSM-7 characters is sent 160 characters to a segment (153 each when it
needs several); one character outside GSM-7 (an emoji, a curly quote, "á") switches the whole
message to UCS-2, 70 characters to a segment (67 each when several). Characters of the
extension table (``{ } [ ] ~ \\ | ^ €``) count twice.
"""

from __future__ import annotations

import math

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[~]|€\f"

_BASIC = frozenset(GSM7_BASIC)
_EXTENSION = frozenset(GSM7_EXTENSION)


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM-7 alphabet (basic or extension)."""
    return all(char in _BASIC or char in _EXTENSION for char in text)


def non_gsm7_characters(text: str) -> list[str]:
    """The characters of ``text`` that GSM-7 lacks, in order of first appearance."""
    return list(dict.fromkeys(c for c in text if c not in _BASIC and c not in _EXTENSION))


def segments(text: str) -> int:
    """How many SMS segments ``text`` takes.

    Args:
        text: The message.

    Returns:
        The number of segments (0 for an empty text).
    """
    if not text:
        return 0
    if is_gsm7(text):
        units = sum(2 if char in _EXTENSION else 1 for char in text)
        return 1 if units <= 160 else math.ceil(units / 153)
    # UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)
