"""Signing in and out, the session check before every request, and the CSRF check.

Every request except the login page and static files needs a live session: without one the
browser is sent to ``/login`` (with ``expired=1`` when its session timed out, so the page can
say why). Server-sent-event streams check the session without counting as activity, so a page
left open is still signed out after :data:`bot.services.staff.IDLE_TIMEOUT`.

Every state-changing request (anything but GET and HEAD) must carry the session's CSRF token,
or is refused with 403 before any handler runs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from sanic import Blueprint
from sanic.request import Request
from sanic.response import BaseHTTPResponse, HTTPResponse, empty

from bot.console import security
from bot.console.web import (
    ConsoleError,
    Staff,
    console,
    current_staff,
    form_value,
    peek_session,
    render_page,
    see_other,
)
from bot.db.models import StaffUser
from bot.services import staff as staff_service

logger = logging.getLogger(__name__)

bp = Blueprint("auth")

SAFE_METHODS = frozenset({"GET", "HEAD"})
PUBLIC_PATHS = frozenset({"/login", "/favicon.ico"})
STATIC_PREFIX = "/static/"
EVENTS_PREFIX = "/events/"

MESSAGES = {
    "expired": "You were signed out after 15 minutes without activity. Please sign in again.",
    "signed_out": "You have signed out.",
}


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this console, never another site."""
    value = (raw or "").strip()
    parts = urlsplit(value)
    if (not value.startswith("/") or value.startswith("//") or "\\" in value
            or parts.scheme or parts.netloc or value.startswith(("/login", "/logout", "/events/"))
            or len(value) > 500):
        return "/queue"
    return value


def _load(request: Request, token: str) -> Staff | None:
    ctx = console(request)
    now = ctx.clock()
    with ctx.unit_of_work() as session:
        if request.path.startswith(EVENTS_PREFIX):
            row = peek_session(session, token, now)
        else:
            row = staff_service.resume_session(session, token, now=now)
        if row is None:
            return None
        user = session.get(StaffUser, row.user_id)
        if user is None or not user.active:
            return None
        return Staff.of(user, row)


async def load_staff(request: Request) -> HTTPResponse | None:
    """Request middleware: find the signed-in staff member; send everyone else to sign in."""
    request.ctx.staff = None
    request.ctx.forget_session = False
    path = request.path
    if path.startswith(STATIC_PREFIX):
        return None
    token = request.cookies.get(security.SESSION_COOKIE)
    if token:
        request.ctx.staff = _load(request, token)
        request.ctx.forget_session = request.ctx.staff is None
    if path in PUBLIC_PATHS:
        return None
    staff = current_staff(request)
    if staff is None:
        query: dict[str, str] = {}
        if request.method in SAFE_METHODS and path not in ("/", "/queue"):
            query["next"] = path + (f"?{request.query_string}" if request.query_string else "")
        if token:
            query["expired"] = "1"
        return see_other("/login", **query)
    if request.method not in SAFE_METHODS and not security.tokens_match(
            staff.csrf_token, security.submitted_csrf_token(request)):
        raise ConsoleError(403, "This form was out of date or did not come from this console "
                                "(its security token did not match). Reload the page and try "
                                "again.")
    return None


def forget_session_cookie(request: Request, response: BaseHTTPResponse) -> None:
    """Response middleware: drop a session cookie that no longer signs anyone in."""
    if getattr(request.ctx, "forget_session", False) \
            and security.SESSION_COOKIE not in response.cookies:
        security.clear_cookie(response, security.SESSION_COOKIE,
                              secure=_secure(request))


def _secure(request: Request) -> bool:
    return console(request).secure_cookies or security.is_tls(request)


def _login_page(request: Request, *, status: int = 200, message: str = "",
                error: bool = False, email: str = "", next_path: str = "",
                headers: dict[str, str] | None = None) -> HTTPResponse:
    # The same token for every sign-in page this browser loads, so a second tab (or anything
    # else that loads the page) does not invalidate the form already open.
    existing = request.cookies.get(security.LOGIN_CSRF_COOKIE) or ""
    login_csrf = existing if security.is_token(existing) else security.new_token()
    response = render_page(request, "login.html", status=status, headers=headers,
                           message=message, error=error, email=email,
                           next_path=safe_next(next_path) if next_path else "",
                           login_csrf=login_csrf)
    security.set_cookie(response, security.LOGIN_CSRF_COOKIE, login_csrf,
                        secure=_secure(request), max_age=3600)
    return response


@bp.get("/login")
async def login_form(request: Request) -> HTTPResponse:
    """The sign-in page (signed-in staff go straight to the queue)."""
    if current_staff(request) is not None:
        return see_other("/queue")
    message = ""
    for key, text in MESSAGES.items():
        if request.args.get(key):
            message = text
    return _login_page(request, message=message, next_path=request.args.get("next", ""))


@dataclass(frozen=True)
class _LoginResult:
    token: str | None = None
    retry_after: int | None = None


def _authenticate(request: Request, email: str, password: str) -> _LoginResult:
    ctx = console(request)
    client = security.client_address(request)
    now = ctx.clock()
    with ctx.session() as session:
        try:
            user = staff_service.authenticate(session, email, password, client, now=now)
            token, _row = staff_service.start_session(session, user, now=now)
            session.commit()
        except staff_service.LoginThrottled as throttled:
            return _LoginResult(retry_after=throttled.retry_after)
        except staff_service.LoginFailed:
            return _LoginResult()
    return _LoginResult(token=token)


@bp.post("/login")
async def login(request: Request) -> HTTPResponse:
    """Check the email and password; on success start a session and set its cookie."""
    if not security.tokens_match(request.cookies.get(security.LOGIN_CSRF_COOKIE),
                                 security.submitted_csrf_token(request)):
        raise ConsoleError(403, "The sign-in form was out of date. Reload the page and sign in "
                                "again.")
    email = form_value(request, "email", staff_service.MAX_EMAIL_LENGTH)
    password = str((request.form or {}).get("password") or "")
    next_path = form_value(request, "next", 500)
    if not email or not password:
        return _login_page(request, status=400, message="Enter your email and password.",
                           error=True, email=email, next_path=next_path)
    if len(password) > staff_service.MAX_PASSWORD_LENGTH:
        return _login_page(request, status=400, message="That password is too long.",
                           error=True, email=email, next_path=next_path)
    result = await asyncio.to_thread(_authenticate, request, email, password)
    if result.retry_after is not None:
        minutes = max(1, -(-result.retry_after // 60))
        return _login_page(
            request, status=429, error=True, email=email, next_path=next_path,
            message=("Too many failed sign-in attempts. Try again in "
                     f"{minutes} minute{'s' if minutes != 1 else ''}."),
            headers={"Retry-After": str(result.retry_after)})
    if result.token is None:
        return _login_page(request, status=401, error=True, email=email, next_path=next_path,
                           message="That email and password do not match an active account.")
    response = see_other(safe_next(next_path))
    secure = _secure(request)
    security.set_cookie(response, security.SESSION_COOKIE, result.token, secure=secure)
    security.clear_cookie(response, security.LOGIN_CSRF_COOKIE, secure=secure)
    return response


@bp.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    """End the session for good and forget its cookie."""
    token = request.cookies.get(security.SESSION_COOKIE) or ""
    ctx = console(request)
    with ctx.unit_of_work() as session:
        staff_service.end_session(session, token, now=ctx.clock())
    response = see_other("/login", signed_out="1")
    security.clear_cookie(response, security.SESSION_COOKIE, secure=_secure(request))
    return response


@bp.get("/favicon.ico")
async def favicon(request: Request) -> HTTPResponse:
    """No icon: answered here so browsers asking for one are not sent to the sign-in page."""
    return empty(status=204)


@bp.post("/session/ping")
async def keep_alive(request: Request) -> HTTPResponse:
    """"Stay signed in": the session check before this handler already counted as activity."""
    return empty(status=204)
