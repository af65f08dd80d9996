"""The one place configuration is read from.

Every process (Rasa server, action server, CLI, web pages) reads its settings through
:func:`get_settings`, which reads environment variables once per process. Secrets never live in
the repository: in production they come from the environment; in the local demo
(``BOT_ENV=local``, the default) they are generated once into ``var/secrets.json`` so that
``make run`` works on a bare machine.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_SECRET_NAMES = ("BOT_DATA_KEY", "BOT_INDEX_KEY", "BOT_WIDGET_SECRET")


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

    @property
    def is_local(self) -> bool:
        """True for the local demo set-up, where secrets may be generated on disk."""
        return self.env == "local"


def _generate_secrets() -> dict[str, str]:
    # Fernet keys are 32 url-safe base64-encoded bytes.
    return {
        "BOT_DATA_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "BOT_INDEX_KEY": secrets.token_urlsafe(32),
        "BOT_WIDGET_SECRET": secrets.token_urlsafe(32),
    }


def _local_secrets(data_dir: Path) -> dict[str, str]:
    """Load the local demo's secrets, creating them on first use."""
    path = data_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    values = _generate_secrets()
    # Written with owner-only permissions: these keys decrypt patient data.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (``os.environ`` by default).

    Args:
        environ: The environment to read; tests pass their own.

    Returns:
        The settings.

    Raises:
        SettingsError: A secret is missing outside the local demo.
    """
    env_vars = dict(os.environ if environ is None else environ)
    env = env_vars.get("BOT_ENV", "local")
    data_dir = Path(env_vars.get("BOT_DATA_DIR", PROJECT_ROOT / "var")).resolve()
    missing = [name for name in _SECRET_NAMES if not env_vars.get(name)]
    if missing:
        if env != "local":
            raise SettingsError(
                f"Missing required environment variables: {', '.join(missing)} "
                f"(only BOT_ENV=local generates them)."
            )
        generated = _local_secrets(data_dir)
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
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings()
