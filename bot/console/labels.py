"""The words the console shows for stored codes (priorities, reasons, channels, roles ...)."""

from __future__ import annotations

from bot.db.models import (
    Channel,
    HandoffOutcome,
    HandoffPriority,
    HandoffReason,
    HandoffStatus,
    StaffRole,
)

PRIORITY_LABELS = {
    HandoffPriority.URGENT.value: "Urgent",
    HandoffPriority.SOON.value: "Soon",
    HandoffPriority.ROUTINE.value: "Routine",
}
REASON_LABELS = {
    HandoffReason.CRISIS.value: "Crisis language",
    HandoffReason.CHECKIN.value: "Check-in answers",
    HandoffReason.INTAKE_SUBMITTED.value: "Intake submitted",
    HandoffReason.HUMAN_REQUESTED.value: "Asked for a person",
    HandoffReason.CALLBACK_REQUESTED.value: "Asked for a call back",
    HandoffReason.CLINICAL_QUESTION.value: "Clinical question",
    HandoffReason.COST_QUESTION.value: "Cost or insurance question",
    HandoffReason.NLU_FALLBACK.value: "The assistant did not understand",
}
STATUS_LABELS = {
    HandoffStatus.OPEN.value: "Open",
    HandoffStatus.CLAIMED.value: "Claimed",
    HandoffStatus.RESOLVED.value: "Resolved",
}
CHANNEL_LABELS = {
    Channel.WIDGET.value: "Website chat",
    Channel.SMS.value: "Text message",
    Channel.REST.value: "API",
}
OUTCOME_LABELS = {
    HandoffOutcome.CALLED_BACK.value: "Called back",
    HandoffOutcome.BOOKED.value: "Booked",
    HandoffOutcome.REFERRED.value: "Referred",
    HandoffOutcome.NO_ACTION_NEEDED.value: "No action needed",
}
ROLE_LABELS = {
    StaffRole.ADMIN.value: "Admin",
    StaffRole.CLINICIAN.value: "Clinician",
    StaffRole.FRONT_DESK.value: "Front desk",
}
WHO_LABELS = {
    "patient": "Patient",
    "assistant": "Assistant",
    "staff": "Staff",
    "system": "Note",
}
INFUSION_LABELS = {
    "induction": "Induction infusion",
    "booster": "Booster",
}
QUEUE_STATUS_CHOICES = {
    "": "Open and claimed",
    HandoffStatus.OPEN.value: "Open",
    HandoffStatus.CLAIMED.value: "Claimed",
    HandoffStatus.RESOLVED.value: "Resolved",
}

ALL = {
    "priority_labels": PRIORITY_LABELS,
    "reason_labels": REASON_LABELS,
    "status_labels": STATUS_LABELS,
    "channel_labels": CHANNEL_LABELS,
    "outcome_labels": OUTCOME_LABELS,
    "role_labels": ROLE_LABELS,
    "who_labels": WHO_LABELS,
    "infusion_labels": INFUSION_LABELS,
    "status_choices": QUEUE_STATUS_CHOICES,
}
"""Every label table, as the templates' global names."""
