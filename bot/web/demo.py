"""A tiny demo clinic web page that embeds the chat widget.

Run it next to the Rasa server::

    python -m bot.web.demo --port 8000 \\
        --widget-src http://localhost:5005/webhooks/widget/widget.js

and open http://localhost:8000/. The page's origin must be listed in
``BOT_WIDGET_ALLOWED_ORIGINS`` (the default allows ``http://localhost:8000`` and
``http://127.0.0.1:8000``). The page is sent with a Content-Security-Policy that allows scripts,
stylesheets and connections only from the page itself and the widget's origin, which also
proves the widget works under a strict policy (no inline script, no eval).

Tests use :func:`serve_demo`, which serves the page from a background thread.
"""

from __future__ import annotations

import argparse
import html
import logging
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

DEFAULT_WIDGET_SRC = "http://localhost:5005/webhooks/widget/widget.js"


def template_path() -> Path:
    """The demo page's template."""
    return Path(__file__).resolve().parent / "templates" / "demo.html"


def widget_origin(widget_src: str) -> str:
    """The origin (``scheme://host[:port]``) of the widget script's URL.

    Args:
        widget_src: The absolute URL of ``widget.js``.

    Returns:
        The origin.

    Raises:
        ValueError: The URL is not an absolute http(s) URL.
    """
    parts = urlsplit(widget_src)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username:
        raise ValueError("The widget source must be an absolute http(s) URL.")
    if re.search(r"[\s;,'\"]", widget_src):
        raise ValueError("The widget source contains characters not allowed in a URL.")
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(widget_src: str, nonce: str) -> str:
    """The page's Content-Security-Policy.

    Scripts, stylesheets and connections may come only from the page itself and the widget's
    origin; the page's own inline stylesheet is allowed by its nonce.

    Args:
        widget_src: The absolute URL of ``widget.js``.
        nonce: This response's style nonce.

    Returns:
        The header value.
    """
    origin = widget_origin(widget_src)
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {origin}",
            f"connect-src 'self' {origin}",
            f"style-src 'self' 'nonce-{nonce}' {origin}",
            "img-src 'self' data:",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def render_demo_page(widget_src: str, nonce: str) -> str:
    """Render the demo page for the configured clinic.

    Every clinic value is HTML-escaped; the widget URL is validated and escaped as an attribute.

    Args:
        widget_src: The absolute URL of ``widget.js``.
        nonce: The style nonce that the page's Content-Security-Policy names.

    Returns:
        The page's HTML.
    """
    from bot.clinic import get_clinic

    widget_origin(widget_src)  # Validates the URL.
    clinic = get_clinic()
    script_tag = f'<script src="{html.escape(widget_src, quote=True)}" defer></script>'
    values = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "clinic_phone_href": re.sub(r"[^0-9+]", "", clinic.phone),
        "clinic_address": clinic.address,
        "clinic_hours": clinic.hours_text,
        "nonce": nonce,
    }
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    template = Template(template_path().read_text(encoding="utf-8"))
    return template.substitute(escaped, widget_script=script_tag)


class DemoRequestHandler(BaseHTTPRequestHandler):
    """Serves the demo page at ``/`` (an empty ``/favicon.ico``); everything else is 404."""

    server: DemoServer
    server_version = "ClinicDemo/1.0"

    def version_string(self) -> str:
        """The ``Server`` header: no Python version."""
        return self.server_version

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        """Answer a GET request."""
        self._respond(include_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - the name http.server dispatches to
        """Answer a HEAD request."""
        self._respond(include_body=False)

    def _respond(self, include_body: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", {})
            return
        if path not in ("/", "/index.html"):
            self._send(HTTPStatus.NOT_FOUND, b"Not found\n", "text/plain; charset=utf-8", {})
            return
        nonce = secrets.token_urlsafe(16)
        widget_src = self.server.widget_src
        try:
            body = render_demo_page(widget_src, nonce).encode("utf-8")
        except Exception as error:
            logger.error("Demo page could not be rendered: %s", type(error).__name__)
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                b"The demo page could not be rendered; see the server log.\n",
                "text/plain; charset=utf-8",
                {},
            )
            return
        headers = {
            "Content-Security-Policy": content_security_policy(widget_src, nonce),
            "Referrer-Policy": "strict-origin-when-cross-origin",
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-cache",
        }
        self._send(
            HTTPStatus.OK,
            body if include_body else b"",
            "text/html; charset=utf-8",
            headers,
            length=len(body),
        )

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        """Send access logs to :mod:`logging` instead of stderr."""
        logger.debug("demo: " + format, *args)


class DemoServer(ThreadingHTTPServer):
    """The demo page server; remembers the widget URL it embeds."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], widget_src: str) -> None:
        """Bind the server.

        Args:
            address: ``(host, port)``; port 0 picks a free port.
            widget_src: The absolute URL of ``widget.js``.
        """
        widget_origin(widget_src)  # Fail at start-up, not on the first request.
        super().__init__(address, DemoRequestHandler)
        self.widget_src = widget_src

    @property
    def url(self) -> str:
        """The page's URL."""
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode("ascii")
        return f"http://{host}:{port}/"


def serve_demo(port: int, widget_src: str, host: str = "127.0.0.1") -> DemoServer:
    """Start the demo page server in a background thread.

    Args:
        port: The port to listen on; 0 picks a free one (see ``server.server_address``).
        widget_src: The absolute URL of ``widget.js``.
        host: The interface to listen on.

    Returns:
        The running server; stop it with ``server.shutdown()`` then ``server.server_close()``.
    """
    server = DemoServer((host, port), widget_src)
    thread = threading.Thread(target=server.serve_forever, name="demo-page", daemon=True)
    thread.start()
    return server


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: serve the demo page until interrupted.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description="Serve a demo clinic page with the chat widget.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--widget-src",
        default=DEFAULT_WIDGET_SRC,
        help=f"absolute URL of widget.js (default {DEFAULT_WIDGET_SRC})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        server = DemoServer((args.host, args.port), args.widget_src)
    except ValueError as error:
        parser.error(str(error))
    print(f"Demo clinic page on {server.url} (widget: {args.widget_src}); Ctrl-C stops it.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
