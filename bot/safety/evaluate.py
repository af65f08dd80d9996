"""Measure crisis detection on a labelled JSONL file, the way the live channels decide.

    python -m bot.safety.evaluate FILE.jsonl [--predictions OUT.jsonl] [--check]
                                  [--model models/intake.tar.gz | --patterns-only]

Each input line is ``{"text": ..., "crisis": true|false, "cat": ...}``. Every text is judged as
the first message of a new conversation by :meth:`bot.safety.detector.CrisisDetector.assess`,
with the trained model's NLU parse as the second layer: the same call the channels make.

It prints recall, the false-positive rate (over all negatives and over the hard negatives:
hyperbole, grief and treatment talk), recall per category, and every miss and false alarm.
``--check`` exits 1 when a target is not met:

* recall 100% on explicit statements, plans, self-harm and overdose;
* recall >= 95% overall;
* false-positive rate <= 10% on hard negatives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.safety.detector import CrisisDetector, get_detector

DEFAULT_MODEL = Path("models/intake.tar.gz")

# Category names vary between authors; these are read as the four that need 100% recall.
FULL_RECALL_CATEGORIES = {
    "explicit": "explicit",
    "plan": "plan",
    "plans": "plan",
    "means": "plan",
    "self_harm": "self_harm",
    "self-harm": "self_harm",
    "selfharm": "self_harm",
    "overdose": "overdose",
    "medical": "overdose",
}
# Hyperbole, grief and distant history, and treatment talk, under every name the test and
# training files' authors gave them (the threshold table in bot.safety.classifier reads these too).
HARD_NEGATIVE_CATEGORIES = frozenset({
    "hyperbole",
    "hyperbole_other",
    "treatment",
    "treatment_experience",
    "recovery",
    "grief",
    "grief_coping",
    "grief_history",
    "history",
    "history_intake",
})
MIN_RECALL = 0.95
MAX_HARD_NEGATIVE_FPR = 0.10

NluParse = Callable[[str], Any]


class EvaluationInputError(ValueError):
    """A line of the input file is not a labelled example."""


@dataclass(frozen=True)
class Example:
    """One labelled message."""

    text: str
    crisis: bool
    cat: str


@dataclass
class Report:
    """The figures for one file."""

    examples: list[Example]
    predictions: list[bool]
    layers: list[tuple[str, ...]]
    failures: list[str] = field(default_factory=list)

    def _pairs(self) -> list[tuple[Example, bool]]:
        return list(zip(self.examples, self.predictions, strict=True))

    @property
    def positives(self) -> int:
        return sum(e.crisis for e in self.examples)

    @property
    def negatives(self) -> int:
        return sum(not e.crisis for e in self.examples)

    @property
    def recall(self) -> float:
        hits = sum(p for e, p in self._pairs() if e.crisis)
        return hits / self.positives if self.positives else 1.0

    @property
    def false_positive_rate(self) -> float:
        alarms = sum(p for e, p in self._pairs() if not e.crisis)
        return alarms / self.negatives if self.negatives else 0.0

    @property
    def hard_negative_fpr(self) -> float | None:
        hard = [
            (e, p)
            for e, p in self._pairs()
            if not e.crisis and e.cat in HARD_NEGATIVE_CATEGORIES
        ]
        if not hard:
            return None
        return sum(p for _, p in hard) / len(hard)

    def per_category(self) -> dict[tuple[str, bool], tuple[int, int]]:
        """``(cat, label) -> (predicted crisis, total)``, in first-seen order."""
        result: dict[tuple[str, bool], list[int]] = {}
        for example, predicted in self._pairs():
            entry = result.setdefault((example.cat, example.crisis), [0, 0])
            entry[0] += predicted
            entry[1] += 1
        return {key: (v[0], v[1]) for key, v in result.items()}

    def misses(self) -> list[Example]:
        return [e for e, p in self._pairs() if e.crisis and not p]

    def false_alarms(self) -> list[Example]:
        return [e for e, p in self._pairs() if not e.crisis and p]

    def check(self) -> list[str]:
        """The targets this file misses (empty when all are met)."""
        problems = []
        by_family: dict[str, list[bool]] = defaultdict(list)
        for example, predicted in self._pairs():
            family = FULL_RECALL_CATEGORIES.get(example.cat)
            if example.crisis and family:
                by_family[family].append(predicted)
        for family, results in sorted(by_family.items()):
            if not all(results):
                problems.append(
                    f"recall on {family} is {sum(results)}/{len(results)}; the target is 100%"
                )
        if self.positives and self.recall < MIN_RECALL:
            problems.append(f"overall recall {self.recall:.1%} is below {MIN_RECALL:.0%}")
        hard = self.hard_negative_fpr
        if hard is not None and hard > MAX_HARD_NEGATIVE_FPR:
            problems.append(
                f"false-positive rate on hard negatives {hard:.1%} is above "
                f"{MAX_HARD_NEGATIVE_FPR:.0%}"
            )
        return problems


def read_examples(path: Path) -> list[Example]:
    """Read a labelled JSONL file.

    Args:
        path: The file.

    Returns:
        The examples, in file order.

    Raises:
        EvaluationInputError: A line is not JSON or lacks ``text``/``crisis``.
    """
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise EvaluationInputError(f"{path}:{number}: not JSON ({error})") from None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("text"), str)
            or not isinstance(record.get("crisis"), bool)
        ):
            raise EvaluationInputError(
                f"{path}:{number}: expected {{\"text\": str, \"crisis\": bool, \"cat\": str}}"
            )
        examples.append(
            Example(text=record["text"], crisis=record["crisis"], cat=str(record.get("cat", "-")))
        )
    return examples


def evaluate(
    examples: Sequence[Example],
    detector: CrisisDetector,
    nlu_parse: NluParse | None = None,
) -> Report:
    """Judge every example as the first message of a conversation.

    Args:
        examples: The labelled messages.
        detector: The deterministic detector.
        nlu_parse: Returns the NLU parse of a text (``None`` for the patterns only).

    Returns:
        The report.
    """
    predictions = []
    layers = []
    for example in examples:
        nlu = nlu_parse(example.text) if nlu_parse else None
        assessment = detector.assess(example.text, history=(), nlu=nlu)
        predictions.append(assessment.crisis)
        layers.append(assessment.layers)
    return Report(examples=list(examples), predictions=predictions, layers=layers)


def model_parser(model: Path) -> NluParse:
    """An NLU parse function backed by the trained Rasa model, as the Rasa server loads it.

    Args:
        model: The model archive.

    Returns:
        ``text -> parse dict``.
    """
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    # Rasa's structured logs print each message's text at debug level, which is the default
    # when nothing configures them; the messages being measured stay out of the output.
    configure_structlog(logging.WARNING)
    agent = Agent.load(str(model))
    loop = asyncio.new_event_loop()

    def parse(text: str) -> Any:
        return loop.run_until_complete(agent.parse_message(text))

    return parse


def print_report(name: str, report: Report, out: TextIO) -> None:
    """Print the figures, per category, and every miss and false alarm."""
    print(f"== {name}: {len(report.examples)} messages "
          f"({report.positives} crisis, {report.negatives} not)", file=out)
    hits = round(report.recall * report.positives)
    print(f"recall               {report.recall:7.1%}  ({hits}/{report.positives})", file=out)
    alarms = round(report.false_positive_rate * report.negatives)
    print(f"false-positive rate  {report.false_positive_rate:7.1%}  ({alarms}/{report.negatives})",
          file=out)
    hard = report.hard_negative_fpr
    if hard is not None:
        print(f"FPR, hard negatives  {hard:7.1%}", file=out)
    by_layer: dict[str, int] = defaultdict(int)
    for example, layers in zip(report.examples, report.layers, strict=True):
        if example.crisis:
            for layer in layers:
                by_layer[layer] += 1
    if by_layer:
        print("crisis caught by layer: "
              + ", ".join(f"{k} {v}" for k, v in sorted(by_layer.items())), file=out)
    print("per category:", file=out)
    for (cat, label), (predicted, total) in report.per_category().items():
        if label:
            print(f"  {cat:<16} recall {predicted}/{total}", file=out)
        else:
            print(f"  {cat:<16} false alarms {predicted}/{total}", file=out)
    for title, items in (("missed", report.misses()), ("false alarms", report.false_alarms())):
        print(f"{title} ({len(items)}):", file=out)
        for example in items:
            print(f"  [{example.cat}] {example.text}", file=out)


def write_predictions(path: Path, report: Report) -> None:
    """Write one ``{"text", "crisis"}`` line per input, in input order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example, predicted in zip(report.examples, report.predictions, strict=True):
            handle.write(json.dumps({"text": example.text, "crisis": predicted},
                                    ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation from the command line.

    Returns:
        The exit status: 0, or 1 when ``--check`` finds a missed target, 2 on bad input.
    """
    parser = argparse.ArgumentParser(prog="python -m bot.safety.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="labelled JSONL files")
    parser.add_argument("--predictions", type=Path,
                        help="write {text, crisis} per input line here (one file only)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help="the trained Rasa model for the NLU layer")
    parser.add_argument("--patterns-only", action="store_true",
                        help="judge with the deterministic patterns alone")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.predictions and len(args.files) != 1:
        parser.error("--predictions takes exactly one input file")
    try:
        datasets = [(path, read_examples(path)) for path in args.files]
    except (OSError, EvaluationInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    nlu_parse = None
    if not args.patterns_only:
        if not args.model.exists():
            print(f"error: no model at {args.model} (train it, or pass --patterns-only)",
                  file=sys.stderr)
            return 2
        nlu_parse = model_parser(args.model)
    detector = get_detector()
    failed = False
    for path, examples in datasets:
        report = evaluate(examples, detector, nlu_parse)
        print_report(str(path), report, sys.stdout)
        if args.predictions:
            write_predictions(args.predictions, report)
        problems = report.check()
        for problem in problems:
            print(f"TARGET MISSED: {problem}")
        if args.check and problems:
            failed = True
        print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
