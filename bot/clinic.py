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


QUIET_HOURS_EARLIEST = dt.time(8, 0)
QUIET_HOURS_LATEST = dt.time(21, 0)
"""Texts the clinic starts (check-ins, reminders) go out only between these local times, or
inside a narrower window the clinic configures; never outside them."""


@dataclass(frozen=True)
class CheckinPolicy:
    """How SMS check-ins are scheduled (``checkins:`` in the clinic configuration).

    Attributes:
        cadence_days: Days between check-ins, unless a patient has their own cadence.
        send_from: Earliest local time (the patient's time zone) for a text the clinic starts.
        send_until: Latest local time for such a text.
        weekly_cap: At most this many clinic-started texts (check-ins and reminders) per
            patient in any 7 days.
        reminder_after: One reminder goes out this long after the last answer (or the send).
        close_after: A check-in still unfinished this long after its reminder is closed as
            incomplete and handed to staff.
        max_send_attempts: A check-in whose send failed this many times is marked failed.
    """

    cadence_days: int = 28
    send_from: dt.time = QUIET_HOURS_EARLIEST
    send_until: dt.time = QUIET_HOURS_LATEST
    weekly_cap: int = 2
    reminder_after: dt.timedelta = dt.timedelta(hours=24)
    close_after: dt.timedelta = dt.timedelta(hours=24)
    max_send_attempts: int = 3


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
    checkins: CheckinPolicy = field(default_factory=CheckinPolicy)

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


def _positive_number(raw: dict, key: str, default: float, kind: type = int) -> float:
    value = raw.get(key, default)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ClinicConfigError(f"checkins.{key} must be a number, not {value!r}") from None
    if number <= 0 or isinstance(value, bool):
        raise ClinicConfigError(f"checkins.{key} must be above 0, not {value!r}")
    return number


def _parse_checkins(raw: dict | None) -> CheckinPolicy:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ClinicConfigError("checkins must be a mapping")
    defaults = CheckinPolicy()
    window = str(raw.get("send_window") or "08:00-21:00")
    try:
        start, end = (dt.time.fromisoformat(part.strip()) for part in window.split("-"))
    except ValueError as error:
        raise ClinicConfigError("checkins.send_window must look like 08:00-21:00") from error
    if start < QUIET_HOURS_EARLIEST or end > QUIET_HOURS_LATEST or end <= start:
        raise ClinicConfigError(
            "checkins.send_window must lie within 08:00-21:00 (quiet hours) and end after "
            "it starts"
        )
    return CheckinPolicy(
        cadence_days=int(_positive_number(raw, "cadence_days", defaults.cadence_days)),
        send_from=start,
        send_until=end,
        weekly_cap=int(_positive_number(raw, "weekly_cap", defaults.weekly_cap)),
        reminder_after=dt.timedelta(
            hours=_positive_number(raw, "reminder_after_hours", 24, float)),
        close_after=dt.timedelta(hours=_positive_number(raw, "close_after_hours", 24, float)),
        max_send_attempts=int(
            _positive_number(raw, "max_send_attempts", defaults.max_send_attempts)),
    )


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
        checkins=_parse_checkins(raw.get("checkins")),
    )


def load_clinic(path: Path) -> Clinic:
    """Read and validate a clinic configuration file."""
    with open(path, encoding="utf-8") as handle:
        return parse_clinic(yaml.safe_load(handle) or {})


@lru_cache(maxsize=1)
def get_clinic() -> Clinic:
    """The configured clinic of this process, read once."""
    return load_clinic(get_settings().clinic_config)
