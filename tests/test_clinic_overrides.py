"""Clinic settings changed from the staff console: validation, history, audit, and how running
processes (the NLG, the actions) pick them up without a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot import clinic
from bot.clinic import ClinicConfigError, get_clinic, save_overrides
from bot.db.models import AuditEvent, ClinicSetting
from bot.db.session import make_engine, unit_of_work
from bot.nlg import ClinicResponseGenerator
from bot.settings import PROJECT_ROOT
from tests.conftest import own_database

FILE_NAME = "Harbor Light Infusion Center"


@pytest.fixture(autouse=True)
def floors(request: pytest.FixtureRequest) -> None:
    """Rows committed by other tests stay (the audit log cannot be emptied): note ours."""
    if "db_session" in request.fixturenames:
        session = request.getfixturevalue("db_session")
        session.info["audit_floor"] = session.scalar(select(func.max(AuditEvent.id))) or 0
        session.info["setting_floor"] = session.scalar(select(func.max(ClinicSetting.id))) or 0


def _settings(session: Session) -> list[ClinicSetting]:
    return list(session.scalars(
        select(ClinicSetting).where(ClinicSetting.id > session.info.get("setting_floor", 0))
        .order_by(ClinicSetting.id)))


def _updates(session: Session) -> list[AuditEvent]:
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.id > session.info.get("audit_floor", 0),
                                 AuditEvent.action == "clinic.update").order_by(AuditEvent.id)))


def _newest_first(session: Session) -> dict:
    # Start each test from "no overrides", whatever other tests committed.
    newest = session.scalars(select(ClinicSetting).order_by(ClinicSetting.id.desc())).first()
    return {} if newest is None else newest.values


@pytest.fixture
def clean_overrides(db_session) -> Session:
    """A session in which the overrides in force are none (any committed ones are reset)."""
    current = _newest_first(db_session)
    if current:
        db_session.add(ClinicSetting(values={}, staff_user_id=None))
        db_session.flush()
        db_session.info["setting_floor"] = db_session.scalar(select(func.max(ClinicSetting.id)))
    return db_session


# -- Saving -------------------------------------------------------------------------------------


def test_saving_appends_the_complete_overrides_and_audits_field_names(clean_overrides) -> None:
    session = clean_overrides
    first = save_overrides(session, {"name": "  Desert Bloom Wellness ",
                                     "faq": {"cost": "Call us for prices."}}, None)
    second = save_overrides(session, {"phone": "(555) 010-9999"}, None)

    assert [s.id for s in _settings(session)] == [first.id, second.id]
    assert first.values == {"name": "Desert Bloom Wellness",
                            "faq": {"cost": "Call us for prices."}}
    # Each row holds every override in force, so the newest row alone is the configuration.
    assert second.values == {"name": "Desert Bloom Wellness", "phone": "(555) 010-9999",
                             "faq": {"cost": "Call us for prices."}}
    assert clinic.current_overrides(session) == second.values
    assert [e.detail for e in _updates(session)] == [
        {"fields": ["faq.cost", "name"]}, {"fields": ["phone"]}]
    assert [(e.target_type, e.target_id) for e in _updates(session)] == [
        ("clinic", str(first.id)), ("clinic", str(second.id))]
    audit_text = repr(session.execute(text("SELECT detail FROM audit_events")).all())
    assert "Desert Bloom" not in audit_text and "prices" not in audit_text


def test_faq_topics_can_be_given_one_by_one(clean_overrides) -> None:
    saved = save_overrides(clean_overrides, {"faq.ride_home": "Bring a driver."}, None)
    assert saved.values == {"faq": {"ride_home": "Bring a driver."}}


def test_hours_replace_the_whole_week_and_empty_days_are_closed(clean_overrides) -> None:
    saved = save_overrides(clean_overrides, {
        "hours": {"mon": "10:00-18:00", "tue": "", "sat": " 09:00-12:00 "},
        "hours_text": "Monday 10 to 6,\nSaturday 9 to noon"}, None)
    assert saved.values["hours"] == {"mon": "10:00-18:00", "sat": "09:00-12:00"}
    merged = clinic.parse_clinic(clinic._merge(clinic._read_raw(PROJECT_ROOT / "clinic.yml"),
                                               saved.values))
    assert sorted(merged.hours) == [0, 5]


def test_none_removes_an_override_and_no_change_saves_nothing(clean_overrides) -> None:
    session = clean_overrides
    save_overrides(session, {"name": "Desert Bloom Wellness", "phone": "(555) 010-9999"}, None)
    assert save_overrides(session, {"phone": "(555) 010-9999"}, None) is None
    reset = save_overrides(session, {"name": None}, None)
    assert reset.values == {"phone": "(555) 010-9999"}
    assert len(_settings(session)) == 2
    assert [e.detail for e in _updates(session)][-1] == {"fields": ["name"]}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"address": "1 Main St"}, "address: not a clinic setting"),
        ({"time_zone": "UTC"}, "time_zone: not a clinic setting"),
        ({"faq.parking": "Free"}, "faq.parking: unknown FAQ topic"),
        ({"faq": "Free"}, "faq: must map"),
        ({"name": ""}, "name: must not be empty"),
        ({"name": "   "}, "name: must not be empty"),
        ({"name": "x" * 121}, "name: longer than 120"),
        ({"name": "Harbor\nLight"}, "name: contains control characters"),
        ({"phone": 5550104477}, "phone: must be text"),
        ({"faq": {"cost": "See {clinic_website}"}}, "faq.cost: must not contain"),
        ({"faq": {"cost": ""}}, "faq.cost: must not be empty"),
        ({"hours": "9 to 5"}, "hours: must map days"),
        ({"hours": {"mon": "nine to five"}}, "Hours for mon must look like"),
        ({"hours": {"tue": "17:00-09:00"}}, "Hours for tue close before they open"),
        ({"hours": {"funday": "09:00-10:00"}}, "Unknown day in hours: 'funday'"),
        ({"hours": {"wed": 9}}, "hours.wed: must look like"),
        ({"hours": {}}, "missing: hours"),
        ({"hours_text": "\x00"}, "hours_text: contains control"),
    ],
)
def test_bad_values_are_refused_with_the_field_name(clean_overrides, values, message) -> None:
    before = clinic.current_overrides(clean_overrides)
    with pytest.raises(ValueError, match=message) as refused:
        save_overrides(clean_overrides, values, None)
    assert isinstance(refused.value, ClinicConfigError)
    assert _settings(clean_overrides) == []
    assert _updates(clean_overrides) == []
    assert clinic.current_overrides(clean_overrides) == before


def test_not_a_mapping_is_refused(clean_overrides) -> None:
    with pytest.raises(ClinicConfigError, match="mapping"):
        save_overrides(clean_overrides, ["name", "x"], None)  # type: ignore[arg-type]


def test_values_the_responses_use_cannot_be_emptied() -> None:
    base = clinic.load_clinic(PROJECT_ROOT / "clinic.yml")
    assert {"clinic_name", "clinic_phone", "clinic_hours", "faq_cost"} <= (
        clinic._domain_variables())
    for change in ({"name": ""}, {"faq": {**base.faq, "cost": ""}}):
        emptied = dataclasses.replace(base, **change)
        with pytest.raises(ClinicConfigError, match="responses use"):
            clinic._check_response_vars(base, emptied)
    clinic._check_response_vars(base, dataclasses.replace(base, name="Desert Bloom"))


def test_editable_values_round_trip_through_save(clean_overrides) -> None:
    values = clinic.editable_values(clinic.load_clinic(PROJECT_ROOT / "clinic.yml"))
    assert values["hours"]["fri"] == "09:00-16:00"
    assert set(values) == set(clinic.EDITABLE_FIELDS)
    # Saving the file's own values overrides each field with the same value.
    saved = save_overrides(clean_overrides, values, None)
    assert saved.values == values


# -- Running processes pick edits up -------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The clock the clinic cache reads, moved by the test (seconds)."""
    now = [1000.0]
    monkeypatch.setattr(clinic, "_clock", lambda: now[0])
    return now


@pytest.fixture(params=["sqlite", "postgres"])
def configured_db(request: pytest.FixtureRequest, tmp_path: Path, override_settings,
                  clock: list[float]) -> Iterator[Engine]:
    """The process's configured database (BOT_DATABASE_URL) pointed at a fresh one: SQLite and
    PostgreSQL."""
    with own_database(request.param, tmp_path, "clinic") as url:
        override_settings(BOT_DATABASE_URL=url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            get_clinic.cache_clear()
            engine.dispose()


def _save(engine: Engine, values: dict) -> None:
    with unit_of_work(engine) as session:
        save_overrides(session, values, None)


def _saved_elsewhere(engine: Engine, values: dict) -> None:
    """What the console's process writes when it saves (there, through save_overrides)."""
    with unit_of_work(engine) as session:
        session.add(ClinicSetting(values=values, staff_user_id=None))


def _nlg_values() -> dict:
    return ClinicResponseGenerator._response_variables({}, {})


def test_edits_saved_by_another_process_reach_the_nlg_within_five_seconds(configured_db,
                                                                          clock) -> None:
    assert get_clinic().name == FILE_NAME

    _saved_elsewhere(configured_db, {"name": "Desert Bloom Wellness",
                                     "faq": {"cost": "Call us."}})
    clock[0] += 4.9
    assert get_clinic().name == FILE_NAME  # still the remembered configuration
    clock[0] += 0.1
    assert get_clinic().name == "Desert Bloom Wellness"
    values = _nlg_values()
    assert (values["clinic_name"], values["faq_cost"]) == ("Desert Bloom Wellness", "Call us.")
    assert values["clinic_phone"] == "(555) 010-4477"  # from the file

    _saved_elsewhere(configured_db, {"faq": {"cost": "Call us."}})
    clock[0] += 5
    assert get_clinic().name == FILE_NAME
    assert get_clinic().faq["cost"] == "Call us."


def test_a_save_in_this_process_shows_at_once(configured_db, clock) -> None:
    assert get_clinic().name == FILE_NAME
    _save(configured_db, {"name": "Desert Bloom Wellness"})
    assert get_clinic().name == "Desert Bloom Wellness"
    assert _nlg_values()["clinic_name"] == "Desert Bloom Wellness"


def test_the_database_is_asked_at_most_every_five_seconds(configured_db, clock) -> None:
    get_clinic()
    queries: list[str] = []
    engine = clinic._cache._engine

    def count(conn, cursor, statement, *args) -> None:
        if "clinic_settings" in statement:
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(50):
            clock[0] += 0.09
            get_clinic()
        assert queries == []
        clock[0] += 1
        get_clinic()
        assert len(queries) == 1  # the newest id only: nothing new to read
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_an_unreachable_database_keeps_the_last_good_configuration(configured_db, clock,
                                                                   monkeypatch) -> None:
    _save(configured_db, {"name": "Desert Bloom Wellness"})
    assert get_clinic().name == "Desert Bloom Wellness"

    # The database goes away (nothing listens on port 9).
    down = make_engine("postgresql://postgres@127.0.0.1:9/none")
    monkeypatch.setattr(clinic._cache, "_engine", down)
    clock[0] += 5
    assert get_clinic().name == "Desert Bloom Wellness"
    assert _nlg_values()["clinic_name"] == "Desert Bloom Wellness"
    clock[0] += 5
    assert get_clinic().name == "Desert Bloom Wellness"
    down.dispose()


def test_without_a_database_the_file_configuration_is_served(override_settings,
                                                             tmp_path) -> None:
    override_settings(BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}")
    assert get_clinic().name == FILE_NAME
    assert _nlg_values()["clinic_name"] == FILE_NAME
