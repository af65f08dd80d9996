"""Text the assistant locally the way Twilio would: ``bot sms send +15555550123 "booster"``.

:func:`post_inbound` signs an incoming-message webhook with the auth token (as Twilio does)
and posts it to the running assistant; :func:`replies_since` reads what the assistant texted
back from the local stand-in for Twilio's Messages API (:mod:`bot.sms.standin`).
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bot.sms.signature import SIGNATURE_HEADER, compute_signature


def new_message_sid() -> str:
    """A Twilio-shaped message SID (``SM`` and 32 hex digits)."""
    return "SM" + secrets.token_hex(16)


def inbound_params(
    *, account_sid: str, from_: str, to: str, body: str, sid: str | None = None,
    media_urls: tuple[str, ...] = (),
) -> dict[str, str]:
    """The form fields of Twilio's incoming-message webhook for one text."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": from_,
        "FromCountry": "US",
        "MessageSid": sid or new_message_sid(),
        "NumMedia": str(len(media_urls)),
        "NumSegments": "1",
        "SmsStatus": "received",
        "To": to,
    }
    for index, url in enumerate(media_urls):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = "image/jpeg"
    return params


def post_inbound(
    webhook_url: str, auth_token: str, params: dict[str, str], *, timeout: float = 15,
    signature: str | None = None,
) -> int:
    """Post a signed webhook; returns the HTTP status.

    Args:
        webhook_url: The assistant's ``/webhooks/twilio/webhook`` URL (as Twilio would see it).
        auth_token: The Twilio auth token to sign with.
        params: The form fields.
        timeout: Seconds to wait for the answer.
        signature: A signature to send instead of the right one (tests of refusals).
    """
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(webhook_url, data=data, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header(SIGNATURE_HEADER,
                       signature if signature is not None
                       else compute_signature(auth_token, webhook_url, params))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def standin_messages(standin_url: str, *, timeout: float = 5) -> list[dict[str, Any]]:
    """Every message the stand-in has accepted, oldest first."""
    with urllib.request.urlopen(  # noqa: S310 (loopback)
        f"{standin_url}/_standin/messages", timeout=timeout
    ) as response:
        return list(json.loads(response.read())["messages"])


def replies_since(
    standin_url: str, to: str, already: int, *, wait: float = 20.0, quiet: float = 1.5,
) -> list[dict[str, Any]]:
    """Texts to ``to`` after the first ``already`` of them, once no new one came for ``quiet``
    seconds (or ``wait`` seconds passed)."""
    deadline = time.monotonic() + wait
    seen: list[dict[str, Any]] = []
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        current = [m for m in standin_messages(standin_url) if m.get("to") == to][already:]
        if len(current) != len(seen):
            seen, last_change = current, time.monotonic()
        elif seen and time.monotonic() - last_change >= quiet:
            break
        time.sleep(0.2)
    return seen
