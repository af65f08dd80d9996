"""A handoff's structured summary, arranged for the handoff page.

Handoff summaries are JSON written by different parts of the assistant: the intake
(``kind: intake``, with the answers so far), the SMS check-in (``kind: checkin``, with each
answer and its score), the crisis path (``kind: crisis``, with the person's messages), or a
booster request. This module turns any of them into titled sections of label/value rows, so the
template stays simple and every value is escaped there. Keys this module does not know still
appear, under "Other details", so nothing staff should see is silently dropped.

Only staff whose role grants ``handoff.clinical`` ever see this.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.parsing import US_STATES

INTAKE_LABELS = {
    "first_name": "First name",
    "phone": "Mobile number",
    "email": "Email",
    "contact_time": "Best time to contact",
    "us_state": "State",
    "conditions": "Looking for help with",
    "condition_duration": "For how long",
    "antidepressant_count": "Antidepressants tried",
    "prior_treatments": "Other treatments tried",
    "prior_ketamine": "Ketamine before",
    "prior_ketamine_when": "Most recent ketamine treatment",
    "prior_ketamine_infusions": "Ketamine infusions so far",
    "current_medications": "Current medications",
    "referral_source": "Heard about the clinic from",
    "consent_contact": "Consent to be contacted",
    "consent_sms": "Consent to text messages",
}
SCORE_LABELS = {
    "overall": "Symptoms back since last infusion (0-10)",
    "phq2": "PHQ-2 total (0-6)",
    "gad2": "GAD-2 total (0-6)",
    "phq9": "PHQ-9 total (0-27)",
}
DETAIL_LABELS = {
    "request": "What they asked",
    "question": "Their question",
    "updated": "An update to an earlier intake",
}
# Bookkeeping keys that mean nothing to staff.
_HIDDEN = frozenset({"kind", "last_alerted_at", "checkin_id"})


@dataclass(frozen=True)
class Row:
    """One label and its value; ``score`` is set for a scored answer, ``when`` for a row
    labelled by its time (the page shows it in the clinic's time zone)."""

    label: str
    value: str
    score: str | None = None
    emphasis: bool = False
    when: dt.datetime | None = None


@dataclass
class Section:
    """A titled group of rows."""

    title: str
    rows: list[Row] = field(default_factory=list)


def display(value: Any) -> str:
    """A summary value as text staff can read."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, Mapping):
        if value.get("skipped"):
            return "Skipped"
        if "text" in value:
            return str(value["text"])
        return "; ".join(f"{key}: {display(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(display(item) for item in value) or "—"
    return str(value)


def parse_time(value: Any) -> dt.datetime | None:
    """An aware datetime from ISO 8601 text (UTC when it has no offset), else ``None``."""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _intake(summary: Mapping[str, Any]) -> list[Section]:
    answers = summary.get("answers") or {}
    rows = []
    for key, value in answers.items():
        shown = display(value)
        if key == "us_state" and isinstance(value, str):
            shown = US_STATES.get(value, value)
        rows.append(Row(INTAKE_LABELS.get(key, _label(key)), shown))
    sections = [Section("Intake answers" + (" (so far)" if summary.get("status") != "submitted"
                                             else ""), rows)]
    consents = [
        Row(_label(str(c.get("kind", ""))) + " consent",
            ("Given" if c.get("granted") else "Declined")
            + f" (wording {c.get('text_version', '?')}, {str(c.get('at', ''))[:10]})")
        for c in summary.get("consents") or [] if isinstance(c, Mapping)
    ]
    if consents:
        sections.append(Section("Consents", consents))
    return sections


def _checkin(summary: Mapping[str, Any]) -> list[Section]:
    sections = []
    reasons = [Row("Why this priority", display(reason), emphasis=True)
               for reason in summary.get("priority_reasons") or []]
    facts = [
        Row("Check-in due", display(summary.get("due_on"))),
        Row("Status", display(summary.get("status"))),
        Row("Asked for by the patient", display(summary.get("patient_requested"))),
        Row("Last infusion", display(summary.get("last_infusion_on"))),
        Row("Days since last infusion", display(summary.get("days_since_last_infusion"))),
    ]
    sections.append(Section("Check-in", reasons + facts))
    scores = summary.get("scores") or {}
    worse = set(summary.get("worse_than_last") or [])
    ordered = [key for key in SCORE_LABELS if key in scores]
    ordered += [key for key in scores if key not in SCORE_LABELS]
    sections.append(Section("Scores", [
        Row(SCORE_LABELS.get(key, _label(key)), display(scores[key]), emphasis=key in worse)
        for key in ordered
    ]))
    answers = []
    for answer in summary.get("answers") or []:
        if not isinstance(answer, Mapping):
            continue
        text = display(answer.get("text"))
        if answer.get("choices"):
            text = f"{text} ({display(answer.get('choices'))})"
        score = answer.get("score")
        answers.append(Row(display(answer.get("label") or answer.get("key")), text,
                           score=None if score is None else str(score)))
    sections.append(Section("Answers, in the patient's words", answers))
    unanswered = summary.get("unanswered") or []
    if unanswered:
        sections[-1].rows.append(Row("Not answered", display(unanswered)))
    return sections


def _crisis(summary: Mapping[str, Any]) -> list[Section]:
    messages = [
        Row(display(message.get("at")), display(message.get("text")), emphasis=True,
            when=parse_time(message.get("at")))
        for message in summary.get("messages") or [] if isinstance(message, Mapping)
    ]
    sections = [Section("Crisis messages", messages)]
    context = [Row("Earlier message", display(text)) for text in summary.get("context") or []]
    if context:
        sections.append(Section("Just before", context))
    if summary.get("paused_form"):
        sections[0].rows.append(Row("Paused form", display(summary.get("paused_form"))))
    return sections


_KNOWN = {
    "intake": ({"answers", "consents", "status"}, _intake),
    "checkin": ({"status", "origin", "patient_requested", "first_name", "due_on", "sent_at",
                 "closed_at", "reminder_sent", "last_infusion_on", "days_since_last_infusion",
                 "answers", "unanswered", "scores", "signs_present", "trend",
                 "worse_than_last", "own_words", "crisis", "priority_reasons"}, _checkin),
    "crisis": ({"messages", "context", "paused_form", "denials"}, _crisis),
}


def sections(summary: Mapping[str, Any] | None) -> list[Section]:
    """The handoff summary as sections of rows, most important first."""
    summary = summary or {}
    kind = str(summary.get("kind") or "")
    known, build = _KNOWN.get(kind, (set(), None))
    result = build(summary) if build else []
    extra = [
        Row(DETAIL_LABELS.get(key, _label(key)), display(value))
        for key, value in summary.items()
        if key not in known and key not in _HIDDEN and value not in (None, "", [], {})
    ]
    if extra:
        title = "What they said" if kind in ("intake", "") else "Other details"
        result.insert(0, Section(title, extra))
    return result


def score_rows(history: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """The chart's data as table rows (date, then each score), for readers who cannot see it."""
    return [
        [display(row.get("date"))] + [display(row.get(key)) for key in SCORE_LABELS]
        for row in history
    ]
