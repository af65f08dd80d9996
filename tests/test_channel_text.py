"""Unit tests for the input hygiene in :mod:`bot.channels.text`."""

from __future__ import annotations

import unicodedata

import pytest

from bot.channels.text import (
    MAX_MESSAGE_CHARS,
    clean_user_text,
    collapse_whitespace,
    decode_text,
    truncate_text,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        ("  hello  ", "hello"),
        ("", ""),
        ("   \t \n  ", ""),
        (None, ""),
        ("a   b\t\tc", "a b c"),
        ("line one\nline two", "line one\nline two"),
        ("para one\n\n\n\npara two", "para one\n\npara two"),
        ("a \n b", "a\nb"),
        ("crlf\r\nline", "crlf\nline"),
        ("cr\rline", "cr\nline"),
        ("tab\there", "tab here"),
        ("a\u00a0\u2003b", "a b"),  # no-break space, em space
        ("x\u2028y", "x\ny"),
        ("/greet", "/greet"),
        ('/inform{"name": "x"}', '/inform{"name": "x"}'),
    ],
)
def test_whitespace_and_basics(raw: str | None, expected: str) -> None:
    assert clean_user_text(raw) == expected


def test_decodes_bytes_as_utf8() -> None:
    assert clean_user_text("café ☕".encode()) == "café ☕"
    assert clean_user_text(bytearray(b"ok")) == "ok"


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert clean_user_text(b"ab\xff\xfecd") == "ab\ufffd\ufffdcd"
    assert decode_text(b"\xc3") == "\ufffd"


def test_drops_nul_and_control_characters() -> None:
    assert clean_user_text("he\x00llo") == "hello"
    assert clean_user_text("a\x07b\x1bc\x7fd") == "abcd"
    assert clean_user_text("c1\x80\x9fend") == "c1end"
    assert clean_user_text("\x00\x01\x02") == ""


def test_keeps_newline_and_tab_through_control_stripping() -> None:
    # Tab survives the control-character step; whitespace collapsing then makes it a space.
    assert clean_user_text("a\tb\nc") == "a b\nc"


def test_vertical_tab_and_form_feed_separate_words() -> None:
    assert clean_user_text("one\x0btwo\x0cthree") == "one\ntwo\nthree"


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e"])
def test_drops_bidi_embeddings_and_overrides(char: str) -> None:
    assert clean_user_text(f"invoice{char}fdp.exe") == "invoicefdp.exe"


@pytest.mark.parametrize("char", ["\u2066", "\u2067", "\u2068", "\u2069"])
def test_drops_bidi_isolates(char: str) -> None:
    assert clean_user_text(f"a{char}b") == "ab"


def test_drops_byte_order_mark() -> None:
    assert clean_user_text("\ufeffhello") == "hello"


def test_keeps_right_to_left_text() -> None:
    arabic = "مرحبا، أحتاج إلى موعد"
    hebrew = "שלום, אני צריך תור"
    assert clean_user_text(arabic) == arabic
    assert clean_user_text(hebrew) == hebrew
    # Implicit direction marks are legitimate text and stay.
    assert clean_user_text("abc\u200fdef") == "abc\u200fdef"


def test_keeps_emoji_including_zwj_sequences() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_user_text(f"  {family} 😔  ") == f"{family} 😔"


def test_applies_nfc() -> None:
    decomposed = "cafe\u0301"
    assert clean_user_text(decomposed) == "caf\u00e9"
    assert unicodedata.is_normalized("NFC", clean_user_text("A\u030a"))


def test_nfc_after_removing_controls() -> None:
    # The NUL between the letter and the accent is removed first, then they compose.
    assert clean_user_text("e\x00\u0301") == "\u00e9"


def test_lone_surrogates_become_replacement_characters() -> None:
    cleaned = clean_user_text("a\ud800b")
    assert cleaned == "a\ufffdb"
    cleaned.encode("utf-8")  # must not raise


def test_html_is_not_escaped() -> None:
    text = "<script>alert(1)</script>"
    assert clean_user_text(text) == text


def test_sql_looking_text_passes_through() -> None:
    text = "Robert'); DROP TABLE patients;--"
    assert clean_user_text(text) == text


def test_caps_at_max_chars_at_word_boundary() -> None:
    words = "word " * 1000  # 5,000 characters
    cleaned = clean_user_text(words)
    assert len(cleaned) <= MAX_MESSAGE_CHARS
    assert cleaned.endswith("word")
    assert cleaned.split(" ") == ["word"] * len(cleaned.split(" "))


def test_caps_unbroken_text_with_hard_cut() -> None:
    cleaned = clean_user_text("a" * 10_000)
    assert cleaned == "a" * MAX_MESSAGE_CHARS


def test_caps_emoji_only_text() -> None:
    cleaned = clean_user_text("😀" * 10_000)
    assert cleaned == "😀" * MAX_MESSAGE_CHARS


def test_exact_limit_is_untouched() -> None:
    text = "b" * MAX_MESSAGE_CHARS
    assert clean_user_text(text) == text


def test_truncate_prefers_boundary_just_after_limit() -> None:
    assert truncate_text("abcd efgh", 4) == "abcd"


def test_truncate_hard_cut_does_not_split_combining_mark() -> None:
    text = "a" * 9 + "e\u0301" + "zzz"  # the accent would be character 11
    # Use NFD-style content deliberately: truncate_text works on whatever it is given.
    assert truncate_text(text, 10) == "a" * 9


def test_truncate_hard_cut_does_not_end_with_joiner() -> None:
    text = "x" * 9 + "\U0001f468\u200d\U0001f469"
    cut = truncate_text(text, 11)
    assert not cut.endswith("\u200d")


def test_truncate_rejects_non_positive_limit() -> None:
    with pytest.raises(ValueError):
        truncate_text("abc", 0)


def test_custom_limit() -> None:
    assert clean_user_text("one two three", limit=7) == "one two"


def test_collapse_whitespace_directly() -> None:
    assert collapse_whitespace("  a \n\n\n b  ") == "a\n\nb"


def test_clean_is_idempotent() -> None:
    samples = ["  x\r\n\r\n\r\ny ", "e\u0301\x00", "😀 " * 900, "a" * 3000, "\u202eabc"]
    for sample in samples:
        once = clean_user_text(sample)
        assert clean_user_text(once) == once
