"""A text classifier for crisis language that the patterns do not spell out.

The patterns in ``data/safety/crisis_patterns.yml`` catch the ways of saying it that a clinician
has written down. People find other ways: "my wife would be better off with the life insurance",
"every morning i'm disappointed i woke up". This classifier learns the shape of those from the
labelled messages in ``data/safety/crisis_train*.jsonl`` and the NLU training data: the
``crisis`` intent's examples against every other intent's (intake answers, FAQs, hyperbole,
grief and treatment talk are the negatives).

It is a logistic regression over TF-IDF character n-grams (within words, so misspellings and
Spanish inflections still share features) and word n-grams (so "better off" and "without me"
count together). It is small, trains in seconds on two cores, gives the same answer for the same
text every time, and its probability is calibrated enough to set one threshold.

The threshold was chosen by leaving one author's training set out at a time and measuring on it
(``docs/safety.md``): it trades recall for false alarms on hyperbole, grief and treatment talk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from bot.safety.detector import CRISIS_INTENT, CrisisDetector, get_detector
from bot.safety.evaluate import HARD_NEGATIVE_CATEGORIES
from bot.settings import PROJECT_ROOT

DEFAULT_TRAINING_FILES = ("data/safety/crisis_train*.jsonl",)
# Chosen by leave-one-author-out validation on the training sets (docs/safety.md).
DEFAULT_THRESHOLD = 0.5
DEFAULT_C = 30.0
# Every run of word characters is a token, one-letter words ("i", "u", "q") included.
WORD_TOKENS = r"(?u)\b\w+\b"


@dataclass(frozen=True)
class LabelledText:
    """One training example."""

    text: str
    crisis: bool


def training_paths(patterns: Sequence[str], root: Path = PROJECT_ROOT) -> list[Path]:
    """The files the glob ``patterns`` name, relative to ``root``, sorted.

    Args:
        patterns: Glob patterns such as ``data/safety/crisis_train*.jsonl`` (or absolute).
        root: Where relative patterns start.

    Returns:
        The matching files.

    Raises:
        FileNotFoundError: A pattern matches nothing (a typo would otherwise train on less).
    """
    paths: list[Path] = []
    for pattern in patterns:
        where = Path(pattern)
        if where.is_absolute():
            matched = sorted(Path(where.anchor).glob(str(where.relative_to(where.anchor))))
        else:
            matched = sorted(root.glob(pattern))
        if not matched:
            raise FileNotFoundError(f"No crisis training file matches {pattern!r} in {root}.")
        paths.extend(matched)
    return sorted(set(paths))


def read_labelled(paths: Iterable[Path]) -> list[LabelledText]:
    """Read ``{"text", "crisis", "cat"}`` lines.

    Args:
        paths: JSONL files.

    Returns:
        The examples, in file order.

    Raises:
        ValueError: A line is not a labelled example.
    """
    examples: list[LabelledText] = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("text"), str) or not isinstance(row.get("crisis"), bool):
                raise ValueError(f"{path}:{number}: expected a text and a true/false crisis label")
            examples.append(LabelledText(row["text"], row["crisis"]))
    return examples


def as_scored(
    examples: Iterable[LabelledText], detector: CrisisDetector | None = None
) -> list[LabelledText]:
    """The examples as the classifier will see messages when deployed.

    The live classifier scores :meth:`CrisisDetector.classifier_text`: the message without the
    person's denials and without the sentences that tell their distant past or joke about
    something everyday. It learns from the same view, so "prior attempt in 2010. doing ok now"
    teaches it about "doing ok now", not that the word "attempt" is harmless. Examples with
    nothing left are dropped.

    Args:
        examples: Labelled texts as written.
        detector: The detector whose reading to use (the shared one by default).

    Returns:
        The examples with their scored text.
    """
    detector = detector or get_detector()
    scored = [LabelledText(detector.classifier_text(example.text), example.crisis)
              for example in examples]
    return [example for example in scored if any(ch.isalnum() for ch in example.text)]


def fingerprint(paths: Iterable[Path]) -> str:
    """A hash of the files' names and contents, so a changed file retrains the model."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class CrisisTextClassifier:
    """Probability that a message is crisis language."""

    def __init__(self, c: float = DEFAULT_C) -> None:
        """Create an untrained classifier.

        Args:
            c: Inverse regularisation strength of the logistic regression.
        """
        # Character n-grams within words (misspellings, Spanish inflections) and word n-grams
        # ("better off" with "without me"), accents folded in both.
        features = FeatureUnion([
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5),
                                      sublinear_tf=True, strip_accents="unicode")),
            ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 3),
                                      token_pattern=WORD_TOKENS,
                                      sublinear_tf=True, strip_accents="unicode")),
        ])
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        self._pipeline = Pipeline([("features", features), ("model", model)])
        self.trained = False

    def fit(self, examples: Sequence[LabelledText]) -> CrisisTextClassifier:
        """Train on ``examples``.

        Args:
            examples: Labelled texts; both labels must be present.

        Returns:
            ``self``.

        Raises:
            ValueError: Only one label is present.
        """
        labels = [example.crisis for example in examples]
        if len(set(labels)) < 2:
            raise ValueError("The crisis classifier needs crisis and non-crisis examples.")
        self._pipeline.fit([example.text for example in examples], labels)
        self.trained = True
        return self

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """The probability of crisis for each text.

        Args:
            texts: Messages.

        Returns:
            One probability per text, between 0 and 1.
        """
        if not self.trained:
            raise RuntimeError("The crisis classifier has not been trained.")
        if not texts:
            return []
        model: LogisticRegression = self._pipeline.named_steps["model"]
        column = list(model.classes_).index(True)
        return [float(row[column]) for row in self._pipeline.predict_proba(list(texts))]

    def save(self, path: Path) -> None:
        """Write the trained classifier to ``path`` (skops format, no pickle).

        Args:
            path: The file to write.
        """
        import skops.io as sio

        if not self.trained:
            raise RuntimeError("The crisis classifier has not been trained.")
        sio.dump(self._pipeline, path)

    @classmethod
    def load(cls, path: Path) -> CrisisTextClassifier:
        """Read a classifier written by :meth:`save`.

        Only the scikit-learn and NumPy types this classifier is made of are accepted, so a
        tampered file cannot run code when it is loaded.

        Args:
            path: The file.

        Returns:
            The trained classifier.

        Raises:
            ValueError: The file holds other types.
        """
        import skops.io as sio

        unknown = set(sio.get_untrusted_types(file=path))
        if unknown - TRUSTED_TYPES:
            raise ValueError(f"Unexpected types in {path.name}: {sorted(unknown - TRUSTED_TYPES)}")
        classifier = cls()
        classifier._pipeline = sio.load(path, trusted=sorted(unknown))
        classifier.trained = True
        return classifier


# What a saved classifier may contain beyond skops' defaults (checked by a test).
TRUSTED_TYPES: frozenset[str] = frozenset({"scipy.sparse._csr.csr_matrix"})


# -- choosing the threshold ------------------------------------------------------------------

def intent_examples(messages: Iterable[Any]) -> list[LabelledText]:
    """NLU examples as training examples: the ``crisis`` intent's are crisis, the rest are not.

    Args:
        messages: Rasa training messages (``TrainingData.intent_examples``).

    Returns:
        One example per message that has text.
    """
    return [
        LabelledText(message.get("text"), message.get("intent") == CRISIS_INTENT)
        for message in messages
        if isinstance(message.get("text"), str) and message.get("text").strip()
    ]


def nlu_examples(nlu_dir: Path = PROJECT_ROOT / "data" / "nlu") -> list[LabelledText]:
    """The project's NLU training examples, read as :func:`intent_examples`."""
    from rasa.shared.nlu.training_data.loading import load_data

    return intent_examples(load_data(str(nlu_dir)).intent_examples)


def leave_one_author_out(
    paths: Sequence[Path], thresholds: Sequence[float], out: Any = None
) -> dict[str, dict[float, tuple[float, float, float]]]:
    """Train without each training file in turn and measure on it.

    Each file was written by a different author, so this says how the classifier does on
    phrasing it has never seen, which is what the threshold is chosen on.

    Args:
        paths: The training files (each needs its ``cat`` labels for the hard negatives).
        thresholds: The thresholds to report.
        out: Where to print the table (``None``: do not print).

    Returns:
        ``{file name: {threshold: (recall, false-positive rate, hard-negative FPR)}}``.
    """
    extra = nlu_examples()
    detector = get_detector()
    results: dict[str, dict[float, tuple[float, float, float]]] = {}
    for held_out in paths:
        rows = [json.loads(line) for line in held_out.read_text(encoding="utf-8").splitlines()
                if line.strip()]
        training = as_scored(read_labelled(p for p in paths if p != held_out) + extra, detector)
        probabilities = CrisisTextClassifier().fit(training).probabilities(
            [detector.classifier_text(row["text"]) for row in rows]
        )
        per_threshold: dict[float, tuple[float, float, float]] = {}
        for threshold in thresholds:
            said = [p >= threshold for p in probabilities]
            positives = [s for s, row in zip(said, rows, strict=True) if row["crisis"]]
            negatives = [s for s, row in zip(said, rows, strict=True) if not row["crisis"]]
            hard = [s for s, row in zip(said, rows, strict=True)
                    if not row["crisis"] and row.get("cat") in HARD_NEGATIVE_CATEGORIES]
            per_threshold[threshold] = (_rate(positives), _rate(negatives), _rate(hard))
            if out is not None:
                print(f"{held_out.name:32} threshold {threshold:.2f}  recall "
                      f"{_rate(positives):6.1%}  FPR {_rate(negatives):6.1%}  "
                      f"hard-negative FPR {_rate(hard):6.1%}", file=out)
        results[held_out.name] = per_threshold
    return results


def _rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bot.safety.classifier``: leave-one-author-out figures per threshold."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8])
    args = parser.parse_args(argv)
    leave_one_author_out(
        training_paths(DEFAULT_TRAINING_FILES), args.thresholds, out=sys.stdout
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
