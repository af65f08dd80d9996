"""The clinic's own configuration: name, contact details, hours and FAQ answers.

It is read from one YAML file (``clinic.yml`` unless ``BOT_CLINIC_CONFIG`` names another), so a
clinic can rebrand the assistant without touching code. Responses in ``domain.yml`` refer to
these values by name (``{clinic_name}``, ``{clinic_phone}`` ...); :meth:`Clinic.response_vars`
supplies them.

Staff can change the name, phone number, hours and FAQ answers from the staff console
(:func:`save_overrides`). Each save appends a ``clinic_settings`` row; :func:`get_clinic` serves
the file merged with the newest row, and running processes see a change within
:data:`REFRESH_SECONDS`.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.db.models import ClinicSetting, utcnow
from bot.db.session import make_engine
from bot.services import audit
from bot.settings import PROJECT_ROOT, get_settings

logger = logging.getLogger(__name__)

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


def _read_raw(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    if not isinstance(raw, dict):
        raise ClinicConfigError(f"{path} must hold a mapping of clinic settings")
    return raw


def load_clinic(path: Path) -> Clinic:
    """Read and validate a clinic configuration file."""
    return parse_clinic(_read_raw(path))


# -- Overrides saved from the staff console -----------------------------------------------------

EDITABLE_FIELDS = ("name", "phone", "hours_text", "hours", "faq")
"""What staff may change from the console; ``faq`` per topic (``faq.<topic>`` for one)."""
MAX_LENGTHS = {"name": 120, "phone": 40, "hours_text": 300, "faq": 2000}
REFRESH_SECONDS = 5.0
"""How long a process serves its clinic configuration before looking for newer overrides."""
# Newlines are fine in an FAQ answer; other control characters never are.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_TEMPLATE_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _clean_text(field_name: str, value: Any, limit: int, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise ClinicConfigError(f"{field_name}: must be text")
    text = value.strip()
    if not text:
        raise ClinicConfigError(f"{field_name}: must not be empty")
    if len(text) > limit:
        raise ClinicConfigError(f"{field_name}: longer than {limit} characters")
    if _CONTROL.search(text) or ("\n" in text and not multiline):
        raise ClinicConfigError(f"{field_name}: contains control characters or line breaks")
    if "{" in text or "}" in text:
        raise ClinicConfigError(f"{field_name}: must not contain {{ or }}")
    return text


def _clean_hours(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ClinicConfigError("hours: must map days (mon ... sun) to 09:00-17:00 spans")
    hours: dict[str, str] = {}
    for day, span in value.items():
        if span is None or (isinstance(span, str) and not span.strip()):
            continue  # a day left empty is closed
        if not isinstance(span, str):
            raise ClinicConfigError(f"hours.{day}: must look like 09:00-17:00")
        hours[str(day)] = span.strip()
    return hours


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Overrides as ``{"name": ..., "hours": {...}, "faq.cost": ...}``: one key per field."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key == "faq":
            if not isinstance(value, dict):
                raise ClinicConfigError("faq: must map topics to answers")
            flat.update({f"faq.{topic}": answer for topic, answer in value.items()})
        else:
            flat[str(key)] = value
    return flat


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith("faq."):
            nested.setdefault("faq", {})[key[len("faq."):]] = value
        else:
            nested[key] = value
    return nested


def _clean_overrides(values: dict[str, Any], faq_topics: set[str]) -> dict[str, Any]:
    """Validate the shape and text of overrides given as flat keys; ``None`` values stay (they
    remove an override)."""
    clean: dict[str, Any] = {}
    for key, value in values.items():
        field_name, _, topic = key.partition(".")
        if field_name not in EDITABLE_FIELDS or (field_name == "faq") != bool(topic):
            raise ClinicConfigError(f"{key}: not a clinic setting staff can change "
                                    f"(use {', '.join(EDITABLE_FIELDS)})")
        if field_name == "faq" and topic not in faq_topics:
            raise ClinicConfigError(f"{key}: unknown FAQ topic (use "
                                    f"{', '.join(sorted(faq_topics))})")
        if value is None:
            clean[key] = None
        elif field_name == "hours":
            clean[key] = _clean_hours(value)
        else:
            clean[key] = _clean_text(key, value, MAX_LENGTHS[field_name],
                                     multiline=field_name in ("faq", "hours_text"))
    return clean


def _merge(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The file's configuration with (nested) overrides applied over it."""
    merged = copy.deepcopy(raw)
    for key, value in overrides.items():
        if key == "faq":
            merged["faq"] = {**(merged.get("faq") or {}), **value}
        else:
            merged[key] = value
    return merged


@lru_cache(maxsize=1)
def _domain_variables() -> frozenset[str]:
    """Every ``{name}`` the domain's responses use (empty if the domain cannot be read)."""
    try:
        with open(PROJECT_ROOT / "domain.yml", encoding="utf-8") as handle:
            responses = (yaml.safe_load(handle) or {}).get("responses") or {}
    except (OSError, yaml.YAMLError):
        logger.warning("domain.yml could not be read; clinic overrides are checked without it.")
        return frozenset()
    return frozenset(_TEMPLATE_VARIABLE.findall(json.dumps(responses)))


def _check_response_vars(base: Clinic, merged: Clinic) -> None:
    before = base.response_vars()
    after = merged.response_vars()
    for variable in sorted(_domain_variables() & set(before)):
        if before[variable] and not after.get(variable):
            raise ClinicConfigError(
                f"{variable}: the assistant's responses use this value; it cannot be empty")


def _newest_setting(session: Session) -> ClinicSetting | None:
    return session.scalars(
        select(ClinicSetting).order_by(ClinicSetting.id.desc()).limit(1)
    ).first()


def current_overrides(session: Session) -> dict[str, Any]:
    """The overrides in force (the newest saved set), nested like the file: ``{"name": ...,
    "hours": {...}, "faq": {"cost": ...}}``; empty when none were saved."""
    newest = _newest_setting(session)
    return copy.deepcopy(newest.values) if newest is not None else {}


def editable_values(clinic: Clinic) -> dict[str, Any]:
    """A clinic's editable values in the form :func:`save_overrides` takes, e.g. to fill the
    console's form."""
    return {
        "name": clinic.name,
        "phone": clinic.phone,
        "hours_text": clinic.hours_text,
        "hours": {
            DAY_KEYS[day]: f"{span.opens:%H:%M}-{span.closes:%H:%M}"
            for day, span in sorted(clinic.hours.items())
        },
        "faq": dict(clinic.faq),
    }


def save_overrides(
    session: Session, values: dict[str, Any], actor_id: int | None
) -> ClinicSetting | None:
    """Change clinic settings from the console (audited as ``clinic.update``).

    The values are merged over the overrides in force, and the result over the configuration
    file, and validated as the file is (:func:`parse_clinic`); the assistant's responses must
    still get every value they use. A new :class:`ClinicSetting` row holds the complete set of
    overrides; running processes pick it up within :data:`REFRESH_SECONDS` of the commit.

    Args:
        session: The unit of work.
        values: Any of ``name``, ``phone``, ``hours_text``, ``hours`` (``{"mon":
            "09:00-17:00", ...}``; missing or empty days are closed) and ``faq`` (``{"cost":
            "..."}``), or ``faq.<topic>`` keys. ``None`` removes an override, so the file's
            value applies again.
        actor_id: The staff member saving.

    Returns:
        The new row; ``None`` when nothing changed (then nothing is saved or audited).

    Raises:
        ClinicConfigError: A ``ValueError`` naming the field: unknown field or FAQ topic, empty
            or over-long text, malformed hours, or a value the responses need left empty.
    """
    if not isinstance(values, dict):
        raise ClinicConfigError("clinic settings must be a mapping of field names to values")
    raw = _read_raw(get_settings().clinic_config)
    base = parse_clinic(raw)
    topics = set(FAQ_TOPICS) | {str(topic) for topic in (raw.get("faq") or {})}
    changes = _clean_overrides(_flatten(values), topics)
    current = _flatten(current_overrides(session))
    combined = {**current, **changes}
    combined = {key: value for key, value in combined.items() if value is not None}
    merged_raw = _merge(raw, _nest(combined))
    merged = parse_clinic(merged_raw)
    _check_response_vars(base, merged)
    changed = sorted(key for key in set(current) | set(combined)
                     if current.get(key) != combined.get(key))
    if not changed:
        return None
    setting = ClinicSetting(values=_nest(combined), staff_user_id=actor_id, created_at=utcnow())
    session.add(setting)
    session.flush()
    audit.record(session, actor_id, audit.CLINIC_UPDATE, "clinic", setting.id,
                 detail={"fields": changed})
    _cache.expire()
    return setting


class _ClinicCache:
    """The process's clinic configuration: the file merged with the newest overrides.

    The database is asked for the newest override's id at most every :data:`REFRESH_SECONDS`;
    its values are read only when that id changed. If the database cannot be read, the last
    good configuration is kept: replies must never fail because of a settings lookup.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget everything, the configuration file included, and close the connections."""
        with self._lock:
            engine: Engine | None = getattr(self, "_engine", None)
            if engine is not None:
                engine.dispose()
            self._engine: Engine | None = None
            self._raw: dict[str, Any] | None = None
            self._file_clinic: Clinic | None = None
            self._clinic: Clinic | None = None
            self._setting_key: tuple[int, str] | None = None
            self._checked_at: float | None = None
            self._failing = False

    def expire(self) -> None:
        """Look for newer overrides on the next read."""
        self._checked_at = None

    def get(self) -> Clinic:
        with self._lock:
            if self._raw is None or self._file_clinic is None:
                raw = _read_raw(get_settings().clinic_config)
                self._file_clinic = parse_clinic(raw)
                self._raw = raw
            now = _clock()
            if self._checked_at is None or now - self._checked_at >= REFRESH_SECONDS:
                self._checked_at = now
                self._refresh(self._raw, self._file_clinic)
            return self._clinic or self._file_clinic

    def _refresh(self, raw: dict[str, Any], file_clinic: Clinic) -> None:
        try:
            if self._engine is None:
                self._engine = _settings_engine(get_settings().database_url)
            with Session(self._engine, future=True) as session:
                newest = session.execute(
                    select(ClinicSetting.id, ClinicSetting.created_at)
                    .order_by(ClinicSetting.id.desc()).limit(1)
                ).first()
                key = None if newest is None else (newest.id, str(newest.created_at))
                if key == self._setting_key and self._clinic is not None:
                    self._failing = False
                    return
                values = session.get(ClinicSetting, key[0]).values if key else {}
        except SQLAlchemyError as error:
            if not self._failing:
                logger.warning("Clinic settings could not be read from the database (%s); "
                               "serving the last good configuration.", type(error).__name__)
            self._failing = True
            return
        self._failing = False
        try:
            clinic = parse_clinic(_merge(raw, values or {}))
            _check_response_vars(file_clinic, clinic)
        except (ClinicConfigError, TypeError, AttributeError) as error:
            # Saved overrides were valid when saved; the file may have changed since.
            logger.error("Clinic settings %s do not fit the configuration file (%s); serving "
                         "the last good configuration.", key, error)
            self._setting_key = key
            return
        self._clinic = clinic
        self._setting_key = key


def _clock() -> float:
    return time.monotonic()


def _settings_engine(url: str) -> Engine:
    """The engine clinic settings are read with: the configured database, with a short connect
    timeout on PostgreSQL so an outage cannot hold up replies."""
    if url.startswith("postgresql"):
        return create_engine(url, future=True, pool_pre_ping=True,
                             connect_args={"connect_timeout": 2})
    return make_engine(url)


_cache = _ClinicCache()


def get_clinic() -> Clinic:
    """The clinic configuration in force: the file, with the overrides staff saved.

    Edits show up in running processes (Rasa's NLG, the actions) within
    :data:`REFRESH_SECONDS`, without a restart.
    """
    return _cache.get()


# Callers (and tests) reset the configuration as they would an lru_cache's.
get_clinic.cache_clear = _cache.clear  # type: ignore[attr-defined]
