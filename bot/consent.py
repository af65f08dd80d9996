"""Versioned consent wordings.

A consent record stores the version of the exact wording the person saw and that wording's
SHA-256. The wording itself lives in ``domain.yml`` (the responses below). The test suite hashes
the domain's text and fails if it no longer matches the registered version, so a wording can
only change together with a new version here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.db.models import ConsentKind


@dataclass(frozen=True)
class ConsentWording:
    """One registered consent wording."""

    kind: ConsentKind
    version: str
    response: str
    sha256: str


CONSENT_WORDINGS: dict[ConsentKind, ConsentWording] = {
    ConsentKind.CONTACT: ConsentWording(
        kind=ConsentKind.CONTACT,
        version="contact-v1",
        response="utter_ask_consent_contact",
        sha256="f8b7bc566910e3b26c0c8e9178a8b26fc324e5772abd8ae02a9c0e1866581892",
    ),
    ConsentKind.SMS: ConsentWording(
        kind=ConsentKind.SMS,
        version="sms-v1",
        response="utter_ask_consent_sms",
        sha256="fc83962503c0576e4ef8c87fb9b4f451e804c3c1d2247231073f448a87987910",
    ),
}
