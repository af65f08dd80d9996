"""Reading patients' check-in answers, typed by SMS, into scores.

Patients answer with a digit (``"2"``, ``"#2"``, ``"7/10"``) or in words (``"several days"``,
``"pretty bad"``). Everything here is a pure function of the text: no I/O, no model, no state.

The reading is deliberately conservative. When an answer could mean more than one score, it is
not read (``Reading.score is None``) and the assistant asks again; a score is never guessed from
something unclear. Concretely, an answer is *not* read when it:

* gives two different numbers (``"2 or 3"``, ``"1-2"``, ``"between 5 and 6"``), a decimal
  (``"6.5"``), a negative number or a number outside the scale (``"4"`` on 0-3, ``"11"`` on
  0-10), or a fraction that is not over the scale's top (``"3/5"``; and ``"2/3"`` on 0-3,
  where it may mean "2 or 3"; ``"7/10"`` and ``"2 out of 3"`` are fine);
* gives a number that counts something rather than answering (a number followed by days, weeks,
  hours, months, years, times, pills, mg ..., or by "of": ``"6 days ago"``, ``"6 of the last 14
  days"``);
* gives a number and words that disagree (``"3 - several days"``);
* hedges, negates or compares (``"not a lot"``, ``"not sure, maybe 5"``, ``"more than 6"``,
  ``"almost a 10"``, ``"5 or more"``);
* in words only, contains any word that is not understood (``"a lot, 3 days a week"``).
  A digit may sit in a longer sentence (``"I'd say a 6 today"``); a number written as a word
  may not, because words such as "one" are too often not a score (``"one of those weeks"``).

An answer read from the scale's own wording or from a number is exact. An answer read from vague
everyday words is marked ``approximate``, so staff can see it was interpreted.

Overall question (0-10)
    "How much have your symptoms come back since right after your last infusion?"
    0 = not at all, 10 = as bad as before treatment.

    ============================================================  =====  ============  =========
    Words                                                         Score  Approximate   Accepts
                                                                                       digits
    ============================================================  =====  ============  =========
    not at all                                                    0      no            0
    none, no change, same as (right) after, still great,          0      yes           0-1
    feel/feeling great
    a little (bit), a tiny bit, slightly, a bit                   2      yes           1-3
    some, somewhat, moderately, moderate, half, halfway           5      yes           4-6
    pretty bad, a lot, quite a bit, quite a lot                   7      yes           6-8
    completely (back), all the way (back), fully back,            10     yes           9-10
    worse than ever/before, as bad as ever, back to square one
    as bad as before (treatment)                                  10     no            10
    ============================================================  =====  ============  =========

    "Accepts digits" is the range of numbers the words may come with: ``"a little, maybe a 3"``
    reads as 3, but ``"a little, 8"`` is not read. "No" alone is not an answer to "how much".

PHQ-9 and GAD-7 items (0-3)
    "Over the last 2 weeks, how often have you been bothered by ...?"

    =====  ====================================  =============================================
    Score  Scale wording (exact)                 Everyday words (approximate)
    =====  ====================================  =============================================
    0      not at all                            never, no, none, nope, nah, not once, none at
                                                 all, none of the time, no days
    1      several days                          some days, a few days, a couple (of) days,
                                                 sometimes, a little (bit), a bit,
                                                 occasionally, some of the time, on and off
    2      more than half the days, more than    most days, most of the days, most of the time,
           half of the days, more than half      more than half the time, often, very often,
                                                 frequently, a lot, quite a lot, quite a bit,
                                                 pretty bad
    3      nearly every day, nearly everyday     almost every day, every day, everyday, every
                                                 single day, all the time, all of the time,
                                                 all day every day, always, constantly, daily,
                                                 24/7
    =====  ====================================  =============================================

    "Not really" is *not* read: it is a hedge that can mean "a little", and reading it as 0 would
    under-score item 9 (thoughts of self-harm), where under-reading is the dangerous direction.
    Likewise "rarely", "hardly ever", "once or twice", "not often" and "not every day" are not
    read. A typo of one letter in one word (two in the longer phrases) is forgiven in the
    scale's own wording and in "every day", "everyday" and "almost every day" only
    (``"severel days"``, ``"evry day"``); never in the everyday words.

Signs of returning symptoms (multiple choice)
    The options are 1 mood sliding back, 2 lower motivation or interest, 3 negative thoughts,
    4 trouble coping with stress, 5 anxiety or panic attacks, 6 sleep changes; 0 for none.
    The score is the number of signs picked.

    * Digits in any form: ``"1 3 5"``, ``"1,3,5"``, ``"1, 3 and 5"``, ``"135"`` (a run of
      different digits 1-6). ``"0"``, ``"none"``, ``"no"``, ``"nothing"``, ``"none of them"``
      pick none; ``"all"``, ``"all of them"``, ``"all six"``, ``"everything"`` pick all six.
    * Words: mood, moody, sad, sadness, down, depressed, depression -> mood; motivation,
      (un)motivated, interest, (un)interested -> motivation; negative thoughts/thinking,
      negativity -> negative thoughts; coping, cope, stress(ed), overwhelmed -> coping; anxiety,
      anxious, panic(ky) -> anxiety; sleep, sleeping, slept, insomnia -> sleep.
      Digits and words may be mixed (``"1 and sleep"``); the picks are combined.
    * Not read: a digit 7-9; a range (``"1-3"``, ``"2 to 4"``); 0 or "none" together with
      picks; "all" together with other picks or exceptions (``"all but 3"``); number words
      mixed with other words (``"one of them is sleep"``); any negation (``"no anxiety"``) or
      word not understood (``"my mood is better but sleep is bad"``).

Anything else (free text)
    Never scored. :func:`is_nothing` says whether the patient said they have nothing to add
    ("no", "nope", "nothing", "no thanks", "that's all", "n/a", "I'm good" ...). It is strict:
    "no, but I've had headaches" is something, and so is an empty message or an emoji.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from bot.channels.text import clean_user_text
from bot.checkins.questions import SIGN_KEYS, Scale

__all__ = [
    "MAX_ANSWER_CHARS",
    "Reading",
    "is_nothing",
    "read_answer",
    "read_frequency",
    "read_signs",
    "read_zero_to_ten",
]

MAX_ANSWER_CHARS = 300
"""Answers longer than this (after stripping) are not read: a check-in answer is short, and a
long message is better left to staff as words."""


@dataclass(frozen=True)
class Reading:
    """What a patient's answer was read as.

    Attributes:
        score: The score, or ``None`` when the answer could not be read and should be asked again.
        choices: For the signs question, the sign keys picked, in ``SIGN_KEYS`` order.
        approximate: ``True`` when the score was read from vague everyday words ("pretty bad")
            rather than from a number or the scale's own wording.
    """

    score: int | None
    choices: tuple[str, ...] = ()
    approximate: bool = False


_UNREAD = Reading(score=None)

# ---------------------------------------------------------------------------------------------
# Text folding and tokens
# ---------------------------------------------------------------------------------------------

# Apostrophes are dropped ("that's" -> "thats") so word lists need one spelling only.
_APOSTROPHES = re.compile("['`\u00b4\u2018\u2019\u02bc]")
_DASHES = re.compile("[\u2010-\u2015\u2212]")
_SLASHES = re.compile("[\u2044\u2215]")
_N_SLASH_A = re.compile(r"(?<![a-z0-9])n\s*/\s*a(?![a-z0-9])")
# Everything that is not a letter, digit or one of the few symbols that carry meaning in an
# answer ("7/10", "#2", "1-2", "24/7", "5+", "50%") becomes a space: emoji, brackets, quotes.
_NOT_KEPT = re.compile(r"[^a-z0-9/#&+?%.,\-\s]")
_TOKEN = re.compile(r"[0-9]+[a-z]+|[a-z]+[0-9][a-z0-9]*|[a-z]+|[0-9]+|[/#&+?%-]")
_DECIMAL = re.compile(r"[0-9][.,][0-9]")
_NEGATIVE = re.compile(r"(?<![a-z0-9])-[0-9]")
_DOTTED_DIGITS = re.compile(r"[0-9]\.[0-9]")
_DIGIT_RANGE = re.compile(r"[0-9]\s*-\s*[0-9]")


def _fold(text: object) -> str | None:
    """Fold an answer for matching: cleaned, without accents, lower case, symbols as spaces.

    Returns:
        The folded text (possibly empty), or ``None`` when the answer is too long to read.
    """
    if not isinstance(text, str):
        return ""
    text = text.strip()
    if len(text) > MAX_ANSWER_CHARS:
        return None
    text = clean_user_text(text)
    # NFKD maps full-width and other compatibility digits and letters to plain ones and splits
    # accents off ("tr\u00e9s" -> "tres"); the accents and keycap marks are then dropped.
    text = unicodedata.normalize("NFKD", text)
    text = "".join(char for char in text if not unicodedata.combining(char)).casefold()
    text = _APOSTROPHES.sub("", text)
    text = _DASHES.sub("-", text)
    text = _SLASHES.sub("/", text)
    text = _N_SLASH_A.sub("na", text)
    return _NOT_KEPT.sub(" ", text)


def _words(text: str) -> frozenset[str]:
    """A set of words written as one string, for the word lists below."""
    return frozenset(text.split())


def _tokens(folded: str) -> list[str]:
    return _TOKEN.findall(folded)


# ---------------------------------------------------------------------------------------------
# Phrase matching
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Phrase:
    """Words on a numeric scale: the score they give and the digits they may come with."""

    score: int
    approximate: bool
    low: int
    high: int


@dataclass(frozen=True)
class _Tag:
    """Words with a fixed meaning: a sign key, or one of the markers below."""

    name: str


_Payload: TypeAlias = _Phrase | _Tag
_Entry: TypeAlias = tuple[tuple[str, ...], _Payload]
_Index: TypeAlias = dict[str, list[_Entry]]


def _index(entries: Iterable[tuple[str, _Payload]]) -> _Index:
    """Index phrases by their first word, longest first, so matching is leftmost-longest."""
    index: _Index = {}
    for phrase, payload in entries:
        words = tuple(_tokens(phrase))
        index.setdefault(words[0], []).append((words, payload))
    for options in index.values():
        options.sort(key=lambda option: len(option[0]), reverse=True)
    return index


def _within_one_edit(typed: str, word: str) -> bool:
    """Whether ``typed`` is ``word`` with at most one letter added, dropped, changed or swapped."""
    if typed == word:
        return True
    if abs(len(typed) - len(word)) > 1:
        return False
    if len(typed) == len(word):
        diffs = [i for i, (a, b) in enumerate(zip(typed, word, strict=True)) if a != b]
        if len(diffs) == 1:
            return True
        first, second = diffs[0], diffs[-1]
        return (
            len(diffs) == 2
            and second == first + 1
            and typed[first] == word[second]
            and typed[second] == word[first]
        )
    shorter, longer = (typed, word) if len(typed) < len(word) else (word, typed)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    return shorter[i:] == longer[i + 1 :]


def _starts_fuzzily(tokens: Sequence[str], start: int, words: tuple[str, ...]) -> bool:
    """Whether ``tokens[start:]`` begins with ``words`` give or take a typo.

    Only words of four letters or more may be mistyped, each by one edit; one word in a short
    phrase, two in a phrase of four words or more.
    """
    if len(tokens) - start < len(words):
        return False
    allowed = 1 if len(words) < 4 else 2
    edits = 0
    for token, word in zip(tokens[start : start + len(words)], words, strict=True):
        if token == word:
            continue
        if len(word) < 4 or not token.isalpha() or not _within_one_edit(token, word):
            return False
        edits += 1
        if edits > allowed:
            return False
    return True


def _match(
    tokens: Sequence[str], index: _Index, fuzzy: Sequence[_Entry] = ()
) -> list[str | _Payload]:
    """Replace known phrases in ``tokens`` by their payloads, leftmost-longest.

    At each position the longest exact phrase is taken, unless one of the ``fuzzy`` phrases,
    with typos allowed, is longer still. Tokens that start no phrase are kept as they are.
    """
    items: list[str | _Payload] = []
    i = 0
    while i < len(tokens):
        found: _Entry | None = None
        for words, payload in index.get(tokens[i], ()):
            if tuple(tokens[i : i + len(words)]) == words:
                found = (words, payload)
                break
        if tokens[i].isalpha():
            # A mistyped longer phrase beats an exact shorter one: "more than half the dayz".
            shortest = len(found[0]) + 1 if found else 1
            for words, payload in fuzzy:
                if len(words) >= shortest and _starts_fuzzily(tokens, i, words):
                    found = (words, payload)
                    break
        if found is None:
            items.append(tokens[i])
            i += 1
        else:
            items.append(found[1])
            i += len(found[0])
    return items


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10,
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
    "ocho": 8, "nueve": 9, "diez": 10,
}  # fmt: skip

# A number followed (directly or after one word, "2 bad days") by one of these counts something.
_UNITS = _words(
    """
    day days week weeks wk wks month months mo mos year years yr yrs hour hours hr hrs minute
    minutes min mins night nights time times x am pm oclock pill pills tablet tablets tab tabs
    dose doses mg mgs milligram milligrams ml mcg infusion infusions treatment treatments session
    sessions percent % lb lbs pound pounds kg drink drinks cup cups people person of
    """
)
# A number right after one of these is a date, a duration or a count too ("since 3", "day 5").
_UNIT_LEADS = _words(
    "since for past last every in until till by day week month dose infusion session"
)
# Between an answer and a unit word, these make the unit a timeframe: "a 3 this week".
_TIMEFRAME_WORDS = _words("this last past the that these")
_FRACTION_SEPARATORS: tuple[tuple[str, ...], ...] = (("out", "of"), ("outta",), ("of",), ("/",))


def _number_value(token: str) -> int | None:
    """The value of a digit token, a number word, or a number with "ish" ("6ish")."""
    if token.isdigit():
        return int(token) if len(token) <= 3 else 1000
    if token.endswith("ish") and token[:-3].isdigit():
        return _number_value(token[:-3])
    return _NUMBER_WORDS.get(token)


def _join_fractions(
    items: list[str | _Payload], maximum: int, slash: bool
) -> list[str | _Payload] | None:
    """Replace ``"7 / 10"``, ``"7 out of 10"`` and ``"seven of ten"`` by the numerator.

    Args:
        items: Tokens and matched phrases.
        maximum: The top of the scale, the only denominator accepted.
        slash: Whether ``"7/10"`` is a fraction. On 0-3 it is not: ``"2/3"`` there is as likely
            to mean "2 or 3", so it is left as two numbers (and not read).

    Returns:
        The items, or ``None`` when a fraction is not over the scale's maximum (``"2/3"`` on
        0-10, ``"1 out of 2"`` on 0-3), which is ambiguous.
    """
    result: list[str | _Payload] = []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, str) and _number_value(item) is not None:
            for separator in _FRACTION_SEPARATORS[: None if slash else -1]:
                end = i + 1 + len(separator)
                if tuple(items[i + 1 : end]) == separator and end < len(items):
                    denominator = items[end]
                    if isinstance(denominator, str) and _number_value(denominator) is not None:
                        if _number_value(denominator) != maximum:
                            return None
                        result.append(item)
                        i = end + 1
                        break
            else:
                result.append(item)
                i += 1
            continue
        result.append(item)
        i += 1
    return result


def _counts_something(items: Sequence[str | _Payload], position: int) -> bool:
    """Whether the number at ``position`` is a quantity ("6 days", "since 3"), not an answer."""
    following = items[position + 1] if position + 1 < len(items) else None
    after = items[position + 2] if position + 2 < len(items) else None
    if isinstance(following, str):
        if following in _UNITS:
            return True
        # "2 bad days", "2 a day"; but "a 3 this week" answers for this week.
        if (
            isinstance(after, str)
            and after in _UNITS
            and after != "of"
            and following not in _TIMEFRAME_WORDS
            and _number_value(following) is None
        ):
            return True
    previous = items[position - 1] if position > 0 else None
    return isinstance(previous, str) and previous in _UNIT_LEADS


# ---------------------------------------------------------------------------------------------
# Numeric scales
# ---------------------------------------------------------------------------------------------

# Words that may surround an answer without changing it ("I'd say a 6", "option 2", "#2").
_FILLER = _words(
    """
    i id im ive would say said its it is was been a an the um umm uh hmm hm well ok okay so just
    honestly probably prob maybe guess think suppose about around roughly like kinda kind of
    option number answer score rating my me for today now right lately recently this week at
    feel feeling felt really very pretty thanks thank you thx ty please lol haha yeah ish
    # - ? &
    """
)
# Words that change what a number means; a digit answer containing one is not read.
_BLOCKERS = _words(
    """
    not no never dont didnt doesnt isnt wasnt arent werent havent hasnt cant cannot wont nothing
    idk unsure dunno either neither nor or between more less than least most over under above
    below almost nearly plus + % percent before used except
    """
)


def _phrase_entries(
    table: Iterable[tuple[int, bool, tuple[int, int], tuple[str, ...]]],
) -> list[tuple[str, _Payload]]:
    return [
        (phrase, _Phrase(score, approximate, low, high))
        for score, approximate, (low, high), phrases in table
        for phrase in phrases
    ]


# (score, approximate, digits the words may come with, phrases); see the module docstring.
_ZERO_TO_TEN_TABLE: tuple[tuple[int, bool, tuple[int, int], tuple[str, ...]], ...] = (
    (0, False, (0, 0), ("not at all",)),
    (0, True, (0, 1), (
        "none", "none at all", "no change", "no changes", "same as after", "same as right after",
        "still great", "feel great", "feeling great", "still feel great", "still feeling great",
        "still doing great",
    )),
    (2, True, (1, 3), ("a little", "a little bit", "a tiny bit", "slightly", "a bit")),
    (5, True, (4, 6), (
        "some", "somewhat", "moderately", "moderate", "half", "halfway", "half way",
        "halfway back", "half way back",
    )),
    (7, True, (6, 8), ("pretty bad", "a lot", "quite a bit", "quite a lot")),
    (10, True, (9, 10), (
        "completely", "completely back", "all the way", "all the way back", "fully back",
        "worse than ever", "worse than before", "as bad as ever", "as bad as it was before",
        "back to square one",
    )),
    (10, False, (10, 10), ("as bad as before", "as bad as before treatment")),
)  # fmt: skip
_ZERO_TO_TEN_FUZZY = ("not at all", "as bad as before", "as bad as before treatment")

_FREQUENCY_TABLE: tuple[tuple[int, bool, tuple[int, int], tuple[str, ...]], ...] = (
    (0, False, (0, 0), ("not at all",)),
    (0, True, (0, 0), (
        "never", "no", "none", "nope", "nah", "not once", "none at all", "none of the time",
        "no days",
    )),
    (1, False, (1, 1), ("several days",)),
    (1, True, (1, 1), (
        "some days", "a few days", "few days", "a couple days", "a couple of days",
        "couple days", "couple of days", "sometimes", "a little", "a little bit", "a bit",
        "occasionally", "some of the time", "on and off", "off and on",
    )),
    (2, False, (2, 2), ("more than half the days", "more than half of the days", "more than half")),
    (2, True, (2, 2), (
        "most days", "most of the days", "most of the time", "more than half the time", "often",
        "frequently", "a lot", "quite a lot", "quite a bit", "pretty bad",
    )),
    (3, False, (3, 3), ("nearly every day", "nearly everyday")),
    (3, True, (3, 3), (
        "almost every day", "almost everyday", "every day", "everyday", "every single day",
        "all the time", "all of the time", "all day every day", "always", "constantly", "daily",
        "24/7",
    )),
)  # fmt: skip
_FREQUENCY_FUZZY = (
    "not at all", "several days", "more than half the days", "more than half",
    "nearly every day", "almost every day", "every day", "everyday",
)  # fmt: skip


@dataclass(frozen=True)
class _NumericScale:
    maximum: int
    index: _Index
    fuzzy: tuple[_Entry, ...]
    slash_fractions: bool


def _numeric_scale(
    maximum: int,
    table: Iterable[tuple[int, bool, tuple[int, int], tuple[str, ...]]],
    fuzzy: Iterable[str],
    slash_fractions: bool,
) -> _NumericScale:
    entries = _phrase_entries(table)
    by_phrase = dict(entries)
    fuzzy_entries = tuple((tuple(_tokens(phrase)), by_phrase[phrase]) for phrase in fuzzy)
    # Longest first, like the exact phrases.
    fuzzy_entries = tuple(sorted(fuzzy_entries, key=lambda entry: len(entry[0]), reverse=True))
    return _NumericScale(maximum, _index(entries), fuzzy_entries, slash_fractions)


_ZERO_TO_TEN = _numeric_scale(10, _ZERO_TO_TEN_TABLE, _ZERO_TO_TEN_FUZZY, slash_fractions=True)
_FREQUENCY = _numeric_scale(3, _FREQUENCY_TABLE, _FREQUENCY_FUZZY, slash_fractions=False)


def _read_numeric(text: str, scale: _NumericScale) -> Reading:
    """Read an answer on a numeric scale; see the module docstring for the rules."""
    folded = _fold(text)
    if not folded or _DECIMAL.search(folded) or _NEGATIVE.search(folded):
        return _UNREAD
    matched = _match(_tokens(folded), scale.index, scale.fuzzy)
    items = _join_fractions(matched, scale.maximum, scale.slash_fractions)
    if items is None:
        return _UNREAD

    numbers: set[int] = set()
    worded = False
    phrases: list[_Phrase] = []
    leftover: list[str] = []
    for position, item in enumerate(items):
        if isinstance(item, _Phrase):
            phrases.append(item)
            continue
        if isinstance(item, _Tag):  # not used on numeric scales
            return _UNREAD
        value = _number_value(item)
        if value is not None and not _counts_something(items, position):
            numbers.add(value)
            worded = worded or item in _NUMBER_WORDS
        elif item not in _FILLER:
            leftover.append(item)

    if any(word in _BLOCKERS for word in leftover):
        return _UNREAD
    # Words must all be understood unless a digit carries the answer.
    if leftover and (worded or not numbers):
        return _UNREAD
    if len(numbers) > 1:
        return _UNREAD
    if numbers:
        value = numbers.pop()
        if not 0 <= value <= scale.maximum:
            return _UNREAD
        if any(not phrase.low <= value <= phrase.high for phrase in phrases):
            return _UNREAD
        return Reading(score=value)
    scores = {phrase.score for phrase in phrases}
    if len(scores) != 1:
        return _UNREAD
    return Reading(score=scores.pop(), approximate=all(phrase.approximate for phrase in phrases))


def read_zero_to_ten(text: str) -> Reading:
    """Read an answer to the 0-10 question (how much symptoms have come back).

    Args:
        text: What the patient typed, e.g. ``"7"``, ``"7/10"``, ``"seven"``, ``"pretty bad"``.

    Returns:
        The reading; ``score`` is ``None`` when the answer is unclear and should be asked again.
    """
    return _read_numeric(text, _ZERO_TO_TEN)


def read_frequency(text: str) -> Reading:
    """Read an answer on the PHQ/GAD frequency scale (0-3).

    Args:
        text: What the patient typed, e.g. ``"2"``, ``"more than half the days"``, ``"often"``.

    Returns:
        The reading; ``score`` is ``None`` when the answer is unclear and should be asked again.
    """
    return _read_numeric(text, _FREQUENCY)


# ---------------------------------------------------------------------------------------------
# Signs
# ---------------------------------------------------------------------------------------------

_NONE = _Tag("none")
_ALL = _Tag("all")
_IGNORED = _Tag("ignored")

_SIGN_WORDS: dict[str, tuple[str, ...]] = {
    "mood": (
        "mood", "moods", "moody", "low mood", "sad", "sadness", "down", "depressed", "depression",
    ),
    "motivation": (
        "motivation", "motivated", "unmotivated", "interest", "interested", "uninterested",
        "no motivation", "no interest", "not motivated", "not interested", "lost interest",
        "loss of interest", "lack of motivation", "lack of interest",
    ),
    "negative_thoughts": (
        "negative thoughts", "negative thought", "negative thinking", "negative thought patterns",
        "negativity",
    ),
    "coping": (
        "coping", "cope", "cant cope", "not coping", "stress", "stressed", "stressful",
        "overwhelmed", "overwhelm", "overwhelming",
    ),
    "anxiety": ("anxiety", "anxious", "panic", "panicky", "panicking", "panic attacks"),
    "sleep": (
        "sleep", "sleeping", "slept", "insomnia", "cant sleep", "not sleeping", "sleepless",
    ),
}  # fmt: skip
_SIGN_NONE = (
    "0", "zero", "cero", "none", "no", "nope", "nah", "nothing", "nada", "na", "none of them",
    "none of those", "none of these", "none of the above", "no signs", "not any",
)  # fmt: skip
_SIGN_ALL = (
    "all", "all of them", "all of those", "all of these", "all of the above", "all six", "all 6",
    "everything",
)  # fmt: skip
_SIGN_INDEX = _index(
    [(phrase, _Tag(key)) for key, phrases in _SIGN_WORDS.items() for phrase in phrases]
    + [(phrase, _NONE) for phrase in _SIGN_NONE]
    + [(phrase, _ALL) for phrase in _SIGN_ALL]
    # So that "all" here is not read as "all six".
    + [(phrase, _IGNORED) for phrase in ("all the time", "all day", "at all")]
)
# Words that only join picks: allowed next to number words ("one and three").
_SIGN_SEPARATORS = _words("and & + / # - option options number numbers also plus ?")
# Words that may surround picks without changing them ("trouble sleeping", "some anxiety").
_SIGN_FILLER = _words(
    """
    a an the some bit little lot lots of more less really very mostly mainly bad poor low lower lack
    definitely been having had have has feeling feel felt i ive im my is are was as well too with
    sliding back changes change attacks attack patterns pattern trouble issues problems ok okay
    um uh hmm thanks thank you lately recently this week getting just only yes yeah both
    """
)


def read_signs(text: str) -> Reading:
    """Read an answer to the signs question (multiple choice over ``SIGN_KEYS``).

    Args:
        text: What the patient typed, e.g. ``"1 3 5"``, ``"135"``, ``"sleep and anxiety"``,
            ``"1 and sleep"``, ``"none"``, ``"all"``.

    Returns:
        The reading: ``score`` is the number of signs picked and ``choices`` their keys in
        ``SIGN_KEYS`` order; ``Reading(score=0)`` for none; ``score`` is ``None`` when the
        answer is unclear and should be asked again.
    """
    folded = _fold(text)
    if not folded or _DIGIT_RANGE.search(folded) or _DOTTED_DIGITS.search(folded):
        return _UNREAD
    picked: set[str] = set()
    said_none = said_all = worded_number = other_words = False
    for item in _match(_tokens(folded), _SIGN_INDEX):
        if item is _NONE:
            said_none = True
        elif item is _ALL:
            said_all = True
        elif isinstance(item, _Tag):
            if item is not _IGNORED:
                picked.add(item.name)
            other_words = True
        elif isinstance(item, _Phrase):  # not used for signs
            return _UNREAD
        elif item.isdigit():
            # A run of different digits 1-6 is a list ("135"); "11" or "10" is not.
            if len(set(item)) != len(item) or not set(item) <= set("123456"):
                return _UNREAD
            picked.update(SIGN_KEYS[int(digit) - 1] for digit in item)
        elif item in _NUMBER_WORDS:
            value = _NUMBER_WORDS[item]
            if not 1 <= value <= len(SIGN_KEYS):
                return _UNREAD
            picked.add(SIGN_KEYS[value - 1])
            worded_number = True
        elif item in _SIGN_FILLER:
            other_words = True
        elif item not in _SIGN_SEPARATORS:
            return _UNREAD
    if worded_number and other_words:
        return _UNREAD
    if said_none:
        return Reading(score=0) if not picked and not said_all else _UNREAD
    if said_all:
        return Reading(score=len(SIGN_KEYS), choices=SIGN_KEYS) if not picked else _UNREAD
    if not picked:
        return _UNREAD
    choices = tuple(key for key in SIGN_KEYS if key in picked)
    return Reading(score=len(choices), choices=choices)


# ---------------------------------------------------------------------------------------------
# Free text
# ---------------------------------------------------------------------------------------------

_NOTHING = _Tag("nothing")
_NOTHING_PHRASES = (
    "no", "nope", "nah", "none", "nothing", "nada", "na", "no thanks", "no thank you", "no thx",
    "no ty", "thats all", "thats it", "that is all", "that is it", "thats everything",
    "nothing else", "nothing more", "nothing to add", "nothing to report", "nothing new",
    "nothing at all", "none at all", "not really", "not now", "not right now",
    "not at the moment", "not at this time", "all good", "im good", "im all good", "i am good",
    "im fine", "i am fine", "im ok", "im okay", "all set", "im all set", "no questions",
    "no comment",
)  # fmt: skip
_NOTHING_INDEX = _index([(phrase, _NOTHING) for phrase in _NOTHING_PHRASES])
_NOTHING_EXTRAS = _words(
    "thanks thank you thx ty so much for now asking um uh well ok okay oh and then else really just"
)


def is_nothing(text: str) -> bool:
    """Whether the patient said they have nothing (more) to tell the care team.

    Used for the free-text question. Strict: the whole answer must be a way of saying "nothing"
    ("no", "nope", "nothing", "none", "no thanks", "that's all", "n/a", "I'm good"), with at most
    politeness around it ("nothing else, thank you!").

    Args:
        text: What the patient typed.

    Returns:
        ``True`` if it says "nothing"; ``False`` otherwise, including for an empty message, an
        emoji, or "no, but ...", so that nothing a patient wrote is dropped.
    """
    folded = _fold(text)
    if not folded:
        return False
    said = False
    for item in _match(_tokens(folded), _NOTHING_INDEX):
        if item is _NOTHING:
            said = True
        elif not isinstance(item, str) or item not in _NOTHING_EXTRAS:
            return False
    return said


def read_answer(scale: Scale, text: str) -> Reading:
    """Read an answer on the given scale.

    Args:
        scale: The question's scale.
        text: What the patient typed.

    Returns:
        The reading. Free text is never scored: its reading is always ``Reading(score=None)``.
    """
    if scale == Scale.ZERO_TO_TEN:
        return read_zero_to_ten(text)
    if scale == Scale.FREQUENCY:
        return read_frequency(text)
    if scale == Scale.SIGNS:
        return read_signs(text)
    return _UNREAD
