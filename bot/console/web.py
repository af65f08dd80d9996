"""Plumbing shared by the console's pages: the app's context, the signed-in staff member, one
database unit of work per request, permission checks, page rendering and error pages.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment
from sanic.request import Request
from sanic.response import HTTPResponse, html, redirect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.db.models import StaffRole, StaffSession, StaffUser, utcnow
from bot.services import audit
from bot.services import staff as staff_service
from bot.settings import Settings

MAX_ID = 2**31 - 1
"""Ids above this cannot exist (32-bit integer keys); PostgreSQL would refuse the comparison."""

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse | None]]


class ConsoleError(Exception):
    """A request the console answers with an error page (never a stack trace).

    Attributes:
        status: The HTTP status (400, 403, 404, 409, 429, 503).
        message: What went wrong, in words staff can act on (never patient data).
        headers: Extra response headers (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ConsoleError:
    """A 400 error: the form or query was not usable."""
    return ConsoleError(400, message)


def not_found(what: str = "That page") -> ConsoleError:
    """A 404 error."""
    return ConsoleError(404, f"{what} was not found.")


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member of a request (a plain snapshot, not a database row)."""

    id: int
    email: str
    display_name: str
    role: StaffRole
    session_id: str
    csrf_token: str

    def can(self, permission: str) -> bool:
        """Whether this staff member's role grants ``permission``."""
        return staff_service.can(self.role, permission)

    @classmethod
    def of(cls, user: StaffUser, row: StaffSession) -> Staff:
        """The snapshot of ``user`` signed in through ``row``."""
        return cls(id=user.id, email=user.email, display_name=user.display_name,
                   role=StaffRole(user.role), session_id=row.id, csrf_token=row.csrf_token)


@dataclass
class ConsoleContext:
    """What the app's handlers share (``app.ctx.console``)."""

    settings: Settings
    engine: Engine
    rasa_api: Any
    templates: Environment
    clock: Callable[[], dt.datetime] = utcnow
    stream_seconds: float = 300.0
    """How long one server-sent-events response lasts; the browser then reconnects."""
    queue_poll_seconds: float = 2.0
    conversation_poll_seconds: float = 1.0
    secure_cookies: bool = False
    _factory: sessionmaker | None = field(default=None, repr=False)

    def session(self) -> Session:
        """A new database session (the caller closes it and commits)."""
        if self._factory is None:
            self._factory = sessionmaker(bind=self.engine, future=True, expire_on_commit=False)
        return self._factory()  # type: ignore[no-any-return]

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self.session() as session, session.begin():
            yield session


def console(request: Request) -> ConsoleContext:
    """The console context of the app serving ``request``."""
    return request.app.ctx.console  # type: ignore[no-any-return]


def current_staff(request: Request) -> Staff | None:
    """The signed-in staff member, or ``None``."""
    return getattr(request.ctx, "staff", None)


def signed_in(request: Request) -> Staff:
    """The signed-in staff member (the session middleware has already checked there is one)."""
    staff = current_staff(request)
    if staff is None:  # only reachable if a route was left out of the session middleware
        raise ConsoleError(403, "Sign in first.")
    return staff


def as_utc(moment: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (SQLite gives back naive ones, which are UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def peek_session(session: Session, token: str, now: dt.datetime) -> StaffSession | None:
    """The live session for ``token`` without counting this as activity.

    Live streams (server-sent events) use this: a page left open must still be signed out after
    :data:`bot.services.staff.IDLE_TIMEOUT` without activity.
    """
    if not token or len(token) > 256:
        return None
    row = session.get(StaffSession, staff_service.session_id(token))
    if row is None or row.revoked_at is not None:
        return None
    if as_utc(row.expires_at) <= now or now - as_utc(row.last_seen_at) > staff_service.IDLE_TIMEOUT:
        return None
    user = session.get(StaffUser, row.user_id)
    if user is None or not user.active:
        return None
    return row


def still_signed_in(session: Session, staff: Staff, now: dt.datetime) -> bool:
    """Whether ``staff``'s session is still live (not signed out, idle or expired)."""
    row = session.get(StaffSession, staff.session_id)
    if row is None or row.revoked_at is not None:
        return False
    if as_utc(row.expires_at) <= now or now - as_utc(row.last_seen_at) > staff_service.IDLE_TIMEOUT:
        return False
    user = session.get(StaffUser, row.user_id)
    return user is not None and bool(user.active)


def requires(permission: str) -> Callable[[Handler], Handler]:
    """Route decorator: only staff whose role grants ``permission`` get past it (else 403)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse | None:
            staff = signed_in(request)
            if not staff.can(permission):
                # Refused attempts are audited too (who tried which page; the path holds ids
                # only), so a front-desk account typing a transcript URL leaves a trace.
                with console(request).unit_of_work() as session:
                    audit.record(session, staff.id, audit.ACCESS_DENIED, "route", permission,
                                 detail={"path": request.path[:200], "method": request.method})
                raise ConsoleError(403, "Your role does not allow this page or action.")
            return await handler(request, *args, **kwargs)

        return checked

    return decorate


def parse_id(raw: Any, what: str = "That record") -> int:
    """A database id from a URL or form, or a 404 for anything that cannot be one."""
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise not_found(what) from None
    if not 1 <= value <= MAX_ID:
        raise not_found(what)
    return value


def form_value(request: Request, name: str, max_length: int = 2000) -> str:
    """A form field's text, stripped ("" when missing); over-long input is a 400."""
    form = request.form or {}
    value = form.get(name)
    text = "" if value is None else str(value).strip()
    if len(text) > max_length:
        raise bad_request(f"The field “{name}” is longer than {max_length} characters.")
    return text


def render_page(request: Request, template: str, status: int = 200,
                headers: dict[str, str] | None = None, **values: Any) -> HTTPResponse:
    """Render a template as the response; every value is HTML-escaped by the environment."""
    body = render_text(request, template, **values)
    return html(body, status=status, headers=headers)


def render_text(request: Request, template: str, **values: Any) -> str:
    """Render a template to text with the console's common values."""
    ctx = console(request)
    staff = current_staff(request)
    common = {
        "staff": staff,
        "csrf_token": staff.csrf_token if staff else "",
        "path": request.path,
        "idle_seconds": int(staff_service.IDLE_TIMEOUT.total_seconds()),
        "notice": "",
    }
    common.update(values)
    return ctx.templates.get_template(template).render(**common)


def see_other(path: str, **query: Any) -> HTTPResponse:
    """A 303 redirect to a console path, with an optional query string."""
    clean = {key: value for key, value in query.items() if value not in (None, "")}
    return redirect(path + ("?" + urlencode(clean) if clean else ""), status=303)

