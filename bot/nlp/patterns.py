"""Entity patterns of the clinic pipeline, and mapping of matched text to a pattern's id.

The pattern files are JSON Lines files in ``data/spacy`` (see its README). Each line is one
entity ruler pattern such as ``{"label": "medication", "pattern": "zoloft", "id": "sertraline"}``.
:func:`normalize` maps the text of a matched entity back to the ``id`` of its pattern, so
"Zolft", "zoloft" and "Sertraline" all become ``sertraline``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bot.settings import PROJECT_ROOT

DEFAULT_PATTERNS_DIR = PROJECT_ROOT / "data" / "spacy"

# Token attributes whose value is the token's text, so a token pattern that only uses them
# still has a plain text form that normalize() can look up.
_TEXT_ATTRS = ("LOWER", "ORTH", "TEXT", "NORM")


def load_patterns(patterns_dir: Path | str) -> list[dict[str, Any]]:
    """Reads every ``*.jsonl`` pattern file of a directory, in file-name order.

    Args:
        patterns_dir: Directory holding the pattern files.

    Returns:
        The patterns in file order, each a dict with ``label``, ``pattern`` and ``id`` (and any
        other keys the line has).

    Raises:
        FileNotFoundError: If the directory does not exist or holds no ``*.jsonl`` file.
        ValueError: If a line is not valid JSON or not a valid pattern; the message names the
            file and line.
    """
    directory = Path(patterns_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"pattern directory not found: {directory}")
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.jsonl pattern files in {directory}")

    patterns: list[dict[str, Any]] = []
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{where}: invalid JSON: {error.msg}") from error
                _validate(entry, where)
                patterns.append(entry)
    return patterns


def _validate(entry: object, where: str) -> None:
    """Raises ValueError if ``entry`` is not a usable entity ruler pattern."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: a pattern line must be a JSON object")
    for key in ("label", "id"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {key!r} must be a non-empty string")
    pattern = entry.get("pattern")
    if isinstance(pattern, str):
        if not pattern or pattern != " ".join(pattern.split()):
            raise ValueError(
                f"{where}: pattern {pattern!r} must be non-empty, without leading, trailing or "
                "repeated spaces"
            )
    elif isinstance(pattern, list):
        if not pattern or not all(isinstance(token, dict) and token for token in pattern):
            raise ValueError(f"{where}: a token pattern must be a non-empty list of objects")
    else:
        raise ValueError(f"{where}: 'pattern' must be a string or a list of token objects")


def fold(text: str) -> str:
    """Returns the lookup form of a phrase: lower case, runs of whitespace made one space.

    Args:
        text: A phrase, for example the text of a matched entity.

    Returns:
        The folded phrase.
    """
    return " ".join(text.lower().split())


def pattern_text(pattern: str | list[dict[str, Any]]) -> str | None:
    """Returns the folded text a pattern matches, if it matches exactly one text.

    Args:
        pattern: A phrase pattern (string) or token pattern (list of token objects).

    Returns:
        The folded text, or None for a token pattern that can match more than one text (for
        example one using ``IS_DIGIT`` or a set of values).
    """
    if isinstance(pattern, str):
        return fold(pattern)
    words: list[str] = []
    for token in pattern:
        attrs = [key for key in token if key in _TEXT_ATTRS]
        if len(token) != 1 or len(attrs) != 1 or not isinstance(token[attrs[0]], str):
            return None
        words.append(token[attrs[0]])
    return fold(" ".join(words))


@dataclass
class _LabelIndex:
    """One label's ids, and folded pattern text to id, plus a variant without any spaces."""

    ids: set[str] = field(default_factory=set)
    exact: dict[str, str] = field(default_factory=dict)
    compact: dict[str, str | None] = field(default_factory=dict)  # None: ambiguous


@cache
def _index(directory: str) -> Mapping[str, _LabelIndex]:
    """Builds (once per directory) the per-label lookup tables used by normalize()."""
    index: dict[str, _LabelIndex] = {}
    for entry in load_patterns(directory):
        tables = index.setdefault(entry["label"], _LabelIndex())
        tables.ids.add(entry["id"])
        text = pattern_text(entry["pattern"])
        if text is None:
            continue
        tables.exact.setdefault(text, entry["id"])
        compact = text.replace(" ", "")
        previous = tables.compact.get(compact, entry["id"])
        tables.compact[compact] = entry["id"] if previous == entry["id"] else None
    return index


def _resolve(patterns_dir: Path | str | None) -> str:
    return str(Path(patterns_dir or DEFAULT_PATTERNS_DIR).resolve())


def clear_cache() -> None:
    """Forgets the cached pattern tables, so edited pattern files are read again."""
    _index.cache_clear()


def normalize(label: str, text: str, patterns_dir: Path | str | None = None) -> str | None:
    """Maps the text of a matched entity to the id of its pattern.

    Matching ignores case and differences in whitespace, so ``"Treatment  Resistant
    Depression"`` finds the pattern ``"treatment resistant depression"``. If that fails, the
    text is compared with all spaces removed (the tokenizer may split ``"e-mail"`` into
    ``"e - mail"``), as long as that comparison is unambiguous.

    Args:
        label: The entity label, such as ``"condition"`` or ``"intake_field"``.
        text: The matched text, such as ``"Lexipro"``.
        patterns_dir: Directory of the pattern files; defaults to ``data/spacy`` of the
            project. Its files are read once and cached (see :func:`clear_cache`).

    Returns:
        The pattern's id, such as ``"escitalopram"``, or None if no pattern of that label has
        this text.
    """
    tables = _index(_resolve(patterns_dir)).get(label)
    if tables is None:
        return None
    folded = fold(text)
    found = tables.exact.get(folded)
    if found is None:
        found = tables.compact.get(folded.replace(" ", ""))
    return found


def ids(label: str, patterns_dir: Path | str | None = None) -> list[str]:
    """Lists the ids of one label's patterns.

    Args:
        label: The entity label, such as ``"treatment"``.
        patterns_dir: Directory of the pattern files; defaults to ``data/spacy``. Its files are
            read once and cached (see :func:`clear_cache`).

    Returns:
        The distinct ids, sorted; empty for an unknown label.
    """
    tables = _index(_resolve(patterns_dir)).get(label)
    return sorted(tables.ids) if tables else []
