"""The production endpoints file against real services: Rasa's SQL tracker store on PostgreSQL
and its Redis lock store, configured exactly as deploy/endpoints.production.yml says."""

from __future__ import annotations

import asyncio
import os
import uuid
from urllib.parse import urlparse

import pytest
from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import read_endpoint_config
from sqlalchemy import text

from bot.db.session import make_engine
from bot.settings import PROJECT_ROOT
from tests.conftest import POSTGRES_URL, _postgres_reachable

ENDPOINTS = PROJECT_ROOT / "deploy" / "endpoints.production.yml"
REDIS_URL = os.environ.get("BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")


def _redis_problem() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except Exception as error:  # any connection failure means "not here"
        return f"{type(error).__name__}: {error}"


@pytest.fixture
def production_env(monkeypatch):
    """Environment for the production endpoints, aimed at the local services."""
    problem = _postgres_reachable()
    if problem is not None:
        if os.environ.get("BOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL unreachable: {problem}", pytrace=False)
        pytest.skip(f"PostgreSQL unreachable ({problem}); tracker store test skipped")
    problem = _redis_problem()
    if problem is not None:
        if os.environ.get("BOT_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis unreachable: {problem}", pytrace=False)
        pytest.skip(f"Redis unreachable ({problem}); lock store test skipped")
    name = f"kca_tracker_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    pg = urlparse(POSTGRES_URL)
    redis_url = urlparse(REDIS_URL)
    values = {
        "BOT_ACTION_SERVER_URL": "http://localhost:5055/webhook",
        "BOT_TRACKER_DB_HOST": pg.hostname or "127.0.0.1",
        "BOT_TRACKER_DB_PORT": str(pg.port or 5432),
        "BOT_TRACKER_DB_NAME": name,
        "BOT_TRACKER_DB_USER": pg.username or "postgres",
        "BOT_TRACKER_DB_PASSWORD": pg.password or "",
        "BOT_REDIS_HOST": redis_url.hostname or "127.0.0.1",
        "BOT_REDIS_PORT": str(redis_url.port or 6379),
        "BOT_REDIS_PASSWORD": redis_url.password or "",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    yield name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


async def test_sql_tracker_store_on_postgres_keeps_conversations_apart(production_env):
    domain = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    store = TrackerStore.create(read_endpoint_config(str(ENDPOINTS), "tracker_store"), domain)
    assert type(store).__name__ == "SQLTrackerStore"
    assert store.engine.dialect.name == "postgresql"
    assert store.engine.url.database == production_env

    first = DialogueStateTracker.from_events("web-first", [
        ActionExecuted("action_listen"), UserUttered("hello", {"name": "greet"}),
        SlotSet("first_name", "Ana")], slots=domain.slots)
    second = DialogueStateTracker.from_events("web-second", [
        ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet"})],
        slots=domain.slots)
    await store.save(first)
    await store.save(second)

    loaded = await store.retrieve("web-first")
    assert loaded.get_slot("first_name") == "Ana"
    assert (await store.retrieve("web-second")).get_slot("first_name") is None
    assert set(await store.keys()) == {"web-first", "web-second"}
    store.engine.dispose()


async def test_redis_lock_store_serialises_one_conversation(production_env):
    store = LockStore.create(read_endpoint_config(str(ENDPOINTS), "lock_store"))
    assert type(store).__name__ == "RedisLockStore"
    conversation = f"web-{uuid.uuid4().hex}"
    order: list[str] = []

    async def handle(name: str) -> None:
        async with store.lock(conversation, lock_lifetime=10, wait_time_in_seconds=0.01):
            order.append(f"{name}-start")
            await asyncio.sleep(0.2)
            order.append(f"{name}-end")

    await asyncio.gather(handle("a"), handle("b"))
    # Two messages of one conversation never interleave, even across servers.
    assert order in (["a-start", "a-end", "b-start", "b-end"],
                     ["b-start", "b-end", "a-start", "a-end"])
    # Released afterwards: a third message gets the lock at once.
    assert not store.get_or_create_lock(conversation).is_someone_waiting()
