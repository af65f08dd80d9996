"""The Twilio REST client for outbound texts, optionally pointed at another base URL.

twilio 8.2.2 builds every request URL from a fixed per-product domain
(``https://api.twilio.com`` for Messages), and its ``Client`` takes no base URL. What it does take
is an ``http_client``, through which every request of every product passes with its full URL.
:class:`RebasedHttpClient` rewrites the scheme and host of those URLs, so a client made by
:func:`make_client` with a ``base_url`` cannot reach Twilio by accident: tests and the local demo
talk to :mod:`bot.sms.standin` instead.

Nothing is created at import time; the channel makes its client when it is set up.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for Twilio (or the stand-in); the library's own default is to wait forever."""

_LOOPBACK_NAMES = frozenset({"localhost"})


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """Check a base URL that replaces Twilio's, and return it without a trailing slash.

    Args:
        base_url: E.g. ``"http://127.0.0.1:8026"``; it may end in a path prefix.

    Returns:
        The base URL, normalised.

    Raises:
        ValueError: It is not an http(s) URL with a host, or it is plain http to a host that is
            not loopback (the client sends the auth token in every request).
    """
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"Not an http(s) base URL: {base_url!r}.")
    if parts.query or parts.fragment:
        raise ValueError(f"A base URL has no query or fragment: {base_url!r}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("Plain http is only allowed to a loopback address.")
    return base_url.rstrip("/")


def rebase_url(url: str, base_url: str) -> str:
    """Move a Twilio API URL onto another base URL.

    Args:
        url: The URL the library built, e.g.
            ``"https://api.twilio.com/2010-04-01/Accounts/AC.../Messages.json"``.
        base_url: The replacement scheme, host, port and optional path prefix.

    Returns:
        ``base_url`` followed by ``url``'s path and query, e.g.
        ``"http://127.0.0.1:8026/2010-04-01/Accounts/AC.../Messages.json"``.
    """
    base = urlsplit(base_url)
    target = urlsplit(url)
    path = base.path.rstrip("/") + target.path
    return urlunsplit((base.scheme, base.netloc, path, target.query, ""))


class RebasedHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client, sending every request to ``base_url`` instead of Twilio."""

    def __init__(self, base_url: str, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Make the client.

        Args:
            base_url: Where requests go instead (see :func:`check_base_url`).
            timeout: Seconds to wait for each response.

        Raises:
            ValueError: ``base_url`` is not acceptable.
        """
        super().__init__(pool_connections=True, timeout=timeout)
        self.base_url = check_base_url(base_url)
        if self.session is not None:
            # An HTTP(S)_PROXY or .netrc in the environment must not capture loopback traffic.
            self.session.trust_env = False

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request to the base URL; arguments as for :class:`TwilioHttpClient`."""
        return super().request(
            method,
            rebase_url(url, self.base_url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def make_client(
    account_sid: str,
    auth_token: str,
    base_url: str | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Client:
    """A Twilio REST client, talking to Twilio or to the given base URL.

    Args:
        account_sid: The account SID (``AC...``).
        auth_token: The account's auth token.
        base_url: Where to send requests instead of Twilio, e.g. the stand-in's
            ``StandIn.url``; ``None`` for Twilio itself.
        timeout: Seconds to wait for each response.

    Returns:
        The client; send with ``client.messages.create(to=..., from_=..., body=...)``.

    Raises:
        ValueError: A credential is empty, or ``base_url`` is not acceptable.
    """
    if not account_sid or not auth_token:
        # Client() would otherwise fall back to TWILIO_* environment variables silently.
        raise ValueError("An account SID and auth token are required.")
    http_client = (
        TwilioHttpClient(timeout=timeout)
        if base_url is None
        else RebasedHttpClient(base_url, timeout=timeout)
    )
    return Client(account_sid, auth_token, http_client=http_client)
