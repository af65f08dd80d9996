"""The staff console web app, through HTTP (Sanic's ASGI test client), on SQLite and PostgreSQL.

Each database gets its own freshly migrated database for this module, so what the console
commits never reaches other tests. Rasa's HTTP API is replaced by a recording stand-in; the
browser tests (tests/browser/test_console.py) drive the real one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sanic_testing.testing import SanicASGITestClient
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.console import security
from bot.console.app import create_app
from bot.console.auth import safe_next
from bot.console.chart import score_chart
from bot.console.events import format_event
from bot.console.rasa_api import RasaApiError, TranscriptLine
from bot.console.summary import display, sections
from bot.db.models import (
    AuditEvent,
    Channel,
    Checkin,
    CheckinAnswer,
    CheckinStatus,
    Handoff,
    HandoffPriority,
    HandoffReason,
    HandoffStatus,
    StaffSession,
    utcnow,
)
from bot.db.session import make_engine
from bot.services import audit, checkins, conversations, handoffs, intake, patients, staff
from bot.settings import get_settings, load_settings
from tests.conftest import own_database

PASSWORD = "correct horse battery staple"
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "pragma": "no-cache",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
CSP_PARTS = ("default-src 'self'", "frame-ancestors 'none'", "form-action 'self'",
             "base-uri 'none'", "script-src 'self'")


# -- Rasa stand-in -------------------------------------------------------------------------


@dataclass
class FakeRasa:
    """Records what the console asks of Rasa's HTTP API and answers from memory."""

    lines: dict[str, list[TranscriptLine]] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    staff_messages: list[tuple[str, str, str]] = field(default_factory=list)
    down: bool = False

    def _check(self, name: str, sender_id: str) -> None:
        self.calls.append((name, sender_id))
        if self.down:
            raise RasaApiError("timeout")

    def transcript(self, sender_id: str) -> list[TranscriptLine]:
        self._check("transcript", sender_id)
        return list(self.lines.get(sender_id, []))

    def is_paused(self, sender_id: str) -> bool:
        self._check("is_paused", sender_id)
        return sender_id in self.paused

    def pause(self, sender_id: str) -> None:
        self._check("pause", sender_id)
        self.paused.add(sender_id)

    def resume(self, sender_id: str) -> None:
        self._check("resume", sender_id)
        self.paused.discard(sender_id)

    def append_staff_message(self, sender_id: str, text: str, staff_name: str) -> None:
        self._check("append_staff_message", sender_id)
        self.staff_messages.append((sender_id, text, staff_name))
        self.lines.setdefault(sender_id, []).append(
            TranscriptLine("staff", text, utcnow(), staff_name=staff_name))


# -- Databases and the app -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A fresh, migrated database for this module: each test runs on SQLite and PostgreSQL."""
    with own_database(request.param, get_settings().data_dir, "console") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def rasa() -> FakeRasa:
    return FakeRasa()


@pytest.fixture
def app(engine: Engine, rasa: FakeRasa) -> Any:
    return create_app(engine=engine, rasa_api=rasa, stream_seconds=0.6, poll_seconds=0.2)


def db(engine: Engine) -> Session:
    return Session(bind=engine, future=True, expire_on_commit=False)


def new_user(engine: Engine, role: str, name: str | None = None) -> Any:
    email = f"{role}-{uuid.uuid4().hex[:10]}@clinic.example"
    with db(engine) as session, session.begin():
        return staff.create_user(session, email, name or role.replace("_", " ").title(), role,
                                 PASSWORD)


def new_handoff(engine: Engine, *, channel: Channel = Channel.WIDGET,
                reason: HandoffReason = HandoffReason.HUMAN_REQUESTED,
                priority: HandoffPriority = HandoffPriority.ROUTINE,
                summary: dict[str, Any] | None = None, first_name: str | None = None,
                phone: str | None = None, age: dt.timedelta | None = None) -> Handoff:
    sender = f"{'sms' if channel is Channel.SMS else 'web'}-{uuid.uuid4().hex}"
    with db(engine) as session, session.begin():
        if first_name:
            intake.record_answer(session, sender, channel, "first_name", first_name)
        if phone:
            intake.record_answer(session, sender, channel, "phone", phone)
        handoff = handoffs.create(session, sender, channel, reason, priority,
                                  summary or {"kind": "intake", "answers": {}})
        if age is not None:
            handoff.created_at = utcnow() - age
        session.flush()
        assert handoff.conversation.sender_id == sender  # loaded for use after the session
        return handoff


class Staff:
    """One staff member's browser: its own cookies, and the CSRF token of its session."""

    def __init__(self, app: Any, base_url: str = "http://mockserver") -> None:
        self.client = SanicASGITestClient(app)
        self.base_url = base_url
        self.csrf = ""

    def url(self, path: str) -> str:
        return self.base_url + path

    async def get(self, path: str, **kwargs: Any) -> Any:
        _, response = await self.client.get(self.url(path), allow_redirects=False, **kwargs)
        return response

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
                   **kwargs: Any) -> Any:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        _, response = await self.client.post(self.url(path), data=form, allow_redirects=False,
                                             **kwargs)
        return response

    async def login(self, email: str, password: str = PASSWORD) -> Any:
        page = await self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        response = await self.post("/login", {"email": email, "password": password,
                                              "csrf_token": token}, csrf=False)
        if response.status_code == 303:
            queue = await self.get("/queue")
            found = re.search(r'<meta name="csrf-token" content="([^"]+)">', queue.text)
            self.csrf = found.group(1) if found else ""
        return response


async def signed_in(app: Any, engine: Engine, role: str, name: str | None = None
                    ) -> tuple[Staff, Any]:
    user = new_user(engine, role, name)
    browser = Staff(app)
    response = await browser.login(user.email)
    assert response.status_code == 303, response.text
    return browser, user


def audit_actions(engine: Engine, user_id: int, *, refused: bool = False) -> list[str]:
    """The user's audited actions, newest first (refused attempts only when ``refused``)."""
    with db(engine) as session:
        return [event.action for event in audit.query(session, staff_user_id=user_id)
                if refused or event.action != audit.ACCESS_DENIED]


def sse_events(body: str) -> list[tuple[str, Any]]:
    events = []
    for block in body.split("\n\n"):
        name = next((line[7:] for line in block.splitlines() if line.startswith("event: ")), None)
        data = "\n".join(line[6:] for line in block.splitlines() if line.startswith("data: "))
        if name:
            events.append((name, json.loads(data) if data else None))
    return events


def queue_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-handoff-id="(\d+)"', html)]


# -- Signing in and out ----------------------------------------------------------------------


async def test_login_sets_a_strict_session_cookie_and_logout_ends_the_session(app, engine):
    user = new_user(engine, "clinician")
    browser = Staff(app)
    response = await browser.login(user.email.upper())
    assert response.status_code == 303
    assert response.headers["location"] == "/queue"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{security.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP, and BOT_CONSOLE_SECURE_COOKIES is not set
    assert (await browser.get("/queue")).status_code == 200

    response = await browser.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?signed_out=1"
    assert "Max-Age=0" in response.headers["set-cookie"]
    # The old token no longer signs anyone in, even if the browser kept it.
    with db(engine) as session:
        row = session.scalars(select(StaffSession).where(StaffSession.user_id == user.id)).one()
        assert row.revoked_at is not None
    assert audit_actions(engine, user.id)[:2] == [audit.LOGOUT, audit.LOGIN]


async def test_wrong_password_is_refused_without_a_session(app, engine):
    user = new_user(engine, "front_desk")
    browser = Staff(app)
    response = await browser.login(user.email, "not the password at all")
    assert response.status_code == 401
    assert "do not match an active account" in response.text
    assert security.SESSION_COOKIE + "=" not in response.headers.get("set-cookie", "")
    assert (await browser.get("/queue")).status_code == 303


async def test_deactivated_account_cannot_sign_in(app, engine):
    user = new_user(engine, "clinician")
    admin = new_user(engine, "admin")
    with db(engine) as session, session.begin():
        staff.update_user(session, user.id, actor_id=admin.id, active=False)
    assert (await Staff(app).login(user.email)).status_code == 401


async def test_repeated_failures_are_throttled_with_a_retry_time(app, engine):
    user = new_user(engine, "clinician")
    browser = Staff(app)
    for _ in range(staff.MAX_FAILURES_PER_EMAIL):
        assert (await browser.login(user.email, "wrong password guess")).status_code == 401
    # Even the right password is refused now.
    response = await browser.login(user.email)
    assert response.status_code == 429
    retry = int(response.headers["retry-after"])
    assert 0 < retry <= 15 * 60
    assert "Too many failed sign-in attempts" in response.text
    assert re.search(r"Try again in \d+ minutes?", response.text)
    assert security.SESSION_COOKIE + "=" not in response.headers.get("set-cookie", "")


async def test_login_form_without_its_csrf_token_is_refused(app, engine):
    user = new_user(engine, "clinician")
    browser = Staff(app)
    await browser.get("/login")
    response = await browser.post("/login", {"email": user.email, "password": PASSWORD,
                                             "csrf_token": "forged"}, csrf=False)
    assert response.status_code == 403
    assert security.SESSION_COOKIE + "=" not in response.headers.get("set-cookie", "")


async def test_login_returns_to_the_page_asked_for_but_never_off_site(app, engine):
    user = new_user(engine, "clinician")
    handoff = new_handoff(engine)
    browser = Staff(app)
    response = await browser.get(f"/handoffs/{handoff.id}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=%2Fhandoffs%2F{handoff.id}"
    page = await browser.get(response.headers["location"])
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert f'name="next" value="/handoffs/{handoff.id}"' in page.text
    response = await browser.post("/login", {"email": user.email, "password": PASSWORD,
                                             "csrf_token": token,
                                             "next": f"/handoffs/{handoff.id}"}, csrf=False)
    assert response.headers["location"] == f"/handoffs/{handoff.id}"


async def test_another_sign_in_page_keeps_the_open_forms_token(app, engine):
    user = new_user(engine, "clinician")
    browser = Staff(app)
    first = re.search(r'name="csrf_token" value="([^"]+)"',
                      (await browser.get("/login")).text).group(1)
    # Browsers ask for an icon on every page; that must not reach the sign-in page.
    icon = await browser.get("/favicon.ico")
    assert icon.status_code == 204
    second = re.search(r'name="csrf_token" value="([^"]+)"',
                       (await browser.get("/login")).text).group(1)
    assert second == first
    response = await browser.post("/login", {"email": user.email, "password": PASSWORD,
                                             "csrf_token": first}, csrf=False)
    assert response.status_code == 303


@pytest.mark.parametrize("target, expected", [
    ("/handoffs/3", "/handoffs/3"),
    ("/queue?priority=urgent", "/queue?priority=urgent"),
    ("https://evil.example/", "/queue"),
    ("//evil.example/", "/queue"),
    ("/\\evil.example", "/queue"),
    ("javascript:alert(1)", "/queue"),
    ("/logout", "/queue"),
    ("", "/queue"),
])
def test_safe_next_only_allows_console_paths(target, expected):
    assert safe_next(target) == expected


async def test_idle_session_is_signed_out_after_fifteen_minutes(app, engine):
    browser, user = await signed_in(app, engine, "clinician")

    def last_seen(delta: dt.timedelta) -> None:
        with db(engine) as session, session.begin():
            session.execute(update(StaffSession).where(StaffSession.user_id == user.id)
                            .values(last_seen_at=utcnow() - delta))

    last_seen(dt.timedelta(minutes=14))
    assert (await browser.get("/queue")).status_code == 200  # and that counted as activity
    last_seen(staff.IDLE_TIMEOUT + dt.timedelta(seconds=5))
    response = await browser.get("/queue")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?expired=1"
    assert "Max-Age=0" in response.headers["set-cookie"]
    page = await browser.get("/login?expired=1")
    assert "signed out after 15 minutes without activity" in page.text


async def test_live_streams_do_not_count_as_activity(app, engine):
    browser, user = await signed_in(app, engine, "clinician")
    earlier = utcnow() - dt.timedelta(minutes=10)
    with db(engine) as session, session.begin():
        session.execute(update(StaffSession).where(StaffSession.user_id == user.id)
                        .values(last_seen_at=earlier))
    response = await browser.get("/events/queue")
    assert response.status_code == 200
    with db(engine) as session:
        row = session.scalars(select(StaffSession).where(StaffSession.user_id == user.id)).one()
        seen = row.last_seen_at.replace(tzinfo=dt.timezone.utc) \
            if row.last_seen_at.tzinfo is None else row.last_seen_at
    assert abs((seen - earlier).total_seconds()) < 1


async def test_the_page_carries_the_idle_timeout_for_its_warning(app, engine):
    browser, _ = await signed_in(app, engine, "front_desk")
    page = await browser.get("/queue")
    assert 'data-idle-seconds="900"' in page.text
    assert 'id="idle-warning"' in page.text


# -- CSRF, headers, errors -------------------------------------------------------------------


async def test_state_changes_without_the_csrf_token_are_refused(app, engine):
    browser, _ = await signed_in(app, engine, "clinician")
    handoff = new_handoff(engine)
    for data in ({}, {"csrf_token": "not-the-token"}):
        response = await browser.post(f"/handoffs/{handoff.id}/claim", data, csrf=False)
        assert response.status_code == 403
        assert "security token did not match" in response.text
    with db(engine) as session:
        assert handoffs.get(session, handoff.id).status is HandoffStatus.OPEN
    # The header works too (the page's script sends it).
    _, response = await browser.client.post(
        browser.url(f"/handoffs/{handoff.id}/claim"), headers={"X-CSRF-Token": browser.csrf},
        allow_redirects=False)
    assert response.status_code == 303
    with db(engine) as session:
        assert handoffs.get(session, handoff.id).status is HandoffStatus.CLAIMED


async def test_every_response_carries_the_security_headers(app, engine):
    browser, _ = await signed_in(app, engine, "front_desk")
    handoff = new_handoff(engine)
    responses = {
        "login redirect": await Staff(app).get("/queue"),
        "login page": await Staff(app).get("/login"),
        "queue": await browser.get("/queue"),
        "handoff": await browser.get(f"/handoffs/{handoff.id}"),
        "forbidden": await browser.get(f"/handoffs/{handoff.id}/transcript"),
        "not found": await browser.get("/no-such-page"),
        "bad request": await browser.get("/queue?priority=loud"),
        "stylesheet": await browser.get("/static/console.css"),
        "script": await browser.get("/static/console.js"),
        "events": await browser.get("/events/queue"),
        "csrf refusal": await browser.post(f"/handoffs/{handoff.id}/claim", csrf=False),
    }
    for name, response in responses.items():
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (name, header)
        policy = response.headers["content-security-policy"]
        assert all(part in policy for part in CSP_PARTS), name
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "strict-transport-security" not in response.headers, name
    assert responses["stylesheet"].status_code == 200
    assert responses["forbidden"].status_code == 403


async def test_pages_have_no_inline_script_or_style(app, engine):
    browser, _ = await signed_in(app, engine, "admin")
    handoff = new_handoff(engine, reason=HandoffReason.CRISIS,
                          priority=HandoffPriority.URGENT,
                          summary={"kind": "crisis", "messages": [{"at": "x", "text": "hi"}]})
    for path in ("/queue", f"/handoffs/{handoff.id}", "/admin/staff", "/admin/patients",
                 "/admin/clinic", "/admin/audit", "/login"):
        page = (await browser.get(path)).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path
        assert "<style" not in page and " style=" not in page, path
        assert not re.search(r"\son[a-z]+=", page), path


async def test_over_https_cookies_are_secure_and_hsts_is_sent(app, engine):
    user = new_user(engine, "clinician")
    browser = Staff(app, base_url="https://mockserver")
    page = await browser.get("/login")
    assert "Secure" in page.headers["set-cookie"]
    assert page.headers["strict-transport-security"].startswith("max-age=")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = await browser.post("/login", {"email": user.email, "password": PASSWORD,
                                             "csrf_token": token}, csrf=False)
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


async def test_secure_cookies_can_be_forced_behind_a_proxy(engine, rasa):
    settings = load_settings({**os.environ, security.SECURE_COOKIES_ENV: "true"})
    assert settings.console_secure_cookies is True
    app = create_app(settings, engine=engine, rasa_api=rasa)
    page = await Staff(app).get("/login")
    assert "Secure" in page.headers["set-cookie"]
    assert "strict-transport-security" not in page.headers  # still plain HTTP


async def test_unknown_ids_and_bad_input_get_clear_4xx_pages(app, engine):
    browser, _ = await signed_in(app, engine, "admin")
    handoff = new_handoff(engine)
    expectations = [
        ("/handoffs/999999", 404, "That handoff was not found"),
        ("/handoffs/abc", 404, "That handoff was not found"),
        ("/handoffs/99999999999999999999", 404, "That handoff was not found"),
        ("/handoffs/0/transcript", 404, "That handoff was not found"),
        ("/no-such-page", 404, "There is no page at this address"),
        ("/queue?priority=loud", 400, "not a valid priority filter"),
        ("/queue?assignee=somebody", 400, "not a valid assignee filter"),
        ("/queue?status=lost", 400, "not a valid status filter"),
        ("/admin/audit?person=abc", 400, "The person id must be a number"),
        ("/admin/audit?user=-1", 400, "The staff member must be a number"),
        (f"/events/conversation/{handoff.id}?after=x", 400, "must be a line count"),
    ]
    for path, status, message in expectations:
        response = await browser.get(path)
        assert response.status_code == status, path
        assert message in response.text, path
        assert 'data-testid="error-heading"' in response.text
    posts = [
        (f"/handoffs/{handoff.id}/resolve", {"outcome": "fixed"}, 400, "Choose an outcome"),
        (f"/handoffs/{handoff.id}/notes", {"body": "   "}, 400, "A note needs some text"),
        (f"/handoffs/{handoff.id}/notes", {"body": "x" * 4001}, 400, "longer than 4000"),
        ("/handoffs/424242/claim", {}, 404, "That handoff was not found"),
        ("/admin/staff/424242", {"role": "admin"}, 404, "That staff account was not found"),
        ("/admin/staff/1", {"role": "boss"}, 400, "Choose a role"),
    ]
    for path, data, status, message in posts:
        response = await browser.post(path, data)
        assert response.status_code == status, path
        assert message in response.text, path
    _, response = await browser.client.put(browser.url("/queue"), allow_redirects=False,
                                           headers={"X-CSRF-Token": browser.csrf})
    assert response.status_code == 405 and "does not take that kind of request" in response.text


# -- Roles ----------------------------------------------------------------------------------


async def test_logged_out_requests_go_to_the_login_page(app, engine):
    handoff = new_handoff(engine)
    browser = Staff(app)
    for path in ("/queue", f"/handoffs/{handoff.id}", f"/handoffs/{handoff.id}/transcript",
                 "/admin/staff", "/admin/audit", "/events/queue"):
        response = await browser.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path
    response = await browser.post(f"/handoffs/{handoff.id}/claim", csrf=False)
    assert response.status_code == 303
    with db(engine) as session:
        assert handoffs.get(session, handoff.id).status is HandoffStatus.OPEN


async def test_front_desk_sees_contact_details_and_reason_but_nothing_clinical(
        app, engine, rasa):
    browser, user = await signed_in(app, engine, "front_desk")
    handoff = new_handoff(
        engine, reason=HandoffReason.CLINICAL_QUESTION, first_name="Rowan",
        phone="+15415550143",
        summary={"kind": "intake", "answers": {"current_medications": "SECRET-MED-LIST"},
                 "question": "SECRET-QUESTION"})
    rasa.lines[handoff.conversation.sender_id] = [
        TranscriptLine("patient", "SECRET-TRANSCRIPT-LINE", utcnow())]
    page = await browser.get(f"/handoffs/{handoff.id}")
    assert page.status_code == 200
    assert "Rowan" in page.text and "+15415550143" in page.text
    assert "Clinical question" in page.text
    for secret in ("SECRET-MED-LIST", "SECRET-QUESTION", "SECRET-TRANSCRIPT-LINE"):
        assert secret not in page.text
    assert 'data-testid="summary"' not in page.text and 'data-testid="transcript"' not in page.text
    assert 'data-testid="takeover"' not in page.text
    assert ("transcript", handoff.conversation.sender_id) not in rasa.calls
    # Every clinical URL is refused, typed in directly or not.
    for path in (f"/handoffs/{handoff.id}/transcript", f"/events/conversation/{handoff.id}",
                 "/admin/staff", "/admin/patients", "/admin/clinic", "/admin/audit"):
        response = await browser.get(path)
        assert response.status_code == 403, path
        assert "SECRET" not in response.text
    for path in ("takeover", "reply", "handback"):
        response = await browser.post(f"/handoffs/{handoff.id}/{path}", {"text": "hi"})
        assert response.status_code == 403, path
    assert rasa.paused == set() and rasa.staff_messages == []
    # Each refused attempt is audited, with the page it was for.
    with db(engine) as session:
        refused = [e for e in audit.query(session, staff_user_id=user.id)
                   if e.action == audit.ACCESS_DENIED]
    assert len(refused) == 9
    assert {e.detail["path"] for e in refused} >= {f"/handoffs/{handoff.id}/transcript",
                                                    "/admin/audit"}
    # Front desk can act on the handoff.
    assert (await browser.post(f"/handoffs/{handoff.id}/claim")).status_code == 303
    assert audit_actions(engine, user.id)[:2] == [audit.HANDOFF_CLAIM, audit.HANDOFF_VIEW]


async def test_clinician_sees_summary_and_transcript_but_not_admin(app, engine, rasa):
    browser, user = await signed_in(app, engine, "clinician")
    handoff = new_handoff(
        engine, reason=HandoffReason.CLINICAL_QUESTION,
        summary={"kind": "intake", "status": "in_progress",
                 "answers": {"current_medications": "sertraline <50mg>"},
                 "question": "Can I drive after?"})
    sender = handoff.conversation.sender_id
    rasa.lines[sender] = [
        TranscriptLine("patient", "<script>alert(1)</script>", utcnow()),
        TranscriptLine("assistant", "A clinician will answer that.", utcnow(),
                       buttons=("Yes", "No")),
    ]
    page = await browser.get(f"/handoffs/{handoff.id}")
    assert page.status_code == 200
    assert "sertraline &lt;50mg&gt;" in page.text  # shown, and escaped
    assert "Can I drive after?" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text
    assert "Offered: Yes · No" in page.text
    assert f'data-events="/events/conversation/{handoff.id}?after=2"' in page.text
    transcript = await browser.get(f"/handoffs/{handoff.id}/transcript")
    assert transcript.status_code == 200 and "A clinician will answer that." in transcript.text
    for path in ("/admin/staff", "/admin/patients", "/admin/clinic", "/admin/audit"):
        assert (await browser.get(path)).status_code == 403, path
    actions = audit_actions(engine, user.id)
    assert actions[:3] == [audit.TRANSCRIPT_VIEW, audit.TRANSCRIPT_VIEW, audit.HANDOFF_VIEW]
    with db(engine) as session:
        views = [e for e in audit.query(session, staff_user_id=user.id)
                 if e.action == audit.HANDOFF_VIEW]
        assert views[0].target_type == "handoff" and views[0].target_id == str(handoff.id)
        assert views[0].person_id == handoff.person_id


async def test_transcript_unavailable_is_said_not_a_crash(app, engine, rasa):
    browser, user = await signed_in(app, engine, "clinician")
    handoff = new_handoff(engine)
    rasa.down = True
    page = await browser.get(f"/handoffs/{handoff.id}")
    assert page.status_code == 200
    assert "The transcript could not be loaded" in page.text and "timeout" in page.text
    # A view of the handoff, but no transcript was shown.
    assert audit_actions(engine, user.id)[0] == audit.HANDOFF_VIEW


# -- The queue ------------------------------------------------------------------------------


async def test_queue_orders_by_priority_then_age_with_urgent_crisis_pinned(app, engine):
    browser, _ = await signed_in(app, engine, "front_desk")
    routine_old = new_handoff(engine, age=dt.timedelta(hours=5))
    routine_new = new_handoff(engine, age=dt.timedelta(minutes=5))
    soon = new_handoff(engine, priority=HandoffPriority.SOON, age=dt.timedelta(minutes=30))
    urgent = new_handoff(engine, reason=HandoffReason.CHECKIN,
                         priority=HandoffPriority.URGENT, age=dt.timedelta(minutes=1))
    crisis = new_handoff(engine, reason=HandoffReason.CRISIS, priority=HandoffPriority.URGENT,
                         channel=Channel.SMS)
    ours = [routine_old.id, routine_new.id, soon.id, urgent.id, crisis.id]
    page = (await browser.get("/queue")).text
    pinned, rest = page.split('data-testid="queue-list"', 1)
    assert 'data-testid="queue-pinned"' in pinned and crisis.id in queue_ids(pinned)
    order = [i for i in queue_ids(rest) if i in ours]
    assert order == [urgent.id, soon.id, routine_old.id, routine_new.id]
    assert re.search(rf'class="queue-item priority-urgent is-crisis"[^>]*'
                     rf'data-handoff-id="{crisis.id}"', pinned)
    # The title and badge count the urgent handoffs.
    assert 'id="urgent-badge"' in page
    count = int(re.search(r'<span id="urgent-count">(\d+)</span>', page).group(1))
    assert count >= 2
    # A filter never hides an urgent crisis.
    filtered = (await browser.get("/queue?channel=widget&priority=routine")).text
    assert crisis.id in queue_ids(filtered.split('data-testid="queue-list"')[0])


async def test_queue_filters(app, engine):
    browser, user = await signed_in(app, engine, "clinician")
    sms = new_handoff(engine, channel=Channel.SMS, priority=HandoffPriority.SOON)
    widget = new_handoff(engine, channel=Channel.WIDGET)
    claimed = new_handoff(engine, channel=Channel.WIDGET)
    resolved = new_handoff(engine, channel=Channel.SMS)
    with db(engine) as session, session.begin():
        handoffs.claim(session, claimed.id, user.id)
        handoffs.resolve(session, resolved.id, user.id, "booked")
    ours = {sms.id, widget.id, claimed.id, resolved.id}

    async def listed(query: str) -> set[int]:
        response = await browser.get("/queue" + query)
        assert response.status_code == 200
        return set(queue_ids(response.text)) & ours

    assert await listed("") == {sms.id, widget.id, claimed.id}
    assert await listed("?channel=sms") == {sms.id}
    assert await listed("?channel=widget") == {widget.id, claimed.id}
    assert await listed("?priority=soon") == {sms.id}
    assert await listed("?status=claimed") == {claimed.id}
    assert await listed("?status=resolved") == {resolved.id}
    assert await listed("?assignee=me") == {claimed.id}
    assert await listed(f"?assignee={user.id}") == {claimed.id}
    assert await listed("?assignee=none") == {sms.id, widget.id}
    page = (await browser.get("/queue?channel=sms")).text
    assert '<option value="sms" selected>' in page
    assert 'data-events="/events/queue?channel=sms"' in page


async def test_queue_events_stream_the_list_and_new_urgent_handoffs(app, engine):
    browser, _ = await signed_in(app, engine, "front_desk")
    first = await browser.get("/events/queue")
    assert first.headers["content-type"].startswith("text/event-stream")
    events = sse_events(first.text)
    assert events[0][0] == "queue"
    version = events[0][1]["version"]
    # Nothing changed since that version: no event is sent.
    quiet = await browser.get(f"/events/queue?version={version}")
    assert [name for name, _ in sse_events(quiet.text)] == []
    crisis = new_handoff(engine, reason=HandoffReason.CRISIS, priority=HandoffPriority.URGENT,
                         first_name="<b>Zed</b>")
    changed = sse_events((await browser.get(f"/events/queue?version={version}")).text)
    assert [name for name, _ in changed] == ["queue"]
    payload = changed[0][1]
    assert payload["version"] != version
    assert crisis.id in payload["urgent_ids"]
    assert payload["urgent_count"] == len(payload["urgent_ids"])
    assert f'data-handoff-id="{crisis.id}"' in payload["html"]
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{1,2}:\d{2} [ap]m", payload["updated"])
    assert "&lt;b&gt;Zed&lt;/b&gt;" in payload["html"] and "<b>Zed" not in payload["html"]


def test_event_format_splits_lines():
    assert format_event("queue", '{"a": 1}') == 'event: queue\ndata: {"a": 1}\n\n'
    assert format_event("x", "one\ntwo") == "event: x\ndata: one\ndata: two\n\n"


# -- Working a handoff ----------------------------------------------------------------------


async def test_claim_note_and_resolve_are_saved_and_audited(app, engine):
    browser, user = await signed_in(app, engine, "front_desk", "Fran Desk")
    handoff = new_handoff(engine, reason=HandoffReason.CALLBACK_REQUESTED)

    response = await browser.post(f"/handoffs/{handoff.id}/claim")
    assert response.status_code == 303
    assert response.headers["location"] == f"/handoffs/{handoff.id}?done=claimed"
    page = await browser.get(response.headers["location"])
    assert "You have claimed this handoff." in page.text
    assert 'data-testid="handoff-assignee">Fran Desk<' in page.text

    response = await browser.post(f"/handoffs/{handoff.id}/notes",
                                  {"body": "Left a voicemail <at 3pm>"})
    assert response.status_code == 303
    page = await browser.get(f"/handoffs/{handoff.id}")
    assert "Left a voicemail &lt;at 3pm&gt;" in page.text

    response = await browser.post(f"/handoffs/{handoff.id}/resolve",
                                  {"outcome": "called_back", "note": "Booked a consult call"})
    assert response.status_code == 303
    with db(engine) as session:
        done = handoffs.get(session, handoff.id)
        assert done.status is HandoffStatus.RESOLVED
        assert done.outcome.value == "called_back"
        assert done.resolved_by_id == user.id and done.assigned_to_id == user.id
        assert [note.body for note in handoffs.notes(session, handoff.id)] == [
            "Left a voicemail <at 3pm>", "Booked a consult call"]
    # Resolving again is a conflict, not a crash.
    again = await browser.post(f"/handoffs/{handoff.id}/resolve", {"outcome": "booked"})
    assert again.status_code == 409 and "already resolved" in again.text
    actions = audit_actions(engine, user.id)
    for action in (audit.HANDOFF_CLAIM, audit.HANDOFF_NOTE, audit.HANDOFF_RESOLVE,
                   audit.HANDOFF_VIEW):
        assert action in actions
    assert actions.count(audit.HANDOFF_VIEW) == 2


async def test_claiming_a_colleagues_handoff_is_a_conflict(app, engine):
    first, _ = await signed_in(app, engine, "clinician")
    second, _ = await signed_in(app, engine, "clinician")
    handoff = new_handoff(engine)
    assert (await first.post(f"/handoffs/{handoff.id}/claim")).status_code == 303
    response = await second.post(f"/handoffs/{handoff.id}/claim")
    assert response.status_code == 409
    assert "already claimed" in response.text


async def test_the_audit_log_cannot_be_edited_or_deleted(engine):
    user = new_user(engine, "admin")
    with db(engine) as session, session.begin():
        event_id = audit.record(session, user.id, audit.HANDOFF_VIEW, "handoff", 1).id
    for statement in (
        update(AuditEvent).where(AuditEvent.id == event_id).values(action="tampered"),
        text("DELETE FROM audit_events WHERE id = :id").bindparams(id=event_id),
    ):
        with db(engine) as session, pytest.raises(DBAPIError, match="append-only"), \
                session.begin():
            session.execute(statement)
    with db(engine) as session:
        assert session.get(AuditEvent, event_id).action == audit.HANDOFF_VIEW


# -- Takeover -------------------------------------------------------------------------------


async def test_take_over_reply_and_hand_back(app, engine, rasa):
    browser, user = await signed_in(app, engine, "clinician", "Casey Clinician")
    handoff = new_handoff(engine, reason=HandoffReason.HUMAN_REQUESTED)
    sender = handoff.conversation.sender_id

    response = await browser.post(f"/handoffs/{handoff.id}/takeover")
    assert response.status_code == 303
    assert sender in rasa.paused
    with db(engine) as session:
        assert conversations.holder(session, sender).id == user.id
    page = await browser.get(f"/handoffs/{handoff.id}")
    assert 'data-state="mine"' in page.text and 'data-testid="reply-form"' in page.text

    # The page's script posts replies and asks for JSON.
    _, response = await browser.client.post(
        browser.url(f"/handoffs/{handoff.id}/reply"), data={"text": "  Hi, I'm Casey.  "},
        headers={"X-CSRF-Token": browser.csrf, "Accept": "application/json"},
        allow_redirects=False)
    assert response.status_code == 200 and response.json["ok"] is True
    assert rasa.staff_messages == [(sender, "Hi, I'm Casey.", "Casey Clinician")]
    _, response = await browser.client.post(
        browser.url(f"/handoffs/{handoff.id}/reply"), data={"text": "   "},
        headers={"X-CSRF-Token": browser.csrf, "Accept": "application/json"},
        allow_redirects=False)
    assert response.status_code == 400 and "empty" in response.json["error"]

    events = sse_events((await browser.get(f"/events/conversation/{handoff.id}")).text)
    assert events[0] == ("holder", {"holder": "Casey Clinician"})
    lines = [line for name, data in events if name == "lines" for line in data["lines"]]
    assert lines[0]["who"] == "staff" and lines[0]["text"] == "Hi, I'm Casey."
    assert lines[0]["staff_name"] == "Casey Clinician"
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{1,2}:\d{2} [ap]m", lines[0]["when"])

    response = await browser.post(f"/handoffs/{handoff.id}/handback")
    assert response.status_code == 303
    assert sender not in rasa.paused
    with db(engine) as session:
        assert conversations.holder(session, sender) is None
    actions = audit_actions(engine, user.id)
    assert "conversation.reply" in actions
    assert sum(action.startswith("conversation.") for action in actions) == 3


async def test_a_colleague_cannot_reply_in_a_held_conversation(app, engine, rasa):
    holder, _ = await signed_in(app, engine, "clinician", "Hana Holder")
    other, _ = await signed_in(app, engine, "admin")
    handoff = new_handoff(engine)
    assert (await holder.post(f"/handoffs/{handoff.id}/takeover")).status_code == 303
    page = await other.get(f"/handoffs/{handoff.id}")
    assert "Hana Holder is replying" in page.text
    response = await other.post(f"/handoffs/{handoff.id}/reply", {"text": "Me too"})
    assert response.status_code == 409
    assert "Hana Holder" in response.text
    assert rasa.staff_messages == []


async def test_takeover_when_rasa_is_down_says_so(app, engine, rasa):
    browser, _ = await signed_in(app, engine, "clinician")
    handoff = new_handoff(engine)
    rasa.down = True
    response = await browser.post(f"/handoffs/{handoff.id}/takeover")
    assert response.status_code == 409
    assert "could not be paused" in response.text
    with db(engine) as session:
        assert conversations.holder(session, handoff.conversation.sender_id) is None


# -- Patients, the chart ------------------------------------------------------------------


def _enrol_with_checkins(engine: Engine) -> tuple[Any, Handoff]:
    mobile = f"+1541555{uuid.uuid4().int % 10000:04d}"
    today = dt.date.today()
    with db(engine) as session, session.begin():
        patient = patients.enrol_patient(
            session, name="Dana Whitfield", mobile=mobile, timezone="America/Los_Angeles",
            induction_dates=[today - dt.timedelta(days=70), today - dt.timedelta(days=68)],
            last_infusion=today - dt.timedelta(days=30), consent_version="sms-v1").patient
        sender = checkins.sender_id_for(patient)
        checkins.link_conversation(session, patient, sender)
        for days_ago, overall, phq in ((40, 3, (0, 1)), (10, 7, (2, 2))):
            due = today - dt.timedelta(days=days_ago)
            checkin = Checkin(patient_id=patient.id, due_on=due, status=CheckinStatus.COMPLETED,
                              scheduled_for=utcnow() - dt.timedelta(days=days_ago),
                              sent_at=utcnow() - dt.timedelta(days=days_ago))
            session.add(checkin)
            session.flush()
            for key, score in (("overall", overall), ("phq1", phq[0]), ("phq2", phq[1])):
                session.add(CheckinAnswer(checkin_id=checkin.id, question_key=key,
                                          raw_text=str(score), score=score))
        handoff = handoffs.create(
            session, sender, Channel.SMS, HandoffReason.CHECKIN, HandoffPriority.SOON,
            {"kind": "checkin", "scores": {"overall": 7, "phq2": 4},
             "answers": [{"key": "overall", "label": "Symptoms back", "score": 7,
                          "text": "about a seven"}],
             "priority_reasons": ["Worse than the last check-in: overall"],
             "worse_than_last": ["overall"]})
        assert handoff.conversation is not None
        return patient, handoff


async def test_patient_handoff_shows_scores_and_the_chart_to_clinicians_only(app, engine):
    patient, handoff = _enrol_with_checkins(engine)
    clinician, _ = await signed_in(app, engine, "clinician")
    page = (await clinician.get(f"/handoffs/{handoff.id}")).text
    assert "Enrolled patient" in page and "Dana Whitfield" in page
    assert "about a seven" in page and 'data-testid="answer-score">score 7<' in page
    assert "Worse than the last check-in: overall" in page
    assert page.count('data-testid="chart-point"') == 4  # overall and PHQ-2 at two check-ins
    assert page.count('data-testid="chart-infusion"') == 3  # two induction, one booster
    assert 'data-key="overall"' in page and 'data-key="phq2"' in page
    assert 'data-value="7"' in page and 'data-value="4"' in page
    front_desk, _ = await signed_in(app, engine, "front_desk")
    page = (await front_desk.get(f"/handoffs/{handoff.id}")).text
    assert "Dana Whitfield" in page and patient.mobile in page
    assert "about a seven" not in page and "score-chart" not in page
    assert "Worse than the last check-in" not in page


def test_chart_layout_places_scores_and_infusions_on_one_time_axis():
    history = [
        {"date": "2026-01-10", "overall": 2, "phq2": 1, "gad2": None, "phq9": None},
        {"date": "2026-02-10", "overall": 8, "phq2": 5, "gad2": None, "phq9": None},
    ]
    infusions = [{"date": "2026-01-01", "kind": "induction"},
                 {"date": "2026-02-20", "kind": "booster"}]
    chart = score_chart(history, infusions)
    assert [panel.key for panel in chart.panels] == ["overall", "phq2"]
    overall = chart.panels[0]
    first, second = overall.points
    assert first.x < second.x and first.y > second.y  # later and higher score: up and right
    assert [marker.kind for marker in chart.markers] == ["induction", "booster"]
    assert chart.markers[0].x < first.x < second.x < chart.markers[1].x
    assert chart.left <= chart.markers[0].x and chart.markers[1].x <= chart.right
    assert overall.points[0].y == pytest.approx(overall.top + 84 * (1 - 2 / 10))
    assert score_chart([], infusions).empty
    # About 12 px a day here: the letter of an infusion a day after a labelled one is left
    # out, two days after it fits again.
    series = [{"date": f"2026-01-0{day}", "kind": "induction"} for day in (1, 2, 3)]
    crowded = score_chart(history, series + infusions[1:])
    assert [marker.labelled for marker in crowded.markers] == [True, False, True, True]
    assert [tick.anchor for tick in chart.ticks][0] == "start"
    assert [tick.anchor for tick in chart.ticks][-1] == "end"


def test_summary_sections_show_every_key_as_text():
    shown = sections({"kind": "intake", "status": "submitted",
                      "answers": {"first_name": "Ana", "prior_ketamine": True,
                                  "prior_treatments": {"text": "ECT, therapy", "ids": ["ect"]},
                                  "conditions": {"skipped": True}, "us_state": "WA"},
                      "request": "call me", "mystery": [1, 2]})
    rows = {row.label: row.value for section in shown for row in section.rows}
    assert rows["First name"] == "Ana"
    assert rows["Ketamine before"] == "Yes"
    assert rows["Other treatments tried"] == "ECT, therapy"
    assert rows["Looking for help with"] == "Skipped"
    assert rows["State"] == "Washington"
    assert rows["What they asked"] == "call me"
    assert rows["Mystery"] == "1, 2"
    assert display(None) == "—"
    crisis = sections({"kind": "crisis",
                       "messages": [{"at": "2026-01-02T03:04:05+00:00", "text": "help"}]})
    row = crisis[0].rows[0]
    assert row.value == "help" and row.emphasis
    assert row.when == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


# -- Administration -------------------------------------------------------------------------


async def test_admin_creates_updates_and_deactivates_staff(app, engine):
    browser, admin = await signed_in(app, engine, "admin")
    email = f"new-{uuid.uuid4().hex[:8]}@clinic.example"
    response = await browser.post("/admin/staff", {"email": email, "display_name": "Noor New",
                                                   "role": "front_desk", "password": PASSWORD})
    assert response.status_code == 303
    assert (await Staff(app).login(email)).status_code == 303
    bad = await browser.post("/admin/staff", {"email": "not-an-email", "display_name": "X",
                                              "role": "clinician", "password": PASSWORD})
    assert bad.status_code == 400 and "not an email address" in bad.text
    short = await browser.post("/admin/staff", {"email": f"s-{email}", "display_name": "X",
                                                "role": "clinician", "password": "short"})
    assert short.status_code == 400 and "at least 12 characters" in short.text
    with db(engine) as session:
        user = staff.find_by_email(session, email)
    response = await browser.post(f"/admin/staff/{user.id}", {"role": "clinician",
                                                              "active": "0"})
    assert response.status_code == 303
    with db(engine) as session:
        changed = staff.get_user(session, user.id)
        assert changed.role.value == "clinician" and changed.active is False
    assert (await Staff(app).login(email)).status_code == 401
    response = await browser.post(f"/admin/staff/{user.id}",
                                  {"active": "1", "password": "another long password"})
    assert response.status_code == 303
    assert (await Staff(app).login(email, "another long password")).status_code == 303
    assert audit.STAFF_CREATE in audit_actions(engine, admin.id)


async def test_clinic_details_are_edited_through_the_console(app, engine):
    browser, admin = await signed_in(app, engine, "admin")
    page = await browser.get("/admin/clinic")
    values = dict(re.findall(r'<input name="([a-z_]+)"[^>]*value="([^"]*)"', page.text))
    faq = dict(re.findall(r'<textarea name="(faq_[a-z_]+)"[^>]*>([^<]*)</textarea>', page.text))
    hours_text = re.search(r'<textarea name="hours_text"[^>]*>([^<]*)</textarea>',
                           page.text).group(1)
    assert values["name"] and values["phone"] and faq
    form = {**values, **faq, "hours_text": hours_text, "name": "Harborview Ketamine Clinic",
            "hours_sat": "10:00-14:00"}
    import html as html_module
    form = {key: html_module.unescape(value) for key, value in form.items()}
    response = await browser.post("/admin/clinic", form)
    assert response.status_code == 303, response.text
    from bot import clinic as clinic_config

    with db(engine) as session:
        saved = clinic_config.current_overrides(session)
    assert saved["name"] == "Harborview Ketamine Clinic"
    assert saved["hours"]["sat"] == "10:00-14:00"
    page = await browser.get("/admin/clinic?done=clinic_saved")
    assert 'value="Harborview Ketamine Clinic"' in page.text and "were saved" in page.text
    bad = await browser.post("/admin/clinic", {**form, "hours_mon": "nine to five"})
    assert bad.status_code == 400 and "hours" in bad.text.lower()
    assert 'data-testid="form-error"' in bad.text
    empty = await browser.post("/admin/clinic", {**form, "phone": ""})
    assert empty.status_code == 400
    with db(engine) as session:
        assert clinic_config.current_overrides(session)["name"] == "Harborview Ketamine Clinic"
    assert audit.CLINIC_UPDATE in audit_actions(engine, admin.id)


async def test_enrol_a_patient_by_form(app, engine):
    browser, admin = await signed_in(app, engine, "admin")
    mobile = f"(541) 555-{uuid.uuid4().int % 10000:04d}"
    form = {"name": "Ines Ortega", "mobile": mobile, "timezone": "america/denver",
            "induction_dates": "2025-09-01, 2025-09-03", "last_infusion": "2025-10-20",
            "cadence_days": "", "consent_version": "sms-v1", "consented_at": ""}
    response = await browser.post("/admin/patients", form)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/patients?done=enrolled"
    with db(engine) as session:
        patient = patients.find_by_phone(session, mobile)
        assert patient.name == "Ines Ortega" and patient.timezone == "America/Denver"
        assert patient.induction_dates == ["2025-09-01", "2025-09-03"]
        enrolled = [e for e in audit.query(session, staff_user_id=admin.id)
                    if e.action == audit.PATIENT_ENROL]
        assert enrolled[0].person_id == patient.person_id
    page = await browser.get("/admin/patients")
    assert "Ines Ortega" in page.text and mobile not in page.text  # masked
    bad = await browser.post("/admin/patients", {**form, "timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and "not an IANA time zone" in bad.text
    assert 'value="Ines Ortega"' in bad.text  # the form keeps what was typed


async def test_csv_enrolment_imports_good_rows_and_lists_bad_ones(app, engine):
    browser, admin = await signed_in(app, engine, "admin")
    good = [f"+1541556{uuid.uuid4().int % 10000:04d}" for _ in range(2)]
    csv_text = (
        "name,mobile,timezone,induction_dates,last_infusion,cadence_days,consent_version\n"
        f"Ana Diaz,{good[0]},America/Denver,2025-09-01;2025-09-03,2025-10-20,28,sms-v1\n"
        "Bad Row,12,America/Denver,2025-09-01,2025-10-20,,sms-v1\n"
        f"Ben Okafor,{good[1]},America/Chicago,2025-08-01,2025-09-15,,sms-v1\n"
    )
    _, response = await browser.client.post(
        browser.url("/admin/patients/import"), data={"csrf_token": browser.csrf},
        files={"file": ("patients.csv", csv_text.encode("utf-8-sig"), "text/csv")},
        allow_redirects=False)
    assert response.status_code == 200
    assert "Imported 2 row(s): 2 enrolled, 0 updated." in response.text
    errors = re.findall(r'<tr data-testid="import-error"><td>(\d+)</td><td>([^<]+)</td>',
                        response.text)
    assert [line for line, _ in errors] == ["3"]
    assert errors[0][1].startswith("mobile:")
    with db(engine) as session:
        assert patients.find_by_phone(session, good[0]).name == "Ana Diaz"
        assert patients.find_by_phone(session, good[1]).cadence_days is None
    actions = audit_actions(engine, admin.id)
    assert actions.count(audit.PATIENT_ENROL) == 2 and audit.PATIENT_IMPORT in actions

    _, header = await browser.client.post(
        browser.url("/admin/patients/import"), data={"csrf_token": browser.csrf},
        files={"file": ("p.csv", b"who,what\nx,y\n", "text/csv")}, allow_redirects=False)
    assert header.status_code == 400 and "Nothing was imported" in header.text
    _, binary = await browser.client.post(
        browser.url("/admin/patients/import"), data={"csrf_token": browser.csrf},
        files={"file": ("p.csv", b"\xff\xfe\x00bad", "text/csv")}, allow_redirects=False)
    assert binary.status_code == 400 and "not UTF-8" in binary.text


async def test_audit_log_filters_by_staff_member_and_person(app, engine):
    admin_browser, admin = await signed_in(app, engine, "admin")
    clinician, colleague = await signed_in(app, engine, "clinician", "Cleo Colleague")
    handoff = new_handoff(engine, first_name="Pat")
    assert (await clinician.get(f"/handoffs/{handoff.id}")).status_code == 200
    page = (await admin_browser.get(f"/admin/audit?user={colleague.id}")).text
    actions = re.findall(r'data-testid="audit-row" data-action="([a-z._]+)"', page)
    assert actions == [audit.TRANSCRIPT_VIEW, audit.HANDOFF_VIEW, audit.LOGIN]
    assert "Cleo Colleague" in page
    by_person = (await admin_browser.get(f"/admin/audit?person={handoff.person_id}")).text
    person_actions = re.findall(r'data-testid="audit-row" data-action="([a-z._]+)"', by_person)
    assert audit.HANDOFF_VIEW in person_actions and audit.LOGIN not in person_actions
    unknown = await admin_browser.get("/admin/audit?person=2000000000")
    assert unknown.status_code == 200 and "No entries match." in unknown.text
    assert audit.AUDIT_VIEW in audit_actions(engine, admin.id)


def test_console_module_runs_on_loopback_by_default():
    from bot.console.__main__ import DEFAULT_PORT, main

    assert DEFAULT_PORT == 8030
    with pytest.raises(SystemExit):
        main(["--port", "0"])

