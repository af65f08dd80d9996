"""The staff console in real headless Chromium, against the running product.

The console runs as ``python -m bot.console`` on the stack's database and Rasa server. A visitor
says a crisis sentence in the demo page's widget; a clinician sees it arrive at the top of the
queue without reloading, claims it, takes the conversation over, replies into the visitor's
open chat, reads the visitor's answer live, hands the conversation back (the assistant answers
the visitor again) and resolves the handoff. Screenshots of the queue and the handoff go to
``artifacts/screenshots/``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bot.db.models import HandoffStatus, StaffRole
from bot.db.session import make_engine, session_factory
from bot.run import Stack, wait_until_up
from bot.services import audit, handoffs, safety, staff
from bot.settings import PROJECT_ROOT
from tests.browser.test_intake_e2e import bot_messages, send
from tests.browser.test_widget_stream import sender_id_of, staff_texts
from tests.stack.fixtures import eventually, free_port

pytestmark = [pytest.mark.browser, pytest.mark.stack]

ARTIFACTS = PROJECT_ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def console_url(stack: Stack) -> Iterator[str]:
    """The staff console, started like ``make run`` does, on the stack's database and Rasa."""
    port = free_port()
    log_dir = ARTIFACTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "console.log", "ab") as log:
        process = subprocess.Popen(  # noqa: S603 (fixed argv)
            [sys.executable, "-m", "bot.console", "--port", str(port)],
            cwd=PROJECT_ROOT, env=dict(stack.env), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/login", 60, process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack_engine(stack: Stack) -> Iterator[Any]:
    engine = make_engine(stack.database_url)  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def new_staff(engine: Any, role: StaffRole, name: str) -> Any:
    with session_factory(engine)() as session, session.begin():
        return staff.create_user(session, f"{role.value}.{uuid.uuid4().hex[:8]}@clinic.example",
                                 name, role, PASSWORD)


def watch_console_errors(page: Any) -> list[str]:
    """Script errors and console errors (CSP violations are reported there)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("console", lambda message: errors.append(f"console: {message.text}")
            if message.type == "error" else None)
    return errors


def crisis_handoff_id(engine: Any, sender_id: str) -> int | None:
    with session_factory(engine)() as session:
        handoff = safety.open_crisis_handoff(session, sender_id)
        return None if handoff is None else int(handoff.id)


def sign_in(page: Any, console_url: str, email: str) -> None:
    page.goto(console_url + "/queue")
    assert page.url.startswith(console_url + "/login")
    page.fill("[data-testid=login-email]", email)
    page.fill("[data-testid=login-password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_url(console_url + "/queue")


def test_crisis_handoff_from_queue_to_takeover_to_resolved(browser, stack, console_url,
                                                          stack_engine):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    nurse = new_staff(stack_engine, StaffRole.CLINICIAN, "Robin Avery")

    staff_context = browser.new_context(viewport={"width": 1280, "height": 900})
    visitor_context = browser.new_context(viewport={"width": 420, "height": 800})
    console = staff_context.new_page()
    errors = watch_console_errors(console)
    visitor = visitor_context.new_page()
    try:
        sign_in(console, console_url, nurse.email)
        assert console.inner_text("[data-testid=staff-name]") == "Robin Avery"
        console.click("h1")  # a first click lets the page play sound
        alerts_before = int(console.get_attribute("body", "data-urgent-alerts") or 0)

        # The visitor says a crisis sentence: resources at once, and an urgent handoff.
        visitor.goto(stack.demo_url + "/")
        visitor.click("[data-testid=kcw-launcher]")
        visitor.wait_for_function(
            "() => document.querySelectorAll('[data-testid=kcw-msg-bot]').length > 0",
            timeout=60_000)
        reply = send(visitor, "honestly i just want to die")
        assert "988" in reply
        sender_id = sender_id_of(visitor)
        handoff_id = eventually(lambda: crisis_handoff_id(stack_engine, sender_id))
        assert handoff_id is not None

        # It appears pinned at the top of the open queue, without a reload, with a sound and
        # the urgent count in the title.
        pinned_item = f"[data-testid=queue-pinned] [data-handoff-id='{handoff_id}']"
        console.wait_for_selector(pinned_item, timeout=30_000)
        console.wait_for_function(
            "n => Number(document.body.dataset.urgentAlerts || 0) > n", arg=alerts_before,
            timeout=10_000)
        assert console.title().startswith("(")
        assert console.is_visible("[data-testid=urgent-badge]")
        pinned_box = console.locator("[data-testid=queue-pinned]").bounding_box()
        filters_box = console.locator("[data-testid=queue-filters]").bounding_box()
        assert pinned_box["y"] > filters_box["y"]
        listed = console.locator("[data-testid=queue-list]")
        if listed.count():
            assert pinned_box["y"] < listed.bounding_box()["y"]
        item = console.locator(pinned_item)
        assert "Crisis language" in item.inner_text()
        assert "is-crisis" in (item.get_attribute("class") or "")
        background = item.evaluate("e => getComputedStyle(e).backgroundColor")
        assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")
        console.screenshot(path=str(SCREENSHOTS / "console-queue.png"), full_page=True)

        # The handoff: the crisis message in the summary and the transcript; claim it.
        console.click(pinned_item + " a")
        console.wait_for_url(f"{console_url}/handoffs/{handoff_id}")
        assert "honestly i just want to die" in console.inner_text("[data-testid=summary]")
        transcript = console.locator("[data-testid=transcript-lines]")
        assert "honestly i just want to die" in transcript.inner_text()
        console.click("[data-testid=claim]")
        console.wait_for_selector("[data-testid=notice]")
        assert console.inner_text("[data-testid=handoff-status]") == "Claimed"
        assert console.inner_text("[data-testid=handoff-assignee]") == "Robin Avery"

        # Take over and reply: the reply shows in the visitor's open chat, and in the console.
        console.click("[data-testid=takeover-start]")
        console.wait_for_selector("[data-testid=reply-form]")
        message = "Hi, I'm Robin, a nurse at the clinic. I'm here with you now."
        console.fill("[data-testid=reply-text]", message)
        console.click("[data-testid=reply-send]")
        visitor.wait_for_selector("[data-testid=kcw-msg-staff]", timeout=20_000)
        assert staff_texts(visitor) == [message]
        console.wait_for_function(
            "text => [...document.querySelectorAll('#transcript .line-staff')]"
            ".some(line => line.textContent.includes(text))", arg=message, timeout=15_000)
        assert console.input_value("[data-testid=reply-text]") == ""

        # The visitor answers; the assistant stays quiet, and the console shows it live.
        bots_before = len(bot_messages(visitor))
        visitor.fill("[data-testid=kcw-input]", "thank you, I'm at home")
        visitor.press("[data-testid=kcw-input]", "Enter")
        console.wait_for_function(
            "() => [...document.querySelectorAll('#transcript .line-patient')]"
            ".some(line => line.textContent.includes(\"thank you, I'm at home\"))",
            timeout=20_000)
        visitor.wait_for_selector("[data-testid=kcw-typing]", state="hidden", timeout=30_000)
        assert len(bot_messages(visitor)) == bots_before
        console.screenshot(path=str(SCREENSHOTS / "console-handoff.png"), full_page=True)

        # Hand back: the assistant answers the visitor again.
        console.click("[data-testid=handback]")
        console.wait_for_selector("[data-testid=takeover-start]")
        answer = send(visitor, "what are your hours?").lower()
        assert "hours" in answer or "open" in answer

        # Resolve with an outcome.
        console.select_option("[data-testid=resolve-outcome]", "called_back")
        console.click("[data-testid=resolve]")
        console.wait_for_selector("[data-testid=handoff-outcome]")
        assert console.inner_text("[data-testid=handoff-status]") == "Resolved"
        assert console.inner_text("[data-testid=handoff-outcome]") == "Called back"
        with session_factory(stack_engine)() as session:
            done = handoffs.get(session, handoff_id)
            assert done.status is HandoffStatus.RESOLVED
            actions = {event.action for event in audit.query(session, staff_user_id=nurse.id)}
        assert {audit.LOGIN, audit.HANDOFF_VIEW, audit.TRANSCRIPT_VIEW, audit.HANDOFF_CLAIM,
                audit.HANDOFF_RESOLVE, "conversation.reply"} <= actions
        assert errors == []
    finally:
        staff_context.close()
        visitor_context.close()


def test_idle_page_warns_then_returns_to_the_login_page(browser, console_url, stack_engine):
    desk = new_staff(stack_engine, StaffRole.FRONT_DESK, "Sam Desk")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, console_url, desk.email)
        page.clock.install()
        page.goto(console_url + "/queue")
        assert page.is_hidden("#idle-warning")
        page.clock.run_for("13:30")
        page.wait_for_selector("#idle-warning", state="visible")
        assert "signed out in" in page.inner_text("#idle-warning")
        page.screenshot(path=str(SCREENSHOTS / "console-idle-warning.png"))
        # Staying signed in asks the server, and the warning goes away.
        page.click("#idle-stay")
        page.wait_for_selector("#idle-warning", state="hidden")
        page.clock.run_for("15:01")
        page.wait_for_url(console_url + "/login?expired=1")
        assert "without activity" in page.inner_text("[data-testid=login-message]")
        # The session really ended: the queue asks for a sign-in again.
        page.goto(console_url + "/queue")
        assert page.url.startswith(console_url + "/login")
    finally:
        context.close()
