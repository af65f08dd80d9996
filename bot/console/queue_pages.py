"""The handoff queue: open handoffs by priority then age, urgent crisis handoffs pinned on top,
filters, and the server-sent-events stream that keeps the page current without a reload.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.orm import Session

from bot.console.events import EventStream
from bot.console.labels import QUEUE_STATUS_CHOICES
from bot.console.web import (
    MAX_ID,
    Staff,
    bad_request,
    console,
    render_page,
    render_text,
    requires,
    signed_in,
    still_signed_in,
)
from bot.db.models import Channel, Handoff, HandoffPriority, HandoffReason, HandoffStatus
from bot.services import handoffs, people
from bot.services import staff as staff_service

bp = Blueprint("queue")

MAX_ITEMS = 200
"""The most handoffs one queue page lists (the filters narrow it down)."""


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, as given in the query string (validated)."""

    channel: str = ""
    priority: str = ""
    status: str = ""
    assignee: str = ""

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any((self.channel, self.priority, self.status, self.assignee))

    @property
    def query_string(self) -> str:
        """The filters as a query string (``""`` or ``"?channel=sms&..."``)."""
        values = {key: value for key, value in self.__dict__.items() if value}
        return "?" + urlencode(values) if values else ""


def _choice(args: Any, name: str, allowed: set[str]) -> str:
    value = str(args.get(name) or "").strip()
    if value and value not in allowed:
        raise bad_request(f"“{value[:40]}” is not a valid {name} filter.")
    return value


def parse_filters(args: Any) -> QueueFilters:
    """Read and check the filters of a queue request.

    Raises:
        ConsoleError: 400 for a value that is not one of the filter's choices.
    """
    assignee = str(args.get("assignee") or "").strip()
    if assignee and assignee not in ("me", "none") and not (
            assignee.isdigit() and 1 <= int(assignee) <= MAX_ID):
        raise bad_request(f"“{assignee[:40]}” is not a valid assignee filter.")
    return QueueFilters(
        channel=_choice(args, "channel", {c.value for c in Channel}),
        priority=_choice(args, "priority", {p.value for p in HandoffPriority}),
        status=_choice(args, "status", set(QUEUE_STATUS_CHOICES) - {""}),
        assignee=assignee,
    )


def is_pinned(handoff: Handoff) -> bool:
    """Whether a handoff is an urgent crisis, pinned above everything else."""
    return handoff.reason == HandoffReason.CRISIS and handoff.priority == HandoffPriority.URGENT


def _who(description: dict[str, Any]) -> str:
    name = description.get("name") or description.get("first_name")
    kind = "Enrolled patient" if description.get("kind") == "patient" else "Prospect"
    return f"{name} ({kind.lower()})" if name else kind


def _item(session: Session, handoff: Handoff) -> dict[str, Any]:
    description = people.describe(session, handoff)
    return {
        "id": handoff.id,
        "priority": handoff.priority.value,
        "reason": handoff.reason.value,
        "status": handoff.status.value,
        "channel": str(description.get("channel") or ""),
        "created_at": handoff.created_at,
        "who": _who(description),
        "assignee": handoff.assigned_to.display_name if handoff.assigned_to else "",
        "crisis": handoff.reason == HandoffReason.CRISIS,
    }


def queue_state(session: Session, staff: Staff, filters: QueueFilters) -> dict[str, Any]:
    """Everything the queue's list shows, for the page and for the live stream."""
    assignee_id: int | None = None
    if filters.assignee == "me":
        assignee_id = staff.id
    elif filters.assignee.isdigit():
        assignee_id = int(filters.assignee)
    rows = handoffs.queue(
        session,
        channel=Channel(filters.channel) if filters.channel else None,
        priority=HandoffPriority(filters.priority) if filters.priority else None,
        statuses=[HandoffStatus(filters.status)] if filters.status else None,
        assignee_id=assignee_id,
    )
    if filters.assignee == "none":
        rows = [row for row in rows if row.assigned_to_id is None]
    unresolved = handoffs.queue(session)
    # An urgent crisis is never hidden by a filter.
    pinned = [row for row in unresolved if is_pinned(row)]
    pinned_ids = {row.id for row in pinned}
    listed = [row for row in rows if row.id not in pinned_ids]
    urgent_ids = [row.id for row in unresolved if row.priority == HandoffPriority.URGENT]
    return {
        "pinned": [_item(session, row) for row in pinned],
        "items": [_item(session, row) for row in listed[:MAX_ITEMS]],
        "truncated": len(listed) > MAX_ITEMS,
        "urgent_ids": urgent_ids,
        "urgent_count": len(urgent_ids),
        "version": handoffs.queue_version(session),
        "filters": filters,
    }


@bp.get("/")
async def home(request: Request) -> HTTPResponse:
    """The console's start page is the queue."""
    from bot.console.web import see_other

    return see_other("/queue")


@bp.get("/queue")
@requires("queue.view")
async def queue_page(request: Request) -> HTTPResponse:
    """The queue, filtered by the query string."""
    staff = signed_in(request)
    filters = parse_filters(request.args)
    with console(request).unit_of_work() as session:
        state = queue_state(session, staff, filters)
        assignees = [user for user in staff_service.list_users(session) if user.active]
        return render_page(request, "queue.html", assignees=assignees,
                           query_string=filters.query_string, **state)


def _poll_queue(request: Request, staff: Staff, filters: QueueFilters,
                last_version: str | None) -> tuple[bool, str | None, dict[str, Any] | None]:
    """One poll of the live queue: (still signed in, version, new payload or None)."""
    ctx = console(request)
    with ctx.unit_of_work() as session:
        if not still_signed_in(session, staff, ctx.clock()):
            return False, last_version, None
        version = handoffs.queue_version(session)
        if version == last_version:
            return True, version, None
        state = queue_state(session, staff, filters)
        fragment = render_text(request, "_queue_items.html", **state)
    return True, state["version"], {
        "version": state["version"],
        "updated": ctx.templates.filters["when"](ctx.clock()),
        "html": fragment,
        "urgent_ids": state["urgent_ids"],
        "urgent_count": state["urgent_count"],
    }


@bp.get("/events/queue")
@requires("queue.view")
async def queue_events(request: Request) -> None:
    """Server-sent events: the queue's list again whenever a handoff is created or changes.

    Each ``queue`` event carries the list as HTML (rendered and escaped like the page), the
    ids of the urgent handoffs (the page plays a sound for a new one) and their count.
    """
    staff = signed_in(request)
    filters = parse_filters(request.args)
    ctx = console(request)
    version: str | None = str(request.args.get("version") or "") or None
    async with EventStream(request, ctx.stream_seconds) as stream:
        while stream.open:
            alive, version, payload = await asyncio.to_thread(
                _poll_queue, request, staff, filters, version)
            if not alive:
                await stream.send("logout", "{}")
                break
            if payload is not None:
                await stream.send("queue", json.dumps(payload))
            await stream.pause(ctx.queue_poll_seconds)

