"""Rasa NLU components for crisis language: a trained classifier, and the patterns' override.

``CrisisClassifier`` is trained with the model on the labelled crisis messages and the NLU
examples (see :mod:`bot.safety.classifier`). It adds ``crisis_classifier`` to the parse:
``{"confidence": p, "crisis": p >= threshold}``. The detector's model layer reads it beside the
``crisis`` intent's confidence.

``CrisisIntentOverride`` makes the crisis patterns part of the trained model.

The channels already run the detector before Rasa and pass their decision in
``parse_data``. This component does the same inside the model, so that every way into the
model (``rasa shell``, ``rasa test``, the HTTP API's ``/model/parse``) sees a message with crisis
language as the ``crisis`` intent, whatever the classifier thought.

It runs last in the pipeline, after ``FallbackClassifier``. When a strong crisis pattern matches
it sets the intent to ``crisis`` with confidence 1.0, and when the classifier's own top intent
(fallback aside) is ``crisis`` with enough confidence, it undoes a fallback. The intent ranking
is left as the classifier produced it, so the layers can still be told apart.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.safety.classifier import (
    DEFAULT_C,
    DEFAULT_THRESHOLD,
    DEFAULT_TRAINING_FILES,
    CrisisTextClassifier,
    as_scored,
    fingerprint,
    intent_examples,
    read_labelled,
    training_paths,
)
from bot.safety.detector import (
    CLASSIFIER_KEY,
    CRISIS_INTENT,
    get_detector,
)
from bot.safety.patterns import DEFAULT_PATTERN_FILE

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class CrisisClassifier(GraphComponent, IntentClassifier):
    """Scores every message for crisis language with a classifier trained with the model."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Training files (globs from the project root), decision threshold and regularisation."""
        return {
            "training_files": list(DEFAULT_TRAINING_FILES),
            "threshold": DEFAULT_THRESHOLD,
            "c": DEFAULT_C,
        }

    @staticmethod
    def required_packages() -> list[str]:
        """scikit-learn, which Rasa already depends on."""
        return ["sklearn"]

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """The training files' and the pattern file's contents, so that editing them retrains
        the component (the classifier learns from the text the patterns leave to it)."""
        merged = {**cls.get_default_config(), **config}
        return fingerprint([*training_paths(merged["training_files"]), DEFAULT_PATTERN_FILE])

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        classifier: CrisisTextClassifier | None = None,
    ) -> None:
        """Create the component.

        Args:
            config: The component's configuration.
            model_storage: Where the trained classifier is kept.
            resource: This component's part of the storage.
            classifier: A trained classifier, when loading.
        """
        self.component_config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._classifier = classifier

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CrisisClassifier:
        """Create an untrained component (see ``GraphComponent.create``)."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CrisisClassifier:
        """Load the trained classifier (see ``GraphComponent.load``)."""
        try:
            with model_storage.read_from(resource) as directory:
                classifier = CrisisTextClassifier.load(directory / CLASSIFIER_FILE)
        except (ValueError, FileNotFoundError):
            # A model trained without this component's output: score nothing rather than
            # fail to load. The patterns and the intent still run.
            logger.warning("No trained crisis classifier in the model; it will not score.")
            classifier = None
        return cls(config, model_storage, resource, classifier)

    def train(self, training_data: TrainingData) -> Resource:
        """Train on the crisis training files and the NLU examples, then persist.

        The ``crisis`` intent's examples are positives; every other intent's are negatives.

        Args:
            training_data: The NLU training data.

        Returns:
            The resource the classifier was written to.
        """
        examples = read_labelled(training_paths(self.component_config["training_files"]))
        examples += intent_examples(training_data.intent_examples)
        # Trained on what it will score: without denials, history and everyday jokes.
        examples = as_scored(examples)
        classifier = CrisisTextClassifier(c=float(self.component_config["c"])).fit(examples)
        with self._model_storage.write_to(self._resource) as directory:
            classifier.save(directory / CLASSIFIER_FILE)
        self._classifier = classifier
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        """Add ``crisis_classifier`` to each message.

        Args:
            messages: The messages.

        Returns:
            The same messages.
        """
        if self._classifier is None:
            return messages
        scored = [m for m in messages if isinstance(m.get(TEXT), str) and m.get(TEXT).strip()]
        threshold = float(self.component_config["threshold"])
        # Denials, distant history and everyday jokes are not scored as the risk words in them.
        detector = get_detector()
        texts = [detector.classifier_text(m.get(TEXT)) for m in scored]
        probabilities = [0.0] * len(texts)
        kept = [i for i, text in enumerate(texts) if any(ch.isalnum() for ch in text)]
        for i, probability in zip(kept, self._classifier.probabilities([texts[i] for i in kept]),
                                  strict=True):
            probabilities[i] = probability
        for message, probability in zip(scored, probabilities, strict=True):
            message.set(
                CLASSIFIER_KEY,
                {"confidence": round(probability, 4), "crisis": probability >= threshold},
                add_to_output=True,
            )
        return messages


CLASSIFIER_FILE = "crisis_classifier.skops"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False
)
class CrisisIntentOverride(GraphComponent, IntentClassifier):
    """Sets the ``crisis`` intent whenever the crisis detector says so."""

    @classmethod
    def required_components(cls) -> list[type]:
        """Runs after an intent classifier."""
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The fallback threshold (the patterns come from ``data/safety/crisis_patterns.yml``).

        ``fallback_threshold`` should be the ``FallbackClassifier``'s: a demoted crisis guess
        whose next intent is less sure than that becomes ``nlu_fallback``.
        """
        return {"fallback_threshold": 0.45}

    def __init__(self, config: dict[str, Any]) -> None:
        """Create the component (the detector itself is shared per process)."""
        self.component_config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CrisisIntentOverride:
        """Create the component (see ``GraphComponent.create``)."""
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        """Override the intent of each message that the detector flags.

        Args:
            messages: The messages, already classified.

        Returns:
            The same messages.
        """
        detector = get_detector()
        for message in messages:
            text = message.get(TEXT)
            if not isinstance(text, str) or not text:
                continue
            intent: dict[str, Any] = message.get(INTENT) or {}
            ranking: list[dict[str, Any]] = message.get(INTENT_RANKING_KEY) or []
            parse = {
                INTENT: intent,
                INTENT_RANKING_KEY: ranking,
                CLASSIFIER_KEY: message.get(CLASSIFIER_KEY),
            }
            assessment = detector.assess(text, history=(), nlu=parse)
            if not assessment.crisis and intent.get(INTENT_NAME_KEY) == CRISIS_INTENT:
                # The classifier said crisis where the crisis check does not (e.g. a name
                # typed as an answer): take its next intent, so the dialogue and the channel
                # agree.
                threshold = float(self.component_config["fallback_threshold"])
                message.set(INTENT, _next_intent(ranking, threshold), add_to_output=True)
                continue
            if assessment.crisis:
                confidence = 1.0 if assessment.layers != ("nlu",) else (
                    assessment.nlu_confidence
                )
                message.set(
                    INTENT,
                    {INTENT_NAME_KEY: CRISIS_INTENT, PREDICTED_CONFIDENCE_KEY: confidence},
                    add_to_output=True,
                )
        return messages


def _next_intent(ranking: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """The best intent after ``crisis``, or ``nlu_fallback`` when it is less sure than
    ``threshold`` (as the fallback classifier would have decided)."""
    for item in ranking:
        if item.get(INTENT_NAME_KEY) not in (CRISIS_INTENT, "nlu_fallback"):
            confidence = float(item.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
            if confidence < threshold:
                break
            return {INTENT_NAME_KEY: item.get(INTENT_NAME_KEY),
                    PREDICTED_CONFIDENCE_KEY: confidence}
    return {INTENT_NAME_KEY: "nlu_fallback", PREDICTED_CONFIDENCE_KEY: threshold}
