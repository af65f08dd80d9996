"""Shared fixtures: test settings, databases (SQLite and PostgreSQL), trackers and dispatchers."""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

# Test settings, set before anything reads them. Keys are generated per run, never stored.
_TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="ketamine-assistant-tests-"))
os.environ.update(
    {
        "BOT_ENV": "test",
        "BOT_DATA_DIR": str(_TEST_DATA_DIR),
        "BOT_DATABASE_URL": f"sqlite:///{_TEST_DATA_DIR / 'app.db'}",
        "BOT_DATA_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "BOT_INDEX_KEY": secrets.token_urlsafe(32),
        "BOT_WIDGET_SECRET": secrets.token_urlsafe(32),
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "RASA_TELEMETRY_ENABLED": "false",
    }
)

from rasa_sdk import Tracker  # noqa: E402
from rasa_sdk.executor import CollectingDispatcher  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bot.db import migrate  # noqa: E402
from bot.db.session import get_engine, make_engine  # noqa: E402
from bot.settings import PROJECT_ROOT, get_settings  # noqa: E402

# The running product (action server, Rasa, demo page), shared by the stack and browser tests.
pytest_plugins = ["tests.stack.fixtures"]

POSTGRES_URL = os.environ.get("BOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("BOT_REQUIRE_POSTGRES") == "1"


def _postgres_reachable() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        engine = make_engine(POSTGRES_URL)
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as error:  # any driver or network failure means "not here"
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"


@contextmanager
def own_database(kind: str, sqlite_dir: Path, label: str, *, migrated: bool = True,
                 ) -> Iterator[str]:
    """A new database of one test's (or module's) own, and its URL; dropped afterwards.

    Args:
        kind: ``"sqlite"`` or ``"postgres"`` (the usual fixture parameters).
        sqlite_dir: Where the SQLite file goes.
        label: A short name, part of the database's name.
        migrated: Whether to run the migrations first.

    PostgreSQL that cannot be reached skips the test, or fails it when
    ``BOT_REQUIRE_POSTGRES=1``.
    """
    if kind == "sqlite":
        url = f"sqlite:///{sqlite_dir / f'{label}-{uuid.uuid4().hex[:8]}.db'}"
        if migrated:
            migrate.upgrade(url)
        yield url
        return
    problem = _postgres_reachable()
    if problem is not None:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " and BOT_REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip(message + "; the PostgreSQL variant was skipped")
    name = f"kca_{label}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
        if migrated:
            migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_engine() -> Iterator[Engine]:
    """A migrated SQLite database, made with Alembic as in production."""
    url = f"sqlite:///{_TEST_DATA_DIR / 'services.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A throwaway PostgreSQL database, migrated with Alembic, dropped afterwards."""
    problem = _postgres_reachable()
    if problem is not None:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
        if REQUIRE_POSTGRES:
            pytest.fail(message + " and BOT_REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip(message + "; the PostgreSQL variants of the database tests were skipped")
    name = f"kca_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_engine(request: pytest.FixtureRequest) -> Engine:
    """Each database test runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = db_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, future=True)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def app_db() -> Iterator[Engine]:
    """The database the actions use (settings' BOT_DATABASE_URL), migrated and emptied."""
    get_settings.cache_clear()
    get_engine.cache_clear()
    migrate.upgrade(get_settings().database_url)
    engine = get_engine()
    yield engine
    with engine.begin() as connection:
        for table in ("staff_alerts", "handoffs", "consent_records", "answers", "conversations",
                      "people"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)


@pytest.fixture
def override_settings(monkeypatch: pytest.MonkeyPatch):
    """Change settings for one test: set environment variables, then re-read the settings
    and the clinic configuration (both are cached per process), and again afterwards."""
    from bot.clinic import get_clinic

    def _override(**values: str) -> None:
        monkeypatch.delenv("BOT_CLINIC_CONFIG", raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        get_clinic.cache_clear()

    yield _override
    get_settings.cache_clear()
    get_clinic.cache_clear()


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    """The real domain, as the action server receives it."""
    from rasa.shared.core.domain import Domain

    return Domain.load(str(PROJECT_ROOT / "domain.yml")).as_dict()


@pytest.fixture(scope="session")
def raw_domain() -> dict[str, Any]:
    """domain.yml as written."""
    with open(PROJECT_ROOT / "domain.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    """A fresh dispatcher."""
    return CollectingDispatcher()


@pytest.fixture
def make_tracker():
    """Build a tracker inline: slots, the latest message, channel and active form."""

    def _make(
        slots: dict[str, Any] | None = None,
        text: str = "",
        intent: str = "inform",
        entities: list[dict[str, Any]] | None = None,
        sender_id: str | None = None,
        channel: str = "widget",
        active_loop: str | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> Tracker:
        latest = {
            "text": text,
            "intent": {"name": intent, "confidence": 0.95},
            "entities": entities or [],
        }
        user_event = {"event": "user", "text": text, "parse_data": latest,
                      "input_channel": channel}
        return Tracker(
            sender_id=sender_id or f"test-{uuid.uuid4().hex}",
            slots=slots or {},
            latest_message=latest,
            events=events if events is not None else [user_event],
            paused=False,
            followup_action=None,
            active_loop={"name": active_loop} if active_loop else {},
            latest_action_name="action_listen",
        )

    return _make
