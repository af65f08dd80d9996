"""Response headers, session cookies and CSRF checks of the staff console.

Every response carries the same protective headers (no caching anywhere, a strict
Content-Security-Policy without inline script, no framing, no MIME sniffing, no referrer); HSTS
is added only when the request came over TLS, because a browser ignores it otherwise and a
plain-HTTP deployment must stay reachable.

The session cookie holds a random token; the database keeps only its SHA-256
(:mod:`bot.services.staff`). The cookie is HttpOnly and SameSite=Strict, and Secure whenever the
console is served over HTTPS or ``BOT_CONSOLE_SECURE_COOKIES`` is set (behind a TLS-terminating
proxy that does not say so).

CSRF: a signed-in form carries the session's own CSRF token (``csrf_token`` field, or the
``X-CSRF-Token`` header for script requests). The login form has no session yet, so it uses a
double-submit token: the same random value in a SameSite=Strict cookie and in the form.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from sanic.request import Request
from sanic.response import BaseHTTPResponse

SESSION_COOKIE = "console_session"
LOGIN_CSRF_COOKIE = "console_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECURE_COOKIES_ENV = "BOT_CONSOLE_SECURE_COOKIES"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "media-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def secure_cookies_forced(settings: Any) -> bool:
    """Whether cookies must be Secure even when a request arrives over plain HTTP
    (``BOT_CONSOLE_SECURE_COOKIES``, read into the settings' ``console_secure_cookies``)."""
    return bool(getattr(settings, "console_secure_cookies", False))


def is_tls(request: Request) -> bool:
    """Whether the request reached the console over HTTPS."""
    return request.scheme in ("https", "wss")


def apply_security_headers(request: Request, response: BaseHTTPResponse) -> None:
    """Add the console's protective headers to ``response`` (replacing any already set)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if is_tls(request):
        response.headers["Strict-Transport-Security"] = HSTS


def set_cookie(response: BaseHTTPResponse, name: str, value: str, *, secure: bool,
               max_age: int | None = None) -> None:
    """Set an HttpOnly, SameSite=Strict cookie for the whole console."""
    response.cookies[name] = value
    cookie = response.cookies[name]
    cookie["path"] = "/"
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    if secure:
        cookie["secure"] = True
    if max_age is not None:
        cookie["max-age"] = max_age


def clear_cookie(response: BaseHTTPResponse, name: str, *, secure: bool) -> None:
    """Tell the browser to forget a cookie."""
    set_cookie(response, name, "", secure=secure, max_age=0)


def new_token() -> str:
    """A random URL-safe token (256 bits)."""
    return secrets.token_urlsafe(32)


def is_token(value: str) -> bool:
    """Whether ``value`` looks like a token from :func:`new_token`."""
    return bool(_TOKEN.fullmatch(value or ""))


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Compare two tokens in constant time; a missing or empty one never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def submitted_csrf_token(request: Request) -> str | None:
    """The CSRF token a request carries: the header, else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return str(header)
    form = request.form if request.content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")) else None
    if form:
        value = form.get(CSRF_FIELD)
        return str(value) if value else None
    return None


def client_address(request: Request) -> str:
    """The address login throttling counts failures against.

    The peer address unless Sanic is configured to trust a proxy's forwarding headers
    (``PROXIES_COUNT`` / ``REAL_IP_HEADER``), in which case ``remote_addr`` holds the client.
    """
    return str(request.remote_addr or request.ip or "unknown")[:64]
