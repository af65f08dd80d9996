"""Browser test of the chat widget against a stub of the widget channel.

The test serves the demo page (with its real Content-Security-Policy), ``widget.js`` and
``widget.css`` from a small stdlib HTTP server that imitates ``/webhooks/widget/session`` and
``/webhooks/widget/webhook`` by echoing, and drives Debian's chromium through Playwright.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.channels.widget import WidgetInput, static_dir
from bot.settings import PROJECT_ROOT
from bot.web.demo import content_security_policy, render_demo_page, serve_demo

pytestmark = pytest.mark.browser

ARTIFACTS = PROJECT_ROOT / "artifacts"
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
GREETING = (
    "Hi, I'm Sam, the clinic's virtual assistant.\n"
    "I can answer questions about treatment and visits, or help you request a consultation."
)
VISIT_ANSWER = (
    "You'll settle into a private, quiet room with a reclining chair, and a nurse stays close "
    "by throughout.\nPlan on about two hours in total, including time to rest afterwards."
)


# ----------------------------------------------------------------------------------- stub
class StubState:
    """What the stub server has seen."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()
        self.session_requests: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.delay = 0.25


def make_handler(state: StubState) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``state``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802
            base = f"http://{self.headers['Host']}"
            if self.path == "/":
                nonce = secrets.token_urlsafe(12)
                src = f"{base}/webhooks/widget/widget.js"
                page = render_demo_page(src, nonce).encode()
                csp = content_security_policy(src, nonce)
                self._send(200, page, "text/html; charset=utf-8", Content_Security_Policy=csp)
            elif self.path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            elif self.path == "/webhooks/widget/widget.js":
                body = (static_dir() / "widget.js").read_bytes()
                self._send(200, body, "text/javascript; charset=utf-8")
            elif self.path == "/webhooks/widget/widget.css":
                body = (static_dir() / "widget.css").read_bytes()
                self._send(200, body, "text/css; charset=utf-8")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/webhooks/widget/session":
                state.session_requests.append(body)
                token = body.get("session")
                if token is None:
                    token = f"stub-{secrets.token_urlsafe(8)}"
                    state.sessions.add(token)
                elif token not in state.sessions:
                    self._json(403, {"error": "Invalid session."})
                    return
                self._json(200, {"session": token})
            elif self.path == "/webhooks/widget/webhook":
                if body.get("session") not in state.sessions:
                    self._json(403, {"error": "Invalid session."})
                    return
                state.messages.append(body)
                time.sleep(state.delay)
                self._json(200, {"messages": stub_reply(body["message"])})
            else:
                self._json(404, {"error": "not found"})

    return Handler


def stub_reply(message: str) -> list[dict[str, Any]]:
    """The stub bot: a greeting with buttons, one canned answer, otherwise an echo."""
    if message == "/greet":
        return [
            {
                "text": GREETING,
                "buttons": [
                    {"title": "What happens at a visit?", "payload": "/ask_visit"},
                    {"title": "Request a consultation", "payload": "/request_consultation"},
                ],
            }
        ]
    if message == "/ask_visit":
        return [{"text": VISIT_ANSWER}]
    return [{"text": f"You said: {message}"}]


@pytest.fixture
def settings_env(override_settings, tmp_path: Path) -> None:
    override_settings(BOT_DATA_DIR=str(tmp_path), BOT_WIDGET_SECRET="k")


@pytest.fixture
def stub(settings_env: None) -> Iterator[tuple[str, StubState]]:
    state = StubState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", state
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------------- helpers
def watch_errors(page: Any) -> list[str]:
    """Collect uncaught page errors and console errors (CSP violations show up there)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("requestfailed", lambda request: errors.append(f"requestfailed: {request.url}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text} at {message.location}")
            if message.type == "error"
            else None
        ),
    )
    return errors


def bot_texts(page: Any) -> list[str]:
    return page.locator("[data-testid=kcw-msg-bot]").all_text_contents()


def user_texts(page: Any) -> list[str]:
    return page.locator("[data-testid=kcw-msg-user]").all_text_contents()


def stored_token(page: Any) -> str | None:
    return page.evaluate(
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


def wait_for_count(page: Any, testid: str, count: int) -> None:
    page.wait_for_function(
        "([id, n]) => document.querySelectorAll(`[data-testid=${id}]`).length >= n",
        arg=[testid, count],
        timeout=10_000,
    )


def wait_idle(page: Any) -> None:
    page.wait_for_selector("[data-testid=kcw-typing]", state="hidden", timeout=10_000)


# ----------------------------------------------------------------------------------- tests
def test_widget_keyboard_safety_and_persistence(browser: Any, stub: tuple[str, StubState]) -> None:
    url, state = stub
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(url)

    launcher = page.locator("[data-testid=kcw-launcher]")
    panel = page.locator("[data-testid=kcw-panel]")
    launcher.wait_for(state="visible")
    assert panel.is_hidden()
    assert state.session_requests == []  # nothing is requested before the visitor opens the chat

    # Open with the keyboard; focus moves into the panel.
    launcher.focus()
    page.keyboard.press("Enter")
    panel.wait_for(state="visible")
    assert panel.get_attribute("role") == "dialog"
    assert panel.get_attribute("aria-label")
    assert page.evaluate("document.activeElement.dataset.testid") == "kcw-input"
    log = page.locator("[data-testid=kcw-log]")
    assert log.get_attribute("role") == "log"
    assert log.get_attribute("aria-live") == "polite"

    # The crisis line is visible in the header without any further interaction.
    crisis = page.locator("[data-testid=kcw-crisis]")
    assert crisis.is_visible()
    assert " ".join(crisis.inner_text().split()) == "In crisis? Call or text 988"
    assert crisis.locator("a[href='tel:988']").is_visible()
    assert crisis.locator("a[href='sms:988']").is_visible()

    # First open with no history sends /greet and shows the greeting (line breaks preserved).
    wait_for_count(page, "kcw-msg-bot", 1)
    assert bot_texts(page) == [GREETING]
    assert [m["message"] for m in state.messages] == ["/greet"]
    assert user_texts(page) == []
    greeting_box = page.locator("[data-testid=kcw-msg-bot]").first.bounding_box()
    assert greeting_box is not None and greeting_box["height"] > 60  # wrapped over lines

    # Input is capped at 2,000 characters.
    assert page.locator("[data-testid=kcw-input]").get_attribute("maxlength") == "2000"

    # A suggested reply is a real button that sends its payload and shows its title.
    wait_idle(page)
    choice = page.get_by_role("button", name="What happens at a visit?")
    choice.focus()
    page.keyboard.press("Enter")
    wait_for_count(page, "kcw-msg-bot", 2)
    assert state.messages[-1]["message"] == "/ask_visit"
    assert user_texts(page)[-1] == "What happens at a visit?"
    assert choice.is_disabled()  # answered choices cannot be sent twice

    # Markup typed by the visitor is shown as literal text and never executed.
    wait_idle(page)
    page.keyboard.type(XSS)
    page.keyboard.press("Enter")
    wait_for_count(page, "kcw-msg-bot", 3)
    assert user_texts(page)[-1] == XSS
    assert bot_texts(page)[-1] == f"You said: {XSS}"
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator(".kcw-root img, .kcw-root script").count() == 0
    assert page.locator("[data-testid=kcw-input]").input_value() == ""

    # Double-sending is prevented while a reply is pending.
    wait_idle(page)
    state.delay = 1.0
    sent_before = len(state.messages)
    page.locator("[data-testid=kcw-input]").fill("only once")
    page.keyboard.press("Enter")
    page.locator("[data-testid=kcw-typing]").wait_for(state="visible")
    assert page.locator("[data-testid=kcw-send]").is_disabled()
    page.locator("[data-testid=kcw-input]").fill("second try")
    page.keyboard.press("Enter")
    wait_idle(page)
    assert [m["message"] for m in state.messages[sent_before:]] == ["only once"]
    page.locator("[data-testid=kcw-input]").fill("")
    state.delay = 0.1

    transcript = (user_texts(page), bot_texts(page))
    token = stored_token(page)
    assert token and token in state.sessions

    # The session token survives a reload, is re-validated, and the transcript is restored.
    page.reload()
    wait_for_count(page, "kcw-msg-bot", len(transcript[1]))
    assert (user_texts(page), bot_texts(page)) == transcript
    assert stored_token(page) == token
    deadline = time.time() + 5
    while {"session": token} not in state.session_requests and time.time() < deadline:
        time.sleep(0.05)
    assert {"session": token} in state.session_requests
    assert [m["message"] for m in state.messages].count("/greet") == 1
    assert panel.is_visible()  # it was open before the reload
    assert not bot_texts(page)[-1].startswith("Hi,")

    # Network failure: readable inline notice, and the typed text is given back.
    assert errors == []
    page.route("**/webhooks/widget/webhook", lambda route: route.abort())
    page.locator("[data-testid=kcw-input]").fill("are you there?")
    page.locator("[data-testid=kcw-send]").click()
    notice = page.locator("[data-testid=kcw-notice]")
    notice.wait_for(state="visible")
    assert "connection" in notice.inner_text()
    assert page.locator("[data-testid=kcw-input]").input_value() == "are you there?"
    assert "are you there?" not in user_texts(page)
    page.unroute("**/webhooks/widget/webhook")
    assert errors and all("/webhooks/widget/webhook" in error for error in errors)
    errors.clear()
    page.locator("[data-testid=kcw-send]").click()
    wait_for_count(page, "kcw-msg-user", len(transcript[0]) + 1)
    assert notice.is_hidden()

    # Escape closes the panel and returns focus to the launcher.
    page.locator("[data-testid=kcw-input]").focus()
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.testid") == "kcw-launcher"

    assert errors == []
    context.close()


def test_widget_recovers_from_rejected_session(browser: Any, stub: tuple[str, StubState]) -> None:
    """A stored token the server no longer accepts is replaced, with a fresh conversation."""
    url, state = stub
    state.delay = 0.05
    context = browser.new_context()
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(url)
    page.locator("[data-testid=kcw-launcher]").click()
    wait_for_count(page, "kcw-msg-bot", 1)
    wait_idle(page)
    page.locator("[data-testid=kcw-input]").fill("before the secret rotated")
    page.keyboard.press("Enter")
    wait_for_count(page, "kcw-msg-bot", 2)
    old_token = stored_token(page)

    state.sessions.clear()  # e.g. BOT_WIDGET_SECRET was rotated
    page.reload()
    page.wait_for_function(
        "(old) => { for (let i = 0; i < localStorage.length; i++) {"
        " const k = localStorage.key(i);"
        " if (k.endsWith(':session') && localStorage.getItem(k) !== old) return true; }"
        " return false; }",
        arg=old_token,
        timeout=10_000,
    )
    new_token = stored_token(page)
    assert new_token in state.sessions and new_token != old_token
    # The old transcript is gone and the open panel greets again in the new conversation.
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=kcw-msg-bot]').length === 1"
        " && document.querySelectorAll('[data-testid=kcw-msg-user]').length === 0",
        timeout=10_000,
    )
    assert bot_texts(page) == [GREETING]
    assert state.messages[-1] == {"session": new_token, "message": "/greet"}
    errors = [e for e in errors if "status of 403" not in e]  # the rejected re-validation
    assert errors == []
    context.close()


def test_widget_screenshot_and_narrow_layout(browser: Any, stub: tuple[str, StubState]) -> None:
    url, state = stub
    state.delay = 0.05
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # Desktop screenshot of a short, realistic conversation.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(url)
    page.locator("[data-testid=kcw-launcher]").wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "widget-launcher.png"))
    page.locator("[data-testid=kcw-launcher]").click()
    wait_for_count(page, "kcw-msg-bot", 1)
    page.get_by_role("button", name="What happens at a visit?").click()
    wait_for_count(page, "kcw-msg-bot", 2)
    wait_idle(page)
    page.locator("[data-testid=kcw-input]").focus()
    page.wait_for_timeout(250)  # let the opening animation finish
    page.screenshot(path=str(ARTIFACTS / "widget.png"))
    context.close()

    # 360 x 740: the panel is full-screen and nothing scrolls sideways.
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, device_scale_factor=2, has_touch=True
    )
    page = context.new_page()
    errors += watch_errors(page)
    page.goto(url)
    launcher = page.locator("[data-testid=kcw-launcher]")
    box = launcher.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    launcher.click()
    wait_for_count(page, "kcw-msg-bot", 1)
    wait_idle(page)
    page.screenshot(path=str(ARTIFACTS / "widget-mobile.png"))
    page.locator("[data-testid=kcw-input]").fill("x" * 400)  # one long unbroken "word"
    page.keyboard.press("Enter")
    wait_for_count(page, "kcw-msg-bot", 2)
    wait_idle(page)

    panel_box = page.locator("[data-testid=kcw-panel]").bounding_box()
    assert panel_box == {"x": 0, "y": 0, "width": 360, "height": 740}
    assert page.locator("[data-testid=kcw-panel]").get_attribute("aria-modal") == "true"
    assert page.locator("[data-testid=kcw-crisis]").is_visible()
    overflow = page.evaluate(
        """() => ({
            doc: document.documentElement.scrollWidth,
            win: window.innerWidth,
            log: document.querySelector('[data-testid=kcw-log]').scrollWidth,
            logClient: document.querySelector('[data-testid=kcw-log]').clientWidth,
        })"""
    )
    assert overflow["doc"] <= overflow["win"]
    assert overflow["log"] <= overflow["logClient"]
    for selector in ("[data-testid=kcw-input]", "[data-testid=kcw-send]"):
        item = page.locator(selector).bounding_box()
        assert item is not None and item["x"] >= 0 and item["x"] + item["width"] <= 360

    # Closing on a small screen gives the page back.
    page.keyboard.press("Escape")
    assert page.evaluate("document.documentElement.classList.contains('kcw-scroll-lock')") is False
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    assert errors == []
    context.close()


# ----------------------------------------------------------------------------------- end to end
class EchoAgent:
    """A stand-in for Rasa's agent behind the real widget channel."""

    def __init__(self) -> None:
        self.domain = type("Domain", (), {"responses": {}})()
        self.senders: list[str] = []

    async def handle_message(self, message: Any) -> None:
        self.senders.append(message.sender_id)
        await message.output_channel.send_text_message(message.sender_id, f"Echo: {message.text}")


@pytest.fixture
def live_channel(settings_env: None) -> Iterator[tuple[str, EchoAgent]]:
    """The real ``WidgetInput`` blueprint on a real Sanic server, on its own port."""
    from rasa.core.channels.channel import register
    from sanic import Sanic

    agent = EchoAgent()
    app = Sanic(f"browser_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    register([WidgetInput()], app, "/webhooks/")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            app.create_server(
                host="127.0.0.1", port=0, return_asyncio_server=True, access_log=False
            )
        )
        loop.run_until_complete(server.startup())
        holder["server"] = server
        holder["port"] = server.server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield f"http://127.0.0.1:{holder['port']}", agent
    finally:

        async def stop() -> None:
            holder["server"].close()
            await holder["server"].wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_widget_cross_origin_with_real_channel(
    browser: Any,
    live_channel: tuple[str, EchoAgent],
    override_settings,
) -> None:
    """Demo page on one origin, the real widget channel on another, CORS and CSP enforced."""
    api, agent = live_channel
    demo = serve_demo(0, f"{api}/webhooks/widget/widget.js")
    port = demo.server_address[1]
    # Only the 127.0.0.1 spelling of the demo origin is allowed; "localhost" is not.
    override_settings(BOT_WIDGET_ALLOWED_ORIGINS=f"http://127.0.0.1:{port}")
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("[data-testid=kcw-launcher]").click()
        wait_for_count(page, "kcw-msg-bot", 1)  # the reply to /greet
        wait_idle(page)
        page.locator("[data-testid=kcw-input]").fill("Hello from another origin")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=kcw-msg-bot]')]"
            ".some(n => n.textContent === 'Echo: Hello from another origin')",
            timeout=10_000,
        )
        assert len(set(agent.senders)) == 1 and agent.senders[0].startswith("web-")
        assert errors == []
        context.close()

        # The same page from an origin that is not allowed: the browser blocks the replies.
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://localhost:{port}/")
        page.locator("[data-testid=kcw-launcher]").click()
        notice = page.locator("[data-testid=kcw-notice]")
        notice.wait_for(state="visible", timeout=10_000)
        assert page.locator("[data-testid=kcw-msg-bot]").count() == 0
        context.close()
    finally:
        demo.shutdown()
        demo.server_close()
