"""A Rasa NLU component that makes the crisis patterns part of the trained model.

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

from bot.safety.detector import CRISIS_INTENT, get_detector, nlu_crisis_confidence

logger = logging.getLogger(__name__)


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
        """No options: the patterns come from ``data/safety/crisis_patterns.yml``."""
        return {}

    def __init__(self, config: dict[str, Any]) -> None:
        """Create the component (the detector itself is shared per process)."""
        self.component_config = config

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
            parse = {INTENT: intent, INTENT_RANKING_KEY: ranking}
            assessment = detector.assess(text, history=(), nlu=parse)
            if not assessment.crisis and intent.get(INTENT_NAME_KEY) == CRISIS_INTENT:
                # The classifier said crisis where the crisis check does not (e.g. a name
                # typed as an answer): take its next intent, so the dialogue and the channel
                # agree.
                message.set(INTENT, _next_intent(ranking), add_to_output=True)
                continue
            if assessment.crisis:
                confidence = 1.0 if assessment.layers != ("nlu",) else (
                    nlu_crisis_confidence(parse)
                )
                message.set(
                    INTENT,
                    {INTENT_NAME_KEY: CRISIS_INTENT, PREDICTED_CONFIDENCE_KEY: confidence},
                    add_to_output=True,
                )
        return messages


def _next_intent(ranking: list[dict[str, Any]]) -> dict[str, Any]:
    for item in ranking:
        if item.get(INTENT_NAME_KEY) not in (CRISIS_INTENT, "nlu_fallback"):
            return {
                INTENT_NAME_KEY: item.get(INTENT_NAME_KEY),
                PREDICTED_CONFIDENCE_KEY: item.get(PREDICTED_CONFIDENCE_KEY, 0.0),
            }
    return {INTENT_NAME_KEY: "nlu_fallback", PREDICTED_CONFIDENCE_KEY: 0.0}
