"""Input hygiene shared by every channel: what a user's message looks like before Rasa sees it.

Everything here is a pure function of its input, so it is cheap to test exhaustively. The
cleaning is deliberately conservative: it removes characters that are invisible, that can
disguise text (bidirectional overrides) or that break storage and logs (NUL, lone surrogates),
and it never rewrites what a person actually typed. HTML is *not* escaped here: the text is data,
and whoever renders it (the widget) renders it as text.
"""

from __future__ import annotations

import re
import unicodedata

MAX_MESSAGE_CHARS = 2000
"""The longest message passed on to Rasa, in characters (Unicode code points)."""

# C0 controls except tab (U+0009) and newline (U+000A), DEL, and the C1 controls.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidirectional embeddings/overrides (U+202A-U+202E) and isolates (U+2066-U+2069); a byte-order
# mark (U+FEFF) left over from a decoder is invisible too.
_INVISIBLE_FORMATTING = re.compile("[\u202a-\u202e\u2066-\u2069\ufeff]")
# Python strings may carry lone surrogates (e.g. JSON's "\ud800"); they cannot be encoded as
# UTF-8, so anything that stores or logs them later would fail.
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")
# CR LF, CR, vertical tab, form feed, NEL and the Unicode line/paragraph separators.
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_WHITESPACE_RUN = re.compile(r"\s+")
# Characters that belong to the character before them: cutting just before one would leave a
# broken grapheme (an accent without its letter, half an emoji sequence).
_JOINERS = frozenset("\u200c\u200d")


def decode_text(raw: str | bytes | bytearray) -> str:
    """Return ``raw`` as a string, decoding bytes as UTF-8.

    Args:
        raw: Text, or bytes that should be UTF-8.

    Returns:
        The text; malformed UTF-8 sequences become U+FFFD REPLACEMENT CHARACTER.
    """
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", errors="replace")
    return raw


def _collapse_whitespace(match: re.Match[str]) -> str:
    """Replace one run of whitespace, keeping at most one blank line."""
    newlines = match.group(0).count("\n")
    if newlines >= 2:
        return "\n\n"
    if newlines == 1:
        return "\n"
    return " "


def collapse_whitespace(text: str) -> str:
    """Collapse runs of whitespace and strip the ends.

    A run without a line break becomes one space, a run with one line break becomes that line
    break, and a run with more becomes one blank line, so paragraphs survive but padding does not.

    Args:
        text: Text whose line breaks are already ``"\\n"``.

    Returns:
        The collapsed, stripped text.
    """
    return _WHITESPACE_RUN.sub(_collapse_whitespace, text).strip()


def _is_attached(char: str) -> bool:
    """Whether ``char`` attaches to the character before it (combining mark, joiner, selector)."""
    return (
        unicodedata.combining(char) != 0
        or char in _JOINERS
        or "\ufe00" <= char <= "\ufe0f"
        or "\U000e0100" <= char <= "\U000e01ef"
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin-tone modifiers
    )


def truncate_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Cut ``text`` to at most ``limit`` characters, preferably at a word boundary.

    The cut is made at the last whitespace within the limit when that keeps at least half of the
    allowed length; otherwise (one very long "word") it is a hard cut, moved back so it does not
    split a character from the combining marks or joiners that follow it.

    Args:
        text: The text to cut.
        limit: The maximum length in characters; must be positive.

    Returns:
        The text itself if it is short enough, else a stripped prefix of it.

    Raises:
        ValueError: ``limit`` is not positive.
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    if len(text) <= limit:
        return text
    if text[limit].isspace():
        return text[:limit].rstrip()
    head = text[:limit]
    boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    if boundary >= limit // 2:
        return head[:boundary].rstrip()
    cut = limit
    while cut > 1 and (_is_attached(text[cut]) or text[cut - 1] in _JOINERS):
        cut -= 1
    return text[:cut].rstrip()


def clean_user_text(raw: str | bytes | bytearray | None, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Clean a user's message before it is handed to Rasa.

    In order: decode bytes as UTF-8 (with replacement), normalise line breaks (CR LF, CR, VT, FF,
    NEL, U+2028/U+2029) to ``"\\n"``, replace lone surrogates with U+FFFD, drop NUL and the other
    C0/C1 control characters except newline and tab, drop bidirectional override/isolate
    characters (U+202A-U+202E, U+2066-U+2069) and a stray byte-order mark, apply Unicode NFC,
    collapse whitespace, strip, and cap the length at ``limit`` characters (cut at a word
    boundary where possible).

    Args:
        raw: The message as received; ``None`` counts as empty.
        limit: The maximum length in characters.

    Returns:
        The cleaned text; ``""`` when nothing meaningful is left.
    """
    if raw is None:
        return ""
    text = decode_text(raw)
    text = _LINE_BREAKS.sub("\n", text)
    text = _LONE_SURROGATES.sub("\ufffd", text)
    text = _CONTROL_CHARS.sub("", text)
    text = _INVISIBLE_FORMATTING.sub("", text)
    # After the removals, so that characters they bring together are composed too.
    text = unicodedata.normalize("NFC", text)
    text = collapse_whitespace(text)
    return truncate_text(text, limit)
