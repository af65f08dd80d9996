"""A local webhook endpoint for staff alerts, standing in for the clinic's pager or chat tool.

Run it next to the assistant in the local demo::

    python -m bot.alerts.receiver --port 8025 --out var/staff-alerts.jsonl

and set ``BOT_ALERT_WEBHOOK_URL=http://127.0.0.1:8025/alerts``. Every POST must carry a valid
``X-Clinic-Signature`` for ``BOT_ALERT_WEBHOOK_SECRET`` (generated into ``var/secrets.json`` in
the local demo, so both processes share it). A verified alert is appended to ``--out`` as one
JSON line and answered with 204; a bad signature gets 401 and is not written.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bot.alerts.notifier import SIGNATURE_HEADER, sign
from bot.settings import get_settings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def verify_signature(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` (an ``X-Clinic-Signature`` value) signs ``body`` with ``secret``.

    Args:
        secret: The shared webhook secret.
        body: The raw request body.
        signature: The header's value, if any.

    Returns:
        True if the signature is valid.
    """
    return signature is not None and hmac.compare_digest(sign(secret, body), signature)


class AlertRequestHandler(BaseHTTPRequestHandler):
    """Verifies and stores one alert per POST."""

    server: AlertReceiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """Verify the alert's signature, then append it to the output file."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(HTTPStatus.LENGTH_REQUIRED)
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        body = self.rfile.read(length)
        if not verify_signature(self.server.secret, body, self.headers.get(SIGNATURE_HEADER)):
            logger.warning("Alert refused: the signature does not verify")
            self._answer(HTTPStatus.UNAUTHORIZED)
            return
        try:
            alert = json.loads(body)
        except ValueError:
            alert = None
        if not isinstance(alert, dict):
            self._answer(HTTPStatus.BAD_REQUEST)
            return
        self.server.append(alert)
        logger.info("Alert %s (%s) for handoff %s received",
                    alert.get("kind"), alert.get("priority"), alert.get("handoff_id"))
        self._answer(HTTPStatus.NO_CONTENT)

    def _answer(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        """Send access logs to :mod:`logging` instead of stderr."""
        logger.debug("alert receiver: " + format, *args)


class AlertReceiver(ThreadingHTTPServer):
    """The receiver; knows the secret and where verified alerts go."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], secret: bytes, out: Path) -> None:
        """Bind the server.

        Args:
            address: ``(host, port)``; port 0 picks a free port.
            secret: The webhook secret the alerts are signed with.
            out: The JSON-lines file verified alerts are appended to.
        """
        super().__init__(address, AlertRequestHandler)
        self.secret = secret
        self.out = out
        self._lock = threading.Lock()

    def append(self, alert: dict[str, object]) -> None:
        """Append one alert to the output file as one JSON line."""
        line = json.dumps(alert, sort_keys=True) + "\n"
        with self._lock:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(line)

    @property
    def url(self) -> str:
        """The URL to set as ``BOT_ALERT_WEBHOOK_URL``."""
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode("ascii")
        return f"http://{host}:{port}/alerts"


def serve_receiver(port: int, out: Path, secret: bytes, host: str = "127.0.0.1") -> AlertReceiver:
    """Start the receiver in a background thread.

    Args:
        port: The port to listen on; 0 picks a free one (see ``receiver.url``).
        out: The JSON-lines file verified alerts are appended to.
        secret: The webhook secret.
        host: The interface to listen on.

    Returns:
        The running receiver; stop it with ``shutdown()`` then ``server_close()``.
    """
    receiver = AlertReceiver((host, port), secret, out)
    thread = threading.Thread(target=receiver.serve_forever, name="alert-receiver", daemon=True)
    thread.start()
    return receiver


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: receive alerts until interrupted.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description="Receive signed staff alerts locally.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="port (default 8025)")
    parser.add_argument("--out", type=Path, default=Path("var/staff-alerts.jsonl"),
                        help="JSON-lines file alerts are appended to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    secret = get_settings().alert_webhook_secret
    if not secret:
        parser.error("BOT_ALERT_WEBHOOK_SECRET is not set (BOT_ENV=local generates it).")
    receiver = AlertReceiver((args.host, args.port), secret, args.out)
    print(f"Staff alerts on {receiver.url}, appended to {args.out}; Ctrl-C stops it.")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
