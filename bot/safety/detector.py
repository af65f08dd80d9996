"""The deterministic crisis detector: spaCy ``Matcher`` patterns over normalised words.

How a message is read
    1. Lower-cased; accents, punctuation and emoji removed ("Suicídio!!" -> "suicidio").
    2. Texting forms and known misspellings replaced from the pattern file's ``spellings``
       ("kms" -> "kill myself", "wanna" -> "want to").
    3. Tokenised and lemmatised by a blank spaCy English pipeline with the lookup lemmatizer,
       so "killing" reads as "kill" and "pills" as "pill". Contractions are split
       ("don't" -> "do not").
    4. A word that is not an English word and is one or two letters from a ``fuzzy`` key word
       reads as that key word ("suicdie" -> "suicide").

What comes out
    :meth:`CrisisDetector.signals` lists every pattern that matched one message (its
    :class:`Cue`s), after dropping matches that lie inside a ``not_crisis`` expression, a
    denial, a sentence telling the person's distant past (``history``) or an everyday joke
    (``jokes``). :meth:`CrisisDetector.classifier_text` is the message without the last three,
    as the model's classifier scores it.
    :meth:`CrisisDetector.assess` turns the newest message, the person's recent messages and
    (optionally) the NLU model's intent into one :class:`Assessment`. It is the single decision
    the live channels and ``python -m bot.safety.evaluate`` both use.

The detector needs no database, no action server and no trained model, so it keeps working
when those are down.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span

from bot.safety.patterns import (
    DEFAULT_PATTERN_FILE,
    GAP_WORDS,
    PAST_YEAR_GAP,
    STRONG,
    Family,
    PatternFileError,
    PatternSet,
    Phrase,
    Slot,
    load_patterns,
)

CRISIS_INTENT = "crisis"
CLASSIFIER_KEY = "crisis_classifier"
"""Where :class:`bot.safety.nlu.CrisisClassifier` puts its verdict in the NLU parse."""
NLU_MIN_CONFIDENCE = 0.5
"""In a model with the crisis classifier, the NLU layer counts when the classifier says crisis
(at the threshold it was trained with). In a model without it, when ``crisis`` is the top
intent with at least this confidence."""
NLU_MIN_WORDS = 3
"""...and the message has at least this many words. The classifier guesses ``crisis`` for some
unknown single words (a name typed as an answer); short crisis messages ("kms", "suicidal")
are the patterns' job."""

WINDOW_MESSAGES = 5
"""Messages scored together, the newest included."""
WINDOW_THRESHOLD = 1.0
"""Weak-sign weights across the window that make a crisis."""

DENIAL_LIMITS = frozenset({"yet", "tonight", "until", "unless", "except", "till", "todavia",
                           "aun"})
"""Words that, right after a denial, limit it ("no plans to do it *yet*"): then it is not one."""
DENIAL_LIMIT_REACH = 2

LAYER_PATTERNS = "patterns"
LAYER_WINDOW = "window"
LAYER_NLU = "nlu"

_LAUGHING = re.compile("[\U0001F602\U0001F923\U0001F606\U0001F639\U0001F605]")
"""Laughing emoji (tears of joy, rolling on the floor ...), read as "lol"."""

_SENTENCE_END = re.compile(r"([.!?;\n\u2026]+)")
"""Where a sentence ends (kept by ``re.split``, to tell questions)."""

_INITIALS = re.compile(r"\b([a-zA-Z])\.(?=[a-zA-Z]\b)")
"""A single letter, a dot, and another single letter: "k.m.s", "a.m"."""

_NOT = {"n't": "not", "nt": "not", "not": "not"}
_CONTRACTION_HEADS = {"ca": "can", "wo": "will", "sha": "shall", "ai": "be"}

_SPANISH_TEXT = (
    "que de la el los las no me mi quiero estoy estar para con por una un lo se ya muy "
    "pero todo nada porque tengo soy es esta como mas cuando yo ella el nos hoy gracias "
    "hola bien vida morir dolor siento ayuda "
)
_SPANISH_WORDS = frozenset(_SPANISH_TEXT.split())
_ENGLISH_TEXT = (
    "the i to and a my is it of you in that this have be am are was for on with just not "
    "what want feel like so do can about me "
)
_ENGLISH_WORDS = frozenset(_ENGLISH_TEXT.split())


def join_initials(text: str) -> str:
    """Join single letters written with dots between them: "k.m.s." reads "kms.", "a.m." "am."."""
    return _INITIALS.sub(r"\1", text)


def fold(text: str) -> str:
    """Lower-case, drop accents, and turn everything but letters, digits and ``'`` into spaces.

    Letters written with dots ("k.m.s.") are joined first (:func:`join_initials`).

    Args:
        text: Any text.

    Returns:
        The folded text, words separated by single spaces.
    """
    text = _LAUGHING.sub(" lol ", join_initials(text))
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'").replace("\u2018", "'"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"[^a-z0-9'\s]+", " ", text)
    # Apostrophes only matter inside words ("don't"); quotes around words are noise.
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())


def guess_language(text: str) -> str:
    """``es`` when a message reads as Spanish, else ``en`` (a function-word count, on purpose
    simple: it only picks the language of the crisis reply).

    Args:
        text: The message.

    Returns:
        ``es`` or ``en``.
    """
    if re.search(r"[ñ¿¡]", text.lower()):
        return "es"
    words = fold(text).split()
    spanish = sum(word in _SPANISH_WORDS for word in words)
    english = sum(word in _ENGLISH_WORDS for word in words)
    return "es" if spanish >= 2 and spanish > english else "en"


def _damerau(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance between ``a`` and ``b``, stopping above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            cost = 0 if char_a == char_b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if (
                i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b
            ):
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


@dataclass(frozen=True)
class Cue:
    """One pattern that matched one message.

    Attributes:
        family: The family's name (``explicit``, ``plan``, ``warning_signs`` ...).
        phrase: The phrase as written in the pattern file.
        strong: Whether this match alone is a crisis.
        weight: What it adds to the window score (1.0 for strong cues).
        language: ``en`` or ``es``.
        poison_control: Whether the reply adds Poison Control.
        start: First token of the match.
        end: One past its last token.
        general: Whether a strong match is only a topic word in a general question (the
            pattern file's ``general`` section): then it is left to the model's classifier, and
            counts alone only where there is no classifier.
    """

    family: str
    phrase: str
    strong: bool
    weight: float
    language: str
    poison_control: bool
    start: int
    end: int
    general: bool = False


@dataclass(frozen=True)
class MessageSignals:
    """What the patterns found in one message."""

    cues: tuple[Cue, ...] = ()
    # The message as the classifier scores it: without its denials, the sentences that tell the
    # person's distant past, and everyday jokes. None when it has none of these.
    scored_text: str | None = None
    # Whether a sentence was read as the person's distant past ("an attempt in 2010") and masked.
    history: bool = False
    # Whether a sentence was read as a joke about something everyday and masked.
    joke: bool = False

    @property
    def strong(self) -> tuple[Cue, ...]:
        """The cues that alone make a crisis."""
        return tuple(cue for cue in self.cues if cue.strong and not cue.general)

    @property
    def general(self) -> tuple[Cue, ...]:
        """Strong matches that are only a topic word in a general question ("can it be used
        for someone who is actively suicidal?"): a crisis alone only where the classifier is
        missing."""
        return tuple(cue for cue in self.cues if cue.strong and cue.general)

    @property
    def weak(self) -> tuple[Cue, ...]:
        """The warning signs, overlapping ones counted once."""
        return tuple(cue for cue in self.cues if not cue.strong)

    @property
    def weak_weight(self) -> float:
        """The sum of the warning signs' weights."""
        return round(sum(cue.weight for cue in self.weak), 3)


@dataclass(frozen=True)
class Assessment:
    """The crisis decision for one incoming message.

    Attributes:
        crisis: Whether to take the crisis path.
        layers: Which layers said so: ``patterns`` (a strong pattern in this message),
            ``window`` (warning signs adding up across recent messages), ``nlu`` (the model's
            ``crisis`` intent).
        families: The pattern families that matched (strong and weak).
        poison_control: Whether an overdose or poisoning was mentioned.
        language: ``es`` or ``en``: the language of the reply.
        window_score: The weak-sign score across the window.
        nlu_confidence: The model's confidence in crisis when its layer counted: the crisis
            classifier's probability (the intent's in a model without it); otherwise 0.
    """

    crisis: bool
    layers: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    poison_control: bool = False
    language: str = "en"
    window_score: float = 0.0
    nlu_confidence: float = 0.0

    def as_metadata(self) -> dict[str, Any]:
        """The assessment as JSON for a ``UserMessage``'s metadata and the handoff record."""
        return {
            "crisis": self.crisis,
            "layers": list(self.layers),
            "families": list(self.families),
            "poison_control": self.poison_control,
            "language": self.language,
            "window_score": self.window_score,
            "nlu_confidence": round(self.nlu_confidence, 3),
        }


@dataclass
class _Compiled:
    matcher: Matcher
    masks: Matcher
    denials: Matcher
    history_past: Matcher
    history_present: Matcher
    jokes_marker: Matcher
    jokes_cause: Matcher
    jokes_serious: Matcher
    general_topic: Matcher
    general_question: Matcher
    general_personal: Matcher
    recovery_over: Matcher
    recovery_relapse: Matcher
    keys: dict[int, tuple[Family, Phrase]] = field(default_factory=dict)


class _Sentences:
    """One message's sentence spans, split only when a reading first needs them."""

    def __init__(self, detector: CrisisDetector, text: str, doc: Doc) -> None:
        self._detector, self._text, self._doc = detector, text, doc
        self._marks: list[tuple[int, int, bool]] | None = None

    def marks(self) -> list[tuple[int, int, bool]]:
        """Each sentence's first token, one past its last, and whether it ends with "?"."""
        if self._marks is None:
            self._marks = self._detector._sentence_marks(self._text, self._doc)
        return self._marks

    def __call__(self) -> list[tuple[int, int]]:
        return [(start, end) for start, end, _ in self.marks()]


class CrisisDetector:
    """Detects crisis language with the patterns of one pattern file."""

    def __init__(self, patterns: PatternSet, nlp: Language | None = None) -> None:
        """Compile the patterns.

        Args:
            patterns: The parsed pattern file.
            nlp: The spaCy pipeline to tokenise and lemmatise with (a blank English pipeline
                with the lookup lemmatizer by default).

        Raises:
            PatternFileError: A phrase cannot be compiled.
        """
        self.patterns = patterns
        self.nlp = nlp or _blank_english()
        self._spelling_re = (
            re.compile(r"\b(" + "|".join(map(re.escape, patterns.spellings)) + r")\b")
            if patterns.spellings
            else None
        )
        try:
            self._lemma_table: Any = self.nlp.get_pipe("lemmatizer").lookups.get_table(  # type: ignore[attr-defined]
                "lemma_lookup"
            )
        except (KeyError, ValueError):
            self._lemma_table = None
        # Words never "corrected" towards a fuzzy key word: English words, and every word the
        # pattern file itself uses (so Spanish "suicida" is not read as English "suicide").
        self._vocabulary = _english_vocabulary(self._lemma_table, self.nlp) | _pattern_words(
            patterns
        )
        last = date.today().year - PAST_YEAR_GAP
        self._past_years = [str(year) for year in range(1920, last + 1)]
        self._compiled = self._compile()
        # The same text is read more than once per incoming message (the channel's check, the
        # model's override, and again as window history on later messages): remember results.
        self.signals = lru_cache(maxsize=4096)(self._signals)  # type: ignore[method-assign]

    @classmethod
    def from_file(cls, path: Path = DEFAULT_PATTERN_FILE) -> CrisisDetector:
        """Load a pattern file and compile it.

        Args:
            path: The pattern file.

        Returns:
            The detector.
        """
        return cls(load_patterns(path))

    # -- reading text -------------------------------------------------------------------

    def _respell(self, text: str) -> str:
        if self._spelling_re is None:
            return text
        spellings = self.patterns.spellings
        return self._spelling_re.sub(lambda m: spellings[m.group(1)], text)

    def _fuzzy(self, word: str) -> str | None:
        if len(word) < 5 or word in self._vocabulary:
            return None
        for key in self.patterns.fuzzy:
            limit = 1 if len(key) <= 7 else 2
            if word != key and _damerau(word, key, limit) <= limit:
                return key
        return None

    def _lemma(self, word: str) -> str:
        table = self._lemma_table
        return str(table.get(word, word)) if table is not None else word

    def _word_norm(self, lower: str, lemma: str, fuzzy: bool) -> str:
        if lower in _NOT:
            return "not"
        if lower in _CONTRACTION_HEADS:
            return _CONTRACTION_HEADS[lower]
        if fuzzy:
            corrected = self._fuzzy(lower)
            if corrected is not None:
                return corrected
            if (
                lower.endswith("in")
                and lower not in self._vocabulary
                and lower + "g" in self._vocabulary
            ):
                # Dropped g: "killin" -> "killing", "cuttin" -> "cutting".
                lower = lower + "g"
                lemma = self._lemma(lower)
        return (lemma or lower).lower()

    def read(self, text: str, *, fuzzy: bool = True) -> Doc:
        """Normalise and tokenise a message; each token's ``norm_`` holds its matching form.

        Args:
            text: The message.
            fuzzy: Whether to correct near-misses of the ``fuzzy`` key words (off when
                reading the pattern file's own words, which are spelt as meant).

        Returns:
            The spaCy ``Doc``.
        """
        doc = self.nlp(self._respell(fold(text)))
        for token in doc:
            token.norm_ = self._word_norm(token.lower_, token.lemma_, fuzzy)
        return doc

    def _norms(self, word: str) -> list[str]:
        return [token.norm_ for token in self.read(word, fuzzy=False)]

    # -- compiling ----------------------------------------------------------------------

    def _token_specs(self, slots: Sequence[Slot], text: str, where: str) -> list[dict[str, Any]]:
        specs: list[dict[str, Any]] = []
        for slot in slots:
            if slot.gap:
                specs.extend({"OP": "?"} for _ in range(GAP_WORDS))
                continue
            if slot.number:
                specs.append({"LIKE_NUM": True})
                continue
            if slot.past_year:
                specs.append({"LOWER": {"IN": self._past_years}})
                continue
            if slot.exact:
                spec: dict[str, Any] = {"LOWER": {"IN": list(slot.words)}}
            else:
                norms: list[str] = []
                for word in slot.words:
                    expanded = self._norms(word)
                    if len(expanded) != 1:
                        raise PatternFileError(
                            f"{where}: {word!r} in {text!r} reads as {len(expanded)} words "
                            f"({' '.join(expanded)}); write them in a (group) instead"
                        )
                    # The lookup lemmatizer ignores context ("thought" -> "think" even as a
                    # noun), so a pattern word matches its lemma and its own form.
                    norms.extend([expanded[0], fold(word)])
                spec = {"NORM": {"IN": sorted(set(norms))}}
            if slot.optional:
                spec["OP"] = "?"
            specs.append(spec)
        return specs

    def _expand(self, slots: Sequence[Slot]) -> list[Slot]:
        """Split single words that read as several ("gonna" -> "going to") into slots."""
        result: list[Slot] = []
        for slot in slots:
            if slot.gap or slot.number or slot.exact or len(slot.words) != 1:
                result.append(slot)
                continue
            parts = self._respell(fold(slot.words[0])).split()
            if len(parts) > 1 and not slot.optional:
                result.extend(Slot(words=(part,)) for part in parts)
            else:
                result.append(slot)
        return result

    def _phrase_specs(self, phrase: Phrase, where: str) -> list[list[dict[str, Any]]]:
        return [
            self._token_specs(self._expand(variant), phrase.text, where)
            for variant in phrase.variants
        ]

    def _compile(self) -> _Compiled:
        vocab = self.nlp.vocab
        compiled = _Compiled(
            matcher=Matcher(vocab), masks=Matcher(vocab), denials=Matcher(vocab),
            history_past=Matcher(vocab), history_present=Matcher(vocab),
            jokes_marker=Matcher(vocab), jokes_cause=Matcher(vocab),
            jokes_serious=Matcher(vocab), general_topic=Matcher(vocab),
            general_question=Matcher(vocab), general_personal=Matcher(vocab),
            recovery_over=Matcher(vocab), recovery_relapse=Matcher(vocab),
        )
        for family in self.patterns.families:
            for index, phrase in enumerate(family.phrases):
                where = f"families.{family.name}[{index}]"
                key = f"{family.name}:{index}"
                compiled.matcher.add(key, self._phrase_specs(phrase, where))
                compiled.keys[vocab.strings[key]] = (family, phrase)
        for index, phrase in enumerate(self.patterns.not_crisis):
            compiled.masks.add(
                f"not_crisis:{index}", self._phrase_specs(phrase, f"not_crisis[{index}]")
            )
        for index, phrase in enumerate(self.patterns.denials):
            compiled.denials.add(
                f"denials:{index}", self._phrase_specs(phrase, f"denials[{index}]")
            )
        for name, phrases in (("history_past", self.patterns.history_past),
                              ("history_present", self.patterns.history_present),
                              ("jokes_marker", self.patterns.jokes_marker),
                              ("jokes_cause", self.patterns.jokes_cause),
                              ("jokes_serious", self.patterns.jokes_serious),
                              ("general_topic", self.patterns.general_topic),
                              ("general_question", self.patterns.general_question),
                              ("general_personal", self.patterns.general_personal),
                              ("recovery_over", self.patterns.recovery_over),
                              ("recovery_relapse", self.patterns.recovery_relapse)):
            for index, phrase in enumerate(phrases):
                where = f"{name.replace('_', '.')}[{index}]"
                getattr(compiled, name).add(f"{name}:{index}", self._phrase_specs(phrase, where))
        return compiled

    # -- matching -----------------------------------------------------------------------

    def signals(self, text: str) -> MessageSignals:
        """Every pattern that matched one message, outside ``not_crisis`` expressions.

        Results are remembered per text (see ``__init__``); the work is in :meth:`_signals`.

        Args:
            text: The message.

        Returns:
            The cues.
        """
        return self._signals(text)

    def _signals(self, text: str) -> MessageSignals:
        """Match one message (uncached).

        Overlapping warning signs count once (the longest wins); strong cues are all kept.

        Args:
            text: The message.

        Returns:
            The cues.
        """
        doc = self.read(text)
        denials = self._denials(doc)
        sentences = _Sentences(self, text, doc)
        recovered = self._recovered(doc)
        history = self._history(doc, sentences, [*recovered, *denials])
        # Sentences are split only when a reading needs them: most messages tell no recovery.
        recovery = [(start, end) for start, end in sentences()
                    if any(start <= r_start < end for r_start, _ in recovered)] if recovered else []
        jokes = self._jokes(doc, sentences)
        expressions = [(start, end) for _, start, end in self._compiled.masks(doc)
                       if not self._limited(doc, end)]
        masks = expressions + denials + history
        # A laugh does not make an overdose safe ("took my whole bottle of ativan ... lol"), nor
        # does recovery told beside one ("six months clean and he's barely breathing"): jokes
        # and recovery mask every family but the medical ones (overdoses, emergency signs).
        joke_masks = masks + jokes + recovery
        strong: list[Cue] = []
        weak_spans: list[Span] = []
        weak_cues: dict[tuple[int, int], Cue] = {}
        general = self._general(doc, sentences)
        for match_id, start, end in self._compiled.matcher(doc):
            family, phrase = self._compiled.keys[match_id]
            if any(m_start <= start and end <= m_end
                   for m_start, m_end in (masks if family.medical else joke_masks)):
                continue
            cue = Cue(
                family=family.name,
                phrase=phrase.text,
                strong=family.strength == STRONG,
                weight=family.weight,
                language=family.language,
                poison_control=family.poison_control,
                start=start,
                end=end,
                general=family.strength == STRONG
                and any(g_start <= start and end <= g_end for g_start, g_end in general),
            )
            if cue.strong:
                strong.append(cue)
            else:
                span = doc[start:end]
                previous = weak_cues.get((start, end))
                if previous is None or previous.weight < cue.weight:
                    weak_cues[(start, end)] = cue
                weak_spans.append(span)
        kept = spacy.util.filter_spans(weak_spans)
        weak: list[Cue] = []
        for span in kept:
            cue = weak_cues[(span.start, span.end)]
            # The same sign twice in one message ("pills ... pills") counts once.
            if all((cue.family, cue.phrase) != (seen.family, seen.phrase) for seen in weak):
                weak.append(cue)
        scored = None
        if denials or history or jokes or recovery:
            left_out = {index for start, end in denials + history + jokes + recovery
                        for index in range(start, end)}
            scored = " ".join(token.text for token in doc if token.i not in left_out)
        return MessageSignals(cues=tuple(strong + weak), scored_text=scored,
                              history=bool(history or recovery), joke=bool(jokes))

    def classifier_text(self, text: str) -> str:
        """The message as the classifier should score it: without the person's denials, the
        sentences that tell their distant past, and everyday jokes.

        "Mood low. No thoughts of hurting myself, just heavy" is scored as "mood low just
        heavy": a statement that the person is not at risk must not count as the risk words
        in it. "Attempt in 2010, inpatient for a week. Here because nothing has worked" is
        scored as "here because nothing has worked". Crisis language elsewhere in the message
        still counts, and the patterns run on the whole message. A message with none of these
        is returned unchanged.

        Args:
            text: The message.

        Returns:
            The text without those parts (folded, as the patterns read it), or ``text`` itself
            when it has none. The message is read once for both this and its cues.
        """
        scored = self.signals(text).scored_text
        return text if scored is None else scored

    def _general(self, doc: Doc, sentences: _Sentences) -> list[tuple[int, int]]:
        """The ``general.topic`` matches that lie in a general question.

        Their sentence is a question (it ends with "?" or its first word is a
        ``general.question`` word) and has no ``general.personal`` word ("i", "my", "she",
        "else"), and the message has no ``history.present`` phrase ("again", "tonight",
        "lately"): "Is ketamine ever given in an ER to someone who is actively suicidal?" but
        not "is it ok to come in when I'm suicidal?", "Suicidal, need someone to talk to" nor
        "suicidal again, can anyone call?".
        """
        compiled = self._compiled
        topics = self._matches_unless(doc, compiled.general_topic, compiled.history_present)
        if not topics:
            return []
        asking = {start for _, start, _ in compiled.general_question(doc)}
        personal = {index for _, start, end in compiled.general_personal(doc)
                    for index in range(start, end)}
        found: list[tuple[int, int]] = []
        for start, end, question in sentences.marks():
            if not (question or start in asking):
                continue
            if any(start <= index < end for index in personal):
                continue
            found.extend((t_start, t_end) for t_start, t_end in topics
                         if start <= t_start and t_end <= end)
        return found

    def _history(
        self, doc: Doc, sentences: _Sentences, ignored: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """The token spans of the sentences that tell the person's distant past.

        A sentence is history when it has a ``history.past`` phrase ("in 2010", "when I was
        16", "years ago", "as a teenager"). None counts when the message has a
        ``history.present`` phrase anywhere ("again", "lately", "tonight", "want to"): a past
        told beside a present is not reassurance, and the whole message is scored. A present
        phrase inside one of the ``ignored`` spans (recovery phrases and denials) does not
        count: the "again" of "I have never felt that way again" tells recovery, and the
        "current thoughts" of "no current thoughts" a denial, not the present.
        """
        compiled = self._compiled
        return self._masked_sentences(
            doc, sentences, (compiled.history_past,), compiled.history_present, ignored
        )

    def _recovered(self, doc: Doc) -> list[tuple[int, int]]:
        """The ``recovery.over`` matches, which tell the person's recovery ("the thoughts went
        away", "I came in wanting to die"); none when the message has a ``recovery.relapse``
        phrase anywhere ("they're back", "worse", "tonight", "want to die"): recovery told
        beside a return is not reassurance. Their sentences are masked like history.
        """
        compiled = self._compiled
        return self._matches_unless(doc, compiled.recovery_over, compiled.recovery_relapse)

    @staticmethod
    def _matches_unless(doc: Doc, found: Matcher, cancel: Matcher) -> list[tuple[int, int]]:
        """The token spans ``found`` matches in ``doc``; none when ``cancel`` matches anywhere."""
        if not len(found):
            return []
        spans = [(start, end) for _, start, end in found(doc)]
        if not spans or (len(cancel) and cancel(doc)):
            return []
        return spans

    def _jokes(self, doc: Doc, sentences: _Sentences) -> list[tuple[int, int]]:
        """The token spans of the sentences that joke about something everyday.

        A sentence is a joke when it has a ``jokes.marker`` ("lol", "lmao", a laughing emoji)
        and a ``jokes.cause`` ("if ...", "one more", "makes me"). None counts when the message
        has a ``jokes.serious`` phrase anywhere ("for real", "not joking", "if this doesn't
        work"): a joke about the treatment failing, or one the person says is meant, counts.
        """
        compiled = self._compiled
        return self._masked_sentences(
            doc, sentences, (compiled.jokes_marker, compiled.jokes_cause), compiled.jokes_serious
        )

    @staticmethod
    def _masked_sentences(
        doc: Doc,
        sentences: _Sentences,
        needed: Sequence[Matcher],
        cancel: Matcher,
        ignored: Sequence[tuple[int, int]] = (),
    ) -> list[tuple[int, int]]:
        """The sentences that hold a match of every matcher in ``needed``; none when ``cancel``
        matches anywhere in the message outside the ``ignored`` spans."""
        starts: list[list[int]] = []
        for matcher in needed:
            found = [start for _, start, _ in matcher(doc)] if len(matcher) else []
            if not found:
                return []
            starts.append(found)
        if len(cancel) and any(
            not any(i_start <= start and end <= i_end for i_start, i_end in ignored)
            for _, start, end in cancel(doc)
        ):
            return []
        return [(start, end) for start, end in sentences()
                if all(any(start <= index < end for index in found) for found in starts)]

    def _sentence_marks(self, text: str, doc: Doc) -> list[tuple[int, int, bool]]:
        """The token span of each sentence of ``text`` in ``doc`` (its reading), and whether
        the sentence ends with a question mark.

        Sentences end at ``. ! ? ;`` and line breaks. Reading drops punctuation, so each
        sentence read alone gives the same tokens as its part of the whole; if the counts do
        not add up (they always should), the message is one sentence.
        """
        marks: list[tuple[int, int, bool]] = []
        start = 0
        # Initials are joined first, as the reading joins them: "k.m.s." is one sentence.
        parts = _SENTENCE_END.split(join_initials(text))
        # re.split with a group: text, ending, text, ending, ..., text.
        for index in range(0, len(parts), 2):
            ending = parts[index + 1] if index + 1 < len(parts) else ""
            folded = self._respell(fold(parts[index]))
            if not folded:
                continue
            count = len(self.nlp.tokenizer(folded))
            marks.append((start, start + count, "?" in ending))
            start += count
        if start != len(doc):
            return [(0, len(doc), "?" in text)]
        return marks

    def _denials(self, doc: Doc) -> list[tuple[int, int]]:
        """The token spans of the denials in ``doc`` that are plain denials.

        A denial followed closely by a limit ("no plans to kill myself *tonight*", "... *yet*")
        is not one, and does not count.
        """
        spans = spacy.util.filter_spans(
            [doc[start:end] for _, start, end in self._compiled.denials(doc)]
        )
        return [(span.start, span.end) for span in spans if not self._limited(doc, span.end)]

    @staticmethod
    def _limited(doc: Doc, end: int) -> bool:
        """Whether a limit ("yet", "tonight", "until") follows a denial or mask ending at
        ``end``: "no plans to kill myself *yet*" is not a reassurance."""
        return bool({token.norm_ for token in doc[end:end + DENIAL_LIMIT_REACH]} & DENIAL_LIMITS)

    def assess(
        self,
        text: str,
        history: Sequence[str] = (),
        nlu: Mapping[str, Any] | None = None,
    ) -> Assessment:
        """Decide whether one incoming message takes the crisis path.

        Args:
            text: The newest message.
            history: The person's previous messages in the window, oldest first (only the
                last ``WINDOW_MESSAGES - 1`` are used).
            nlu: The NLU parse of ``text`` (``{"intent": ..., "intent_ranking": [...]}``), or
                ``None`` when the model is not available.

        Returns:
            The assessment.
        """
        current = self.signals(text)
        layers: list[str] = []
        verdict = classifier_verdict(nlu)
        # A topic word in a general question is the classifier's to judge; without the
        # classifier (no model, or a model without it) it counts, recall first.
        if current.strong or (current.general and verdict is None):
            layers.append(LAYER_PATTERNS)
        window_score = current.weak_weight
        if current.weak:
            for previous in list(history)[-(WINDOW_MESSAGES - 1):]:
                window_score += self.signals(previous).weak_weight
            if window_score >= WINDOW_THRESHOLD:
                layers.append(LAYER_WINDOW)
        confidence = nlu_crisis_confidence(nlu)
        if verdict is not None:
            # A model with the crisis classifier: its verdict decides. The intent classifier's
            # own crisis guesses were overconfident on ordinary check-in answers ("I'm sleeping
            # poorly again" at 1.0), and add no recall the classifier lacks (docs/safety.md).
            said_crisis, confidence = verdict
        else:
            said_crisis = confidence >= NLU_MIN_CONFIDENCE
        if said_crisis and len(fold(text).split()) >= NLU_MIN_WORDS:
            layers.append(LAYER_NLU)
        else:
            confidence = 0.0
        families = tuple(dict.fromkeys(cue.family for cue in current.cues))
        spanish = any(cue.language == "es" for cue in current.cues)
        return Assessment(
            crisis=bool(layers),
            layers=tuple(layers),
            families=families,
            poison_control=any(cue.poison_control for cue in current.cues),
            language="es" if spanish else guess_language(text),
            window_score=round(window_score, 3),
            nlu_confidence=confidence,
        )


def nlu_crisis_confidence(nlu: Mapping[str, Any] | None) -> float:
    """The model's confidence in ``crisis`` when it is the top intent, else 0.

    The top intent is read from the ranking, so that a low-confidence ``crisis`` which the
    fallback classifier turned into ``nlu_fallback`` still counts.

    Args:
        nlu: An NLU parse, or ``None``.

    Returns:
        The confidence, between 0 and 1.
    """
    if not nlu:
        return 0.0
    ranking: Iterable[Mapping[str, Any]] = nlu.get("intent_ranking") or []
    ranked = [item for item in ranking if item.get("name") != "nlu_fallback"]
    top = ranked[0] if ranked else (nlu.get("intent") or {})
    if top.get("name") != CRISIS_INTENT:
        return 0.0
    try:
        return float(top.get("confidence") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def classifier_verdict(nlu: Mapping[str, Any] | None) -> tuple[bool, float] | None:
    """What the model's crisis classifier said of the message, if it ran.

    Args:
        nlu: An NLU parse, or ``None``.

    Returns:
        Whether it said crisis, and its probability; ``None`` when it did not run.
    """
    verdict = (nlu or {}).get(CLASSIFIER_KEY)
    if not isinstance(verdict, Mapping):
        return None
    try:
        probability = float(verdict.get("confidence") or 0.0)
    except (TypeError, ValueError):
        return None
    return verdict.get("crisis") is True, probability


def _pattern_words(patterns: PatternSet) -> frozenset[str]:
    words: set[str] = set()
    for phrase in [p for family in patterns.families for p in family.phrases]:
        for variant in phrase.variants:
            for slot in variant:
                words.update(fold(word) for word in slot.words)
    return frozenset(words - set(patterns.fuzzy))


def _blank_english() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    return nlp


def _english_vocabulary(table: Any, nlp: Language) -> frozenset[str]:
    """Words the lookup lemmatizer knows: forms and lemmas (so real words are never fuzzed)."""
    if table is None:
        return frozenset()
    lemmas = {value.lower() for value in table.values() if isinstance(value, str)}
    # The table stores its keys (the forms) as hashes; the text comes back via the string store.
    forms = {nlp.vocab.strings[key].lower() for key in table if key in nlp.vocab.strings}
    return frozenset(lemmas | forms)


@lru_cache(maxsize=1)
def get_detector() -> CrisisDetector:
    """The detector for the project's pattern file, built once per process."""
    return CrisisDetector.from_file(DEFAULT_PATTERN_FILE)
