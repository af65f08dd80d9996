"""The staff console: a Sanic app where care staff work the handoff queue, read and take over
conversations, and administer the product.

Run it with ``python -m bot.console --port 8030`` (``make run`` starts it too). It uses the same
database as the actions (``BOT_DATABASE_URL``) and Rasa's HTTP API (``BOT_RASA_URL`` with
``BOT_RASA_API_TOKEN``).

Pages are rendered server-side with Jinja2, autoescaping every value. No page has inline
script or style, so the Content-Security-Policy can forbid both; the one script
(``static/console.js``) adds the live queue, the live conversation, the idle warning and the
urgent-handoff sound.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler
from sanic.request import Request
from sanic.response import BaseHTTPResponse, HTTPResponse, html, text
from sqlalchemy.engine import Engine

from bot.console import admin_pages, auth, handoff_pages, queue_pages, security
from bot.console.chart import as_date
from bot.console.labels import ALL as LABELS
from bot.console.rasa_api import RasaApi
from bot.console.web import ConsoleContext, ConsoleError, render_text
from bot.db.models import utcnow
from bot.db.session import make_engine
from bot.settings import Settings, get_settings
from bot.sms import phone

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
REQUEST_MAX_SIZE = 2_000_000
"""The largest request body (a CSV upload of about a thousand patients fits easily)."""
IDLE_WARNING_SECONDS = 120
"""How long before the idle sign-out the page warns."""

HEADINGS = {
    400: "That request could not be used",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "That cannot be done now",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Not available right now",
}

_app_numbers = itertools.count(1)


def _clinic_zone(settings: Settings) -> Callable[[], ZoneInfo]:
    def zone() -> ZoneInfo:
        try:
            from bot.clinic import get_clinic

            return get_clinic().time_zone
        except Exception:  # a broken clinic file must not break every page
            return ZoneInfo("UTC")

    return zone


def _clinic_name() -> str:
    try:
        from bot.clinic import get_clinic

        return get_clinic().name
    except Exception:  # as above
        return "Clinic"


def make_templates(clock: Callable[[], dt.datetime],
                   zone: Callable[[], ZoneInfo]) -> Environment:
    """The Jinja2 environment: autoescaping on for every template, undefined names an error."""
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def local(moment: dt.datetime) -> dt.datetime:
        if moment.tzinfo is None:  # SQLite returns stored UTC times naive
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.astimezone(zone())

    def when(moment: dt.datetime | None) -> str:
        if moment is None:
            return "—"
        shown = local(moment)
        hour = shown.strftime("%I").lstrip("0")
        return f"{shown:%b} {shown.day}, {hour}:{shown:%M} {shown:%p}".replace("AM", "am") \
            .replace("PM", "pm")

    def ago(moment: dt.datetime | None) -> str:
        if moment is None:
            return ""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        minutes = int((clock() - moment).total_seconds() // 60)
        if minutes < 1:
            return "just now"
        if minutes < 60:
            return f"{minutes} min ago"
        if minutes < 48 * 60:
            return f"{minutes // 60} h ago"
        return f"{minutes // (24 * 60)} days ago"

    def day(value: Any) -> str:
        parsed = as_date(value)
        return f"{parsed:%b} {parsed.day}, {parsed:%Y}" if parsed else "—"

    environment.filters.update(when=when, ago=ago, day=day, masked=phone.mask)
    environment.globals.update(LABELS)
    environment.globals["warn_seconds"] = IDLE_WARNING_SECONDS
    environment.globals["console_name"] = "Staff console"
    return environment


class ConsoleErrorHandler(ErrorHandler):
    """Every error becomes a page in the console's style, with the security headers; nothing
    about the failure (let alone patient data) reaches the browser or the log beyond its type."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        """Render the error page for ``exception``."""
        headers: dict[str, str] = {}
        if isinstance(exception, ConsoleError):
            status, message = exception.status, exception.message
            headers = dict(exception.headers)
        elif isinstance(exception, SanicException):
            status = int(getattr(exception, "status_code", 500) or 500)
            message = {
                404: "There is no page at this address.",
                405: "This page does not take that kind of request.",
                413: "That upload is too large.",
            }.get(status, "The request could not be handled.")
            if status == 400:
                message = "The request was malformed."
        else:
            status, message = 500, "The console hit an unexpected problem. Please try again."
            # The type and where, never the message: it may quote data.
            logger.error("Unhandled %s on %s %s\n%s", type(exception).__name__,
                         request.method, request.path,
                         "".join(traceback.format_tb(exception.__traceback__)))
        return self._page(request, status, message, headers)

    @staticmethod
    def _page(request: Request, status: int, message: str,
              headers: dict[str, str]) -> HTTPResponse:
        signed_in = getattr(getattr(request, "ctx", None), "staff", None) is not None
        try:
            body = render_text(
                request, "error.html", status=status,
                heading=HEADINGS.get(status, "That did not work"), message=message,
                back_href="/queue" if signed_in else "/login",
                back_label="Back to the queue" if signed_in else "Sign in")
        except Exception:  # the error page itself must never fail
            return text(f"{status} {message}", status=status, headers=headers)
        return html(body, status=status, headers=headers)


def _add_headers(request: Request, response: BaseHTTPResponse) -> None:
    security.apply_security_headers(request, response)
    auth.forget_session_cookie(request, response)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    rasa_api: Any = None,
    clock: Callable[[], dt.datetime] = utcnow,
    stream_seconds: float = 300.0,
    poll_seconds: float | None = None,
) -> Sanic:
    """Build the staff console app.

    Args:
        settings: The settings (the process's by default).
        engine: The database (by default an engine for ``settings.database_url``).
        rasa_api: Rasa's HTTP API client (by default :class:`RasaApi` for ``settings``).
        clock: The current time (tests move it forward to check the idle sign-out).
        stream_seconds: How long one server-sent-events response lasts before the browser
            reconnects.
        poll_seconds: How often live streams look for changes (defaults: the queue every 2 s,
            a conversation every second).

    Returns:
        The app (not yet running).
    """
    settings = settings or get_settings()
    name = "staff_console" if (number := next(_app_numbers)) == 1 else f"staff_console_{number}"
    app = Sanic(name, error_handler=ConsoleErrorHandler())
    app.config.REQUEST_MAX_SIZE = REQUEST_MAX_SIZE
    app.config.KEEP_ALIVE_TIMEOUT = 15
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 2.0
    # Pages are built by templates, never by Sanic's debug pages.
    app.config.FALLBACK_ERROR_FORMAT = "html"
    context = ConsoleContext(
        settings=settings,
        engine=engine if engine is not None else make_engine(settings.database_url),
        rasa_api=rasa_api if rasa_api is not None else RasaApi.from_settings(settings),
        templates=make_templates(clock, _clinic_zone(settings)),
        clock=clock,
        stream_seconds=stream_seconds,
        secure_cookies=security.secure_cookies_forced(settings),
    )
    if poll_seconds is not None:
        context.queue_poll_seconds = poll_seconds
        context.conversation_poll_seconds = poll_seconds
    context.templates.globals["console_name"] = f"{_clinic_name()} · staff console"
    app.ctx.console = context

    app.register_middleware(auth.load_staff, "request")
    app.register_middleware(_add_headers, "response")
    app.static("/static", str(STATIC_DIR), name="static")
    for blueprint in (auth.bp, queue_pages.bp, handoff_pages.bp, admin_pages.bp):
        app.blueprint(blueprint)
    return app


__all__ = ["ConsoleErrorHandler", "create_app", "make_templates"]
