"""Summarise ``rasa test nlu`` on the held-out set, and fail below the agreed floors.

``make test`` runs ``rasa test nlu --nlu tests/nlu/test_nlu.yml`` and then this module on its
output folder. The held-out set is never used for training (``tests/test_nlu_data.py`` checks
that no test sentence appears in the training data).

The floors guard the paths that matter most: a clinical question that is missed could be
answered as an FAQ, and a missed request for a person leaves someone without one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

FLOORS = {
    # The crisis, deny_crisis and out_of_scope intents cost accuracy (0.852 before, 0.819
    # after); more varied FAQ and clinical-question examples won it back (0.881). Clinical-
    # question recall moved between 0.70 and 0.80 across retrains with small data changes (20
    # test examples; medication questions read as inform or out_of_scope): a known regression
    # from 0.90, to be won back (docs/safety.md). Adding the request_booster intent for SMS
    # check-ins dropped accuracy to 0.838 (the new intent's 8 test lines: 6 right; DIET now
    # reads several names and intake answers as out_of_scope). Four start_intake examples ("i
    # really want to get started", added so the crisis classifier stops reading "i want to get
    # started" as crisis) and a few training lines removed for the held-out crisis sets brought
    # it to 0.872; one test line is close to a new example, so that is a little optimistic.
    "accuracy": 0.83,
    "clinical_question.recall": 0.70,
    "human_handoff.recall": 0.90,
}


def summarise(report: dict) -> dict[str, float]:
    """The figures the floors apply to, from Rasa's ``intent_report.json``."""
    figures = {"accuracy": float(report["accuracy"]),
               "weighted_f1": float(report["weighted avg"]["f1-score"]),
               "macro_f1": float(report["macro avg"]["f1-score"])}
    for intent in ("clinical_question", "human_handoff"):
        figures[f"{intent}.recall"] = float(report.get(intent, {}).get("recall", 0.0))
    return figures


def check(figures: dict[str, float]) -> list[str]:
    """The floors that were not met."""
    return [f"{name} {figures[name]:.3f} < {floor:.2f}"
            for name, floor in FLOORS.items() if figures[name] < floor]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures and per-intent scores; exit 1 below a floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the --out folder of `rasa test nlu`")
    args = parser.parse_args(argv)
    report = json.loads((args.results / "intent_report.json").read_text())
    figures = summarise(report)
    print("NLU on the held-out test set (tests/nlu/test_nlu.yml):")
    for name, value in figures.items():
        print(f"  {name:<28} {value:.3f}")
    print("  per intent (precision / recall / f1 / support):")
    for intent, scores in sorted(report.items()):
        if isinstance(scores, dict) and "support" in scores and " avg" not in intent:
            print(f"    {intent:<22} {scores['precision']:.2f} / {scores['recall']:.2f} / "
                  f"{scores['f1-score']:.2f} / {scores['support']}")
    failures = check(figures)
    for failure in failures:
        print(f"FAILED floor: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
