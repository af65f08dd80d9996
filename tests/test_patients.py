"""Enrolment of existing patients in SMS check-ins, and the check-in tables. The database tests
run on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db import migrate
from bot.db.crypto import blind_index
from bot.db.models import (
    Checkin,
    CheckinAnswer,
    CheckinStatus,
    Patient,
    Person,
    PersonKind,
    SmsDirection,
    SmsMessage,
)
from bot.db.session import make_engine
from bot.services import patients
from bot.services.patients import EnrolmentError, PatientNotFoundError

NOW = dt.datetime(2026, 11, 1, 18, 0, tzinfo=dt.timezone.utc)
MOBILE = "+15555550123"

CHECKIN_TABLES = {"patients", "checkins", "checkin_answers", "sms_messages"}


def _enrol(session: Session, **overrides) -> patients.EnrolmentResult:
    values = {
        "name": "Ana Diaz",
        "mobile": "(555) 555-0123",
        "timezone": "America/Denver",
        "induction_dates": ["2026-09-03", "2026-09-01", "2026-09-05"],
        "last_infusion": "2026-10-20",
        "consent_version": "sms-v1",
        "consented_at": "2026-09-01T09:30:00",
        "cadence_days": None,
        "now": NOW,
    }
    values.update(overrides)
    return patients.enrol_patient(session, **values)


def _utc(moment: dt.datetime) -> dt.datetime:
    # Read back from SQLite, a timestamp has no offset; the service stores UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _csv(*rows: str) -> io.StringIO:
    header = ",".join(patients.CSV_COLUMNS)
    return io.StringIO("\n".join((header, *rows)) + "\n")


# -- Mobile numbers, time zones and masking (no database) -------------------------------------


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("(555) 555-0123", MOBILE),
        ("+1 555 555 0123", MOBILE),
        ("555.555.0123", MOBILE),
        ("1-555-555-0123", MOBILE),
        ("5555550123", MOBILE),
        (" +15555550123 ", MOBILE),
        ("+44 20 7946 0958", "+442079460958"),
        ("+61 491 570 156", "+61491570156"),
    ],
)
def test_mobile_numbers_are_normalised_to_e164(typed: str, e164: str) -> None:
    assert patients.normalise_mobile(typed) == e164


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "555-0123",  # no area code
        "(055) 555-0123",  # area codes start with 2-9
        "(555) 155-0123",  # so do exchanges
        "+1 055 555 0123",
        "55555501234",  # 11 digits not starting with 1
        "+0 123 456 789",
        "+1234567890123456",  # longer than E.164 allows
        "call 555 555 0123",
        "555-555-0123 ext 4",
        "5555550123+",
    ],
)
def test_what_is_not_a_mobile_number_is_refused(typed: str) -> None:
    with pytest.raises(EnrolmentError) as caught:
        patients.normalise_mobile(typed)
    assert caught.value.field == "mobile"
    assert str(caught.value).startswith("mobile: ")


@pytest.mark.parametrize(
    ("typed", "zone"),
    [("America/Denver", "America/Denver"), ("america/new_york", "America/New_York"),
     (" Pacific/Honolulu ", "Pacific/Honolulu"), ("UTC", "UTC")],
)
def test_time_zones_are_iana_names(typed: str, zone: str) -> None:
    assert patients.validate_timezone(typed) == zone


@pytest.mark.parametrize("typed", ["", "Mountain", "EST+5", "localtime", "../etc/passwd",
                                   "America/Springfield"])
def test_what_is_not_an_iana_time_zone_is_refused(typed: str) -> None:
    with pytest.raises(EnrolmentError, match="not an IANA time zone") as caught:
        patients.validate_timezone(typed)
    assert caught.value.field == "timezone"


# -- Enrolment --------------------------------------------------------------------------------


def test_enrolment_stores_a_patient_linked_to_a_person(db_session: Session) -> None:
    result = _enrol(db_session, cadence_days="28")
    assert result.created
    patient = db_session.get(Patient, result.patient.id)
    db_session.expire_all()
    assert patient.name == "Ana Diaz"
    assert patient.mobile == MOBILE
    assert patient.mobile_index == blind_index(MOBILE)
    assert patient.timezone == "America/Denver"
    assert patient.induction_dates == ["2026-09-01", "2026-09-03", "2026-09-05"]
    assert patient.induction_days == [dt.date(2026, 9, 1), dt.date(2026, 9, 3),
                                      dt.date(2026, 9, 5)]
    assert patient.last_infusion_on == dt.date(2026, 10, 20)
    assert patient.cadence_days == 28
    assert patient.sms_consent_version == "sms-v1"
    # A time without an offset is the patient's local time (MDT, UTC-6, in September).
    assert _utc(patient.sms_consented_at) == dt.datetime(2026, 9, 1, 15, 30,
                                                         tzinfo=dt.timezone.utc)
    assert patient.active is True
    assert patient.opted_out_at is None
    assert patient.created_at is not None and patient.updated_at is not None
    person = db_session.get(Person, patient.person_id)
    assert person.kind == PersonKind.PATIENT


def test_consent_time_defaults_to_now_and_cadence_to_the_clinic_default(
    db_session: Session,
) -> None:
    patient = _enrol(db_session, consented_at=None).patient
    assert patient.sms_consented_at == NOW
    assert patient.cadence_days is None


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "  "}, "name", "a name is required"),
        ({"name": "x" * 201}, "name", "longer than 200"),
        ({"name": "Ana\x00"}, "name", "control characters"),
        ({"mobile": "555-0123"}, "mobile", "not a valid US number"),
        ({"timezone": "Mountain Time"}, "timezone", "not an IANA time zone"),
        ({"induction_dates": []}, "induction_dates", "at least one"),
        ({"induction_dates": ["2026-09-01", "2026-9-3x"]}, "induction_dates",
         "'2026-9-3x' is not a date"),
        ({"induction_dates": ["2026-09-01", "2026-11-02"]}, "induction_dates",
         "2026-11-02 is in the future"),
        ({"last_infusion": "2026-11-02"}, "last_infusion", "is in the future"),
        ({"last_infusion": "yesterday"}, "last_infusion", "is not a date"),
        ({"last_infusion": "2026-08-30"}, "last_infusion",
         "before the last induction infusion \\(2026-09-05\\)"),
        ({"last_infusion": "2026-09-04"}, "last_infusion", "before the last induction"),
        ({"cadence_days": 0}, "cadence_days", "between 1 and 365"),
        ({"cadence_days": "monthly"}, "cadence_days", "not a whole number"),
        ({"consent_version": ""}, "consent_version", "is required"),
        ({"consent_version": "v1; drop"}, "consent_version", "letters, digits"),
        ({"consented_at": "2026-11-02"}, "consented_at", "is in the future"),
        ({"consented_at": "last week"}, "consented_at", "is not a date or time"),
    ],
)
def test_invalid_enrolments_are_refused_with_a_message_for_staff(
    db_session: Session, overrides: dict, field: str, message: str
) -> None:
    with pytest.raises(EnrolmentError, match=message) as caught:
        _enrol(db_session, **overrides)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field
    assert db_session.scalars(select(Patient)).all() == []


def test_the_future_is_judged_in_the_patients_time_zone(db_session: Session) -> None:
    # 03:00 UTC on 1 November is still 31 October in Los Angeles, but 1 November in Berlin.
    now = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.timezone.utc)
    with pytest.raises(EnrolmentError, match="last_infusion: 2026-11-01 is in the future"):
        _enrol(db_session, timezone="America/Los_Angeles", last_infusion="2026-11-01", now=now)
    patient = _enrol(db_session, timezone="Europe/Berlin", last_infusion="2026-11-01",
                     now=now).patient
    assert patient.last_infusion_on == dt.date(2026, 11, 1)


def test_enrolling_the_same_number_again_updates_the_enrolment(db_session: Session) -> None:
    first = _enrol(db_session)
    second = _enrol(db_session, name="Ana Díaz", mobile="+1 555 555 0123",
                    last_infusion="2026-10-28", cadence_days=21)
    assert not second.created
    assert second.patient.id == first.patient.id
    [patient] = db_session.scalars(select(Patient)).all()
    assert (patient.name, patient.last_infusion_on, patient.cadence_days) == (
        "Ana Díaz", dt.date(2026, 10, 28), 21)
    assert len(db_session.scalars(select(Person)).all()) == 1


def test_patients_are_found_by_number_through_the_blind_index(db_session: Session) -> None:
    enrolled = _enrol(db_session).patient
    _enrol(db_session, name="Ben Okafor", mobile="555 555 0199")
    assert patients.find_by_phone(db_session, "+1 (555) 555-0123").id == enrolled.id
    assert patients.find_by_phone(db_session, "555 555 0124") is None
    # The look-up is by the keyed hash: the query never compares plain numbers.
    raw_index = db_session.execute(
        text("SELECT mobile_index FROM patients WHERE id = :id"), {"id": enrolled.id}
    ).scalar_one()
    assert raw_index == blind_index(MOBILE) and MOBILE not in raw_index
    with pytest.raises(EnrolmentError):
        patients.find_by_phone(db_session, "not a number")


def test_name_number_and_treatment_dates_are_encrypted_at_rest(db_session: Session) -> None:
    _enrol(db_session)
    row = db_session.execute(
        text("SELECT name, mobile, mobile_index, induction_dates FROM patients")
    ).one()
    assert "Ana" not in row.name and "Diaz" not in row.name
    assert all(digits not in row.mobile for digits in (MOBILE, "5555550123", "0123"))
    assert "5555550123" not in row.mobile_index
    assert "2026-09" not in row.induction_dates


def test_opt_out_and_opt_in(db_session: Session) -> None:
    patient = _enrol(db_session).patient
    assert patients.opt_out(db_session, "555-555-0123", now=NOW).opted_out_at == NOW
    later = NOW + dt.timedelta(days=2)
    # A second STOP keeps the first time.
    assert patients.opt_out(db_session, MOBILE, now=later).opted_out_at == NOW
    # Staff re-enrolling (or re-importing) never undoes the patient's opt-out.
    again = _enrol(db_session, cadence_days=14).patient
    assert again.id == patient.id and again.opted_out_at == NOW
    assert patients.opt_in(db_session, MOBILE).opted_out_at is None
    db_session.expire_all()
    assert db_session.get(Patient, patient.id).opted_out_at is None


def test_opting_out_an_unknown_number_says_so(db_session: Session) -> None:
    with pytest.raises(PatientNotFoundError, match="No enrolled patient"):
        patients.opt_out(db_session, "555 555 0111")
    with pytest.raises(PatientNotFoundError):
        patients.opt_in(db_session, "555 555 0111")


def test_list_patients_is_sorted_by_name_and_can_leave_out_inactive(db_session: Session) -> None:
    _enrol(db_session, name="zoe Park", mobile="555 555 0101")
    _enrol(db_session, name="Ben Okafor", mobile="555 555 0102")
    inactive = _enrol(db_session, name="Ana Diaz", mobile="555 555 0103").patient
    inactive.active = False
    db_session.flush()
    assert [p.name for p in patients.list_patients(db_session)] == [
        "Ana Diaz", "Ben Okafor", "zoe Park"]
    assert [p.name for p in patients.list_patients(db_session, active_only=True)] == [
        "Ben Okafor", "zoe Park"]


# -- CSV import -------------------------------------------------------------------------------


GOOD_ROW = ('Ana Diaz,(555) 555-0123,America/Denver,2026-09-01;2026-09-03;2026-09-05,'
            '2026-10-20,28,sms-v1,2026-09-01')
GOOD_ROW_2 = ('"Okafor, Ben",+1 555 555 0199,america/chicago,2026-08-04; 2026-08-06,'
              '2026-08-06,,sms-v1,')


def test_import_enrols_good_rows_and_reports_bad_ones_by_line(db_session: Session) -> None:
    report = patients.import_csv(db_session, _csv(
        GOOD_ROW,
        "Cy Lee,555-0123,America/Denver,2026-09-01,2026-10-01,,sms-v1,",
        GOOD_ROW_2,
        "Di Ross,555 555 0177,Mars/Olympus,2026-09-01,2026-10-01,,sms-v1,",
        "Ed Moss,555 555 0178,UTC,2026-09-01,2026-12-01,,sms-v1,",
        "Fay Wu,555 555 0179,UTC,2026-09-01,2026-10-01,,,",
        "Gus Hall,555 555 0180,UTC,2026-09-01,2026-10-01,,sms-v1,,extra",
        "Hal Ng,555 555 0181,UTC",
    ), now=NOW)
    assert len(report.created) == 2 and report.updated == []
    assert [(e.line, e.message) for e in report.errors] == [
        (3, "mobile: not a valid US number (10 digits, e.g. (555) 555-0100, "
            "or +1 and 10 digits)"),
        (5, "timezone: 'Mars/Olympus' is not an IANA time zone name (e.g. America/New_York)"),
        (6, "last_infusion: 2026-12-01 is in the future"),
        (7, "consent_version: the consent form's wording version is required"),
        (8, "row: more fields than the header has columns"),
        (9, "row: fewer fields than the header has columns"),
    ]
    imported = patients.list_patients(db_session)
    assert [(p.name, p.mobile, p.timezone, p.induction_dates, p.cadence_days)
            for p in imported] == [
        ("Ana Diaz", MOBILE, "America/Denver", ["2026-09-01", "2026-09-03", "2026-09-05"], 28),
        ("Okafor, Ben", "+15555550199", "America/Chicago", ["2026-08-04", "2026-08-06"], None),
    ]
    # An empty consented_at means "now"; a date alone is the start of that local day.
    assert _utc(imported[1].sms_consented_at) == NOW
    assert _utc(imported[0].sms_consented_at) == dt.datetime(2026, 9, 1, 6,
                                                             tzinfo=dt.timezone.utc)


def test_reimporting_the_same_numbers_updates_instead_of_duplicating(db_session: Session) -> None:
    first = patients.import_csv(db_session, _csv(GOOD_ROW, GOOD_ROW_2), now=NOW)
    changed = GOOD_ROW.replace("2026-10-20,28", "2026-10-27,35").replace(
        "(555) 555-0123", "+15555550123")
    second = patients.import_csv(db_session, _csv(changed, GOOD_ROW_2), now=NOW)
    assert second.created == [] and second.errors == []
    assert sorted(second.updated) == sorted(first.created)
    assert len(db_session.scalars(select(Patient)).all()) == 2
    ana = patients.find_by_phone(db_session, MOBILE)
    assert (ana.last_infusion_on, ana.cadence_days) == (dt.date(2026, 10, 27), 35)


def test_a_number_repeated_within_one_file_is_refused(db_session: Session) -> None:
    other_name = GOOD_ROW.replace("Ana Diaz", "Someone Else").replace("(555) 555-0123",
                                                                      "5555550123")
    report = patients.import_csv(db_session, _csv(GOOD_ROW, other_name), now=NOW)
    assert len(report.created) == 1
    assert [(e.line, e.message) for e in report.errors] == [
        (3, "mobile: the same number as line 2; not imported")]
    assert patients.find_by_phone(db_session, MOBILE).name == "Ana Diaz"


def test_line_numbers_count_quoted_line_breaks(db_session: Session) -> None:
    report = patients.import_csv(db_session, _csv(
        '"Ana\nDiaz",555 555 0123,UTC,2026-09-01,2026-10-01,,sms-v1,',
        "Bad Row,555 555 0124,Nowhere,2026-09-01,2026-10-01,,sms-v1,",
    ), now=NOW)
    assert [e.line for e in report.errors] == [4]
    assert patients.find_by_phone(db_session, MOBILE).name == "Ana Diaz"


def test_columns_may_come_in_any_order_and_optional_ones_may_be_left_out(
    db_session: Session,
) -> None:
    csv_text = ("Mobile,Name,Timezone,Induction_Dates,Last_Infusion,Consent_Version\n"
                "555 555 0123,Ana Diaz,UTC,2026-09-01,2026-10-01,sms-v1\n")
    report = patients.import_csv(db_session, io.StringIO(csv_text), now=NOW)
    assert len(report.created) == 1 and report.errors == []


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("", "header: the file is empty"),
        ("name,mobile,timezone\nAna,5555550123,UTC\n",
         "missing column\\(s\\) consent_version, induction_dates, last_infusion"),
        ("name,mobile,timezone,induction_dates,last_infusion,consent_version,notes\n",
         "unknown column\\(s\\) 'notes'"),
    ],
)
def test_a_bad_header_imports_nothing(db_session: Session, csv_text: str, message: str) -> None:
    with pytest.raises(EnrolmentError, match=message):
        patients.import_csv(db_session, io.StringIO(csv_text), now=NOW)
    assert db_session.scalars(select(Patient)).all() == []


# -- Check-in tables --------------------------------------------------------------------------


def _checkin(patient: Patient, due_on: dt.date) -> Checkin:
    return Checkin(patient_id=patient.id, due_on=due_on,
                   scheduled_for=dt.datetime(2026, 11, 10, 17, tzinfo=dt.timezone.utc))


def test_a_patient_has_at_most_one_checkin_per_due_date(db_session: Session) -> None:
    patient = _enrol(db_session).patient
    db_session.add(_checkin(patient, dt.date(2026, 11, 10)))
    db_session.add(_checkin(patient, dt.date(2026, 12, 8)))
    db_session.flush()
    with pytest.raises(IntegrityError, match="(?i)unique"), db_session.begin_nested():
        db_session.add(_checkin(patient, dt.date(2026, 11, 10)))
    other = _enrol(db_session, mobile="555 555 0199").patient
    db_session.add(_checkin(other, dt.date(2026, 11, 10)))
    db_session.flush()
    assert db_session.scalars(select(Checkin.status)).all() == [CheckinStatus.SCHEDULED] * 3
    assert [c.due_on for c in patient.checkins] == [dt.date(2026, 11, 10), dt.date(2026, 12, 8)]


def test_checkin_answers_are_encrypted_at_rest(db_session: Session) -> None:
    patient = _enrol(db_session).patient
    checkin = _checkin(patient, dt.date(2026, 11, 10))
    checkin.answers.append(CheckinAnswer(question_key="phq2_interest",
                                         raw_text="more than half the days", score=2))
    db_session.add(checkin)
    db_session.flush()
    raw = db_session.execute(text("SELECT raw_text, score FROM checkin_answers")).one()
    assert "half" not in raw.raw_text and raw.score == 2
    db_session.expire_all()
    assert db_session.get(Checkin, checkin.id).answers[0].raw_text == "more than half the days"


def test_an_sms_message_sid_is_logged_once(db_session: Session) -> None:
    patient = _enrol(db_session).patient
    sid = "SM" + "0" * 32
    db_session.add(SmsMessage(direction=SmsDirection.INBOUND, patient_id=patient.id,
                              message_sid=sid, status="received"))
    # Outbound messages Twilio never accepted have no SID; any number of them may be logged.
    db_session.add_all([
        SmsMessage(direction=SmsDirection.OUTBOUND, status="failed", error_code="30007"),
        SmsMessage(direction=SmsDirection.OUTBOUND, status="failed", error_code="30007"),
    ])
    db_session.flush()
    with pytest.raises(IntegrityError, match="(?i)unique"), db_session.begin_nested():
        db_session.add(SmsMessage(direction=SmsDirection.INBOUND, message_sid=sid,
                                  status="received"))


# -- Migration --------------------------------------------------------------------------------


def test_migration_0003_upgrades_and_downgrades_a_fresh_sqlite_file(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'checkins.db'}"
    engine = make_engine(url)
    try:
        migrate.upgrade(url, "0002")
        assert not CHECKIN_TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(url)
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= CHECKIN_TABLES
        assert {"name": "uq_checkins_patient_due_on", "column_names": ["patient_id", "due_on"]} \
            in [{k: u[k] for k in ("name", "column_names")}
                for u in inspector.get_unique_constraints("checkins")]
        assert {fk["referred_table"] for fk in inspector.get_foreign_keys("sms_messages")} == {
            "patients", "conversations"}
        migrate.downgrade(url, "0002")
        inspector = inspect(engine)
        assert not CHECKIN_TABLES & set(inspector.get_table_names())
        assert {"people", "handoffs", "staff_alerts"} <= set(inspector.get_table_names())
        migrate.upgrade(url)
        assert set(inspect(engine).get_table_names()) >= CHECKIN_TABLES
        migrate.downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
