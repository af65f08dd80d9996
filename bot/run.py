"""Run the whole product locally: action server, Rasa server, the demo clinic page, the staff
console, the local stand-in for Twilio's Messages API and the check-in scheduler.

``make run`` calls ``bot run``. Each part is a child process; Ctrl-C (or any part exiting)
stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import PROJECT_ROOT, get_settings, load_settings

MODEL_PATH = PROJECT_ROOT / "models" / "intake.tar.gz"
ACTION_PORT = 5055
RASA_PORT = 5005
DEMO_PORT = 8000
ALERT_PORT = 8025
SMS_PORT = 8026
CONSOLE_PORT = 8030
DEMO_ADMIN_EMAIL = "admin@clinic.local"
_DEMO_ADMIN_SECRET = "BOT_DEMO_ADMIN_PASSWORD"  # noqa: S105 - a variable name, not a secret


@dataclass
class Stack:
    """The running child processes, started by :func:`start_stack`."""

    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    rasa_url: str = ""
    action_url: str = ""
    demo_url: str = ""
    console_url: str = ""
    log_dir: Path | None = None
    commands: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def start_process(self, name: str) -> subprocess.Popen:
        """Start (or restart) one of the stack's processes, e.g. ``actions``."""
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (child owns it)
        process = subprocess.Popen(  # noqa: S603 (fixed argv)
            self.commands[name], cwd=PROJECT_ROOT, env=self.env, stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
        self.processes[name] = process
        return process

    def stop_process(self, name: str, timeout: float = 15) -> None:
        """Stop one process (tests stop the action server to check the assistant copes)."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self, timeout: float = 15) -> None:
        """Stop every process, politely first."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def wait_until_up(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not come up within {timeout:.0f}s")


def start_stack(
    *,
    env: dict[str, str] | None = None,
    action_port: int = ACTION_PORT,
    rasa_port: int = RASA_PORT,
    demo_port: int | None = DEMO_PORT,
    endpoints: Path | None = None,
    log_dir: Path | None = None,
    timeout: float = 180,
    alert_port: int | None = None,
    sms_port: int | None = None,
    scheduler: bool = False,
    console_port: int | None = None,
) -> Stack:
    """Start the action server, the Rasa server and (optionally) the demo page.

    Args:
        env: Environment for the children (defaults to this process's).
        action_port: Port of the action server.
        rasa_port: Port of the Rasa server.
        demo_port: Port of the demo page, or ``None`` for no demo page.
        endpoints: The endpoints file for Rasa (``endpoints.yml`` by default, which takes the
            action server's URL and the tracker database from the environment).
        log_dir: Where each child's output goes (inherited stdout when ``None``).
        timeout: Seconds to wait for everything to answer.
        alert_port: Where to run the local staff-alert receiver (the local demo's stand-in for
            the clinic's pager or chat webhook), or ``None`` for none. It is used only when no
            ``BOT_ALERT_WEBHOOK_URL`` is configured.
        sms_port: Where to run the local stand-in for Twilio's Messages API (texts the
            assistant sends are recorded there, never sent), or ``None`` for none. It needs
            ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` (the local demo generates them).
        scheduler: Whether to run the check-in scheduler (``bot checkins serve``).
        console_port: Where to run the staff console, or ``None`` for none.

    Returns:
        The running stack. Call :meth:`Stack.stop` when done.
    """
    if not MODEL_PATH.exists():
        raise FileNotFoundError(f"{MODEL_PATH} is missing: run `make setup` first")
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child_env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    child_env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    child_env["BOT_ACTION_SERVER_URL"] = f"http://localhost:{action_port}/webhook"
    local_alerts = alert_port is not None and not child_env.get("BOT_ALERT_WEBHOOK_URL")
    if local_alerts:
        child_env["BOT_ALERT_WEBHOOK_URL"] = f"http://127.0.0.1:{alert_port}/"
    if sms_port is not None:
        child_env["TWILIO_API_BASE_URL"] = f"http://127.0.0.1:{sms_port}"
    child_env["BOT_RASA_URL"] = f"http://localhost:{rasa_port}"
    settings = load_settings(child_env)
    child_env.setdefault("BOT_TRACKER_DB", str(settings.data_dir / "tracker.db"))
    if sms_port is not None:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise RuntimeError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed for SMS")
        # The stand-in reads the same variables the twilio library does.
        child_env["TWILIO_ACCOUNT_SID"] = settings.twilio_account_sid
        child_env["TWILIO_AUTH_TOKEN"] = settings.twilio_auth_token
    origins = " ".join(settings.widget_allowed_origins)
    if demo_port is not None:
        origins = f"{origins} http://localhost:{demo_port} http://127.0.0.1:{demo_port}"
    endpoints_file = endpoints or PROJECT_ROOT / "endpoints.yml"

    commands: dict[str, list[str]] = {
        "actions": [_bin("rasa"), "run", "actions", "--port", str(action_port),
                    "--actions", "actions"],
        "rasa": [_bin("rasa"), "run", "--model", str(MODEL_PATH),
                 "--endpoints", str(endpoints_file),
                 "--credentials", str(PROJECT_ROOT / "credentials.yml"),
                 "--port", str(rasa_port), "--interface", "127.0.0.1",
                 "--cors", *origins.split()],
    }
    if local_alerts:
        commands["alerts"] = [sys.executable, "-m", "bot.alerts.receiver",
                              "--port", str(alert_port),
                              "--out", str(settings.data_dir / "staff-alerts.jsonl")]
    if sms_port is not None:
        commands["sms"] = [sys.executable, "-m", "bot.sms.standin", "--port", str(sms_port),
                           "--record", str(settings.data_dir / "sms-outbound.jsonl")]
    if settings.rasa_api_token:
        # The HTTP API (pause/resume for staff takeover, the scheduler's trigger_intent) is
        # only ever on with a token.
        commands["rasa"] += ["--enable-api", "--auth-token", settings.rasa_api_token]
    if scheduler:
        if not settings.rasa_api_token:
            raise RuntimeError("The check-in scheduler needs BOT_RASA_API_TOKEN")
        commands["scheduler"] = [_bin("bot"), "checkins", "serve"]
    if console_port is not None:
        commands["console"] = [sys.executable, "-m", "bot.console", "--port", str(console_port)]
        child_env["BOT_CONSOLE_URL"] = f"http://127.0.0.1:{console_port}"
    if demo_port is not None:
        commands["demo"] = [sys.executable, "-m", "bot.web.demo", "--port", str(demo_port),
                            "--widget-src",
                            f"http://localhost:{rasa_port}/webhooks/widget/widget.js"]
    stack = Stack(
        rasa_url=f"http://localhost:{rasa_port}",
        action_url=f"http://localhost:{action_port}",
        demo_url=f"http://localhost:{demo_port}" if demo_port is not None else "",
        console_url=f"http://127.0.0.1:{console_port}" if console_port is not None else "",
        log_dir=log_dir,
        commands=commands,
        env=child_env,
    )
    try:
        for name in commands:
            stack.start_process(name)
        wait_until_up(f"{stack.action_url}/health", timeout, stack.processes["actions"])
        wait_until_up(f"{stack.rasa_url}/webhooks/rest/", timeout, stack.processes["rasa"])
        if sms_port is not None:
            wait_until_up(f"http://127.0.0.1:{sms_port}/_standin/messages", timeout,
                          stack.processes["sms"])
        if demo_port is not None:
            wait_until_up(stack.demo_url + "/", timeout, stack.processes["demo"])
        if console_port is not None:
            wait_until_up(stack.console_url + "/login", timeout, stack.processes["console"])
    except BaseException:
        stack.stop()
        raise
    return stack


def ensure_demo_admin() -> tuple[str, str, bool]:
    """The local demo's console admin: created on first use, its password kept in the local
    secrets file (``var/secrets.json``).

    Only the local demo set-up (``BOT_ENV=local``) has this account; anywhere else the first
    admin is made with ``bot staff create-admin``, and there are no default credentials.

    Returns:
        The login email, its password, and whether the account was created now.

    Raises:
        RuntimeError: Not the local demo set-up.
    """
    from bot.db.models import StaffRole
    from bot.db.session import unit_of_work
    from bot.services import staff
    from bot.settings import _local_secrets

    settings = get_settings()
    if not settings.is_local:
        raise RuntimeError("The demo admin exists only in the local demo set-up")
    password = _local_secrets(settings.data_dir, [_DEMO_ADMIN_SECRET])[_DEMO_ADMIN_SECRET]
    with unit_of_work() as session:
        if staff.find_by_email(session, DEMO_ADMIN_EMAIL) is not None:
            return DEMO_ADMIN_EMAIL, password, False
        staff.create_user(session, DEMO_ADMIN_EMAIL, "Demo Admin", StaffRole.ADMIN, password)
    return DEMO_ADMIN_EMAIL, password, True


def run_all(with_demo: bool = True) -> int:
    """Start everything, print the URLs, and wait for Ctrl-C."""
    admin: tuple[str, str, bool] | None = None
    if get_settings().is_local:
        admin = ensure_demo_admin()
    print("Starting the action server and Rasa (loading the model takes a little while)...")
    stack = start_stack(demo_port=DEMO_PORT if with_demo else None, alert_port=ALERT_PORT,
                        sms_port=SMS_PORT, scheduler=True, console_port=CONSOLE_PORT)
    print()
    print("The assistant is running:")
    if with_demo:
        print(f"  Demo clinic page with the chat widget:  {stack.demo_url}/")
    print(f"  Staff console:   {stack.console_url}/")
    if admin is not None:
        print(f"                   demo admin login (local demo only): {admin[0]} / {admin[1]}")
    print(f"  REST channel:    {stack.rasa_url}/webhooks/rest/webhook")
    print(f"  Widget channel:  {stack.rasa_url}/webhooks/widget/")
    print(f"  Action server:   {stack.action_url}/health")
    print(f"  Database:        {get_settings().database_url}")
    if "alerts" in stack.processes:
        print(f"  Staff alerts:    http://127.0.0.1:{ALERT_PORT}/ (local receiver), written to "
              f"{get_settings().data_dir / 'staff-alerts.jsonl'}")
    print(f"  SMS webhook:     {stack.rasa_url}/webhooks/twilio/webhook (Twilio signature "
          "required)")
    print(f"  Texts sent:      recorded by the local Twilio stand-in at http://127.0.0.1:"
          f"{SMS_PORT}/_standin/messages and in {get_settings().data_dir / 'sms-outbound.jsonl'}")
    print("  Text the assistant like a patient would (signed like Twilio, replies printed):")
    print('                   .venv/bin/bot patients enrol --name "Dana Whitfield" '
          '--mobile +15555550123 --timezone America/Los_Angeles --induction 2026-09-01 '
          '--last-infusion 2026-10-01 --consent-version sms-v1')
    print('                   .venv/bin/bot sms send +15555550123 "I think I need a booster"')
    print("  Check-ins:       the scheduler runs every minute (bot checkins run does one pass)")
    print("  Staff look-ups:  .venv/bin/bot handoffs list   |   .venv/bin/bot intake list")
    print("Press Ctrl-C to stop.")
    try:
        while all(process.poll() is None for process in stack.processes.values()):
            time.sleep(0.5)
        failed = [name for name, p in stack.processes.items() if p.poll() is not None]
        print(f"Stopped because {', '.join(failed)} exited.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...")
        return 0
    finally:
        stack.stop()
