"""Names of intents, slots and responses that the actions refer to."""

from __future__ import annotations

# Intents
INTENT_AFFIRM = "affirm"
INTENT_DENY = "deny"
INTENT_SKIP = "skip"
INTENT_CORRECT = "correct_answer"

# Slots
SLOT_FIRST_NAME = "first_name"
SLOT_PHONE = "phone"
SLOT_EMAIL = "email"
SLOT_PRIOR_KETAMINE = "prior_ketamine"
SLOT_PRIOR_KETAMINE_WHEN = "prior_ketamine_when"
SLOT_PRIOR_KETAMINE_INFUSIONS = "prior_ketamine_infusions"
SLOT_CONSENT_CONTACT = "consent_contact"
SLOT_CONSENT_SMS = "consent_sms"
SLOT_INTAKE_CONFIRMED = "intake_confirmed"
SLOT_VALIDATION_FAILURES = "validation_failures"
SLOT_OFFERED_PERSON = "offered_person"
SLOT_REQUESTED = "requested_slot"

# A skipped question's slot value. A dict, so no typed answer can ever equal it.
SKIPPED: dict[str, bool] = {"skipped": True}
