"""The local demo's console admin: made by ``make run`` in the local set-up only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.settings import PROJECT_ROOT

SCRIPT = """
import json
from bot.run import ensure_demo_admin
from bot.db.session import unit_of_work
from bot.services import staff
email, password, created = ensure_demo_admin()
with unit_of_work() as session:
    user = staff.authenticate(session, email, password, client="test")
    role = user.role.value
print(json.dumps({"email": email, "password": password, "created": created, "role": role}))
"""


def _env(data_dir: Path, env: str) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "TWILIO_"))}
    child.update({"BOT_ENV": env, "BOT_DATA_DIR": str(data_dir),
                  "BOT_DATABASE_URL": f"sqlite:///{data_dir / 'app.db'}"})
    return child


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=120, check=False)


def test_the_local_demo_gets_one_admin_whose_password_is_kept_in_the_local_secrets(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path, "local")
    bot = str(Path(sys.executable).parent / "bot")
    assert _run([bot, "db", "upgrade"], env).returncode == 0
    first = _run([sys.executable, "-c", SCRIPT], env)
    assert first.returncode == 0, first.stderr[-2000:]
    made = json.loads(first.stdout.strip().splitlines()[-1])
    assert made["created"] is True and made["role"] == "admin"
    assert len(made["password"]) >= 12
    again = json.loads(_run([sys.executable, "-c", SCRIPT], env).stdout.strip().splitlines()[-1])
    assert again == {**made, "created": False}
    secrets_file = json.loads((tmp_path / "secrets.json").read_text())
    assert secrets_file["BOT_DEMO_ADMIN_PASSWORD"] == made["password"]


def test_there_is_no_default_admin_outside_the_local_demo(tmp_path: Path) -> None:
    env = _env(tmp_path, "production")
    env.update({"BOT_DATA_KEY": "x" * 44, "BOT_INDEX_KEY": "y" * 43, "BOT_WIDGET_SECRET": "z" * 43})
    result = _run([sys.executable, "-c", SCRIPT], env)
    assert result.returncode != 0
    assert "only in the local demo" in result.stderr
    assert not (tmp_path / "secrets.json").exists()
