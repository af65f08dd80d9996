"""Twilio webhook signatures (``X-Twilio-Signature``): checking them, and making them for tests.

Twilio signs every webhook request with HMAC-SHA1, keyed by the account's auth token, over the
full URL it requested (scheme, host, path and query string) followed by each POST field's name
and value, sorted by name. Rasa 3.6's Twilio connector does not check the signature, so the SMS
channel calls :func:`is_valid_request` before anything else.

The URL must be the one Twilio used, which behind a reverse proxy (TLS terminated at a load
balancer, the app on ``http://127.0.0.1:5005``) is not the URL the app sees. The proxy reports
the original scheme, host and port in ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and
``X-Forwarded-Port``; :func:`public_url` uses them only when the caller says the proxy is
trusted, because anyone can send those headers to an app that is reachable directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"

FormParams: TypeAlias = Mapping[str, str] | Mapping[str, Sequence[str]] | Iterable[tuple[str, str]]
"""POST fields: a plain mapping, a mapping to lists of values (Sanic's ``request.form``), a
multidict with ``getall``/``getlist``, or ``(name, value)`` pairs."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
# A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::[0-9]{1,5})?")


class _MultiParams(dict[str, list[str]]):
    """Every value of every field, in the multidict shape ``RequestValidator`` looks for."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def _collect(params: FormParams | None) -> _MultiParams:
    collected = _MultiParams()
    if params is None:
        return collected
    getall = getattr(params, "getall", None) or getattr(params, "getlist", None)
    if getall is not None and isinstance(params, Mapping):
        for name in params:
            collected[str(name)] = [str(value) for value in getall(name)]
        return collected
    pairs = params.items() if isinstance(params, Mapping) else params
    for name, value in pairs:
        values = [value] if isinstance(value, str) else list(value)
        collected.setdefault(str(name), []).extend(str(v) for v in values)
    return collected


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        wanted = name.casefold()
        value = next((v for k, v in headers.items() if k.casefold() == wanted), None)
    return value


def _first(value: str | None) -> str | None:
    """The first of a comma-separated header's values: the one the outermost proxy added."""
    if value is None:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


def _split_host(netloc: str) -> tuple[str, str | None]:
    host = netloc.rpartition("@")[2]
    if host.endswith("]") or ":" not in host:
        return host, None
    name, _, port = host.rpartition(":")
    return name, port


def public_url(url: str, headers: Mapping[str, str], *, trust_proxy: bool) -> str:
    """The URL Twilio requested, which is what it signed.

    Args:
        url: The URL of the request as the app received it, query string included.
        headers: The request's headers (looked up without regard to case).
        trust_proxy: Whether a reverse proxy that sets ``X-Forwarded-*`` (and strips any the
            client sent) stands in front of the app. Without it those headers are ignored.

    Returns:
        ``url`` with its scheme, host and port replaced by the forwarded ones, when trusted and
        present; otherwise ``url`` unchanged.

    Raises:
        ValueError: A trusted forwarded header is malformed (a scheme other than http or https,
            a host with a path or credentials in it, a port out of range).
    """
    if not trust_proxy:
        return url
    proto = _first(_header(headers, "X-Forwarded-Proto"))
    forwarded_host = _first(_header(headers, "X-Forwarded-Host"))
    forwarded_port = _first(_header(headers, "X-Forwarded-Port"))
    if proto is None and forwarded_host is None and forwarded_port is None:
        return url
    parts = urlsplit(url)
    scheme = (proto or parts.scheme).lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"Unexpected forwarded scheme {scheme!r}.")
    if forwarded_host is not None and not _HOST.fullmatch(forwarded_host):
        raise ValueError("Malformed X-Forwarded-Host.")
    host, port = _split_host(forwarded_host or parts.netloc)
    if forwarded_port is not None:
        port = forwarded_port
    if port is not None:
        if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("Malformed forwarded port.")
        if int(port) == _DEFAULT_PORTS[scheme]:
            port = None
    netloc = host if port is None else f"{host}:{int(port)}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def compute_signature(auth_token: str, url: str, params: FormParams | None = None) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for a request.

    Used by tests and by tools that post simulated webhooks to the SMS channel.

    Args:
        auth_token: The Twilio auth token.
        url: The full public URL, query string included.
        params: The POST fields; ``None`` (or empty) for a GET.

    Returns:
        The base64 signature.

    Raises:
        ValueError: ``auth_token`` is empty.
    """
    if not auth_token:
        raise ValueError("An auth token is required to sign a request.")
    return str(RequestValidator(auth_token).compute_signature(url, _collect(params)))


def is_valid_request(
    auth_token: str | None,
    method: str,
    url: str,
    params: FormParams | None,
    headers: Mapping[str, str],
    *,
    trust_proxy: bool = False,
) -> bool:
    """Whether a webhook request carries a valid ``X-Twilio-Signature``.

    Args:
        auth_token: The Twilio auth token. Missing or empty never validates.
        method: The HTTP method. For a GET only the URL is signed; for a POST the form fields
            too. Twilio uses no other method, so any other is refused.
        url: The URL of the request as the app received it, query string included.
        params: The POST's form fields (ignored for a GET).
        headers: The request's headers.
        trust_proxy: Whether to rebuild the public URL from ``X-Forwarded-Proto``,
            ``X-Forwarded-Host`` and ``X-Forwarded-Port`` (see :func:`public_url`).

    Returns:
        True only if the signature matches; any missing or malformed part gives False.
    """
    if not auth_token:
        return False
    signature = _header(headers, SIGNATURE_HEADER)
    if not signature:
        return False
    verb = method.upper()
    if verb not in {"GET", "POST"}:
        return False
    try:
        signed_url = public_url(url, headers, trust_proxy=trust_proxy)
    except ValueError:
        return False
    fields = _collect(params) if verb == "POST" else _MultiParams()
    try:
        # RequestValidator also accepts the URL with the scheme's default port added or
        # removed, as Twilio's own back end is inconsistent about it.
        return bool(RequestValidator(auth_token).validate(signed_url, fields, signature))
    except ValueError:  # urllib refuses the URL (e.g. a port out of range)
        return False
