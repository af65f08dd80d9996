"""The ``bot`` command: database migrations, running the product, and staff look-ups.

Examples::

    bot db upgrade
    bot run
    bot intake list
    bot handoffs list
    bot patients enrol --name "Ana Diaz" --mobile "(555) 555-0123" --timezone America/Denver \
        --induction 2026-09-01 --induction 2026-09-03 --last-infusion 2026-10-20 \
        --consent-version sms-v1
    bot patients import patients.csv
    bot patients list
    bot patients opt-out --mobile "(555) 555-0123"
    bot sms send +15555550123 "I think I need a booster"
    bot checkins run
    bot checkins serve
    bot staff create-admin --email admin@clinic.example --name "Dana Reyes"
    bot staff list
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import json
import sys
from collections.abc import Sequence
from typing import Any

from bot.sms import phone


def _db_upgrade(_args: argparse.Namespace) -> int:
    from bot.db import migrate
    from bot.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url)
    return 0


def _run(args: argparse.Namespace) -> int:
    from bot.run import run_all

    return run_all(with_demo=not args.no_demo)


def _intake_list(_args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import intake

    with unit_of_work() as session:
        rows = intake.partial_intakes(session)
        print(f"{len(rows)} intake(s) started but not submitted")
        for conversation in rows:
            answered = len(intake.latest_answers(session, conversation.sender_id))
            last = f"{conversation.last_activity_at:%Y-%m-%d %H:%M}"
            print(f"  conversation {conversation.id}  {conversation.channel.value:<6} "
                  f"{answered:>2} answers  last active {last}")
    return 0


def _handoffs_list(args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import handoffs

    with unit_of_work() as session:
        queue = handoffs.queue(session)
        print(f"{len(queue)} open handoff(s)")
        for handoff in queue:
            print(f"  #{handoff.id} {handoff.priority.value:<8} {handoff.reason.value:<18} "
                  f"conversation {handoff.conversation_id}  {handoff.created_at:%Y-%m-%d %H:%M}")
            if args.details:
                print("    " + json.dumps(handoff.summary, indent=2).replace("\n", "\n    "))
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _patients_enrol(args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import patients

    try:
        with unit_of_work() as session:
            result = patients.enrol_patient(
                session,
                name=args.name,
                mobile=args.mobile,
                timezone=args.timezone,
                induction_dates=args.induction,
                last_infusion=args.last_infusion,
                cadence_days=args.cadence_days,
                consent_version=args.consent_version,
                consented_at=args.consented_at,
            )
            patient = result.patient
            masked = phone.mask(patient.mobile)
    except patients.EnrolmentError as error:
        return _fail(str(error))
    print(f"{'Enrolled' if result.created else 'Updated'} patient #{patient.id} ({masked})")
    if patient.opted_out_at is not None:
        print(f"  This patient opted out of texts on {patient.opted_out_at:%Y-%m-%d} and stays "
              "opted out; `bot patients opt-in` resumes texts if they ask.")
    return 0


def _patients_import(args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import patients

    try:
        # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
        with open(args.file, encoding="utf-8-sig", newline="") as handle, \
                unit_of_work() as session:
            report = patients.import_csv(session, handle)
    except OSError as error:
        return _fail(f"cannot read {args.file}: {error.strerror or error}")
    except UnicodeDecodeError:
        return _fail(f"{args.file} is not UTF-8 text; save it as CSV (UTF-8)")
    except patients.EnrolmentError as error:
        return _fail(f"{args.file}: {error}; nothing was imported")
    imported = len(report.created) + len(report.updated)
    print(f"Imported {imported} row(s): {len(report.created)} enrolled, "
          f"{len(report.updated)} updated")
    if report.errors:
        print(f"{len(report.errors)} row(s) not imported:")
        for row in report.errors:
            print(f"  line {row.line}: {row.message}")
        return 1
    return 0


def _patients_list(args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import patients

    with unit_of_work() as session:
        rows = patients.list_patients(session, active_only=args.active)
        print(f"{len(rows)} enrolled patient(s)")
        for patient in rows:
            if patient.opted_out_at is not None:
                status = f"opted out {patient.opted_out_at:%Y-%m-%d}"
            else:
                status = "active" if patient.active else "inactive"
            cadence = (f"every {patient.cadence_days} days" if patient.cadence_days
                       else "clinic default")
            print(f"  #{patient.id:<4} {patient.name:<24} {phone.mask(patient.mobile)}"
                  f"  {patient.timezone:<20} last infusion {patient.last_infusion_on:%Y-%m-%d}"
                  f"  {cadence:<15} {status}")
    return 0


def _patients_opt(args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import patients

    try:
        with unit_of_work() as session:
            if args.opt_in:
                patient = patients.opt_in(session, args.mobile)
            else:
                patient = patients.opt_out(session, args.mobile)
            masked = phone.mask(patient.mobile)
    except (patients.EnrolmentError, patients.PatientNotFoundError) as error:
        return _fail(str(error))
    state = "will get check-in texts again" if args.opt_in else "opted out of check-in texts"
    print(f"Patient #{patient.id} ({masked}) {state}")
    return 0


def _add_patient_commands(commands: argparse._SubParsersAction) -> None:
    patients_cmd = commands.add_parser(
        "patients", help="existing patients enrolled in SMS check-ins"
    )
    patient_commands = patients_cmd.add_subparsers(dest="patients_command", required=True)

    enrol = patient_commands.add_parser(
        "enrol", help="enrol a patient (or update the enrolment with the same mobile number)"
    )
    enrol.add_argument("--name", required=True, help="the patient's name")
    enrol.add_argument("--mobile", required=True,
                       help='mobile number, e.g. "(555) 555-0100" or "+1 555 555 0100"')
    enrol.add_argument("--timezone", required=True, help="IANA time zone, e.g. America/Denver")
    enrol.add_argument("--induction", action="append", required=True, metavar="DATE",
                       help="an induction infusion date (YYYY-MM-DD); repeat for each")
    enrol.add_argument("--last-infusion", required=True, metavar="DATE",
                       help="date of the last infusion or booster (YYYY-MM-DD)")
    enrol.add_argument("--cadence-days", type=int, metavar="N",
                       help="days between check-ins (default: the clinic's)")
    enrol.add_argument("--consent-version", required=True,
                       help="wording version of the SMS consent the patient signed")
    enrol.add_argument("--consented-at", metavar="WHEN",
                       help="when they consented, YYYY-MM-DD or ISO 8601 (default: now)")
    enrol.set_defaults(func=_patients_enrol)

    importing = patient_commands.add_parser(
        "import", help="enrol or update patients from a CSV file; bad rows are listed"
    )
    importing.add_argument(
        "file", help="CSV with columns name,mobile,timezone,induction_dates,last_infusion,"
                     "cadence_days,consent_version,consented_at")
    importing.set_defaults(func=_patients_import)

    listing = patient_commands.add_parser(
        "list", help="enrolled patients, with masked mobile numbers"
    )
    listing.add_argument("--active", action="store_true", help="only active enrolments")
    listing.set_defaults(func=_patients_list)

    for name, opting_in, help_text in (
        ("opt-out", False, "stop check-in texts to a patient"),
        ("opt-in", True, "resume check-in texts to a patient who opted out"),
    ):
        opt = patient_commands.add_parser(name, help=help_text)
        opt.add_argument("--mobile", required=True, help="the patient's mobile number")
        opt.set_defaults(func=_patients_opt, opt_in=opting_in)


def _checkin_sender() -> Any:
    from bot.checkins.trigger import RasaTriggerSender
    from bot.settings import get_settings

    settings = get_settings()
    return RasaTriggerSender(settings.rasa_url, settings.rasa_api_token)


def _checkins_run(args: argparse.Namespace) -> int:
    from bot.checkins import scheduler
    from bot.clinic import get_clinic
    from bot.db.models import utcnow

    report = scheduler.run_once(now=utcnow(), policy=get_clinic().checkins,
                                sender=_checkin_sender())
    for name, value in dataclasses.asdict(report).items():
        print(f"{name.replace('_', ' ')}: {value}")
    return 0


def _checkins_serve(args: argparse.Namespace) -> int:
    from bot.checkins import scheduler
    from bot.clinic import get_clinic

    print(f"Check-in scheduler: a pass every {args.interval:g}s; Ctrl-C stops it.", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.serve(policy=get_clinic().checkins, sender=_checkin_sender(),
                        interval=args.interval)
    return 0


def _sms_send(args: argparse.Namespace) -> int:
    from bot.settings import get_settings
    from bot.sms import simulate
    from bot.sms.phone import to_e164

    settings = get_settings()
    sender = to_e164(args.mobile)
    if sender is None:
        return _fail("That is not a phone number.")
    if not (settings.twilio_account_sid and settings.twilio_auth_token
            and settings.twilio_from_number):
        return _fail("TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER are needed.")
    standin = settings.twilio_api_base_url
    before = 0
    if standin:
        try:
            before = len([m for m in simulate.standin_messages(standin) if m.get("to") == sender])
        except OSError:
            return _fail(f"No Twilio stand-in answers at {standin}: is `make run` running?")
    params = simulate.inbound_params(account_sid=settings.twilio_account_sid, from_=sender,
                                     to=settings.twilio_from_number, body=args.text)
    url = f"{settings.rasa_url}/webhooks/twilio/webhook"
    try:
        status = simulate.post_inbound(url, settings.twilio_auth_token, params)
    except OSError as error:
        return _fail(f"The assistant did not answer at {url}: {type(error).__name__}")
    if status != 200:
        return _fail(f"The webhook answered HTTP {status}.")
    if not standin:
        print("Sent. Replies go through Twilio's REST API.")
        return 0
    replies = simulate.replies_since(standin, sender, before, wait=args.wait)
    if not replies:
        print("(no reply yet)")
    for reply in replies:
        print(f"< {reply['body']}")
    return 0


def _add_sms_commands(commands: argparse._SubParsersAction) -> None:
    sms = commands.add_parser("sms", help="text the assistant locally")
    sms_commands = sms.add_subparsers(dest="sms_command", required=True)
    send = sms_commands.add_parser(
        "send", help="send a text as if from a phone, signed the way Twilio signs webhooks, "
                     "and print the replies the local Twilio stand-in received")
    send.add_argument("mobile", help="the sender's number, e.g. +15555550123")
    send.add_argument("text", help="the message")
    send.add_argument("--wait", type=float, default=20.0,
                      help="seconds to wait for replies (default 20)")
    send.set_defaults(func=_sms_send)

    checkins_cmd = commands.add_parser("checkins", help="the SMS check-in scheduler")
    checkin_commands = checkins_cmd.add_subparsers(dest="checkins_command", required=True)
    run = checkin_commands.add_parser(
        "run", help="one pass: plan due check-ins, send those inside the send window, remind, "
                    "close unanswered ones (for cron)")
    run.set_defaults(func=_checkins_run)
    serve = checkin_commands.add_parser("serve", help="run a pass every --interval seconds")
    serve.add_argument("--interval", type=float, default=60.0, help="seconds (default 60)")
    serve.set_defaults(func=_checkins_serve)


def _read_new_password(args: argparse.Namespace) -> str | None:
    """The new account's password from stdin (``--password-stdin``) or a prompt; ``None`` after
    an error message."""
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        _fail("No terminal to ask for the password on: pipe it in with --password-stdin.")
        return None
    password = getpass.getpass("Password (at least 12 characters): ")
    if getpass.getpass("Password again: ") != password:
        _fail("The passwords do not match.")
        return None
    return password


def _staff_create_admin(args: argparse.Namespace) -> int:
    from bot.db.models import StaffRole
    from bot.db.session import unit_of_work
    from bot.services import staff

    password = _read_new_password(args)
    if password is None:
        return 1
    try:
        with unit_of_work() as session:
            user = staff.create_user(session, args.email, args.name, StaffRole.ADMIN, password)
            user_id, email = user.id, user.email
    except staff.StaffError as error:
        return _fail(str(error))
    print(f"Created admin #{user_id} {email}; they can sign in to the staff console now.")
    return 0


def _staff_list(_args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import staff

    with unit_of_work() as session:
        users = staff.list_users(session)
        print(f"{len(users)} staff account(s)")
        for user in users:
            last = (f"last login {user.last_login_at:%Y-%m-%d %H:%M}" if user.last_login_at
                    else "never logged in")
            state = "active" if user.active else "inactive"
            print(f"  #{user.id:<4} {user.email:<32} {user.display_name:<24} "
                  f"{user.role.value:<10} {state:<8} {last}")
    return 0


def _add_staff_commands(commands: argparse._SubParsersAction) -> None:
    staff_cmd = commands.add_parser("staff", help="staff accounts of the staff console")
    staff_commands = staff_cmd.add_subparsers(dest="staff_command", required=True)
    create = staff_commands.add_parser(
        "create-admin", help="create an admin account (the password is asked for, never "
                             "given on the command line)")
    create.add_argument("--email", required=True, help="the login email")
    create.add_argument("--name", required=True, help="the name colleagues see")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    create.set_defaults(func=_staff_create_admin)
    staff_commands.add_parser("list", help="every staff account").set_defaults(func=_staff_list)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="bot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply every migration").set_defaults(func=_db_upgrade)

    run = commands.add_parser("run", help="run the action server, Rasa and the demo page")
    run.add_argument("--no-demo", action="store_true", help="do not serve the demo page")
    run.set_defaults(func=_run)

    intake_cmd = commands.add_parser("intake", help="website intakes")
    intake_commands = intake_cmd.add_subparsers(dest="intake_command", required=True)
    intake_commands.add_parser("list", help="intakes started but not submitted").set_defaults(
        func=_intake_list
    )

    handoff_cmd = commands.add_parser("handoffs", help="the staff handoff queue")
    handoff_commands = handoff_cmd.add_subparsers(dest="handoff_command", required=True)
    listing = handoff_commands.add_parser("list", help="open handoffs, most urgent first")
    listing.add_argument("--details", action="store_true", help="print each summary (PHI)")
    listing.set_defaults(func=_handoffs_list)

    _add_patient_commands(commands)
    _add_sms_commands(commands)
    _add_staff_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bot`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
