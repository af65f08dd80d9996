"""Administration: staff accounts, enrolling patients in SMS check-ins (by form and by CSV, with
the same validation as ``bot patients enrol|import``), the clinic's configuration, and the audit
log.
"""

from __future__ import annotations

import io
import re
from typing import Any

from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import clinic as clinic_config
from bot.console.labels import ROLE_LABELS
from bot.console.web import (
    MAX_ID,
    bad_request,
    console,
    form_value,
    not_found,
    parse_id,
    render_page,
    requires,
    see_other,
    signed_in,
)
from bot.db.models import Patient
from bot.services import audit, patients
from bot.services import staff as staff_service

bp = Blueprint("admin")

MAX_CSV_BYTES = 1_000_000
DONE_MESSAGES = {
    "created": "The account was created.",
    "updated": "The account was updated.",
    "enrolled": "The patient is enrolled.",
    "re_enrolled": "That mobile number was already enrolled; the enrolment was updated.",
    "clinic_saved": "The clinic's details were saved. The assistant uses them within a few "
                    "seconds.",
}
STAFF_FIELDS = ("email", "display_name", "role")
PATIENT_FIELDS = ("name", "mobile", "timezone", "induction_dates", "last_infusion",
                  "cadence_days", "consent_version", "consented_at")
_DATE_SEPARATORS = re.compile(r"[\s,;]+")


def _notice(request: Request) -> str:
    return DONE_MESSAGES.get(str(request.args.get("done") or ""), "")


# -- staff accounts -------------------------------------------------------------------------


def _staff_page(request: Request, *, status: int = 200, error: str = "",
                form: dict[str, str] | None = None) -> HTTPResponse:
    with console(request).unit_of_work() as session:
        users = staff_service.list_users(session)
        return render_page(request, "admin_staff.html", status=status, users=users,
                           error=error, notice=_notice(request) if not error else "",
                           form=form or {key: "" for key in STAFF_FIELDS})


@bp.get("/admin/staff")
@requires("admin.staff")
async def staff_list(request: Request) -> HTTPResponse:
    """Every staff account, and the form to add one."""
    return _staff_page(request)


@bp.post("/admin/staff")
@requires("admin.staff")
async def staff_create(request: Request) -> HTTPResponse:
    """Create a staff account."""
    actor = signed_in(request)
    form = {key: form_value(request, key, 254) for key in STAFF_FIELDS}
    password = str((request.form or {}).get("password") or "")
    if form["role"] not in ROLE_LABELS:
        return _staff_page(request, status=400, error="Choose a role.", form=form)
    try:
        with console(request).unit_of_work() as session:
            staff_service.create_user(session, form["email"], form["display_name"],
                                      form["role"], password, actor_id=actor.id)
    except staff_service.StaffError as error:
        return _staff_page(request, status=400, error=str(error), form=form)
    return see_other("/admin/staff", done="created")


@bp.post("/admin/staff/<user_id>")
@requires("admin.staff")
async def staff_update(request: Request, user_id: str) -> HTTPResponse:
    """Change an account's name, role or status, or set a new password."""
    actor = signed_in(request)
    target = parse_id(user_id, "That staff account")
    role = form_value(request, "role", 40) or None
    if role is not None and role not in ROLE_LABELS:
        raise bad_request("Choose a role.")
    active_raw = form_value(request, "active", 5)
    if active_raw not in ("", "0", "1"):
        raise bad_request("Status must be active or deactivated.")
    password = str((request.form or {}).get("password") or "") or None
    display_name = form_value(request, "display_name", 254) or None
    try:
        with console(request).unit_of_work() as session:
            if staff_service.get_user(session, target) is None:
                raise not_found("That staff account")
            staff_service.update_user(
                session, target, actor_id=actor.id, display_name=display_name, role=role,
                active=None if active_raw == "" else active_raw == "1", password=password)
    except staff_service.StaffError as error:
        return _staff_page(request, status=400, error=str(error))
    return see_other("/admin/staff", done="updated")


# -- patients -------------------------------------------------------------------------------


def _patients_page(request: Request, *, status: int = 200, error: str = "",
                   form: dict[str, str] | None = None, report: Any = None) -> HTTPResponse:
    with console(request).unit_of_work() as session:
        enrolled = patients.list_patients(session)
        return render_page(request, "admin_patients.html", status=status, error=error,
                           notice=_notice(request) if not (error or report) else "",
                           form=form or {key: "" for key in PATIENT_FIELDS},
                           patients=enrolled, report=report,
                           csv_columns=patients.CSV_COLUMNS)


@bp.get("/admin/patients")
@requires("admin.patients")
async def patient_list(request: Request) -> HTTPResponse:
    """Enrolled patients (mobile numbers masked), the enrolment form and the CSV upload."""
    return _patients_page(request)


@bp.post("/admin/patients")
@requires("admin.patients")
async def patient_enrol(request: Request) -> HTTPResponse:
    """Enrol one patient (or update the enrolment with the same mobile number)."""
    actor = signed_in(request)
    form = {key: form_value(request, key, 400) for key in PATIENT_FIELDS}
    dates = [day for day in _DATE_SEPARATORS.split(form["induction_dates"]) if day]
    try:
        with console(request).unit_of_work() as session:
            result = patients.enrol_patient(
                session,
                name=form["name"],
                mobile=form["mobile"],
                timezone=form["timezone"],
                induction_dates=dates,
                last_infusion=form["last_infusion"],
                cadence_days=form["cadence_days"] or None,
                consent_version=form["consent_version"],
                consented_at=form["consented_at"] or None,
            )
            patient = result.patient
            audit.record(session, actor.id, audit.PATIENT_ENROL, "patient", patient.id,
                         person_id=patient.person_id,
                         detail={"created": result.created, "source": "form"})
    except patients.EnrolmentError as error:
        return _patients_page(request, status=400, error=str(error), form=form)
    return see_other("/admin/patients", done="enrolled" if result.created else "re_enrolled")


@bp.post("/admin/patients/import")
@requires("admin.patients")
async def patient_import(request: Request) -> HTTPResponse:
    """Enrol every valid row of an uploaded CSV file; list the rows that were not."""
    actor = signed_in(request)
    upload = request.files.get("file") if request.files else None
    if upload is None or not upload.body:
        return _patients_page(request, status=400, error="Choose a CSV file to import.")
    if len(upload.body) > MAX_CSV_BYTES:
        return _patients_page(request, status=400,
                              error="That file is larger than 1 MB; split it into parts.")
    try:
        # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
        text = upload.body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _patients_page(request, status=400,
                              error="That file is not UTF-8 text; save it as CSV (UTF-8).")
    try:
        with console(request).unit_of_work() as session:
            report = patients.import_csv(session, io.StringIO(text, newline=""))
            for patient_id in report.created + report.updated:
                patient = session.get(Patient, patient_id)
                audit.record(session, actor.id, audit.PATIENT_ENROL, "patient", patient_id,
                             person_id=patient.person_id if patient is not None else None,
                             detail={"created": patient_id in report.created,
                                     "source": "csv"})
            audit.record(session, actor.id, audit.PATIENT_IMPORT, "patient_import", None,
                         detail={"created": len(report.created),
                                 "updated": len(report.updated),
                                 "refused": len(report.errors)})
    except patients.EnrolmentError as error:
        return _patients_page(request, status=400,
                              error=f"{error}. Nothing was imported.")
    return _patients_page(request, report=report)


# -- clinic ----------------------------------------------------------------------------------


@bp.get("/admin/clinic")
@requires("admin.clinic")
async def clinic_form(request: Request) -> HTTPResponse:
    """The clinic's name, phone, hours and FAQ answers, editable."""
    return _clinic_page(request)


def _clinic_page(request: Request, *, status: int = 200, error: str = "",
                 values: dict[str, Any] | None = None) -> HTTPResponse:
    with console(request).unit_of_work() as session:
        current = values if values is not None else _clinic_values(request, session)
        return render_page(request, "admin_clinic.html", status=status, error=error,
                           notice=_notice(request) if not error else "", values=current,
                           days=clinic_config.DAY_KEYS, faq_topics=clinic_config.FAQ_TOPICS)


def _clinic_values(request: Request, session: Any) -> dict[str, Any]:
    """The values in force: the configuration file's, with the newest saved overrides."""
    values = clinic_config.editable_values(
        clinic_config.load_clinic(console(request).settings.clinic_config))
    overrides = clinic_config.current_overrides(session)
    values["faq"] = {**values["faq"], **(overrides.pop("faq", None) or {})}
    values.update(overrides)
    return values


@bp.post("/admin/clinic")
@requires("admin.clinic")
async def clinic_save(request: Request) -> HTTPResponse:
    """Validate and save the clinic's details (a new override row; the newest wins)."""
    actor = signed_in(request)
    values: dict[str, Any] = {
        "name": form_value(request, "name", 200),
        "phone": form_value(request, "phone", 40),
        "hours_text": form_value(request, "hours_text", 400),
        "hours": {day: form_value(request, f"hours_{day}", 20)
                  for day in clinic_config.DAY_KEYS},
        "faq": {topic: form_value(request, f"faq_{topic}", 2000)
                for topic in clinic_config.FAQ_TOPICS},
    }
    try:
        with console(request).unit_of_work() as session:
            clinic_config.save_overrides(session, values, actor.id)
    except clinic_config.ClinicConfigError as error:
        return _clinic_page(request, status=400, error=str(error), values=values)
    return see_other("/admin/clinic", done="clinic_saved")


# -- audit log ------------------------------------------------------------------------------


def _optional_id(raw: Any, what: str) -> int | None:
    text = str(raw or "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise bad_request(f"{what} must be a number.")
    return int(text)


@bp.get("/admin/audit")
@requires("audit.view")
async def audit_log(request: Request) -> HTTPResponse:
    """The audit log, newest first, filtered by staff member or person."""
    actor = signed_in(request)
    user_id = _optional_id(request.args.get("user"), "The staff member")
    person_id = _optional_id(request.args.get("person"), "The person id")
    limit = 500
    with console(request).unit_of_work() as session:
        events = audit.query(session, staff_user_id=user_id, person_id=person_id, limit=limit)
        users = staff_service.list_users(session)
        # The person id goes into the detail only: it may name nobody.
        audit.record(session, actor.id, audit.AUDIT_VIEW, "audit_log", None,
                     detail={"staff_user_id": user_id, "person_id": person_id})
        return render_page(request, "admin_audit.html", events=events, users=users,
                           names={user.id: user.display_name for user in users},
                           filters={"user": str(user_id or ""), "person": str(person_id or "")},
                           limit=limit)
