"""Engines and sessions. Nothing is created at import time.

One session (one transaction) per unit of work: an action call, a web request, a CLI command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from bot.settings import get_settings


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the project's defaults.

    SQLite gets foreign-key enforcement and a busy timeout, because the action server, the CLI
    and the web pages may write at the same time.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url, future=True, connect_args={"timeout": 15, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


@lru_cache(maxsize=4)
def get_engine(url: str | None = None) -> Engine:
    """The process's engine for ``url`` (the configured database by default)."""
    return make_engine(url or get_settings().database_url)


def session_factory(engine: Engine | None = None) -> sessionmaker:
    """A session factory bound to ``engine`` (the configured database by default)."""
    return sessionmaker(bind=engine or get_engine(), future=True, expire_on_commit=False)


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with session_factory(engine)() as session, session.begin():
        yield session
