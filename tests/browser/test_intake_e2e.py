"""A whole intake in real headless Chromium: demo page → widget → Rasa → actions → database."""

from __future__ import annotations

from typing import Any

import pytest

from bot.db.models import HandoffReason
from bot.db.session import make_engine, session_factory
from bot.services import handoffs, intake
from bot.settings import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.stack]

ARTIFACTS = PROJECT_ROOT / "artifacts"
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def bot_messages(page: Any) -> list[str]:
    return page.locator("[data-testid=kcw-msg-bot]").all_text_contents()


def send(page: Any, text: str) -> str:
    """Type a message, wait for the assistant's reply, and return the new bot text."""
    before = len(bot_messages(page))
    page.fill("[data-testid=kcw-input]", text)
    page.press("[data-testid=kcw-input]", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=kcw-msg-bot]').length > n",
        arg=before, timeout=60_000)
    page.wait_for_selector("[data-testid=kcw-typing]", state="hidden", timeout=60_000)
    return "\n".join(bot_messages(page)[before:])


def test_intake_through_the_widget_lands_in_the_database(browser, stack):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(stack.demo_url + "/")
    # The crisis line shows with the chat closed, and in the panel once it is open.
    page.wait_for_selector("[data-testid=kcw-crisis-closed]", state="visible")
    assert "988" in page.inner_text("[data-testid=kcw-crisis-closed]")
    page.screenshot(path=str(ARTIFACTS / "widget-closed.png"))
    page.click("[data-testid=kcw-launcher]")
    assert page.locator("[data-testid=kcw-crisis]").is_visible()
    assert not page.locator("[data-testid=kcw-crisis-closed]").is_visible()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=kcw-msg-bot]').length > 0",
        timeout=60_000)
    assert "virtual assistant for Harbor Light" in "\n".join(bot_messages(page))

    # A script typed into the chat is shown as text and never runs.
    send(page, XSS)
    assert XSS in page.locator("[data-testid=kcw-msg-user]").all_text_contents()
    assert page.evaluate("() => window.__pwned") is None

    assert "first name" in send(page, "I'd like to get started")
    assert "mobile number" in send(page, "Nadia")
    assert "email" in send(page, "(971) 555-0142")
    assert "best time" in send(page, "nadia@example.org")
    assert "state" in send(page, "evenings after 6")
    assert "help with" in send(page, "Washington")
    assert "how long" in send(page, "PTSD and depression")
    assert "antidepressant" in send(page, "since 2015")
    assert "other treatments" in send(page, "two")
    assert "ketamine" in send(page, "ECT and therapy")
    assert "most recent" in send(page, "yes")
    assert "how many" in send(page, "last spring").lower()
    assert "medications" in send(page, "6")
    assert "hear about us" in send(page, "venlafaxine")
    assert "contact you" in send(page, "a friend")
    assert "text messages" in send(page, "yes")
    summary = send(page, "no")
    assert "1. First name: Nadia" in summary and "5. State: Washington" in summary
    page.screenshot(path=str(ARTIFACTS / "widget-intake-summary.png"))
    assert "Your details are now with our care team" in send(page, "yes")
    page.screenshot(path=str(ARTIFACTS / "widget-intake.png"))

    sender = page.evaluate(
        "() => { for (let i = 0; i < localStorage.length; i++) {"
        " const k = localStorage.key(i);"
        " if (k.endsWith(':session')) return localStorage.getItem(k); } return null; }")
    assert sender
    sender_id = "web-" + sender.split(".")[0]
    with session_factory(make_engine(stack.database_url))() as session:
        answers = intake.latest_answers(session, sender_id)
        assert answers["first_name"] == "Nadia"
        assert answers["phone"] == "+19715550142"
        assert answers["us_state"] == "WA"
        assert answers["prior_ketamine"] is True
        assert answers["prior_ketamine_infusions"] == 6
        assert answers["consent_sms"] is False
        assert set(answers["prior_treatments"]["ids"]) == {"ect", "therapy"}
        queue = handoffs.for_conversation(session, sender_id)
        assert [h.reason for h in queue] == [HandoffReason.INTAKE_SUBMITTED]

    # The session survives a reload: the same conversation carries on.
    page.reload()
    # The widget reopens as it was, with the transcript restored.
    page.wait_for_selector("[data-testid=kcw-panel]", state="visible")
    assert any("1. First name: Nadia" in text for text in bot_messages(page))
    assert "already with our care team" in send(page, "get started")
    context.close()
