"""Read the clinician-reviewed crisis pattern file (``data/safety/crisis_patterns.yml``).

The file is written in a small phrase language that a clinician can read (its header explains
it). This module parses that language into :class:`PatternSet`, which
:mod:`bot.safety.detector` compiles into spaCy ``Matcher`` patterns. Everything that can be
wrong with the file (an unknown strength, an empty family, a duplicated phrase, a word that does
not reduce to one token) is a :class:`PatternFileError` at load time, never a silent miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.settings import PROJECT_ROOT

DEFAULT_PATTERN_FILE = PROJECT_ROOT / "data" / "safety" / "crisis_patterns.yml"

STRONG = "strong"
WEAK = "weak"
GAP = "..."
NUMBER = "{number}"
PAST_YEAR = "{past_year}"
PAST_YEAR_GAP = 2
"""``{past_year}`` is a year written in digits at least this many calendar years ago ("2015")."""
GAP_WORDS = 3
"""How many other words ``...`` allows in between."""


class PatternFileError(ValueError):
    """The pattern file is malformed; the message says where."""


@dataclass(frozen=True)
class Slot:
    """One position in a phrase.

    Attributes:
        words: The alternatives (``a|b``), as written.
        exact: Match the exact written form (``=took``) instead of any form of the word.
        optional: The word may be absent (``[my]``).
        gap: This position is ``...`` (up to :data:`GAP_WORDS` words of anything).
        number: This position is ``{number}`` (any number).
        past_year: This position is ``{past_year}`` (a year at least ``PAST_YEAR_GAP`` years ago).
    """

    words: tuple[str, ...] = ()
    exact: bool = False
    optional: bool = False
    gap: bool = False
    number: bool = False
    past_year: bool = False


@dataclass(frozen=True)
class Phrase:
    """One phrase of a family, as written, and its word sequences once groups are expanded."""

    text: str
    variants: tuple[tuple[Slot, ...], ...]


@dataclass(frozen=True)
class Family:
    """A family of crisis phrases (explicit, passive ideation, plans ...).

    Attributes:
        name: The key in the file, e.g. ``self_harm``.
        title: The human title.
        strength: ``strong`` (one match is a crisis) or ``weak`` (a weighted warning sign).
        weight: For weak families, what one match adds to the window score.
        language: ``es`` for Spanish families, else ``en``.
        poison_control: Whether a match adds the Poison Control number to the reply.
        medical: Whether a match is a medical emergency (an overdose, its signs): a joke or
            recovery told beside it never masks it.
        phrases: The phrases.
    """

    name: str
    title: str
    strength: str
    weight: float
    language: str
    poison_control: bool
    phrases: tuple[Phrase, ...]
    medical: bool = False


@dataclass(frozen=True)
class PatternSet:
    """Everything in the pattern file."""

    families: tuple[Family, ...]
    not_crisis: tuple[Phrase, ...]
    spellings: dict[str, str] = field(default_factory=dict)
    fuzzy: tuple[str, ...] = ()
    # The person saying they are not at risk ("no thoughts of hurting myself"): masks like
    # ``not_crisis``, and left out of what the classifier scores.
    denials: tuple[Phrase, ...] = ()
    # The person's distant past told as history ("an attempt in 2010"): a sentence with one of
    # ``history_past`` is masked and left out of what the classifier scores, unless the message
    # also has one of ``history_present`` ("again", "tonight", "want to").
    history_past: tuple[Phrase, ...] = ()
    history_present: tuple[Phrase, ...] = ()
    # Everyday exaggeration told as a joke ("if I have to redo this spreadsheet one more time I
    # will shoot myself lol"): a sentence with a ``jokes_marker`` and a ``jokes_cause`` is masked
    # like history, unless the message has a ``jokes_serious`` phrase ("for real", "not
    # joking", "if this doesn't work").
    jokes_marker: tuple[Phrase, ...] = ()
    jokes_cause: tuple[Phrase, ...] = ()
    jokes_serious: tuple[Phrase, ...] = ()
    # A bare topic word in a general question ("is ketamine ever given in an ER to someone who
    # is actively suicidal?"): a strong match lying wholly inside a ``general_topic`` phrase, in a
    # sentence that is a question (it ends with "?" or starts with a ``general_question`` word)
    # with no ``general_personal`` word (the writer or a particular person), in a message with
    # no ``history_present`` phrase, is left to the model's classifier. Where the classifier is
    # not available it still counts.
    general_topic: tuple[Phrase, ...] = ()
    general_question: tuple[Phrase, ...] = ()
    general_personal: tuple[Phrase, ...] = ()
    # Recovery told as such ("the thoughts completely went away after the 4th infusion", "I came
    # in wanting to die and I'm leaving wanting to plan a trip"): a sentence with a
    # ``recovery_over`` phrase is masked like history, unless the message has a
    # ``recovery_relapse`` phrase ("they're back", "worse", "tonight").
    recovery_over: tuple[Phrase, ...] = ()
    recovery_relapse: tuple[Phrase, ...] = ()

    def family(self, name: str) -> Family:
        """The family called ``name``.

        Raises:
            KeyError: No such family.
        """
        for family in self.families:
            if family.name == name:
                return family
        raise KeyError(name)


_GROUP = re.compile(r"\(([^()]*)\)")
MAX_VARIANTS = 256


def expand_groups(text: str, where: str) -> list[str]:
    """Expand every ``(a b|c)`` group of a phrase into the word sequences it stands for.

    Args:
        text: The phrase as written.
        where: Where it is in the file, for error messages.

    Returns:
        The phrase's variants without groups.

    Raises:
        PatternFileError: Unbalanced parentheses, an empty choice, or too many variants.
    """
    variants = [text]
    while any(_GROUP.search(variant) for variant in variants):
        expanded = []
        for variant in variants:
            match = _GROUP.search(variant)
            if match is None:
                expanded.append(variant)
                continue
            choices = [choice.strip() for choice in match.group(1).split("|")]
            if any(not choice for choice in choices):
                raise PatternFileError(f"{where}: empty choice in {text!r}")
            if all(len(choice.split()) == 1 and not choice.startswith("{") for choice in choices):
                # One-word choices are one position with alternatives: no need to expand.
                expanded.append(
                    variant[: match.start()] + "|".join(choices) + variant[match.end():]
                )
                continue
            for choice in choices:
                expanded.append(variant[: match.start()] + f" {choice} " + variant[match.end():])
        variants = expanded
        if len(variants) > MAX_VARIANTS:
            raise PatternFileError(f"{where}: {text!r} expands to over {MAX_VARIANTS} variants")
    if any("(" in variant or ")" in variant for variant in variants):
        raise PatternFileError(f"{where}: unbalanced parentheses in {text!r}")
    return [" ".join(variant.split()) for variant in variants]


def parse_phrase(text: str, where: str) -> Phrase:
    """Parse one phrase of the phrase language.

    Args:
        text: The phrase as written, e.g. ``"want|wish [to] (die|be dead)"``.
        where: Where it is in the file, for error messages.

    Returns:
        The parsed phrase.

    Raises:
        PatternFileError: The phrase is empty or malformed.
    """
    if not isinstance(text, str) or not text.strip():
        raise PatternFileError(f"{where}: a phrase must be non-empty text")
    variants = tuple(
        _parse_words(variant, text, where) for variant in expand_groups(text, where)
    )
    return Phrase(text=text, variants=variants)


def _parse_words(variant: str, text: str, where: str) -> tuple[Slot, ...]:
    slots: list[Slot] = []
    for raw in variant.split():
        if raw == NUMBER:
            slots.append(Slot(number=True))
            continue
        if raw == PAST_YEAR:
            slots.append(Slot(past_year=True))
            continue
        if raw == GAP:
            if not slots:
                raise PatternFileError(f"{where}: {text!r} cannot start with '...'")
            slots.append(Slot(gap=True))
            continue
        if raw.startswith("[") != raw.endswith("]"):
            raise PatternFileError(
                f"{where}: {text!r}: [optional] takes one word; write the phrase with and "
                "without the words"
            )
        optional = raw.startswith("[") and raw.endswith("]")
        body = raw[1:-1] if optional else raw
        alternatives = [word for word in body.split("|")]
        if not alternatives or any(not word for word in alternatives):
            raise PatternFileError(f"{where}: empty alternative in {text!r}")
        exact_flags = {word.startswith("=") for word in alternatives}
        if len(exact_flags) != 1:
            raise PatternFileError(f"{where}: mix of exact (=) and other words in {raw!r}")
        exact = exact_flags.pop()
        words = tuple(word.lstrip("=").lower() for word in alternatives)
        slots.append(Slot(words=words, exact=exact, optional=optional))
    if slots[-1].gap:
        raise PatternFileError(f"{where}: {text!r} cannot end with '...'")
    if all(slot.optional or slot.gap for slot in slots):
        raise PatternFileError(f"{where}: {text!r} has no required word")
    return tuple(slots)


def _phrases(raw: Any, where: str) -> tuple[Phrase, ...]:
    if not isinstance(raw, list) or not raw:
        raise PatternFileError(f"{where}: 'phrases' must be a non-empty list")
    seen: set[str] = set()
    phrases = []
    for index, text in enumerate(raw):
        phrase = parse_phrase(text, f"{where}[{index}]")
        key = " ".join(phrase.text.lower().split())
        if key in seen:
            raise PatternFileError(f"{where}: duplicate phrase {phrase.text!r}")
        seen.add(key)
        phrases.append(phrase)
    return tuple(phrases)


def _family(name: str, raw: Any) -> Family:
    where = f"families.{name}"
    if not isinstance(raw, dict):
        raise PatternFileError(f"{where}: must be a mapping")
    strength = raw.get("strength")
    if strength not in (STRONG, WEAK):
        raise PatternFileError(f"{where}: strength must be 'strong' or 'weak'")
    weight = float(raw.get("weight", 1.0))
    if strength == WEAK and not 0 < weight < 1:
        raise PatternFileError(f"{where}: a weak family's weight must be between 0 and 1")
    language = raw.get("language", "en")
    if language not in ("en", "es"):
        raise PatternFileError(f"{where}: language must be 'en' or 'es'")
    return Family(
        name=name,
        title=str(raw.get("title") or name),
        strength=strength,
        weight=weight if strength == WEAK else 1.0,
        language=language,
        poison_control=bool(raw.get("poison_control", False)),
        phrases=_phrases(raw.get("phrases"), where),
        medical=bool(raw.get("medical", False)),
    )


def load_patterns(path: Path = DEFAULT_PATTERN_FILE) -> PatternSet:
    """Read and check the pattern file.

    Args:
        path: The YAML file.

    Returns:
        The patterns.

    Raises:
        PatternFileError: The file is malformed.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PatternFileError(f"{path}: cannot read: {error}") from error
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise PatternFileError(f"{path}: expected a mapping with 'version: 1'")
    families_raw = raw.get("families")
    if not isinstance(families_raw, dict) or not families_raw:
        raise PatternFileError(f"{path}: 'families' must be a non-empty mapping")
    families = tuple(_family(str(name), value) for name, value in families_raw.items())
    if not any(family.strength == STRONG for family in families):
        raise PatternFileError(f"{path}: at least one family must be strong")
    spellings_raw = raw.get("spellings") or {}
    if not isinstance(spellings_raw, dict):
        raise PatternFileError(f"{path}: 'spellings' must be a mapping")
    for key, value in spellings_raw.items():
        if not isinstance(key, str) or not isinstance(value, str):
            # YAML reads unquoted off/yes/no as booleans: quote them.
            raise PatternFileError(f"spellings: {key!r}: {value!r} must both be quoted text")
    spellings = {str(k).lower(): str(v).lower() for k, v in spellings_raw.items()}
    for key in spellings:
        if len(key.split()) != 1:
            raise PatternFileError(f"spellings: {key!r} must be one word")
    fuzzy = tuple(str(word).lower() for word in raw.get("fuzzy") or ())
    not_crisis = _phrases(raw.get("not_crisis"), "not_crisis")
    denials = _phrases(raw.get("denials"), "denials") if raw.get("denials") is not None else ()
    history = _section(raw, "history", ("past", "present"), path)
    jokes = _section(raw, "jokes", ("marker", "cause", "serious"), path)
    general = _section(raw, "general", ("topic", "question", "personal"), path)
    recovery = _section(raw, "recovery", ("over", "relapse"), path)
    return PatternSet(
        families=families, not_crisis=not_crisis, spellings=spellings, fuzzy=fuzzy,
        denials=denials, history_past=history["past"], history_present=history["present"],
        jokes_marker=jokes["marker"], jokes_cause=jokes["cause"],
        jokes_serious=jokes["serious"],
        general_topic=general["topic"], general_question=general["question"],
        general_personal=general["personal"],
        recovery_over=recovery["over"], recovery_relapse=recovery["relapse"],
    )


def _section(
    raw: dict[str, Any], name: str, keys: tuple[str, ...], path: Path
) -> dict[str, tuple[Phrase, ...]]:
    """An optional section of phrase lists under exactly ``keys`` (``history``, ``jokes``)."""
    section = raw.get(name)
    if section is None:
        return {key: () for key in keys}
    if not isinstance(section, dict) or set(section) != set(keys):
        wanted = ", ".join(f"'{key}'" for key in keys)
        raise PatternFileError(f"{path}: '{name}' must have exactly {wanted}")
    return {key: _phrases(section[key], f"{name}.{key}") for key in keys}
