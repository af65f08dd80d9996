"""Response generation with the clinic's configuration filled in.

``endpoints.yml`` names :class:`ClinicResponseGenerator` as Rasa's NLG, so every response in
``domain.yml`` can use ``{clinic_name}``, ``{clinic_phone}``, ``{clinic_hours}``, the clinic's
FAQ answers (``{faq_initial_series}`` ...) and the rest of :meth:`bot.clinic.Clinic.
response_vars`. This covers responses Rasa sends by itself (rules, form questions) as well as
those sent by custom actions, and always reflects the current clinic configuration.
"""

from __future__ import annotations

from typing import Any

from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.utils.endpoints import EndpointConfig

from bot.clinic import get_clinic


class ClinicResponseGenerator(TemplatedNaturalLanguageGenerator):
    """Rasa's templated NLG plus the clinic's configured values."""

    def __init__(self, endpoint_config: EndpointConfig | None = None,
                 domain: Domain | None = None) -> None:
        """Create the generator from the domain's responses.

        Args:
            endpoint_config: The ``nlg`` entry of ``endpoints.yml`` (unused beyond its type).
            domain: The assistant's domain.
        """
        super().__init__((domain or Domain.empty()).responses)

    @staticmethod
    def _response_variables(
        filled_slots: dict[str, Any], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        # Clinic values first, so a slot or an action's keyword argument of the same name wins.
        variables: dict[str, Any] = dict(get_clinic().response_vars())
        variables.update(filled_slots or {})
        variables.update(kwargs)
        return variables
