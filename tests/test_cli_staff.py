"""The ``bot staff`` commands, run through ``bot.cli.main`` against a throwaway database."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.db import migrate
from bot.db.models import AuditEvent, StaffRole, StaffUser
from bot.db.session import get_engine, unit_of_work
from bot.services import staff

PASSWORD = "a long enough password"


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


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str, tty: bool = False) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal(text) if tty else io.StringIO(text))


def _prompts(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    asked: list[str] = []
    replies = iter(answers)

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return next(replies)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    return asked


def _users() -> list[StaffUser]:
    with unit_of_work() as session:
        return list(session.scalars(select(StaffUser).order_by(StaffUser.id)))


def test_create_admin_reads_the_password_from_stdin(cli_db, monkeypatch, capsys) -> None:
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["staff", "create-admin", "--email", "Dana@Clinic.example", "--name",
                 "Dana Reyes", "--password-stdin"]) == 0

    out, err = capsys.readouterr()
    assert "Created admin #1 dana@clinic.example" in out and err == ""
    assert PASSWORD not in out
    [user] = _users()
    assert (user.email, user.display_name, user.role, user.active) == (
        "dana@clinic.example", "Dana Reyes", StaffRole.ADMIN, True)
    assert staff.verify_password(user.password_hash, PASSWORD)
    with unit_of_work() as session:
        [event] = session.scalars(select(AuditEvent)).all()
        assert (event.action, event.staff_user_id, event.detail) == (
            "staff.create", None, {"role": "admin"})


def test_create_admin_asks_twice_on_a_terminal(cli_db, monkeypatch, capsys) -> None:
    _stdin(monkeypatch, "", tty=True)
    asked = _prompts(monkeypatch, PASSWORD, PASSWORD)
    assert main(["staff", "create-admin", "--email", "dana@clinic.example", "--name",
                 "Dana Reyes"]) == 0
    assert len(asked) == 2
    [user] = _users()
    assert staff.verify_password(user.password_hash, PASSWORD)


def test_passwords_that_differ_create_nothing(cli_db, monkeypatch, capsys) -> None:
    _stdin(monkeypatch, "", tty=True)
    _prompts(monkeypatch, PASSWORD, PASSWORD + "x")
    assert main(["staff", "create-admin", "--email", "dana@clinic.example", "--name",
                 "Dana"]) == 1
    assert "do not match" in capsys.readouterr().err
    assert _users() == []


def test_without_a_terminal_or_password_stdin_there_is_no_default_password(
    cli_db, monkeypatch, capsys
) -> None:
    _stdin(monkeypatch, PASSWORD + "\n")
    asked = _prompts(monkeypatch)
    assert main(["staff", "create-admin", "--email", "dana@clinic.example", "--name",
                 "Dana"]) == 1
    assert "--password-stdin" in capsys.readouterr().err
    assert asked == [] and _users() == []


@pytest.mark.parametrize(
    ("stdin", "args", "message"),
    [
        ("", [], "password: use at least 12"),
        ("short\n", [], "password: use at least 12"),
        (PASSWORD + "\n", ["--email", "not-an-email"], "email: not an email address"),
    ],
)
def test_bad_values_are_refused_clearly(cli_db, monkeypatch, capsys, stdin, args,
                                        message) -> None:
    _stdin(monkeypatch, stdin)
    argv = ["staff", "create-admin", "--email", "dana@clinic.example", "--name", "Dana",
            "--password-stdin", *args]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert _users() == []


def test_an_email_already_in_use_is_refused(cli_db, monkeypatch, capsys) -> None:
    for _ in range(2):
        _stdin(monkeypatch, PASSWORD + "\n")
        code = main(["staff", "create-admin", "--email", "dana@clinic.example", "--name",
                     "Dana", "--password-stdin"])
    assert code == 1
    assert "already an account" in capsys.readouterr().err
    assert len(_users()) == 1


def test_list_shows_every_account(cli_db, monkeypatch, capsys) -> None:
    with unit_of_work() as session:
        staff.create_user(session, "zoe@clinic.example", "Zoe Park", "front_desk", PASSWORD)
        admin = staff.create_user(session, "dana@clinic.example", "Dana Reyes", "admin",
                                  PASSWORD)
        staff.authenticate(session, "dana@clinic.example", PASSWORD, "127.0.0.1")
        admin_id = admin.id
    assert main(["staff", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "2 staff account(s)"
    assert lines[1].split()[:5] == [f"#{admin_id}", "dana@clinic.example", "Dana", "Reyes",
                                    "admin"]
    assert "last login" in lines[1]
    assert lines[2].split()[1:] == ["zoe@clinic.example", "Zoe", "Park", "front_desk",
                                    "active", "never", "logged", "in"]
    assert "$argon2" not in out
