"""The clinic's own configuration: name, contact details, hours and FAQ answers.

It is read from one YAML file (``clinic.yml`` unless ``BOT_CLINIC_CONFIG`` names another), so a
clinic can rebrand the assistant without touching code. Responses in ``domain.yml`` refer to
these values by name (``{clinic_name}``, ``{clinic_phone}`` ...); :meth:`Clinic.response_vars`
supplies them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bot.settings import get_settings

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FAQ_TOPICS = ("initial_series", "boosters", "visit", "ride_home", "cost")


class ClinicConfigError(ValueError):
    """The clinic configuration file is missing a value or has a malformed one."""


@dataclass(frozen=True)
class OpeningHours:
    """One day's opening hours, in the clinic's local time."""

    opens: dt.time
    closes: dt.time


@dataclass(frozen=True)
class Clinic:
    """A clinic's configuration."""

    name: str
    assistant_name: str
    phone: str
    email: str
    website: str
    address: str
    time_zone: ZoneInfo
    hours: dict[int, OpeningHours]
    hours_text: str
    response_time: str
    faq: dict[str, str] = field(default_factory=dict)

    def is_open(self, when: dt.datetime) -> bool:
        """Whether the clinic is open at an aware datetime."""
        local = when.astimezone(self.time_zone)
        day = self.hours.get(local.weekday())
        return day is not None and day.opens <= local.time() < day.closes

    def next_opening(self, when: dt.datetime) -> dt.datetime:
        """The next time the clinic opens strictly after ``when`` (clinic-local, aware)."""
        local = when.astimezone(self.time_zone)
        for offset in range(0, 8):
            day = (local + dt.timedelta(days=offset)).date()
            hours = self.hours.get(day.weekday())
            if hours is None:
                continue
            opening = dt.datetime.combine(day, hours.opens, tzinfo=self.time_zone)
            if opening > local:
                return opening
        raise ClinicConfigError("The clinic has no opening hours configured.")

    def response_vars(self) -> dict[str, str]:
        """Values the domain's responses use, keyed by template variable name."""
        values = {
            "clinic_name": self.name,
            "assistant_name": self.assistant_name,
            "clinic_phone": self.phone,
            "clinic_email": self.email,
            "clinic_website": self.website,
            "clinic_address": self.address,
            "clinic_hours": self.hours_text,
            "clinic_response_time": self.response_time,
        }
        values.update({f"faq_{topic}": text for topic, text in self.faq.items()})
        return values


def _parse_hours(raw: dict[str, str]) -> dict[int, OpeningHours]:
    hours: dict[int, OpeningHours] = {}
    for key, span in (raw or {}).items():
        if key not in DAY_KEYS:
            raise ClinicConfigError(f"Unknown day in hours: {key!r} (use {', '.join(DAY_KEYS)})")
        try:
            start, end = (dt.time.fromisoformat(part.strip()) for part in str(span).split("-"))
        except ValueError as error:
            raise ClinicConfigError(f"Hours for {key} must look like 09:00-17:00") from error
        if end <= start:
            raise ClinicConfigError(f"Hours for {key} close before they open")
        hours[DAY_KEYS.index(key)] = OpeningHours(start, end)
    return hours


def parse_clinic(raw: dict) -> Clinic:
    """Build a :class:`Clinic` from the parsed YAML mapping.

    Raises:
        ClinicConfigError: A required value is missing or malformed.
    """
    required = ("name", "phone", "address", "time_zone", "hours", "hours_text", "response_time")
    missing = [key for key in required if not raw.get(key)]
    if missing:
        raise ClinicConfigError(f"clinic configuration is missing: {', '.join(missing)}")
    faq = {str(k): str(v).strip() for k, v in (raw.get("faq") or {}).items()}
    missing_faq = [topic for topic in FAQ_TOPICS if not faq.get(topic)]
    if missing_faq:
        raise ClinicConfigError(f"clinic FAQ is missing: {', '.join(missing_faq)}")
    try:
        zone = ZoneInfo(raw["time_zone"])
    except Exception as error:  # ZoneInfoNotFoundError or a malformed key
        raise ClinicConfigError(f"Unknown time zone {raw['time_zone']!r}") from error
    return Clinic(
        name=str(raw["name"]),
        assistant_name=str(raw.get("assistant_name") or "the assistant"),
        phone=str(raw["phone"]),
        email=str(raw.get("email") or ""),
        website=str(raw.get("website") or ""),
        address=str(raw["address"]),
        time_zone=zone,
        hours=_parse_hours(raw["hours"]),
        hours_text=str(raw["hours_text"]),
        response_time=str(raw["response_time"]),
        faq=faq,
    )


def load_clinic(path: Path) -> Clinic:
    """Read and validate a clinic configuration file."""
    with open(path, encoding="utf-8") as handle:
        return parse_clinic(yaml.safe_load(handle) or {})


@lru_cache(maxsize=1)
def get_clinic() -> Clinic:
    """The configured clinic of this process, read once."""
    return load_clinic(get_settings().clinic_config)
