"""Live delivery in real headless Chromium: a staff member takes the conversation over in the
staff console's service layer and replies, and the reply appears in the visitor's open widget,
labelled with their name, under the demo page's strict Content-Security-Policy."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from bot.console import takeover
from bot.console.rasa_api import RasaApi
from bot.db.models import Handoff, HandoffReason, StaffRole, StaffUser
from bot.db.session import make_engine, session_factory
from bot.services import conversations, staff
from bot.settings import PROJECT_ROOT
from tests.browser.test_intake_e2e import bot_messages, send
from tests.stack.fixtures import RASA_API_TOKEN

pytestmark = [pytest.mark.browser, pytest.mark.stack]

ARTIFACTS = PROJECT_ROOT / "artifacts"


def watch_errors(page: Any) -> list[str]:
    """Collect uncaught page errors, failed requests and console errors (CSP violations)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("requestfailed", lambda request: errors.append(f"requestfailed: {request.url}"))
    page.on("console", lambda message: errors.append(f"console: {message.text}")
            if message.type == "error" else None)
    return errors


def sender_id_of(page: Any) -> str:
    """The conversation of the widget's stored session (what the server derives from it)."""
    token = page.evaluate(
        """() => {
            for (let i = 0; i < localStorage.length; i++) {
                const key = localStorage.key(i);
                if (key.startsWith("kcw:") && key.endsWith(":session")) {
                    return localStorage.getItem(key);
                }
            }
            return null;
        }"""
    )
    assert token
    return "web-" + token.split(".")[0]


def staff_texts(page: Any) -> list[str]:
    return page.locator("[data-testid=kcw-msg-staff]").all_text_contents()


def test_staff_reply_appears_in_the_open_widget(browser: Any, stack: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    engine = make_engine(stack.database_url)
    api = RasaApi(stack.rasa_url, RASA_API_TOKEN)
    with session_factory(engine)() as session, session.begin():
        nurse_id = staff.create_user(session, f"kai.{uuid.uuid4().hex[:8]}@clinic.example",
                                     "Kai Morgan", StaffRole.CLINICIAN,
                                     "correct horse battery").id

    def step(action: Any, *args: Any) -> Any:
        with session_factory(engine)() as session, session.begin():
            return action(session, api, sender_id, session.get(StaffUser, nurse_id), *args)

    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(stack.demo_url + "/")
        page.click("[data-testid=kcw-launcher]")
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=kcw-msg-bot]').length > 0",
            timeout=60_000)
        assert send(page, "I'd like to talk to a person")
        sender_id = sender_id_of(page)

        def handoff() -> Handoff | None:
            with session_factory(engine)() as session:
                conversation = conversations.find(session, sender_id)
                return None if conversation is None else session.scalars(select(Handoff).where(
                    Handoff.conversation_id == conversation.id,
                    Handoff.reason == HandoffReason.HUMAN_REQUESTED)).first()

        deadline = time.monotonic() + 30
        while handoff() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert handoff() is not None

        # The nurse takes over; the visitor's next message gets no answer from the assistant.
        step(takeover.take_over)
        bots_before = len(bot_messages(page))
        page.fill("[data-testid=kcw-input]", "Thanks, I'll wait here.")
        page.press("[data-testid=kcw-input]", "Enter")
        page.wait_for_selector("[data-testid=kcw-typing]", state="hidden", timeout=30_000)
        assert len(bot_messages(page)) == bots_before
        assert page.locator("[data-testid=kcw-notice]").is_hidden()

        # The reply shows up without the visitor doing anything, with the nurse's name, and
        # markup in it stays text.
        reply = "Hi, I'm Kai, one of the nurses. <b>How</b> can I help today?"
        step(takeover.reply, reply)
        page.wait_for_selector("[data-testid=kcw-msg-staff]", timeout=15_000)
        assert staff_texts(page) == [reply]
        assert page.locator("[data-testid=kcw-staff-name]").all_text_contents() == [
            "Kai Morgan \u00b7 Care team"]
        assert page.locator(".kcw-root b").count() == 0
        assert len(bot_messages(page)) == bots_before  # not shown as the assistant's
        page.screenshot(path=str(ARTIFACTS / "widget-staff-reply.png"))

        # A reply while the chat is closed marks the launcher; opening shows it.
        page.keyboard.press("Escape")
        page.locator("[data-testid=kcw-panel]").wait_for(state="hidden")
        step(takeover.reply, "Are you still there?")
        launcher = page.locator("[data-testid=kcw-launcher]")
        page.wait_for_selector(".kcw-launcher--unread", timeout=15_000)
        assert "New message" in launcher.inner_text()
        launcher.click()
        assert staff_texts(page) == [reply, "Are you still there?"]
        assert "kcw-launcher--unread" not in (launcher.get_attribute("class") or "")

        # No script errors, no CSP violations, no failed requests so far.
        assert errors == []

        # After a reload the transcript is restored and nothing is delivered twice; a reply
        # sent meanwhile still arrives (the widget resumes from its cursor).
        page.reload()
        page.wait_for_selector("[data-testid=kcw-msg-staff]", timeout=15_000)
        step(takeover.reply, "I've booked you a call for 3pm.")
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=kcw-msg-staff]').length >= 3",
            timeout=15_000)
        time.sleep(2.5)
        assert staff_texts(page) == [reply, "Are you still there?",
                                     "I've booked you a call for 3pm."]

        # Handed back: the assistant answers again.
        step(takeover.hand_back)
        answer = send(page, "what are your opening hours?").lower()
        assert "hours" in answer or "open" in answer
        # Since the reload: only the stream the browser itself cut off when it left the page.
        assert len(errors) <= 1
        assert all(e.startswith("requestfailed:") and "/webhooks/widget/stream?" in e
                   for e in errors)
    finally:
        context.close()
        engine.dispose()
