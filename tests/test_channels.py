"""Tests for the widget and REST input channels and the demo page server.

The channels are mounted on a plain Sanic app the way Rasa mounts them
(``rasa.core.channels.channel.register``), with a fake agent on ``app.ctx.agent``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa.core.channels.channel import InputChannel, UserMessage, register
from sanic import Sanic

from bot.channels.common import MAX_BODY_BYTES, BadRequestBody, parse_json_object
from bot.channels.rest import SafeRestInput
from bot.channels.text import MAX_MESSAGE_CHARS
from bot.channels.widget import (
    WidgetInput,
    mint_session_token,
    verify_session_token,
    widget_messages,
)
from bot.clinic import get_clinic
from bot.settings import PROJECT_ROOT
from bot.web.demo import content_security_policy, render_demo_page, serve_demo, widget_origin

SECRET = "test-widget-secret-0123456789abcdef"
ALLOWED_ORIGIN = "https://clinic.example"
TECH_TEXT = "Sorry, something went wrong on our side. Please call us at {clinic_phone}."
EMPTY_TEXT = "It looks like your message was empty. What would you like to ask?"
WIDGET = "/webhooks/widget"
REST = "/webhooks/rest/webhook"


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def settings_env(override_settings, tmp_path: Path) -> None:
    """Explicit widget settings for every test."""
    override_settings(
        BOT_DATA_DIR=str(tmp_path),
        BOT_WIDGET_SECRET=SECRET,
        BOT_WIDGET_ALLOWED_ORIGINS=f"{ALLOWED_ORIGIN}, http://localhost:8000",
    )


class FakeDomain:
    """Just the part of a Rasa ``Domain`` the channels read."""

    def __init__(self) -> None:
        self.responses: dict[str, list[dict[str, Any]]] = {
            "utter_technical_problem": [{"text": TECH_TEXT}, {"text": "second variation"}],
            "utter_empty_message": [{"text": EMPTY_TEXT}],
        }


class FakeAgent:
    """Records each ``UserMessage`` and answers like a tiny bot."""

    def __init__(self) -> None:
        self.domain = FakeDomain()
        self.received: list[UserMessage] = []
        self.error: Exception | None = None
        self.partial_before_error = False
        self.rich_reply = False
        self.silent = False

    async def handle_message(self, message: UserMessage) -> None:
        self.received.append(message)
        out = message.output_channel
        if self.partial_before_error:
            await out.send_text_message(message.sender_id, "One moment...")
        if self.error is not None:
            raise self.error
        if self.silent:
            return
        await out.send_text_message(message.sender_id, f"echo: {message.text}")
        if self.rich_reply:
            await out.send_text_with_buttons(
                message.sender_id,
                "Pick one",
                [
                    {"title": "Yes", "payload": "/affirm"},
                    {"title": "No", "payload": "/deny"},
                    {"title": "Website", "url": "https://example.org", "type": "web_url"},
                ],
            )
            await out.send_image_url(message.sender_id, "https://example.org/x.png")
            await out.send_custom_json(message.sender_id, {"kind": "secret-ui"})


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


def make_app(agent: FakeAgent, channels: list[InputChannel] | None = None) -> Sanic:
    app = Sanic(f"test_channels_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    register(channels or [WidgetInput(), SafeRestInput()], app, "/webhooks/")
    return app


@pytest.fixture
def app(agent: FakeAgent) -> Sanic:
    return make_app(agent)


def tech_text() -> str:
    return TECH_TEXT.format(clinic_phone=get_clinic().phone)


async def new_session(app: Sanic) -> str:
    _, resp = await app.asgi_client.post(f"{WIDGET}/session", content=b"{}")
    assert resp.status == 200
    return resp.json["session"]


async def post_widget(app: Sanic, body: Any, **kwargs: Any) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    _, resp = await app.asgi_client.post(f"{WIDGET}/webhook", content=content, **kwargs)
    return resp


def forge(token: str) -> str:
    """Flip one character of the signature."""
    head, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


# ----------------------------------------------------------------------------------- tokens
def test_token_round_trip() -> None:
    token = mint_session_token(b"k")
    sender = verify_session_token(token, b"k")
    assert sender == "web-" + token.split(".")[0]
    assert len(token.split(".")[0]) == 32


@pytest.mark.parametrize(
    "bad",
    [None, 42, "", "abc", "a.b", "x" * 32 + "." + "y" * 43, "web-attacker", ["list"]],
)
def test_token_rejects_malformed(bad: object) -> None:
    assert verify_session_token(bad, b"k") is None


def test_token_rejects_other_secret_and_tampering() -> None:
    token = mint_session_token(b"k")
    assert verify_session_token(token, b"other") is None
    assert verify_session_token(forge(token), b"k") is None
    head, signature = token.split(".")
    other_head = ("A" if head[0] != "A" else "B") + head[1:]
    assert verify_session_token(f"{other_head}.{signature}", b"k") is None


def test_widget_messages_keeps_only_text_and_buttons() -> None:
    collected: list[dict[str, Any]] = [
        {"recipient_id": "s", "text": "hi"},
        {"recipient_id": "s", "text": "choose", "buttons": [{"title": "A", "payload": "/a"}]},
        {"recipient_id": "s", "image": "https://example.org/x.png"},
        {"recipient_id": "s", "custom": {"a": 1}},
        {"recipient_id": "s", "buttons": [{"title": "B", "payload": "/b", "extra": 1}]},
        {"recipient_id": "s", "text": "", "buttons": [{"title": "C", "url": "https://x"}]},
    ]
    assert widget_messages(collected) == [
        {"text": "hi"},
        {"text": "choose", "buttons": [{"title": "A", "payload": "/a"}]},
        {"buttons": [{"title": "B", "payload": "/b"}]},
    ]


def test_parse_json_object_rejects_deep_nesting() -> None:
    with pytest.raises(BadRequestBody):
        parse_json_object(b"[" * 200_000 + b"]" * 200_000)


# ----------------------------------------------------------------------------------- widget
async def test_widget_health(app: Sanic) -> None:
    _, resp = await app.asgi_client.get(WIDGET)
    assert resp.status == 200
    assert resp.json == {"status": "ok"}


@pytest.mark.parametrize(
    ("name", "content_type", "marker"),
    [
        ("widget.js", "text/javascript", b"kcw"),
        ("widget.css", "text/css", b".kcw-root"),
    ],
)
async def test_widget_static_files(app: Sanic, name: str, content_type: str, marker: bytes) -> None:
    _, resp = await app.asgi_client.get(f"{WIDGET}/{name}")
    assert resp.status == 200
    assert resp.headers["content-type"].startswith(content_type)
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert marker in resp.body
    _, again = await app.asgi_client.get(
        f"{WIDGET}/{name}", headers={"If-None-Match": resp.headers["etag"]}
    )
    assert again.status == 304


async def test_widget_script_never_uses_inner_html(app: Sanic) -> None:
    _, resp = await app.asgi_client.get(f"{WIDGET}/widget.js")
    for forbidden in (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write"):
        assert forbidden not in resp.body


async def test_session_minted_and_revalidated(app: Sanic) -> None:
    token = await new_session(app)
    assert verify_session_token(token, SECRET.encode()) is not None
    _, resp = await app.asgi_client.post(
        f"{WIDGET}/session", content=json.dumps({"session": token}).encode()
    )
    assert resp.status == 200
    assert resp.json == {"session": token}
    assert resp.headers["cache-control"] == "no-store"


async def test_session_accepts_empty_body_and_null(app: Sanic) -> None:
    _, resp = await app.asgi_client.post(f"{WIDGET}/session")
    assert resp.status == 200 and "session" in resp.json
    _, resp = await app.asgi_client.post(f"{WIDGET}/session", content=b'{"session": null}')
    assert resp.status == 200 and "session" in resp.json


async def test_two_sessions_differ(app: Sanic) -> None:
    first, second = await new_session(app), await new_session(app)
    assert first != second
    assert verify_session_token(first, SECRET.encode()) != verify_session_token(
        second, SECRET.encode()
    )


@pytest.mark.parametrize(
    "make_bad",
    [
        forge,
        lambda token: mint_session_token(b"some other secret"),
        lambda token: "web-attacker",
        lambda token: token + "x",
        lambda token: 12345,
    ],
    ids=["tampered-signature", "other-secret", "chosen-sender", "extended", "number"],
)
async def test_session_rejects_forged_tokens(app: Sanic, make_bad: Any) -> None:
    bad = make_bad(await new_session(app))
    _, resp = await app.asgi_client.post(
        f"{WIDGET}/session", content=json.dumps({"session": bad}).encode()
    )
    assert resp.status == 403
    assert "error" in resp.json


async def test_session_malformed_body(app: Sanic) -> None:
    _, resp = await app.asgi_client.post(f"{WIDGET}/session", content=b"{nope")
    assert resp.status == 400
    assert "error" in resp.json


async def test_webhook_round_trip(app: Sanic, agent: FakeAgent) -> None:
    token = await new_session(app)
    resp = await post_widget(app, {"session": token, "message": "  Hello   there \x00 "})
    assert resp.status == 200
    assert resp.json == {"messages": [{"text": "echo: Hello there"}]}
    assert resp.headers["cache-control"] == "no-store"
    (message,) = agent.received
    assert message.text == "Hello there"
    assert message.sender_id == "web-" + token.split(".")[0]
    assert message.input_channel == "widget"


async def test_webhook_accepts_text_plain_and_json_content_types(app: Sanic) -> None:
    token = await new_session(app)
    body = {"session": token, "message": "hi"}
    for content_type in ("text/plain;charset=UTF-8", "application/json"):
        resp = await post_widget(app, body, headers={"Content-Type": content_type})
        assert resp.status == 200


async def test_sender_id_comes_only_from_the_token(app: Sanic, agent: FakeAgent) -> None:
    token = await new_session(app)
    body = {
        "session": token,
        "message": "hi",
        "sender": "web-victim",
        "sender_id": "web-victim",
        "input_channel": "rest",
        "metadata": {"sender": "web-victim"},
    }
    resp = await post_widget(app, body)
    assert resp.status == 200
    (message,) = agent.received
    assert message.sender_id == "web-" + token.split(".")[0]
    assert message.input_channel == "widget"
    assert not message.metadata


async def test_two_sessions_reach_rasa_as_different_senders(app: Sanic, agent: FakeAgent) -> None:
    for _ in range(2):
        await post_widget(app, {"session": await new_session(app), "message": "hi"})
    assert len({message.sender_id for message in agent.received}) == 2


@pytest.mark.parametrize(
    "make_bad",
    [forge, lambda token: mint_session_token(b"other"), lambda token: "web-attacker"],
    ids=["tampered", "other-secret", "chosen-sender"],
)
async def test_webhook_rejects_forged_tokens(app: Sanic, agent: FakeAgent, make_bad: Any) -> None:
    bad = make_bad(await new_session(app))
    resp = await post_widget(app, {"session": bad, "message": "hi"})
    assert resp.status == 403
    assert "error" in resp.json
    assert agent.received == []


async def test_webhook_buttons_kept_other_content_dropped(app: Sanic, agent: FakeAgent) -> None:
    agent.rich_reply = True
    resp = await post_widget(app, {"session": await new_session(app), "message": "hi"})
    assert resp.json == {
        "messages": [
            {"text": "echo: hi"},
            {
                "text": "Pick one",
                "buttons": [
                    {"title": "Yes", "payload": "/affirm"},
                    {"title": "No", "payload": "/deny"},
                ],
            },
        ]
    }


# The bad-input list, for both channels. Each case: (raw body or message, expectation).
BAD_MESSAGES: list[tuple[str, Any, str]] = [
    ("empty", "", "empty"),
    ("whitespace", "  \t\n  ", "empty"),
    ("nul-only", "\x00\x00", "empty"),
    ("10k-chars", "x" * 10_000, "capped"),
    ("10k-words", "help " * 2_000, "capped"),
    ("emoji-only", "😔😔😔", "echo"),
    ("script-tag", "<script>alert(1)</script>", "echo"),
    ("img-onerror", '<img src=x onerror="alert(1)">', "echo"),
    ("sql", "'; DROP TABLE patients; --", "echo"),
    ("arabic", "مرحبا، أريد حجز موعد", "echo"),
    ("hebrew", "שלום, אני רוצה לקבוע תור", "echo"),
    ("nul-inside", "hel\x00lo", "nul"),
    ("bidi-override", "abc\u202edef", "bidi"),
    ("lone-surrogate", "a\ud800b", "surrogate"),
]


def _check_message_reply(
    channel: str, expectation: str, raw: str, replies: list[dict[str, Any]], agent: FakeAgent
) -> None:
    texts = [reply["text"] for reply in replies]
    if expectation == "empty":
        assert agent.received == []
        assert texts == [EMPTY_TEXT]
        return
    (message,) = agent.received
    assert message.input_channel == channel
    if expectation == "capped":
        assert 0 < len(message.text) <= MAX_MESSAGE_CHARS
        assert raw.startswith(message.text)
    elif expectation == "echo":
        assert message.text == raw  # passed through as text, not escaped or altered
        assert texts == [f"echo: {raw}"]
    elif expectation == "nul":
        assert message.text == "hello"
    elif expectation == "bidi":
        assert message.text == "abcdef"
    elif expectation == "surrogate":
        assert message.text == "a\ufffdb"


@pytest.mark.parametrize(
    ("case", "raw", "expectation"), BAD_MESSAGES, ids=[c[0] for c in BAD_MESSAGES]
)
async def test_widget_bad_messages(
    app: Sanic, agent: FakeAgent, case: str, raw: str, expectation: str
) -> None:
    token = await new_session(app)
    resp = await post_widget(app, {"session": token, "message": raw})
    assert resp.status == 200
    _check_message_reply("widget", expectation, raw, resp.json["messages"], agent)


@pytest.mark.parametrize(
    ("case", "raw", "expectation"), BAD_MESSAGES, ids=[c[0] for c in BAD_MESSAGES]
)
async def test_rest_bad_messages(
    app: Sanic, agent: FakeAgent, case: str, raw: str, expectation: str
) -> None:
    _, resp = await app.asgi_client.post(
        REST, content=json.dumps({"sender": "bench-1", "message": raw}).encode()
    )
    assert resp.status == 200
    replies = resp.json
    assert all(reply["recipient_id"] == "bench-1" for reply in replies)
    _check_message_reply("rest", expectation, raw, replies, agent)


BAD_BODIES: list[tuple[str, bytes]] = [
    ("not-utf8", b'{"message": "\xff\xfe caf\xe9"}'),
    ("malformed-json", b'{"message": "hi",'),
    ("json-array", b'["hi"]'),
    ("json-string", b'"hi"'),
    ("json-null", b"null"),
    ("empty-body", b""),
    ("nan-is-not-object", b"NaN"),
    ("deep-nesting", b"[" * 100_000 + b"]" * 100_000),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_widget_bad_bodies(app: Sanic, agent: FakeAgent, case: str, body: bytes) -> None:
    resp = await post_widget(app, body)
    assert resp.status == 400
    assert isinstance(resp.json["error"], str)
    assert agent.received == []


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_rest_bad_bodies(app: Sanic, agent: FakeAgent, case: str, body: bytes) -> None:
    _, resp = await app.asgi_client.post(REST, content=body)
    assert resp.status == 400
    assert isinstance(resp.json["error"], str)
    assert agent.received == []


@pytest.mark.parametrize(
    "fields",
    [
        {"message": 42},
        {"message": None},
        {"message": ["hi"]},
        {"message": {"text": "hi"}},
        {},
        {"session": None, "message": "hi"},
        {"session": 5, "message": "hi"},
    ],
    ids=["number", "null", "list", "object", "missing-all", "null-session", "number-session"],
)
async def test_widget_wrong_types(app: Sanic, agent: FakeAgent, fields: dict[str, Any]) -> None:
    body: dict[str, Any] = {"session": await new_session(app), **fields}
    if "message" not in fields and "session" not in fields:
        body = {}
    resp = await post_widget(app, body)
    assert resp.status == 400
    assert agent.received == []


async def test_widget_oversized_body(app: Sanic, agent: FakeAgent) -> None:
    token = await new_session(app)
    resp = await post_widget(app, {"session": token, "message": "x" * (MAX_BODY_BYTES + 10)})
    assert resp.status == 413
    assert agent.received == []


async def test_widget_agent_failure_answers_technical_problem(
    app: Sanic, agent: FakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent.error = ConnectionError("action server at http://localhost:5055 down; tracker: my secret")
    caplog.set_level(logging.DEBUG)
    token = await new_session(app)
    resp = await post_widget(app, {"session": token, "message": "my private words"})
    assert resp.status == 200
    assert resp.json == {"messages": [{"text": tech_text()}], "failed": True}
    assert "(555) 010-4477" in tech_text()
    assert "ConnectionError" in caplog.text
    assert "my private words" not in caplog.text
    assert "my secret" not in caplog.text
    assert token.split(".")[0] not in caplog.text  # only a short prefix of the sender id


async def test_widget_failure_keeps_partial_reply(app: Sanic, agent: FakeAgent) -> None:
    agent.error = RuntimeError("boom")
    agent.partial_before_error = True
    resp = await post_widget(app, {"session": await new_session(app), "message": "hi"})
    assert resp.status == 200
    assert resp.json["messages"] == [{"text": "One moment..."}, {"text": tech_text()}]


async def test_widget_failure_falls_back_to_the_domain_file(app: Sanic, agent: FakeAgent) -> None:
    agent.error = RuntimeError("boom")
    agent.domain.responses.clear()
    resp = await post_widget(app, {"session": await new_session(app), "message": "hi"})
    assert resp.status == 200
    assert resp.json["failed"] is True
    [message] = resp.json["messages"]
    assert message["text"].startswith("Sorry, something went wrong on our side.")


async def test_widget_failure_without_domain_response(
    app: Sanic, agent: FakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent.error = RuntimeError("boom")
    agent.domain.responses.clear()
    monkeypatch.setattr("bot.channels.common._domain_file_responses", lambda: {})
    resp = await post_widget(app, {"session": await new_session(app), "message": "hi"})
    assert resp.status == 200
    assert resp.json == {"messages": [], "failed": True}


async def test_widget_no_model_loaded(agent: FakeAgent) -> None:
    app = make_app(agent)
    app.ctx.agent = None  # Rasa before a model is loaded: the handler itself fails.
    resp = await post_widget(app, {"session": await new_session(app), "message": "hi"})
    assert resp.status == 200
    # The reply still comes, from domain.yml itself.
    assert resp.json["failed"] is True
    [message] = resp.json["messages"]
    assert message["text"].startswith("Sorry, something went wrong on our side.")


# ----------------------------------------------------------------------------------- CORS
async def test_cors_allowed_origin(app: Sanic) -> None:
    _, resp = await app.asgi_client.post(
        f"{WIDGET}/session", content=b"{}", headers={"Origin": ALLOWED_ORIGIN}
    )
    assert resp.headers.get_list("access-control-allow-origin") == [ALLOWED_ORIGIN]
    assert "Origin" in resp.headers["vary"]


async def test_cors_disallowed_origin(app: Sanic) -> None:
    _, resp = await app.asgi_client.post(
        f"{WIDGET}/session", content=b"{}", headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in resp.headers
    assert "Origin" in resp.headers["vary"]


async def test_cors_preflight(app: Sanic) -> None:
    headers = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    _, resp = await app.asgi_client.options(f"{WIDGET}/webhook", headers=headers)
    assert resp.status < 300
    assert resp.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in resp.headers["access-control-allow-methods"]
    assert "content-type" in resp.headers["access-control-allow-headers"].lower()

    headers["Origin"] = "https://evil.example"
    _, resp = await app.asgi_client.options(f"{WIDGET}/webhook", headers=headers)
    assert "access-control-allow-origin" not in resp.headers


@pytest.mark.filterwarnings("ignore:You have set a listener")
async def test_cors_no_duplicates_with_rasa_cors(agent: FakeAgent) -> None:
    """Rasa's ``--cors "*"`` (Sanic-CORS) must not add a second or a wider header."""
    from rasa.server import configure_cors

    app = Sanic(f"test_channels_{uuid.uuid4().hex}")
    app.ctx.agent = agent
    configure_cors(app, "*")
    register([WidgetInput(), SafeRestInput()], app, "/webhooks/")

    # Sanic-CORS is active: on a route the widget channel does not own, it reflects any origin.
    _, resp = await app.asgi_client.get(
        "/webhooks/rest", headers={"Origin": "https://evil.example"}
    )
    assert resp.headers.get_list("access-control-allow-origin") == ["https://evil.example"]

    for method, path in (("post", "session"), ("options", "webhook")):
        call = getattr(app.asgi_client, method)
        kwargs: dict[str, Any] = {"headers": {"Access-Control-Request-Method": "POST"}}
        if method == "post":
            kwargs["content"] = b"{}"
        kwargs["headers"]["Origin"] = ALLOWED_ORIGIN
        _, resp = await call(f"{WIDGET}/{path}", **kwargs)
        assert resp.headers.get_list("access-control-allow-origin") == [ALLOWED_ORIGIN]
        assert len(resp.headers.get_list("vary")) == 1

        kwargs["headers"]["Origin"] = "https://evil.example"
        _, resp = await call(f"{WIDGET}/{path}", **kwargs)
        assert resp.headers.get_list("access-control-allow-origin") == []


# ----------------------------------------------------------------------------------- REST
async def test_rest_health(app: Sanic) -> None:
    _, resp = await app.asgi_client.get("/webhooks/rest")
    assert resp.status == 200
    assert resp.json == {"status": "ok"}


async def test_rest_round_trip(app: Sanic, agent: FakeAgent) -> None:
    body = {"sender": "bench:user-1.a_b", "message": " Hi ", "metadata": {"run": 7}}
    _, resp = await app.asgi_client.post(REST, json=body)
    assert resp.status == 200
    assert resp.json == [{"recipient_id": "bench:user-1.a_b", "text": "echo: Hi"}]
    (message,) = agent.received
    assert message.sender_id == "bench:user-1.a_b"
    assert message.input_channel == "rest"
    assert message.metadata == {"run": 7}


async def test_rest_keeps_rasa_message_shape_for_buttons(app: Sanic, agent: FakeAgent) -> None:
    agent.rich_reply = True
    _, resp = await app.asgi_client.post(REST, json={"sender": "s1", "message": "hi"})
    assert resp.status == 200
    assert resp.json[1]["buttons"][0] == {"title": "Yes", "payload": "/affirm"}
    assert all(reply["recipient_id"] == "s1" for reply in resp.json)


@pytest.mark.parametrize(
    "body",
    [
        {"message": "hi"},
        {"sender": None, "message": "hi"},
        {"sender": 12, "message": "hi"},
        {"sender": "", "message": "hi"},
        {"sender": "has space", "message": "hi"},
        {"sender": "x" * 129, "message": "hi"},
        {"sender": "ok", "message": 12},
        {"sender": "ok"},
        {"sender": "ok", "message": "hi", "metadata": "nope"},
        {"sender": "ok", "message": "hi", "stream": True},
    ],
    ids=[
        "no-sender",
        "null-sender",
        "number-sender",
        "empty-sender",
        "bad-chars",
        "too-long",
        "number-message",
        "no-message",
        "bad-metadata",
        "stream-in-body",
    ],
)
async def test_rest_rejects_bad_fields(app: Sanic, agent: FakeAgent, body: dict[str, Any]) -> None:
    _, resp = await app.asgi_client.post(REST, json=body)
    assert resp.status == 400
    assert "error" in resp.json
    assert agent.received == []


async def test_rest_sender_of_max_length_accepted(app: Sanic) -> None:
    _, resp = await app.asgi_client.post(REST, json={"sender": "x" * 128, "message": "hi"})
    assert resp.status == 200


async def test_rest_rejects_streaming(app: Sanic, agent: FakeAgent) -> None:
    _, resp = await app.asgi_client.post(
        f"{REST}?stream=true", json={"sender": "s1", "message": "hi"}
    )
    assert resp.status == 400
    assert agent.received == []


async def test_rest_agent_failure_answers_technical_problem(
    app: Sanic, agent: FakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent.error = TimeoutError("tracker store unreachable")
    caplog.set_level(logging.DEBUG)
    _, resp = await app.asgi_client.post(REST, json={"sender": "s1", "message": "very private"})
    assert resp.status == 200
    assert resp.json == [{"recipient_id": "s1", "text": tech_text()}]
    assert "TimeoutError" in caplog.text
    assert "very private" not in caplog.text


async def test_silence_from_rasa_answers_technical_problem(
    app: Sanic, agent: FakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # Rasa logs a failing custom action and returns no reply; the person must not be left
    # waiting in silence.
    agent.silent = True
    caplog.set_level(logging.DEBUG)
    _, resp = await app.asgi_client.post(REST, json={"sender": "s1", "message": "very private"})
    assert resp.status == 200
    assert resp.json == [{"recipient_id": "s1", "text": tech_text()}]
    assert "very private" not in caplog.text


async def test_technical_problem_without_clinic_config(
    app: Sanic, agent: FakeAgent, override_settings, tmp_path: Path
) -> None:
    override_settings(BOT_CLINIC_CONFIG=str(tmp_path / "missing.yml"))
    agent.error = RuntimeError("boom")
    _, resp = await app.asgi_client.post(REST, json={"sender": "s1", "message": "hi"})
    assert resp.status == 200
    assert resp.json == [{"recipient_id": "s1", "text": TECH_TEXT}]


# ----------------------------------------------------------------------------------- demo page
@pytest.fixture
def odd_clinic(override_settings, tmp_path: Path) -> str:
    """A clinic whose name needs HTML escaping."""
    raw = yaml.safe_load((PROJECT_ROOT / "clinic.yml").read_text(encoding="utf-8"))
    raw["name"] = 'Harbor <b>Light</b> & "Sons"'
    path = tmp_path / "clinic.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    override_settings(BOT_CLINIC_CONFIG=str(path))
    return raw["name"]


def test_demo_server_serves_escaped_page(odd_clinic: str) -> None:
    widget_src = "http://localhost:5005/webhooks/widget/widget.js"
    server = serve_demo(0, widget_src)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as resp:  # noqa: S310
            page = resp.read().decode("utf-8")
            headers = resp.headers
        assert resp.status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "Harbor &lt;b&gt;Light&lt;/b&gt; &amp; &quot;Sons&quot;" in page
        assert odd_clinic not in page
        assert f'<script src="{widget_src}" defer></script>' in page
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self' http://localhost:5005" in csp
        assert "connect-src 'self' http://localhost:5005" in csp
        assert "'unsafe-inline'" not in csp
        nonce = csp.split("'nonce-")[1].split("'")[0]
        assert f'<style nonce="{nonce}">' in page

        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "admin", timeout=10)  # noqa: S310
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_demo_page_rendering_and_validation() -> None:
    page = render_demo_page("https://chat.example/webhooks/widget/widget.js", "n0nce")
    assert get_clinic().name in page
    assert "$" not in page.replace("$clinic", "")  # every placeholder was substituted
    assert widget_origin("https://chat.example:8443/w/widget.js") == "https://chat.example:8443"
    assert "'nonce-abc'" in content_security_policy("http://a.example/widget.js", "abc")
    for bad in ("javascript:alert(1)", "/relative/widget.js", "http://a.example/x'; y"):
        with pytest.raises(ValueError):
            widget_origin(bad)
    with pytest.raises(ValueError):
        serve_demo(0, "javascript:alert(1)")
