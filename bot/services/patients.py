"""Existing patients enrolled in SMS check-ins: enrolment, CSV import, look-up and opt-out.

Staff enrol a patient who has finished the induction series, one at a time or from a CSV file.
A patient is identified by their mobile number: enrolling the same number again updates the
enrolment instead of adding a second one. Every value is validated before anything is written,
and :class:`EnrolmentError` says what is wrong in words staff can act on.

Opting out is the patient's choice and outlives any re-enrolment or re-import: only
:func:`opt_in` clears it.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.crypto import blind_index
from bot.db.models import Patient, Person, PersonKind, utcnow
from bot.sms import phone

MAX_NAME_LENGTH = 200
MAX_CADENCE_DAYS = 365
MAX_INDUCTION_DATES = 30

CSV_COLUMNS: tuple[str, ...] = (
    "name",
    "mobile",
    "timezone",
    "induction_dates",
    "last_infusion",
    "cadence_days",
    "consent_version",
    "consented_at",
)
_REQUIRED_CSV_COLUMNS = frozenset(CSV_COLUMNS) - {"cadence_days", "consented_at"}

# A North American (NANP) number: area code and exchange both start with 2-9.
# What a typed phone number may contain besides digits.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONSENT_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


class EnrolmentError(ValueError):
    """A value staff gave for an enrolment is not usable.

    Attributes:
        field: The field at fault (a CSV column or CLI option name without dashes).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PatientNotFoundError(LookupError):
    """No enrolled patient has the given mobile number."""


@dataclass(frozen=True)
class EnrolmentResult:
    """The outcome of :func:`enrol_patient`.

    Attributes:
        patient: The enrolment, new or updated.
        created: Whether this call created it (``False``: an enrolment with the same number was
            updated).
    """

    patient: Patient
    created: bool


@dataclass(frozen=True)
class RowError:
    """One CSV row that was not imported, and why."""

    line: int
    message: str


@dataclass
class ImportReport:
    """What :func:`import_csv` did.

    Attributes:
        created: Patient ids enrolled by this import.
        updated: Patient ids whose existing enrolment was updated.
        errors: Rows that were not imported, in file order.
    """

    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Validation. Each function returns the clean value or raises EnrolmentError.


def normalise_mobile(text: str, field: str = "mobile") -> str:
    """A mobile number in E.164 form (the rules are :func:`bot.sms.phone.to_e164`'s).

    Numbers without a ``+`` are read as North American (``"(555) 555-0123"``,
    ``"1-555-555-0123"``); ``+1`` numbers must also be valid North American numbers.

    Args:
        text: The number as typed.
        field: The field name for the error message.

    Returns:
        ``"+15555550123"``-style text.

    Raises:
        EnrolmentError: The text is not a phone number in one of those forms.
    """
    raw = (text or "").strip()
    if not raw:
        raise EnrolmentError(field, "a mobile number is required")
    e164 = phone.to_e164(raw)
    if e164 is None:
        raise EnrolmentError(
            field,
            "not a valid US number (10 digits, e.g. (555) 555-0100, or +1 and 10 digits)"
            if not raw.startswith("+") or raw[1:].lstrip().startswith("1")
            else "not a valid international number in E.164 form",
        )
    return e164


# Files the system's zone database holds that are not zone names.
_NOT_ZONES = frozenset({"localtime", "posixrules", "factory"})


@lru_cache(maxsize=1)
def _time_zones() -> dict[str, str]:
    # Reading the zone database takes a while; staff type names in any case.
    return {
        name.lower(): name
        for name in available_timezones()
        if name.lower() not in _NOT_ZONES
    }


def validate_timezone(name: str, field: str = "timezone") -> str:
    """The IANA time zone name for ``name`` (case-insensitive), e.g. ``"America/Denver"``.

    Raises:
        EnrolmentError: It is not a time zone of the IANA database.
    """
    raw = (name or "").strip()
    canonical = _time_zones().get(raw.lower())
    if canonical is None:
        raise EnrolmentError(
            field, f"{raw!r} is not an IANA time zone name (e.g. America/New_York)"
        )
    ZoneInfo(canonical)
    return canonical


def _parse_date(value: str | dt.date, field: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raw = (value or "").strip()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise EnrolmentError(field, f"{raw!r} is not a date (use YYYY-MM-DD)") from None


def _parse_consented_at(
    value: str | dt.datetime | dt.date | None, zone: ZoneInfo, now: dt.datetime
) -> dt.datetime:
    """When consent was given, timezone-aware.

    A date alone means the start of that day, and a time without an offset means local time,
    both in the patient's time zone.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return now.astimezone(dt.timezone.utc)
    moment: dt.datetime
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    else:
        raw = value.strip()
        try:
            moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise EnrolmentError(
                "consented_at", f"{raw!r} is not a date or time (use YYYY-MM-DD or ISO 8601)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    # Stored in UTC: SQLite keeps a timestamp's wall-clock time and drops its offset.
    return moment.astimezone(dt.timezone.utc)


def _validate_name(name: str) -> str:
    clean = re.sub(r"\s+", " ", (name or "").strip())
    if not clean:
        raise EnrolmentError("name", "a name is required")
    if len(clean) > MAX_NAME_LENGTH:
        raise EnrolmentError("name", f"longer than {MAX_NAME_LENGTH} characters")
    if _CONTROL.search(clean):
        raise EnrolmentError("name", "contains control characters")
    return clean


def _validate_cadence(value: int | str | None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        days = int(str(value).strip())
    except ValueError:
        raise EnrolmentError("cadence_days", f"{value!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_CADENCE_DAYS:
        raise EnrolmentError("cadence_days", f"must be between 1 and {MAX_CADENCE_DAYS} days")
    return days


def _validate_consent_version(version: str) -> str:
    clean = (version or "").strip()
    if not clean:
        raise EnrolmentError("consent_version", "the consent form's wording version is required")
    if not _CONSENT_VERSION.fullmatch(clean):
        raise EnrolmentError(
            "consent_version",
            "use up to 64 letters, digits, dots, dashes or underscores (e.g. sms-v1)",
        )
    return clean


@dataclass(frozen=True)
class _Enrolment:
    """Validated enrolment values, ready to write."""

    name: str
    mobile: str
    timezone: str
    induction_dates: list[dt.date]
    last_infusion: dt.date
    cadence_days: int | None
    consent_version: str
    consented_at: dt.datetime


def _validate(
    *,
    name: str,
    mobile: str,
    timezone: str,
    induction_dates: Sequence[str | dt.date],
    last_infusion: str | dt.date,
    consent_version: str,
    consented_at: str | dt.datetime | dt.date | None,
    cadence_days: int | str | None,
    now: dt.datetime,
) -> _Enrolment:
    clean_name = _validate_name(name)
    clean_mobile = normalise_mobile(mobile)
    zone_name = validate_timezone(timezone)
    zone = ZoneInfo(zone_name)
    # "The future" is judged by the patient's own calendar.
    today = now.astimezone(zone).date()

    if not induction_dates:
        raise EnrolmentError("induction_dates", "at least one induction infusion date is required")
    series = sorted({_parse_date(day, "induction_dates") for day in induction_dates})
    if len(series) > MAX_INDUCTION_DATES:
        raise EnrolmentError(
            "induction_dates", f"more than {MAX_INDUCTION_DATES} dates; is this the right column?"
        )
    future = [day for day in series if day > today]
    if future:
        raise EnrolmentError(
            "induction_dates", f"{future[0].isoformat()} is in the future"
        )
    last = _parse_date(last_infusion, "last_infusion")
    if last > today:
        raise EnrolmentError("last_infusion", f"{last.isoformat()} is in the future")
    # The last infusion is the most recent one, so it cannot precede any induction infusion.
    if last < series[-1]:
        raise EnrolmentError(
            "last_infusion",
            f"{last.isoformat()} is before the last induction infusion ({series[-1].isoformat()})",
        )
    consent_time = _parse_consented_at(consented_at, zone, now)
    if consent_time > now:
        raise EnrolmentError("consented_at", "is in the future")
    return _Enrolment(
        name=clean_name,
        mobile=clean_mobile,
        timezone=zone_name,
        induction_dates=series,
        last_infusion=last,
        cadence_days=_validate_cadence(cadence_days),
        consent_version=_validate_consent_version(consent_version),
        consented_at=consent_time,
    )


# ----------------------------------------------------------------------------------------------
# Reads and writes.


def _find_by_index(session: Session, mobile_index: str) -> Patient | None:
    return session.scalars(select(Patient).where(Patient.mobile_index == mobile_index)).first()


def _write(session: Session, values: _Enrolment) -> EnrolmentResult:
    mobile_index = blind_index(values.mobile)
    patient = _find_by_index(session, mobile_index)
    created = patient is None
    if patient is None:
        person = Person(kind=PersonKind.PATIENT)
        session.add(person)
        session.flush()
        patient = Patient(person_id=person.id, mobile_index=mobile_index)
        session.add(patient)
    patient.name = values.name
    patient.mobile = values.mobile
    patient.timezone = values.timezone
    patient.induction_dates = [day.isoformat() for day in values.induction_dates]
    patient.last_infusion_on = values.last_infusion
    patient.cadence_days = values.cadence_days
    patient.sms_consent_version = values.consent_version
    patient.sms_consented_at = values.consented_at
    # Re-enrolling resumes check-ins, but never undoes the patient's own opt-out.
    patient.active = True
    session.flush()
    return EnrolmentResult(patient, created)


def enrol_patient(
    session: Session,
    *,
    name: str,
    mobile: str,
    timezone: str,
    induction_dates: Sequence[str | dt.date],
    last_infusion: str | dt.date,
    consent_version: str,
    consented_at: str | dt.datetime | dt.date | None = None,
    cadence_days: int | str | None = None,
    now: dt.datetime | None = None,
) -> EnrolmentResult:
    """Enrol an existing patient in SMS check-ins, or update their enrolment.

    The mobile number identifies the patient: if it is already enrolled, that enrolment is
    updated (and made active again) instead of a second one being added. An opt-out stays in
    place; only :func:`opt_in` clears it.

    Args:
        session: The unit of work.
        name: The patient's name, as staff use it.
        mobile: Their mobile number, US or E.164 (``"(555) 555-0123"``, ``"+1 555 555 0123"``).
        timezone: Their IANA time zone (``"America/Chicago"``).
        induction_dates: The dates of the induction series infusions (ISO text or dates).
        last_infusion: The date of the last infusion or booster, on or after the last
            induction date.
        consent_version: The wording version of the SMS consent the patient signed.
        consented_at: When they consented: ISO date or date-time, local to ``timezone`` unless
            it has an offset. Defaults to now.
        cadence_days: Days between check-ins; ``None`` for the clinic's default.
        now: The current time (tests pass their own).

    Returns:
        The enrolment and whether it is new.

    Raises:
        EnrolmentError: A value is missing or invalid, or a date is in the future.
    """
    now = now or utcnow()
    values = _validate(
        name=name,
        mobile=mobile,
        timezone=timezone,
        induction_dates=induction_dates,
        last_infusion=last_infusion,
        consent_version=consent_version,
        consented_at=consented_at,
        cadence_days=cadence_days,
        now=now,
    )
    return _write(session, values)


def find_by_phone(session: Session, mobile: str) -> Patient | None:
    """The enrolled patient with this mobile number, in any form :func:`normalise_mobile` reads.

    Raises:
        EnrolmentError: ``mobile`` is not a phone number.
    """
    return _find_by_index(session, blind_index(normalise_mobile(mobile)))


def _require(session: Session, mobile: str) -> Patient:
    patient = find_by_phone(session, mobile)
    if patient is None:
        raise PatientNotFoundError("No enrolled patient has that mobile number.")
    return patient


def opt_out(session: Session, mobile: str, *, now: dt.datetime | None = None) -> Patient:
    """Stop check-in texts to a patient. Opting out twice keeps the first time.

    Raises:
        EnrolmentError: ``mobile`` is not a phone number.
        PatientNotFoundError: No enrolled patient has it.
    """
    patient = _require(session, mobile)
    if patient.opted_out_at is None:
        patient.opted_out_at = (now or utcnow()).astimezone(dt.timezone.utc)
        session.flush()
    return patient


def opt_in(session: Session, mobile: str) -> Patient:
    """Resume check-in texts to a patient who opted out (they asked to, e.g. with START).

    Raises:
        EnrolmentError: ``mobile`` is not a phone number.
        PatientNotFoundError: No enrolled patient has it.
    """
    patient = _require(session, mobile)
    if patient.opted_out_at is not None:
        patient.opted_out_at = None
        session.flush()
    return patient


def list_patients(session: Session, *, active_only: bool = False) -> list[Patient]:
    """Enrolled patients, by name (names are encrypted, so they are sorted here, not in SQL).

    Args:
        session: The unit of work.
        active_only: Leave out enrolments the clinic has made inactive.
    """
    query = select(Patient)
    if active_only:
        query = query.where(Patient.active.is_(True))
    return sorted(session.scalars(query), key=lambda p: (p.name.casefold(), p.id))


def import_csv(
    session: Session, file: Iterable[str], *, now: dt.datetime | None = None
) -> ImportReport:
    """Enrol (or update) every valid row of a CSV file; report the others by line number.

    The header names the columns in :data:`CSV_COLUMNS`, in any order; ``cadence_days`` and
    ``consented_at`` may be left out or empty. ``induction_dates`` holds ISO dates separated by
    semicolons. A row whose mobile number already appeared earlier in the file is refused, as
    it would overwrite that row's patient.

    Args:
        session: The unit of work.
        file: The CSV text, e.g. a file opened with ``newline=""``.
        now: The current time (tests pass their own).

    Returns:
        The enrolments created and updated, and the rows refused.

    Raises:
        EnrolmentError: The header is missing or names unknown columns (nothing is imported).
    """
    now = now or utcnow()
    reader = csv.DictReader(file)
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    if not header:
        raise EnrolmentError("header", "the file is empty")
    unknown = [name for name in header if name not in CSV_COLUMNS]
    missing = sorted(_REQUIRED_CSV_COLUMNS - set(header))
    if unknown or missing:
        problems = []
        if missing:
            problems.append("missing column(s) " + ", ".join(missing))
        if unknown:
            problems.append("unknown column(s) " + ", ".join(repr(n) for n in unknown))
        raise EnrolmentError(
            "header", "; ".join(problems) + f" (expected: {','.join(CSV_COLUMNS)})"
        )
    reader.fieldnames = header

    report = ImportReport()
    seen: dict[str, int] = {}
    end_of_previous = reader.line_num
    for row in reader:
        line = end_of_previous + 1
        end_of_previous = reader.line_num
        try:
            values = _validate_row(row, now)
        except EnrolmentError as error:
            report.errors.append(RowError(line, str(error)))
            continue
        if values.mobile in seen:
            report.errors.append(RowError(
                line, f"mobile: the same number as line {seen[values.mobile]}; not imported"
            ))
            continue
        seen[values.mobile] = line
        result = _write(session, values)
        (report.created if result.created else report.updated).append(result.patient.id)
    return report


def _validate_row(row: dict[str, Any], now: dt.datetime) -> _Enrolment:
    if None in row:
        raise EnrolmentError("row", "more fields than the header has columns")
    if any(row.get(column) is None for column in _REQUIRED_CSV_COLUMNS):
        raise EnrolmentError("row", "fewer fields than the header has columns")
    induction = [part for part in (row["induction_dates"] or "").split(";") if part.strip()]
    return _validate(
        name=row["name"],
        mobile=row["mobile"],
        timezone=row["timezone"],
        induction_dates=induction,
        last_infusion=row["last_infusion"],
        consent_version=row["consent_version"],
        consented_at=row.get("consented_at"),
        cadence_days=row.get("cadence_days"),
        now=now,
    )
