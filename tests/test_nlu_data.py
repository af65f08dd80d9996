"""Checks on the NLU training data (data/nlu/) and the held-out test set (tests/nlu/).

Loads both with Rasa's own loader so a file that Rasa cannot read fails here, then checks:
example counts per intent, coverage of the test set, that no test example was copied from
the training data, and the content rules of the data (no entities, no crisis language, ...).
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.training_data import TrainingData

ROOT = Path(__file__).resolve().parent.parent
TRAIN_DIR = ROOT / "data" / "nlu"
# The training files this test owns. Other files may be added to data/nlu/ by other parts of
# the project; the leakage check still compares against everything in data/nlu/.
TRAIN_FILES = [
    TRAIN_DIR / "basics.yml",
    TRAIN_DIR / "faq.yml",
    TRAIN_DIR / "intake.yml",
    TRAIN_DIR / "handoff.yml",
]
TEST_FILE = ROOT / "tests" / "nlu" / "test_nlu.yml"

DEFAULT_MIN_TRAIN = 15
MIN_TRAIN = {
    "greet": DEFAULT_MIN_TRAIN,
    "goodbye": DEFAULT_MIN_TRAIN,
    "affirm": DEFAULT_MIN_TRAIN,
    "deny": DEFAULT_MIN_TRAIN,
    "thank_you": DEFAULT_MIN_TRAIN,
    "bot_capabilities": DEFAULT_MIN_TRAIN,
    "skip": DEFAULT_MIN_TRAIN,
    "cancel": DEFAULT_MIN_TRAIN,
    "faq_initial_series": DEFAULT_MIN_TRAIN,
    "faq_boosters": DEFAULT_MIN_TRAIN,
    "faq_visit": DEFAULT_MIN_TRAIN,
    "faq_ride_home": DEFAULT_MIN_TRAIN,
    "faq_cost": DEFAULT_MIN_TRAIN,
    "faq_location": DEFAULT_MIN_TRAIN,
    "faq_hours": DEFAULT_MIN_TRAIN,
    "start_intake": DEFAULT_MIN_TRAIN,
    "inform": 30,
    "correct_answer": DEFAULT_MIN_TRAIN,
    "human_handoff": 30,
    "clinical_question": 30,
}
INTENTS = sorted(MIN_TRAIN)
MIN_TEST = 4

# Crisis language is handled by a separate layer and must never be taught to these intents.
CRISIS_PATTERN = re.compile(
    r"suicid|kill (my|me|him|her)self|kill myself|end (my|it all|my life)|want to die"
    r"|wanna die|self[- ]?harm|hurt myself|cut myself|overdos|take all my pills",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """Case- and whitespace-normalised text (the form the leakage check compares)."""
    return " ".join(text.lower().split())


def loose(text: str) -> str:
    """Stricter form: also ignores punctuation, so "hi!" and "hi" count as the same text."""
    table = str.maketrans({c: " " for c in string.punctuation})
    return " ".join(text.lower().translate(table).split())


def by_intent(data: TrainingData) -> dict[str, list[str]]:
    result: dict[str, list[str]] = defaultdict(list)
    for message in data.intent_examples:
        result[message.get("intent")].append(message.get("text"))
    return result


@pytest.fixture(scope="module")
def train() -> TrainingData:
    return TrainingData().merge(*(load_data(str(path)) for path in TRAIN_FILES))


@pytest.fixture(scope="module")
def all_train() -> TrainingData:
    return load_data(str(TRAIN_DIR))


@pytest.fixture(scope="module")
def held_out() -> TrainingData:
    return load_data(str(TEST_FILE))


@pytest.mark.parametrize("path", [*TRAIN_FILES, TEST_FILE], ids=lambda p: p.name)
def test_file_loads_and_uses_format_3_1(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith('version: "3.1"'), path
    data = load_data(str(path))
    assert data.intent_examples, f"{path} has no intent examples"


@pytest.mark.parametrize("path", [*TRAIN_FILES, TEST_FILE], ids=lambda p: p.name)
def test_file_has_no_synonyms_regex_or_lookups(path: Path) -> None:
    data = load_data(str(path))
    assert not data.entity_synonyms
    assert not data.regex_features
    assert not data.lookup_tables


def test_training_intents_are_exactly_the_expected_ones(train: TrainingData) -> None:
    assert sorted(train.intents) == INTENTS


@pytest.mark.parametrize("intent", INTENTS)
def test_enough_training_examples(train: TrainingData, intent: str) -> None:
    count = len(by_intent(train)[intent])
    assert count >= MIN_TRAIN[intent], f"{intent}: {count} < {MIN_TRAIN[intent]}"


@pytest.mark.parametrize("intent", INTENTS)
def test_intent_covered_by_test_set(held_out: TrainingData, intent: str) -> None:
    count = len(by_intent(held_out)[intent])
    assert count >= MIN_TEST, f"{intent}: only {count} test examples"


# Owned by data/nlu/crisis.yml and data/nlu/out_of_scope.yml (the crisis layer and its
# everyday negatives); held out in the same test file.
CRISIS_INTENTS = {"crisis": 100, "deny_crisis": 30, "out_of_scope": 100}


def test_test_set_has_no_unknown_intents(held_out: TrainingData) -> None:
    assert set(held_out.intents) <= set(INTENTS) | set(CRISIS_INTENTS) | set(CHECKIN_INTENTS)


# Owned by data/nlu/checkin.yml (a patient asking for a booster or a check-in, mostly by SMS).
CHECKIN_INTENTS = {"request_booster": 25}


@pytest.mark.parametrize("intent", sorted(CHECKIN_INTENTS))
def test_checkin_intents_have_training_and_test_examples(
    all_train: TrainingData, held_out: TrainingData, intent: str
) -> None:
    assert len(by_intent(all_train)[intent]) >= CHECKIN_INTENTS[intent]
    assert len(by_intent(held_out)[intent]) >= MIN_TEST


@pytest.mark.parametrize("intent", sorted(CRISIS_INTENTS))
def test_crisis_intents_have_training_and_test_examples(
    all_train: TrainingData, held_out: TrainingData, intent: str
) -> None:
    assert len(by_intent(all_train)[intent]) >= CRISIS_INTENTS[intent]
    assert len(by_intent(held_out)[intent]) >= MIN_TEST


def test_test_set_is_about_a_quarter_of_training(
    train: TrainingData, held_out: TrainingData
) -> None:
    ratio = len(held_out.intent_examples) / len(train.intent_examples)
    assert 0.2 <= ratio <= 0.35, f"test/train ratio {ratio:.2f}"


def test_no_test_example_occurs_in_training_data(
    all_train: TrainingData, train: TrainingData, held_out: TrainingData
) -> None:
    train_texts = {
        normalise(m.get("text")) for m in [*all_train.intent_examples, *train.intent_examples]
    }
    leaked = sorted(
        m.get("text") for m in held_out.intent_examples if normalise(m.get("text")) in train_texts
    )
    assert not leaked, f"test examples copied from training data: {leaked}"


def test_no_test_example_occurs_in_training_data_ignoring_punctuation(
    all_train: TrainingData, train: TrainingData, held_out: TrainingData
) -> None:
    train_texts = {
        loose(m.get("text")) for m in [*all_train.intent_examples, *train.intent_examples]
    }
    leaked = sorted(
        m.get("text") for m in held_out.intent_examples if loose(m.get("text")) in train_texts
    )
    assert not leaked, f"test examples differing from training only in punctuation: {leaked}"


@pytest.mark.parametrize("name", ["train", "test"])
def test_no_duplicate_or_conflicting_examples(
    name: str, train: TrainingData, held_out: TrainingData
) -> None:
    data = train if name == "train" else held_out
    counts = Counter(loose(m.get("text")) for m in data.intent_examples)
    duplicates = sorted(text for text, n in counts.items() if n > 1)
    assert not duplicates, f"duplicate examples in {name}: {duplicates}"


@pytest.mark.parametrize("name", ["train", "test"])
def test_no_entity_annotations(name: str, train: TrainingData, held_out: TrainingData) -> None:
    data = train if name == "train" else held_out
    annotated = [m.get("text") for m in data.intent_examples if m.get("entities")]
    assert not annotated, f"entity annotations found: {annotated}"


@pytest.mark.parametrize("name", ["train", "test"])
def test_no_crisis_language(name: str, train: TrainingData, held_out: TrainingData) -> None:
    data = train if name == "train" else held_out
    flagged = [
        m.get("text")
        for m in data.intent_examples
        if m.get("intent") not in CRISIS_INTENTS and CRISIS_PATTERN.search(m.get("text"))
    ]
    assert not flagged, f"crisis language found: {flagged}"


@pytest.mark.parametrize("name", ["train", "test"])
def test_inform_examples_are_answers_not_questions(
    name: str, train: TrainingData, held_out: TrainingData
) -> None:
    data = train if name == "train" else held_out
    questions = [text for text in by_intent(data)["inform"] if text.rstrip().endswith("?")]
    assert not questions, f"inform examples that are questions: {questions}"
