"""Server-sent events (``text/event-stream``) for the console's live pages.

A stream lasts a limited time (``stream_seconds``); the browser's ``EventSource`` then
reconnects by itself. That bounds how long a connection is held, and every reconnect passes the
session check again. Streams never count as activity: a page left open is still signed out
after the idle timeout, and the stream says so with a ``logout`` event.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from sanic.request import Request

HEARTBEAT_SECONDS = 15.0
"""A comment line at least this often keeps proxies from closing an idle stream."""
RETRY_MILLISECONDS = 3000


def format_event(event: str, data: str) -> str:
    """One server-sent event; each line of ``data`` becomes its own ``data:`` line."""
    lines = data.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


class EventStream:
    """An open ``text/event-stream`` response, closed when the ``async with`` block ends.

    Args:
        request: The request to answer.
        lifetime: Seconds before the stream ends (the browser reconnects).
    """

    def __init__(self, request: Request, lifetime: float) -> None:
        self.request = request
        self.lifetime = lifetime
        self.response: Any = None
        self._loop = asyncio.get_running_loop()
        self._deadline = 0.0
        self._last_sent = 0.0

    async def __aenter__(self) -> EventStream:
        self.response = await self.request.respond(
            content_type="text/event-stream; charset=utf-8",
            headers={"X-Accel-Buffering": "no"},
        )
        self._deadline = self._loop.time() + self.lifetime
        await self._write(f"retry: {RETRY_MILLISECONDS}\n\n")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if kind is None:
            await self.response.eof()

    @property
    def open(self) -> bool:
        """Whether the stream still has time left."""
        return self._loop.time() < self._deadline

    async def send(self, event: str, data: str) -> None:
        """Send one event."""
        await self._write(format_event(event, data))

    async def pause(self, seconds: float) -> None:
        """Wait before the next poll (never past the stream's end), keeping the stream alive."""
        remaining = self._deadline - self._loop.time()
        await asyncio.sleep(max(0.0, min(seconds, remaining)))
        if self._loop.time() - self._last_sent >= HEARTBEAT_SECONDS:
            await self._write(": keep-alive\n\n")

    async def _write(self, text: str) -> None:
        await self.response.send(text)
        self._last_sent = self._loop.time()
