"""Crisis in the widget, in real headless Chromium: the resources appear at once, highlighted
and announced, the header's crisis line stays emphasised, and the conversation goes on."""

from __future__ import annotations

import pytest

from bot.settings import PROJECT_ROOT
from tests.browser.test_intake_e2e import bot_messages, send

pytestmark = [pytest.mark.browser, pytest.mark.stack]

ARTIFACTS = PROJECT_ROOT / "artifacts"


def test_crisis_resources_are_highlighted_and_the_chat_goes_on(browser, stack):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 390, "height": 780})
    page = context.new_page()
    page.goto(stack.demo_url + "/")
    page.click("[data-testid=kcw-launcher]")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=kcw-msg-bot]').length > 0",
        timeout=60_000)

    reply = send(page, "honestly i just want to die")
    assert "988" in reply and "911" in reply
    highlighted = page.locator("[data-testid=kcw-msg-bot][data-crisis=true]")
    assert highlighted.count() == 1
    assert highlighted.get_attribute("role") == "alert"
    assert "988" in highlighted.inner_text()
    assert page.locator(".kcw-root--crisis [data-testid=kcw-crisis]").is_visible()
    page.screenshot(path=str(ARTIFACTS / "widget-crisis.png"))

    # The assistant keeps talking, and the resources stay in the transcript after a reload.
    assert send(page, "what are your hours?")
    page.reload()
    # The widget reopens as it was left (open), so the launcher is only clicked if shown.
    if page.locator("[data-testid=kcw-launcher]").is_visible():
        page.click("[data-testid=kcw-launcher]")
    page.wait_for_selector("[data-testid=kcw-msg-bot][data-crisis=true]", timeout=30_000)
    assert any("988" in text for text in bot_messages(page))
    context.close()
