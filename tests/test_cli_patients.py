"""The ``bot patients`` commands, run through ``bot.cli.main`` against a throwaway database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.db import migrate
from bot.db.models import Patient
from bot.db.session import get_engine, unit_of_work

# The CLI checks dates against the real clock, so these are relative to it.
TODAY = dt.date.today()
INDUCTION = [(TODAY - dt.timedelta(days=days)).isoformat() for days in (70, 68, 66)]
LAST_INFUSION = (TODAY - dt.timedelta(days=20)).isoformat()
FUTURE = (TODAY + dt.timedelta(days=5)).isoformat()

# Full numbers that must never be printed, in every form they were typed or stored.
FULL_NUMBERS = ("+15555550123", "5555550123", "555-0123", "555 0123", "+15555550199")


@pytest.fixture
def cli_db(tmp_path: Path, override_settings) -> Iterator[str]:
    """BOT_DATABASE_URL pointed at a fresh, migrated SQLite file for the CLI to use."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    override_settings(BOT_DATABASE_URL=url)
    get_engine.cache_clear()
    migrate.upgrade(url)
    yield url
    get_engine().dispose()
    get_engine.cache_clear()


def _enrol_args(*extra: str, mobile: str = "(555) 555-0123", name: str = "Ana Diaz",
                timezone: str = "America/Denver") -> list[str]:
    args = ["patients", "enrol", "--name", name, "--mobile", mobile, "--timezone", timezone,
            "--last-infusion", LAST_INFUSION, "--consent-version", "sms-v1", *extra]
    for day in INDUCTION:
        args += ["--induction", day]
    return args


def _patient_count() -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Patient))


def _output(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    captured = capsys.readouterr()
    for number in FULL_NUMBERS:
        assert number not in captured.out and number not in captured.err
    return captured.out, captured.err


def test_enrol_then_list_shows_name_and_masked_number(cli_db, capsys) -> None:
    assert main(_enrol_args("--cadence-days", "28")) == 0
    out, _ = _output(capsys)
    assert out == "Enrolled patient #1 (+1******0123)\n"

    assert main(["patients", "list"]) == 0
    out, _ = _output(capsys)
    lines = out.splitlines()
    assert lines[0] == "1 enrolled patient(s)"
    assert "#1" in lines[1] and "Ana Diaz" in lines[1] and "+1******0123" in lines[1]
    assert "America/Denver" in lines[1] and f"last infusion {LAST_INFUSION}" in lines[1]
    assert "every 28 days" in lines[1] and lines[1].rstrip().endswith("active")


def test_enrolling_the_same_number_again_updates(cli_db, capsys) -> None:
    assert main(_enrol_args(mobile="(555) 555-0123")) == 0
    assert main(_enrol_args(mobile="+1 555 555 0123", name="Ana Díaz")) == 0
    out, _ = _output(capsys)
    assert out.splitlines() == ["Enrolled patient #1 (+1******0123)",
                                "Updated patient #1 (+1******0123)"]
    assert _patient_count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (_enrol_args(mobile="555-0123"), "error: mobile: not a valid US number"),
        (_enrol_args(name=" "), "error: name: a name is required"),
        (_enrol_args("--consented-at", FUTURE), "error: consented_at: is in the future"),
        (_enrol_args("--induction", FUTURE),
         f"error: induction_dates: {FUTURE} is in the future"),
        (_enrol_args("--cadence-days", "0"),
         "error: cadence_days: must be between 1 and 365 days"),
        (_enrol_args(timezone="Mountain"),
         "error: timezone: 'Mountain' is not an IANA time zone name"),
    ],
)
def test_invalid_enrolments_print_the_problem_and_store_nothing(
    cli_db, capsys, args: list[str], message: str
) -> None:
    assert main(args) == 1
    out, err = _output(capsys)
    assert out == "" and err.startswith(message)
    assert _patient_count() == 0


def test_a_non_numeric_cadence_is_a_usage_error(cli_db, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(_enrol_args("--cadence-days", "monthly"))
    assert exited.value.code == 2
    assert "--cadence-days" in capsys.readouterr().err


def _write_csv(path: Path, *rows: str, bom: bool = False) -> Path:
    header = "name,mobile,timezone,induction_dates,last_infusion,cadence_days,consent_version," \
             "consented_at"
    path.write_text(("\ufeff" if bom else "") + "\n".join((header, *rows)) + "\n",
                    encoding="utf-8")
    return path


def test_import_enrols_good_rows_and_lists_bad_ones(cli_db, capsys, tmp_path) -> None:
    induction = ";".join(INDUCTION)
    csv_file = _write_csv(
        tmp_path / "patients.csv",
        f"Ana Diaz,(555) 555-0123,America/Denver,{induction},{LAST_INFUSION},28,sms-v1,",
        f"Bad Number,555-0123,America/Denver,{induction},{LAST_INFUSION},,sms-v1,",
        f"Ben Okafor,+1 555 555 0199,America/Chicago,{induction},{LAST_INFUSION},,sms-v1,",
        f"Cy Lee,555 555 0177,America/Chicago,{induction},{FUTURE},,sms-v1,",
        bom=True,
    )
    assert main(["patients", "import", str(csv_file)]) == 1
    out, _ = _output(capsys)
    assert out.splitlines() == [
        "Imported 2 row(s): 2 enrolled, 0 updated",
        "2 row(s) not imported:",
        "  line 3: mobile: not a valid US number (10 digits, e.g. (555) 555-0100, "
        "or +1 and 10 digits)",
        f"  line 5: last_infusion: {FUTURE} is in the future",
    ]
    # The bad number itself is not echoed back.
    assert "555-0123," not in out

    # Importing the good rows again updates them.
    again = _write_csv(
        tmp_path / "again.csv",
        f"Ana Diaz,+15555550123,America/Denver,{induction},{LAST_INFUSION},35,sms-v1,",
        f"Ben Okafor,5555550199,America/Chicago,{induction},{LAST_INFUSION},,sms-v1,",
    )
    assert main(["patients", "import", str(again)]) == 0
    out, _ = _output(capsys)
    assert out == "Imported 2 row(s): 0 enrolled, 2 updated\n"
    assert _patient_count() == 2

    assert main(["patients", "list"]) == 0
    out, _ = _output(capsys)
    assert out.splitlines()[0] == "2 enrolled patient(s)"
    assert "Ana Diaz" in out and "Ben Okafor" in out and "every 35 days" in out
    assert "+1******0123" in out and "+1******0199" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,mobile\nAna,5555550123\n", "missing column(s)"),
        ("", "header: the file is empty"),
    ],
)
def test_a_bad_csv_header_imports_nothing(cli_db, capsys, tmp_path, content, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    assert main(["patients", "import", str(path)]) == 1
    _, err = _output(capsys)
    assert message in err and err.rstrip().endswith("nothing was imported")
    assert _patient_count() == 0


def test_import_of_a_missing_or_non_utf8_file_says_why(cli_db, capsys, tmp_path) -> None:
    assert main(["patients", "import", str(tmp_path / "nope.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("name,mobile\nJosé,5555550123\n".encode("latin-1"))
    assert main(["patients", "import", str(latin1)]) == 1
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_opt_out_and_opt_in(cli_db, capsys) -> None:
    assert main(_enrol_args()) == 0
    capsys.readouterr()
    assert main(["patients", "opt-out", "--mobile", "555.555.0123"]) == 0
    out, _ = _output(capsys)
    assert out == "Patient #1 (+1******0123) opted out of check-in texts\n"

    assert main(["patients", "list"]) == 0
    out, _ = _output(capsys)
    assert f"opted out {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}" in out

    # Re-enrolling keeps the opt-out, and says so.
    assert main(_enrol_args()) == 0
    out, _ = _output(capsys)
    assert out.startswith("Updated patient #1 (+1******0123)\n  This patient opted out")

    assert main(["patients", "opt-in", "--mobile", "+1 555 555 0123"]) == 0
    out, _ = _output(capsys)
    assert out == "Patient #1 (+1******0123) will get check-in texts again\n"
    assert main(["patients", "list"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("active")


@pytest.mark.parametrize("command", ["opt-out", "opt-in"])
def test_opting_an_unknown_or_malformed_number_fails(cli_db, capsys, command) -> None:
    assert main(["patients", command, "--mobile", "555 555 0111"]) == 1
    assert capsys.readouterr().err == "error: No enrolled patient has that mobile number.\n"
    assert main(["patients", command, "--mobile", "12"]) == 1
    assert capsys.readouterr().err.startswith("error: mobile: ")
