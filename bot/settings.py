"""The one place configuration is read from.

Every process (Rasa server, action server, CLI, web pages) reads its settings through
:func:`get_settings`, which reads environment variables once per process. Secrets never live in
the repository: in production they come from the environment; in the local demo
(``BOT_ENV=local``, the default) they are generated once into ``var/secrets.json`` so that
``make run`` works on a bare machine.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypedDict, TypeVar

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_SECRET_NAMES = ("BOT_DATA_KEY", "BOT_INDEX_KEY", "BOT_WIDGET_SECRET")
# Generated for the local demo too, but required elsewhere only when a webhook URL is set.
_ALERT_SECRET_NAME = "BOT_ALERT_WEBHOOK_SECRET"  # noqa: S105 - a variable name, not a secret
_RASA_TOKEN_NAME = "BOT_RASA_API_TOKEN"  # noqa: S105 - a variable name, not a secret
_TWILIO_TOKEN_NAME = "TWILIO_AUTH_TOKEN"  # noqa: S105 - a variable name, not a secret
_TWILIO_SID_NAME = "TWILIO_ACCOUNT_SID"
LOCAL_TWILIO_NUMBER = "+15550100000"
LOCAL_SMS_STANDIN_URL = "http://127.0.0.1:8026"
"""The local demo's stand-in for Twilio's REST API (``bot run`` starts it); nothing local
ever reaches Twilio."""
"""The clinic's texting number in the local demo (a 555-01xx number, reserved for fiction)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class SettingsError(RuntimeError):
    """Raised when a required setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration, read from the environment."""

    env: str
    data_dir: Path
    database_url: str
    clinic_config: Path
    data_key: str
    index_key: bytes
    widget_secret: bytes
    widget_allowed_origins: tuple[str, ...]
    # Staff alerts (bot.alerts): a signed HTTP webhook and/or email over SMTP.
    alert_webhook_url: str | None = None
    alert_webhook_secret: bytes | None = None
    alert_smtp_host: str | None = None
    alert_smtp_port: int = 25
    alert_smtp_from: str | None = None
    alert_smtp_to: tuple[str, ...] = ()
    alert_smtp_username: str | None = None
    alert_smtp_password: str | None = None
    alert_smtp_starttls: bool = False
    alert_attempts: int = 3
    alert_retry_delay: float = 1.0
    console_url: str = "http://localhost:8030"
    console_secure_cookies: bool = False
    """Mark the staff console's cookies Secure even on plain-HTTP requests (set it behind a
    TLS-terminating proxy; requests that arrive over HTTPS always get Secure cookies)."""
    rasa_api_token: str | None = None
    """Token for Rasa's HTTP API (staff takeover pauses and resumes conversations through it);
    the API stays off without one."""
    # SMS through Twilio (bot.channels.sms). Without an auth token every webhook gets 403.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_api_base_url: str | None = None
    """Where Twilio's REST API is: unset for Twilio itself; the local stand-in in the local
    demo and in tests."""
    sms_trust_proxy: bool = False
    """Rebuild the public webhook URL from X-Forwarded-Proto/-Host/-Port when validating
    Twilio's signature (set it only behind a proxy that sets those headers)."""
    rasa_url: str = "http://localhost:5005"

    @property
    def is_local(self) -> bool:
        """True for the local demo set-up, where secrets may be generated on disk."""
        return self.env == "local"


def _generate_secret(name: str) -> str:
    if name == _TWILIO_SID_NAME:
        # A local stand-in account: Twilio account SIDs are "AC" and 32 hex digits.
        return "AC" + secrets.token_hex(16)
    if name == "BOT_DATA_KEY":
        # Fernet keys are 32 url-safe base64-encoded bytes.
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


def _local_secrets(data_dir: Path, names: list[str]) -> dict[str, str]:
    """Load the local demo's secrets, generating any of ``names`` not yet on disk.

    Secrets already in the file are never replaced: the data key decrypts patient data. A lock
    file serialises processes starting together (action server, Rasa, alert receiver), so they
    all end up with the same values.
    """
    path = data_dir / "secrets.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "secrets.json.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in names if not values.get(name)]
        if missing:
            values.update({name: _generate_secret(name) for name in missing})
            # Written with owner-only permissions: these keys decrypt patient data. The new
            # file replaces the old one in one step, so a crash cannot leave half a file.
            partial = path.with_name("secrets.json.tmp")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(values, handle)
            os.replace(partial, path)
    return values


def _bool(env_vars: dict[str, str], name: str, default: bool) -> bool:
    raw = env_vars.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}.")


_Number = TypeVar("_Number", int, float)


def _number(env_vars: dict[str, str], name: str, kind: Callable[[str], _Number],
            default: _Number, minimum: _Number) -> _Number:
    raw = env_vars.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}.") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {raw!r}.")
    return value


class _AlertSettings(TypedDict):
    alert_webhook_url: str | None
    alert_webhook_secret: bytes | None
    alert_smtp_host: str | None
    alert_smtp_port: int
    alert_smtp_from: str | None
    alert_smtp_to: tuple[str, ...]
    alert_smtp_username: str | None
    alert_smtp_password: str | None
    alert_smtp_starttls: bool
    alert_attempts: int
    alert_retry_delay: float
    console_url: str


def _alert_settings(env_vars: dict[str, str]) -> _AlertSettings:
    """The staff-alert settings, checked for combinations that cannot work."""
    webhook_url = env_vars.get("BOT_ALERT_WEBHOOK_URL") or None
    webhook_secret = env_vars.get(_ALERT_SECRET_NAME) or None
    if webhook_url and not webhook_secret:
        raise SettingsError(
            f"BOT_ALERT_WEBHOOK_URL is set, so {_ALERT_SECRET_NAME} is required "
            "(the receiver verifies every alert with it)."
        )
    smtp_host = env_vars.get("BOT_ALERT_SMTP_HOST") or None
    smtp_from = env_vars.get("BOT_ALERT_SMTP_FROM") or None
    smtp_to = tuple(
        a.strip() for a in env_vars.get("BOT_ALERT_SMTP_TO", "").split(",") if a.strip()
    )
    if smtp_host and not (smtp_from and smtp_to):
        raise SettingsError(
            "BOT_ALERT_SMTP_HOST is set, so BOT_ALERT_SMTP_FROM and BOT_ALERT_SMTP_TO are required."
        )
    username = env_vars.get("BOT_ALERT_SMTP_USERNAME") or None
    password = env_vars.get("BOT_ALERT_SMTP_PASSWORD") or None
    if bool(username) != bool(password):
        raise SettingsError(
            "Set both BOT_ALERT_SMTP_USERNAME and BOT_ALERT_SMTP_PASSWORD, or neither."
        )
    return {
        "alert_webhook_url": webhook_url,
        "alert_webhook_secret": webhook_secret.encode() if webhook_secret else None,
        "alert_smtp_host": smtp_host,
        "alert_smtp_port": _number(env_vars, "BOT_ALERT_SMTP_PORT", int, 25, 1),
        "alert_smtp_from": smtp_from,
        "alert_smtp_to": smtp_to,
        "alert_smtp_username": username,
        "alert_smtp_password": password,
        "alert_smtp_starttls": _bool(env_vars, "BOT_ALERT_SMTP_STARTTLS", False),
        "alert_attempts": _number(env_vars, "BOT_ALERT_ATTEMPTS", int, 3, 1),
        "alert_retry_delay": _number(env_vars, "BOT_ALERT_RETRY_DELAY", float, 1.0, 0.0),
        "console_url": (env_vars.get("BOT_CONSOLE_URL") or "http://localhost:8030").rstrip("/"),
    }


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (``os.environ`` by default).

    Args:
        environ: The environment to read; tests pass their own.

    Returns:
        The settings.

    Raises:
        SettingsError: A secret is missing outside the local demo, or a setting is malformed
            or incomplete (e.g. a webhook URL without its secret).
    """
    env_vars = dict(os.environ if environ is None else environ)
    env = env_vars.get("BOT_ENV", "local")
    data_dir = Path(env_vars.get("BOT_DATA_DIR", PROJECT_ROOT / "var")).resolve()
    missing = [name for name in _SECRET_NAMES if not env_vars.get(name)]
    if missing and env != "local":
        raise SettingsError(
            f"Missing required environment variables: {', '.join(missing)} "
            f"(only BOT_ENV=local generates them)."
        )
    if env == "local":
        missing += [
            name
            for name in (_ALERT_SECRET_NAME, _RASA_TOKEN_NAME, _TWILIO_SID_NAME,
                         _TWILIO_TOKEN_NAME)
            if not env_vars.get(name)
        ]
    if missing:
        generated = _local_secrets(data_dir, missing)
        for name in missing:
            env_vars[name] = generated[name]
    database_url = env_vars.get("BOT_DATABASE_URL") or f"sqlite:///{data_dir / 'app.db'}"
    origins = env_vars.get(
        "BOT_WIDGET_ALLOWED_ORIGINS", "http://localhost:8000,http://127.0.0.1:8000"
    )
    return Settings(
        env=env,
        data_dir=data_dir,
        database_url=database_url,
        clinic_config=Path(env_vars.get("BOT_CLINIC_CONFIG", PROJECT_ROOT / "clinic.yml")),
        data_key=env_vars["BOT_DATA_KEY"],
        index_key=env_vars["BOT_INDEX_KEY"].encode(),
        widget_secret=env_vars["BOT_WIDGET_SECRET"].encode(),
        widget_allowed_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
        rasa_api_token=env_vars.get(_RASA_TOKEN_NAME) or None,
        twilio_account_sid=env_vars.get(_TWILIO_SID_NAME) or None,
        twilio_auth_token=env_vars.get(_TWILIO_TOKEN_NAME) or None,
        twilio_from_number=env_vars.get("TWILIO_FROM_NUMBER")
        or (LOCAL_TWILIO_NUMBER if env == "local" else None),
        twilio_api_base_url=(env_vars.get("TWILIO_API_BASE_URL") or "").rstrip("/")
        or (LOCAL_SMS_STANDIN_URL if env == "local" else None),
        sms_trust_proxy=_bool(env_vars, "BOT_SMS_TRUST_PROXY", False),
        console_secure_cookies=_bool(env_vars, "BOT_CONSOLE_SECURE_COOKIES", False),
        rasa_url=(env_vars.get("BOT_RASA_URL") or "http://localhost:5005").rstrip("/"),
        **_alert_settings(env_vars),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings()
