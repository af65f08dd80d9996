"""The crisis classifier: its training files, training, saving and loading, and the Rasa
component that puts its verdict in the parse.

How well it generalises is measured by ``python -m bot.safety.evaluate`` on the held-out sets
and by leaving one author's training set out at a time (``docs/safety.md``), not here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import skops.io as sio
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from bot.safety.classifier import (
    DEFAULT_THRESHOLD,
    CrisisTextClassifier,
    LabelledText,
    as_scored,
    fingerprint,
    read_labelled,
    training_paths,
)
from bot.safety.detector import CLASSIFIER_KEY
from bot.safety.nlu import CrisisClassifier

# Written for these tests; the evaluation sets are never used to train or test this module.
CRISIS = [
    "i keep thinking everyone would be better off without me",
    "I have been saving up my pills for when I decide",
    "cut myself again last night",
    "i dont want to be alive anymore",
    "took the whole bottle an hour ago",
    "ya no quiero vivir",
]
ORDINARY = [
    "what time do you open on saturday",
    "my insurance is aetna",
    "the infusion really helped my mood",
    "this traffic is killing me",
    "sleep has been a little off this week",
    "quisiera cambiar mi cita",
]


def write_jsonl(path: Path, rows: list[tuple[str, bool]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "crisis": c, "cat": "x"}) + "\n" for t, c in rows),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def trained() -> CrisisTextClassifier:
    """Trained on the project's training files, as the model is."""
    paths = training_paths(["data/safety/crisis_train*.jsonl"])
    return CrisisTextClassifier().fit(read_labelled(paths))


def test_training_files_are_found_and_a_typo_fails(tmp_path: Path) -> None:
    assert len(training_paths(["data/safety/crisis_train*.jsonl"])) >= 4
    write_jsonl(tmp_path / "one.jsonl", [("a", True)])
    assert training_paths([str(tmp_path / "*.jsonl")]) == [tmp_path / "one.jsonl"]
    with pytest.raises(FileNotFoundError, match="crisis_trian"):
        training_paths(["data/safety/crisis_trian*.jsonl"])


def test_a_line_without_a_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hello", "crisis": "yes"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_labelled([path])


def test_both_labels_are_needed() -> None:
    with pytest.raises(ValueError, match="crisis and non-crisis"):
        CrisisTextClassifier().fit([LabelledText("hello", False), LabelledText("hi", False)])
    with pytest.raises(RuntimeError):
        CrisisTextClassifier().probabilities(["hello"])


def test_the_fingerprint_follows_the_contents(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [("one", True)])
    before = fingerprint([path])
    assert fingerprint([path]) == before
    write_jsonl(path, [("one", False)])
    assert fingerprint([path]) != before


def test_it_learns_from_the_text_it_will_score() -> None:
    examples = [
        LabelledText("Suicide attempt in 2009, inpatient ten days. Doing ok now.", False),
        LabelledText("Mood 3. No thoughts of hurting myself.", False),
        LabelledText("Attempt in 2010.", False),
        LabelledText("I want to kill myself", True),
    ]
    assert as_scored(examples) == [
        LabelledText("doing ok now", False),
        LabelledText("mood 3", False),
        LabelledText("I want to kill myself", True),
    ]


def test_editing_the_pattern_file_retrains_the_classifier() -> None:
    from bot.safety.patterns import DEFAULT_PATTERN_FILE

    addon = CrisisClassifier.fingerprint_addon({})
    assert addon == fingerprint(
        [*training_paths(CrisisClassifier.get_default_config()["training_files"]),
         DEFAULT_PATTERN_FILE]
    )
    assert addon != fingerprint(training_paths(
        CrisisClassifier.get_default_config()["training_files"]))


def test_it_separates_crisis_from_ordinary_messages(trained: CrisisTextClassifier) -> None:
    crisis = trained.probabilities(CRISIS)
    ordinary = trained.probabilities(ORDINARY)
    assert min(crisis) >= DEFAULT_THRESHOLD, list(zip(CRISIS, crisis, strict=True))
    assert max(ordinary) < DEFAULT_THRESHOLD, list(zip(ORDINARY, ordinary, strict=True))


def test_saved_and_loaded_it_gives_the_same_answers(
    trained: CrisisTextClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "c.skops"
    trained.save(path)
    loaded = CrisisTextClassifier.load(path)
    assert loaded.probabilities(CRISIS + ORDINARY) == pytest.approx(
        trained.probabilities(CRISIS + ORDINARY)
    )


def test_a_file_holding_other_code_is_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    sio.dump(Pipeline([("run", FunctionTransformer(os.system))]), path)
    with pytest.raises(ValueError, match="Unexpected types"):
        CrisisTextClassifier.load(path)


# -- the Rasa component ---------------------------------------------------------------------


def make_component(tmp_path: Path, config: dict) -> CrisisClassifier:
    (tmp_path / "storage").mkdir()
    storage = LocalModelStorage(tmp_path / "storage")
    context = ExecutionContext(GraphSchema({}), "test")
    return CrisisClassifier.create(
        {**CrisisClassifier.get_default_config(), **config},
        storage,
        Resource("crisis_classifier"),
        context,
    )


def test_the_component_trains_with_the_nlu_examples_and_adds_its_verdict(
    tmp_path: Path,
) -> None:
    files = write_jsonl(tmp_path / "crisis_train_x.jsonl", [
        ("i want to end my life", True), ("thinking about suicide tonight", True),
        ("what are your hours", False), ("i love the staff there", False),
    ])
    component = make_component(tmp_path, {"training_files": [str(files)]})
    nlu = TrainingData([
        Message(data={TEXT: "nobody would miss me if i was gone", INTENT: "crisis"}),
        Message(data={TEXT: "i want to book an appointment", INTENT: "start_intake"}),
        Message(data={TEXT: "how much does it cost", INTENT: "faq_cost"}),
    ])
    component.train(nlu)
    messages = [Message(data={TEXT: "i want to end my life tonight"}),
                Message(data={TEXT: "how much are your hours"}),
                Message(data={TEXT: ""})]
    component.process(messages)
    first, second, empty = (m.get(CLASSIFIER_KEY) for m in messages)
    assert first["crisis"] is True and first["confidence"] > second["confidence"]
    assert second["crisis"] is False
    assert empty is None
    # The verdict is part of the parse Rasa returns.
    assert CLASSIFIER_KEY in messages[0].as_dict(only_output_properties=True)

    loaded = CrisisClassifier.load(
        component.component_config, component._model_storage, component._resource,
        ExecutionContext(GraphSchema({}), "test"),
    )
    again = [Message(data={TEXT: "i want to end my life tonight"})]
    loaded.process(again)
    assert again[0].get(CLASSIFIER_KEY) == first


def test_a_model_without_a_trained_classifier_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    component = make_component(tmp_path, {})
    with caplog.at_level(logging.WARNING):
        loaded = CrisisClassifier.load(
            component.component_config, component._model_storage, Resource("missing"),
            ExecutionContext(GraphSchema({}), "test"),
        )
    messages = [Message(data={TEXT: "i want to end my life"})]
    loaded.process(messages)
    assert messages[0].get(CLASSIFIER_KEY) is None
    assert "No trained crisis classifier" in caplog.text


# -- the override, last in the pipeline -----------------------------------------------------


def classified(text: str, ranking: list[tuple[str, float]], verdict: dict | None) -> Message:
    intents = [{"name": name, "confidence": confidence} for name, confidence in ranking]
    data = {TEXT: text, INTENT: intents[0], "intent_ranking": intents}
    if verdict is not None:
        data[CLASSIFIER_KEY] = verdict
    return Message(data=data)


@pytest.mark.parametrize(
    ("text", "ranking", "verdict", "expected"),
    [
        # A crisis guess the classifier rejects, with nothing else sure: the fallback.
        ("<script>alert(1)</script>", [("crisis", 1.0), ("faq_cost", 0.0)],
         {"confidence": 0.03, "crisis": False}, ("nlu_fallback", 0.45)),
        # ...or the next intent, when that is sure enough.
        ("I'm sleeping poorly again lately", [("crisis", 0.5), ("clinical_question", 0.48)],
         {"confidence": 0.2, "crisis": False}, ("clinical_question", 0.48)),
        # A strong pattern is the crisis intent whatever the classifiers said.
        ("i want to kill myself", [("greet", 0.9)], {"confidence": 0.1, "crisis": False},
         ("crisis", 1.0)),
        # The crisis classifier alone: its probability becomes the confidence.
        ("everything feels pointless and heavy", [("out_of_scope", 0.9)],
         {"confidence": 0.77, "crisis": True}, ("crisis", 0.77)),
        ("what time do you open", [("faq_hours", 0.97)], {"confidence": 0.01, "crisis": False},
         ("faq_hours", 0.97)),
    ],
)
def test_the_override_makes_the_intent_agree_with_the_crisis_check(
    text: str, ranking: list, verdict: dict, expected: tuple[str, float]
) -> None:
    from bot.safety.nlu import CrisisIntentOverride

    override = CrisisIntentOverride({"fallback_threshold": 0.45})
    message = classified(text, ranking, verdict)
    override.process([message])
    intent = message.get(INTENT)
    assert (intent["name"], intent["confidence"]) == (expected[0], pytest.approx(expected[1]))


def test_the_component_does_not_score_the_risk_words_of_a_denial(tmp_path: Path) -> None:
    files = write_jsonl(tmp_path / "crisis_train_x.jsonl", [
        ("thoughts of hurting myself", True), ("i keep having thoughts of hurting myself", True),
        ("suicidal thoughts again", True), ("mood low and tired", False),
        ("sleep was bad", False), ("feeling low this week", False),
    ])
    component = make_component(tmp_path, {"training_files": [str(files)]})
    component.train(TrainingData([
        Message(data={TEXT: "i want to book an appointment", INTENT: "start_intake"}),
    ]))
    denial = Message(data={TEXT: "feeling low this week, no thoughts of hurting myself"})
    risk = Message(data={TEXT: "feeling low this week, thoughts of hurting myself"})
    only_denial = Message(data={TEXT: "No suicidal thoughts."})
    component.process([denial, risk, only_denial])
    assert risk.get(CLASSIFIER_KEY)["crisis"] is True
    assert denial.get(CLASSIFIER_KEY)["crisis"] is False
    assert denial.get(CLASSIFIER_KEY)["confidence"] < risk.get(CLASSIFIER_KEY)["confidence"]
    assert only_denial.get(CLASSIFIER_KEY) == {"confidence": 0.0, "crisis": False}
