"""The clinic configuration: validation, opening hours and the values responses use."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.clinic import ClinicConfigError, load_clinic, parse_clinic
from bot.settings import PROJECT_ROOT

LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def raw():
    with open(PROJECT_ROOT / "clinic.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_shipped_configuration_loads():
    clinic = load_clinic(PROJECT_ROOT / "clinic.yml")
    values = clinic.response_vars()
    assert values["clinic_name"] == clinic.name
    assert {"faq_initial_series", "faq_boosters", "faq_visit", "faq_ride_home",
            "faq_cost"} <= set(values)


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        (dt.datetime(2026, 11, 23, 9, 0), True),     # Monday opening time
        (dt.datetime(2026, 11, 23, 16, 59), True),
        (dt.datetime(2026, 11, 23, 17, 0), False),   # closes at 17:00
        (dt.datetime(2026, 11, 27, 16, 30), False),  # Friday closes at 16:00
        (dt.datetime(2026, 11, 22, 12, 0), False),   # Sunday
    ],
)
def test_is_open(raw, local, is_open):
    clinic = parse_clinic(raw)
    assert clinic.is_open(local.replace(tzinfo=LA)) is is_open


def test_next_opening_crosses_the_weekend_and_time_zones(raw):
    clinic = parse_clinic(raw)
    friday_evening_utc = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)  # Fri 18:00 LA
    opening = clinic.next_opening(friday_evening_utc)
    assert (opening.weekday(), opening.hour, opening.minute) == (0, 9, 0)
    assert opening.tzinfo == LA


def test_rebranding_needs_no_code(raw):
    raw["name"] = "Desert Bloom Wellness"
    raw["faq"]["cost"] = "Call us for prices."
    values = parse_clinic(raw).response_vars()
    assert values["clinic_name"] == "Desert Bloom Wellness"
    assert values["faq_cost"] == "Call us for prices."


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("phone"), "missing: phone"),
        (lambda r: r["faq"].pop("ride_home"), "FAQ is missing: ride_home"),
        (lambda r: r.update(time_zone="Mars/Olympus"), "Unknown time zone"),
        (lambda r: r["hours"].update(mon="17:00-09:00"), "close before they open"),
        (lambda r: r["hours"].update(funday="09:00-10:00"), "Unknown day"),
        (lambda r: r["hours"].update(tue="nine to five"), "must look like"),
    ],
)
def test_bad_configuration_is_refused_clearly(raw, change, message):
    change(raw)
    with pytest.raises(ClinicConfigError, match=message):
        parse_clinic(raw)
