"""The check-in's questions, in the order they are asked.

The words of every question are in ``domain.yml`` (``utter_ask_checkin_<key>``), where
clinicians review them; this module only knows each question's key, its answer scale and when
it is asked.

* ``overall``: how much symptoms have come back since right after the last infusion, 0 (not at
  all) to 10 (as bad as before treatment). Higher is worse, like every other score here.
* ``signs``: which of the six signs of returning symptoms the patient has noticed (multiple
  choice; 0 for none).
* ``phq1``/``phq2`` then ``gad1``/``gad2``: PHQ-2 and GAD-2 in their published wording, each
  0-3 (not at all, several days, more than half the days, nearly every day).
* ``phq3`` ... ``phq9``: the rest of the PHQ-9, only when the PHQ-2 total is 3 or more.
  Any answer above 0 on ``phq9`` (thoughts of being better off dead or of self-harm) takes the
  crisis path.
* ``notes``: anything else they want the care team to know, in their own words.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Scale(str, enum.Enum):
    """How a question is answered."""

    ZERO_TO_TEN = "zero_to_ten"
    FREQUENCY = "frequency"  # 0-3, the PHQ/GAD answer scale
    SIGNS = "signs"  # multiple choice over SIGN_KEYS
    FREE_TEXT = "free_text"


@dataclass(frozen=True)
class Question:
    """One check-in question.

    Attributes:
        key: Stored as ``checkin_answers.question_key``; the form slot is ``checkin_<key>``.
        scale: How it is answered and scored.
        label: A short label for staff (summaries, the console); never sent to a patient.
    """

    key: str
    scale: Scale
    label: str

    @property
    def slot(self) -> str:
        """The form slot that holds this question's answer."""
        return f"checkin_{self.key}"


SIGN_KEYS = ("mood", "motivation", "negative_thoughts", "coping", "anxiety", "sleep")
"""The six signs that symptoms are returning, in the order the question lists them (1-6)."""

SIGN_LABELS = {
    "mood": "Mood sliding back",
    "motivation": "Lower motivation or interest",
    "negative_thoughts": "Negative thought patterns",
    "coping": "Trouble coping with stress",
    "anxiety": "Anxiety or panic attacks",
    "sleep": "Sleep changes",
}

OVERALL = Question("overall", Scale.ZERO_TO_TEN, "Symptoms back since last infusion (0-10)")
SIGNS = Question("signs", Scale.SIGNS, "Signs noticed")
PHQ_ITEMS = (
    Question("phq1", Scale.FREQUENCY, "PHQ-9 1: little interest or pleasure"),
    Question("phq2", Scale.FREQUENCY, "PHQ-9 2: down, depressed or hopeless"),
    Question("phq3", Scale.FREQUENCY, "PHQ-9 3: sleep"),
    Question("phq4", Scale.FREQUENCY, "PHQ-9 4: tired, little energy"),
    Question("phq5", Scale.FREQUENCY, "PHQ-9 5: appetite"),
    Question("phq6", Scale.FREQUENCY, "PHQ-9 6: feeling bad about yourself"),
    Question("phq7", Scale.FREQUENCY, "PHQ-9 7: concentration"),
    Question("phq8", Scale.FREQUENCY, "PHQ-9 8: moving or speaking slowly, or restless"),
    Question("phq9", Scale.FREQUENCY, "PHQ-9 9: thoughts of death or self-harm"),
)
GAD_ITEMS = (
    Question("gad1", Scale.FREQUENCY, "GAD-7 1: nervous, anxious or on edge"),
    Question("gad2", Scale.FREQUENCY, "GAD-7 2: not able to stop worrying"),
)
NOTES = Question("notes", Scale.FREE_TEXT, "Anything else for the care team")

ALL_QUESTIONS: tuple[Question, ...] = (
    OVERALL, SIGNS, PHQ_ITEMS[0], PHQ_ITEMS[1], *GAD_ITEMS, *PHQ_ITEMS[2:], NOTES,
)
BY_KEY = {question.key: question for question in ALL_QUESTIONS}
BY_SLOT = {question.slot: question for question in ALL_QUESTIONS}

PHQ2_POSITIVE = 3
"""A PHQ-2 total at or above this asks the remaining PHQ-9 items."""
PHQ9_SELF_HARM = "phq9"


def phq2_total(scores: Mapping[str, int | None]) -> int | None:
    """The PHQ-2 total, or ``None`` until both items have a score."""
    first, second = scores.get("phq1"), scores.get("phq2")
    if first is None or second is None:
        return None
    return first + second


def questions_to_ask(scores: Mapping[str, int | None]) -> list[Question]:
    """The questions of a check-in, given the scores so far, in order.

    The remaining PHQ-9 items are included once the PHQ-2 total is known to be positive.
    An item answered in words that could not be scored counts as 0 for this decision, so an
    unreadable answer never adds questions (staff see the words).
    """
    total = (scores.get("phq1") or 0) + (scores.get("phq2") or 0)
    questions = [OVERALL, SIGNS, PHQ_ITEMS[0], PHQ_ITEMS[1], *GAD_ITEMS]
    if total >= PHQ2_POSITIVE:
        questions += list(PHQ_ITEMS[2:])
    return [*questions, NOTES]


def totals(scores: Mapping[str, int | None]) -> dict[str, int]:
    """The instrument totals that can be computed from complete items: ``phq2``, ``gad2`` and,
    when all nine items are scored, ``phq9``."""
    result: dict[str, int] = {}
    phq2 = phq2_total(scores)
    if phq2 is not None:
        result["phq2"] = phq2
    gad = [scores.get(q.key) for q in GAD_ITEMS]
    if all(value is not None for value in gad):
        result["gad2"] = sum(value for value in gad if value is not None)
    phq = [scores.get(q.key) for q in PHQ_ITEMS]
    if all(value is not None for value in phq):
        result["phq9"] = sum(value for value in phq if value is not None)
    return result
