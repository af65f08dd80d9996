"""The crisis check in the channel layer, with Rasa replaced by a fake agent: the reply comes
first and does not depend on Rasa, the action server, the tracker store or the database.

(The same paths through the real Rasa server and action server are in tests/stack/.)
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic
from sqlalchemy import select

from bot.channels.rest import SafeRestInput
from bot.db import migrate
from bot.db.models import Handoff, HandoffPriority, HandoffReason, StaffAlert
from bot.db.session import get_engine, unit_of_work
from bot.safety import guard
from tests.alerts_support import WebhookReceiver

REST = "/webhooks/rest/webhook"


class FakeTracker:
    def __init__(self, paused: bool = False) -> None:
        self.events: list[Any] = []
        self._paused = paused
        self.active_loop_name = None

    def is_paused(self) -> bool:
        return self._paused


class FakeTrackerStore:
    def __init__(self) -> None:
        self.tracker: FakeTracker | None = None
        self.down = False

    async def retrieve(self, sender_id: str) -> FakeTracker | None:
        if self.down:
            raise ConnectionError("tracker store down")
        return self.tracker


class FakeDomain:
    responses: dict[str, Any] = {}


class FakeAgent:
    """Answers "ok" unless told to fail or stay silent; records what it was given."""

    def __init__(self) -> None:
        self.domain = FakeDomain()
        self.tracker_store = FakeTrackerStore()
        self.received: list[UserMessage] = []
        self.mode = "reply"
        self.nlu: dict[str, Any] | None = None

    async def parse_message(self, text: str) -> dict[str, Any]:
        if self.nlu is None:
            raise RuntimeError("no model")
        return {"text": text, **self.nlu}

    async def handle_message(self, message: UserMessage) -> None:
        self.received.append(message)
        if self.mode == "fail":
            raise RuntimeError("action server unreachable")
        if self.mode == "reply":
            await message.output_channel.send_text_message(message.sender_id, "ok")


@pytest.fixture
def receiver() -> Any:
    with WebhookReceiver() as running:
        yield running


def use_database(override_settings, tmp_path: Path, receiver: WebhookReceiver,
                 database_url: str, migrate_it: bool = True) -> None:
    """Point the settings at ``database_url`` and the alert webhook at ``receiver``."""
    override_settings(
        BOT_DATA_DIR=str(tmp_path),
        BOT_DATABASE_URL=database_url,
        BOT_ALERT_WEBHOOK_URL=receiver.url,
        BOT_ALERT_WEBHOOK_SECRET="test-alert-secret",
        BOT_ALERT_RETRY_DELAY="0.01",
    )
    if migrate_it:
        migrate.upgrade(database_url)
    get_engine.cache_clear()


@pytest.fixture
def env(override_settings, tmp_path: Path, receiver: WebhookReceiver) -> Path:
    use_database(override_settings, tmp_path, receiver, f"sqlite:///{tmp_path / 'app.db'}")
    return tmp_path


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def app(agent: FakeAgent) -> Sanic:
    app = Sanic(f"test_safety_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    register([SafeRestInput()], app, "/webhooks/")
    return app


async def say(app: Sanic, text: str, sender: str = "rest-1") -> list[dict[str, Any]]:
    _, resp = await app.asgi_client.post(
        REST, content=json.dumps({"sender": sender, "message": text}).encode()
    )
    assert resp.status == 200
    return resp.json


def crisis_handoffs() -> list[Handoff]:
    with unit_of_work() as session:
        rows = list(session.scalars(select(Handoff).where(Handoff.reason == HandoffReason.CRISIS)))
        for row in rows:
            _ = row.summary
        session.expunge_all()
        return rows


async def test_crisis_reply_comes_first_then_the_assistant(env: Path, app: Sanic,
                                                          agent: FakeAgent,
                                                          receiver: WebhookReceiver) -> None:
    replies = await say(app, "I want to kill myself")
    assert "988" in replies[0]["text"] and "911" in replies[0]["text"]
    assert replies[0]["custom"] == {"crisis": True}
    assert replies[1]["text"] == "ok"
    [message] = agent.received
    assert message.metadata["safety"]["handled"] is True
    await guard.drain()
    [handoff] = crisis_handoffs()
    assert handoff.priority == HandoffPriority.URGENT
    assert handoff.summary["messages"][0]["text"] == "I want to kill myself"
    [alert] = receiver.requests
    body = alert.json()
    assert body["kind"] == "crisis" and body["priority"] == "urgent"
    assert body["handoff_id"] == handoff.id
    assert "kill" not in alert.body.decode()


async def test_the_parse_is_handed_to_rasa_with_the_crisis_intent(env: Path, app: Sanic,
                                                                 agent: FakeAgent) -> None:
    agent.nlu = {"intent": {"name": "inform", "confidence": 0.9},
                 "intent_ranking": [{"name": "inform", "confidence": 0.9}], "entities": []}
    await say(app, "i wanna unalive myself")
    [message] = agent.received
    assert message.parse_data["intent"] == {"name": "crisis", "confidence": 1.0}
    await guard.drain()


async def test_no_crisis_no_resources(env: Path, app: Sanic, agent: FakeAgent,
                                      receiver: WebhookReceiver) -> None:
    replies = await say(app, "this traffic is killing me")
    assert [r["text"] for r in replies] == ["ok"]
    assert "safety" not in (agent.received[0].metadata or {})
    await guard.drain()
    assert crisis_handoffs() == [] and receiver.requests == []


async def test_rasa_failing_still_gets_resources_and_never_a_technical_error(
    env: Path, app: Sanic, agent: FakeAgent
) -> None:
    agent.mode = "fail"
    replies = await say(app, "I took all my pills on purpose an hour ago")
    texts = [r["text"] for r in replies]
    assert "1-800-222-1222" in texts[0]
    assert texts[1].startswith("I'm still here")
    assert not any("went wrong" in text for text in texts)
    await guard.drain()
    assert len(crisis_handoffs()) == 1


async def test_silent_rasa_still_gets_resources(env: Path, app: Sanic, agent: FakeAgent) -> None:
    agent.mode = "silent"
    replies = await say(app, "quiero suicidarme")
    assert "marca 2 para español" in replies[0]["text"]
    assert replies[1]["text"].startswith("Sigo aqui")
    await guard.drain()


async def test_paused_conversation_crisis_and_non_crisis(env: Path, app: Sanic,
                                                         agent: FakeAgent,
                                                         receiver: WebhookReceiver) -> None:
    agent.mode = "silent"
    agent.tracker_store.tracker = FakeTracker(paused=True)
    assert await say(app, "thanks, I'll wait for the nurse") == []
    replies = await say(app, "honestly I don't want to be alive anymore")
    assert len(replies) == 1 and "988" in replies[0]["text"]
    await guard.drain()
    assert len(crisis_handoffs()) == 1
    assert len(receiver.requests) == 1


async def test_risk_spread_over_messages(env: Path, app: Sanic, agent: FakeAgent) -> None:
    agent.tracker_store.down = True  # the window then comes from process memory
    sender = f"rest-{uuid.uuid4().hex}"
    first = await say(app, "I can't take it anymore", sender=sender)
    assert [r["text"] for r in first] == ["ok"]
    second = await say(app, "I have all my pills right here", sender=sender)
    assert "988" in second[0]["text"]
    await guard.drain()
    [handoff] = crisis_handoffs()
    assert handoff.summary["context"] == ["I can't take it anymore"]
    assert handoff.summary["messages"][0]["detection"]["layers"] == ["window"]


async def test_database_down_resources_and_alert_still_go_out_and_the_record_is_spooled(
    override_settings, tmp_path: Path, app: Sanic, receiver: WebhookReceiver
) -> None:
    broken = f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}"
    use_database(override_settings, tmp_path, receiver, broken, migrate_it=False)
    replies = await say(app, "I want to end my life")
    assert "988" in replies[0]["text"]
    await guard.drain()
    [alert] = receiver.requests
    assert alert.json()["handoff_id"] is None
    spooled = list((tmp_path / "spool" / "crisis").glob("*.json"))
    assert len(spooled) == 1
    assert "end my life" not in spooled[0].read_text()  # encrypted on disk

    # The database is back: the spooled record is written on the next chance.
    use_database(override_settings, tmp_path, receiver, f"sqlite:///{tmp_path / 'app.db'}")
    assert guard.replay_spool() == 1
    assert not list((tmp_path / "spool" / "crisis").glob("*.json"))
    [handoff] = crisis_handoffs()
    assert handoff.summary["messages"][0]["text"] == "I want to end my life"
    assert handoff.summary["messages"][0]["detection"]["spooled"] is True


async def test_a_failing_hook_is_retried_and_the_failure_recorded(
    env: Path, app: Sanic, receiver: WebhookReceiver
) -> None:
    receiver.always_fail(500)
    replies = await say(app, "I cut myself again tonight")
    assert "988" in replies[0]["text"]  # the person's reply never waits for the hook
    await guard.drain()
    assert len(receiver.requests) == 3
    with unit_of_work() as session:
        [row] = session.scalars(select(StaffAlert)).all()
        assert (row.status.value, row.attempts, row.last_error) == ("failed", 3, "HTTP 500")
    [handoff] = crisis_handoffs()
    assert handoff.priority == HandoffPriority.URGENT
