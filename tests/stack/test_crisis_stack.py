"""Crisis paths through the running product: REST and widget channels → crisis check → Rasa →
action server → database, with staff alerts arriving at a local webhook receiver."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Answer, Handoff, HandoffPriority, HandoffReason, StaffAlert
from bot.db.session import make_engine, session_factory
from bot.run import Stack, wait_until_up
from bot.services import conversations
from tests.alerts_support import WebhookReceiver
from tests.stack.fixtures import RASA_API_TOKEN, RestChat, eventually, post_json

pytestmark = pytest.mark.stack


def crisis_handoffs(stack: Stack, sender: str) -> list[dict[str, Any]]:
    engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
    try:
        with session_factory(engine)() as session:
            conversation = conversations.find(session, sender)
            if conversation is None:
                return []
            rows = session.scalars(
                select(Handoff).where(Handoff.conversation_id == conversation.id,
                                      Handoff.reason == HandoffReason.CRISIS)
            ).all()
            return [{"id": h.id, "priority": h.priority, "summary": h.summary} for h in rows]
    finally:
        engine.dispose()


def alerts_for(receiver: WebhookReceiver, handoff_id: int) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.requests if r.json().get("handoff_id") == handoff_id]


def test_crisis_in_the_first_message(stack: Stack, staff_alerts: WebhookReceiver) -> None:
    chat = RestChat(stack)
    replies = chat.send("I want to kill myself")
    texts = [reply["text"] for reply in replies]
    assert "988" in texts[0] and "911" in texts[0] and "1-800" not in texts[0]
    assert replies[0]["custom"] == {"crisis": True}
    assert texts[1].startswith("You don't have to go through this alone")
    [handoff] = eventually(lambda: crisis_handoffs(stack, chat.sender))
    assert handoff["priority"] == HandoffPriority.URGENT
    assert handoff["summary"]["messages"][0]["text"] == "I want to kill myself"
    [alert] = eventually(lambda: alerts_for(staff_alerts, handoff["id"]))
    assert alert["kind"] == "crisis" and alert["priority"] == "urgent"
    assert "kill" not in json.dumps(alert)
    # The conversation carries on.
    assert any("hours" in text.lower() or "open" in text.lower()
               for text in chat.say("what are your opening hours?"))


def test_overdose_gets_poison_control(stack: Stack) -> None:
    chat = RestChat(stack)
    texts = chat.say("I swallowed a whole bottle of my sleeping pills")
    assert "1-800-222-1222" in texts[0] and "911" in texts[0]


def test_crisis_during_the_intake_pauses_it_and_it_resumes(stack: Stack) -> None:
    chat = RestChat(stack)
    assert any("first name" in text for text in chat.say("I'd like to get started"))
    assert any("mobile number" in text for text in chat.say("Rosa"))
    texts = chat.say("honestly I don't want to be alive anymore")
    assert "988" in texts[0]
    assert texts[1].startswith("You don't have to go through this alone")
    assert texts[2].startswith("Your answers so far are saved")
    assert not any("mobile number" in text for text in texts)
    [handoff] = eventually(lambda: crisis_handoffs(stack, chat.sender))
    assert handoff["summary"]["paused_form"] == "intake_form"
    assert handoff["summary"]["context"] == ["I'd like to get started", "Rosa"]
    # Resuming asks the question it stopped at; the first answer was kept.
    assert any("mobile number" in text for text in chat.say("let's continue"))
    engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
    try:
        with session_factory(engine)() as session:
            conversation = conversations.find(session, chat.sender)
            answers = session.scalars(
                select(Answer).where(Answer.conversation_id == conversation.id)
            ).all()
            assert [(a.question_key, a.value) for a in answers] == [("first_name", "Rosa")]
    finally:
        engine.dispose()


def test_crisis_in_spanish(stack: Stack) -> None:
    chat = RestChat(stack)
    texts = chat.say("ya no quiero vivir, quiero suicidarme")
    assert "marca 2 para español" in texts[0] and "911" in texts[0]
    assert texts[1].startswith("No tienes que pasar por esto solo")


def test_a_denial_is_recorded_and_the_flag_lowered(stack: Stack,
                                                   staff_alerts: WebhookReceiver) -> None:
    chat = RestChat(stack)
    chat.say("I've been cutting myself again")
    [handoff] = eventually(lambda: crisis_handoffs(stack, chat.sender))
    texts = chat.say("no, you misunderstood me, I'm fine")
    assert texts[0].startswith("Thank you for telling me")
    assert "988" in texts[0]

    def lowered() -> list[dict[str, Any]]:
        rows = crisis_handoffs(stack, chat.sender)
        return [r for r in rows if r["priority"] == HandoffPriority.SOON]

    [row] = eventually(lowered)
    assert row["id"] == handoff["id"]
    assert row["summary"]["denials"][0]["text"] == "no, you misunderstood me, I'm fine"
    kinds = eventually(lambda: [a["kind"] for a in alerts_for(staff_alerts, handoff["id"])
                                if a["kind"] == "crisis_denial"])
    assert kinds == ["crisis_denial"]
    # Another crisis message after the denial is a crisis again.
    assert "988" in chat.say("actually I have my pills saved up for this")[0]


def _rasa_event(stack: Stack, sender: str, event: dict[str, Any]) -> None:
    url = f"{stack.rasa_url}/conversations/{sender}/tracker/events?token={RASA_API_TOKEN}"
    status, body = post_json(url, event)
    assert status == 200, (status, body)


def test_crisis_in_a_paused_conversation(stack: Stack) -> None:
    chat = RestChat(stack)
    chat.say("hello")
    _rasa_event(stack, chat.sender, {"event": "pause"})
    try:
        # Staff hold the conversation: the assistant stays quiet...
        assert chat.say("ok, I'll wait for the nurse to reply") == []
        # ...except for crisis resources, and staff are alerted.
        texts = chat.say("I can't do this, I want to end it all")
        assert len(texts) == 1 and "988" in texts[0]
        assert eventually(lambda: crisis_handoffs(stack, chat.sender))
    finally:
        _rasa_event(stack, chat.sender, {"event": "resume"})


def test_crisis_with_the_action_server_stopped(stack: Stack) -> None:
    stack.stop_process("actions")
    try:
        chat = RestChat(stack)
        texts = chat.say("I want to die")
        assert "988" in texts[0]
        assert texts[-1].startswith("I'm still here with you")
        assert not any("went wrong" in text for text in texts)
        [handoff] = eventually(lambda: crisis_handoffs(stack, chat.sender))
        assert handoff["priority"] == HandoffPriority.URGENT
        # What needs no custom action still works; what does gets the technical-problem reply.
        assert any("hours" in text.lower() or "open" in text.lower()
                   for text in chat.say("what are your hours?"))
        assert any("went wrong" in text for text in chat.say("I'd like to talk to a person"))
    finally:
        stack.start_process("actions")
        wait_until_up(f"{stack.action_url}/health", 120, stack.processes["actions"])


def test_a_failing_staff_hook_is_retried_and_recorded(stack: Stack,
                                                      staff_alerts: WebhookReceiver) -> None:
    staff_alerts.always_fail(503)
    try:
        chat = RestChat(stack)
        assert "988" in chat.say("I feel suicidal tonight")[0]
        [handoff] = eventually(lambda: crisis_handoffs(stack, chat.sender))

        def failed_rows() -> list[Any]:
            engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
            try:
                with session_factory(engine)() as session:
                    return [
                        (row.status.value, row.attempts, row.last_error)
                        for row in session.scalars(
                            select(StaffAlert).where(StaffAlert.handoff_id == handoff["id"])
                        )
                    ]
            finally:
                engine.dispose()

        assert eventually(failed_rows) == [("failed", 3, "HTTP 503")]
    finally:
        staff_alerts.succeed()


def test_crisis_through_the_widget_channel(stack: Stack) -> None:
    base = f"{stack.rasa_url}/webhooks/widget"
    status, session = post_json(f"{base}/session", {})
    assert status == 200
    status, body = post_json(f"{base}/webhook",
                             {"session": session["session"], "message": "gonna unalive myself"})
    assert status == 200
    first = body["messages"][0]
    assert first["crisis"] is True and "988" in first["text"]
    assert "crisis" not in body["messages"][1]
    with urllib.request.urlopen(f"{base}/widget.js", timeout=10) as response:  # noqa: S310
        assert b"kcw-bubble--crisis" in response.read()
