"""One handoff: who and why, the summary and score chart (clinical roles), the transcript, notes,
claim / note / resolve, and taking the conversation over (reply, hand back).

Every view of a handoff or of its transcript is written to the audit log. Front desk staff see
contact details, the reason and the actions only; every clinical URL refuses them with 403 even
when typed in directly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sanic import Blueprint
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from bot.console import summary as summary_view
from bot.console import takeover
from bot.console.chart import score_chart
from bot.console.events import EventStream
from bot.console.labels import OUTCOME_LABELS
from bot.console.rasa_api import RasaApiError, TranscriptLine
from bot.console.web import (
    ConsoleError,
    Staff,
    bad_request,
    console,
    form_value,
    not_found,
    parse_id,
    render_page,
    requires,
    see_other,
    signed_in,
    still_signed_in,
)
from bot.db.models import Handoff, HandoffOutcome, HandoffStatus, StaffUser
from bot.services import audit, checkins, conversations, handoffs, people

bp = Blueprint("handoffs")

NOTE_MAX = 4000
MAX_AFTER = 100_000

DONE_MESSAGES = {
    "claimed": "You have claimed this handoff.",
    "noted": "Your note was added.",
    "resolved": "The handoff is resolved.",
    "taken_over": "You have taken over the conversation. The assistant is paused.",
    "replied": "Your reply was sent.",
    "handed_back": "The conversation is back with the assistant.",
}
TRANSCRIPT_UNAVAILABLE = ("The transcript could not be loaded: the assistant's server did not "
                          "answer ({code}). Reload the page to try again.")


def _handoff(session: Any, handoff_id: Any) -> Handoff:
    handoff = handoffs.get(session, parse_id(handoff_id, "That handoff"))
    if handoff is None:
        raise not_found("That handoff")
    return handoff


def _sender_id(request: Request, handoff_id: Any) -> str:
    with console(request).unit_of_work() as session:
        return str(_handoff(session, handoff_id).conversation.sender_id)


async def _load_transcript(request: Request, sender_id: str
                           ) -> tuple[list[TranscriptLine], str]:
    """The conversation's transcript, or an explanation of why it could not be loaded."""
    try:
        lines = await asyncio.to_thread(console(request).rasa_api.transcript, sender_id)
    except RasaApiError as error:
        return [], TRANSCRIPT_UNAVAILABLE.format(code=error.code)
    return list(lines), ""


def _holder_name(session: Any, sender_id: str) -> str:
    holder = conversations.holder(session, sender_id)
    return str(holder.display_name) if holder is not None else ""


async def handoff_page(request: Request, handoff_id: Any, *, status: int = 200,
                       error: str = "") -> HTTPResponse:
    """Render the handoff page (also after a failed action, with ``error`` and its status)."""
    staff = signed_in(request)
    sender_id = _sender_id(request, handoff_id)
    show_transcript = staff.can("transcript.view")
    transcript: list[TranscriptLine] = []
    transcript_error = ""
    if show_transcript:
        transcript, transcript_error = await _load_transcript(request, sender_id)
    clinical = staff.can("handoff.clinical")
    ctx = console(request)
    with ctx.unit_of_work() as session:
        handoff = _handoff(session, handoff_id)
        who = people.describe(session, handoff)
        audit.record(session, staff.id, audit.HANDOFF_VIEW, "handoff", handoff.id,
                     person_id=handoff.person_id)
        if show_transcript and not transcript_error:
            audit.record(session, staff.id, audit.TRANSCRIPT_VIEW, "handoff", handoff.id,
                         person_id=handoff.person_id)
        values: dict[str, Any] = {"sections": [], "chart": None, "score_table": []}
        if clinical:
            values["sections"] = summary_view.sections(handoff.summary)
            patient_id = who.get("patient_id")
            if patient_id:
                history = checkins.score_history(session, patient_id)
                values["chart"] = score_chart(history, checkins.infusion_history(session,
                                                                                 patient_id))
                values["score_table"] = summary_view.score_rows(history)
        holder_user = conversations.holder(session, sender_id)
        held_by_me = holder_user is not None and holder_user.id == staff.id
        holder = holder_user.display_name if holder_user is not None else ""
        notice = DONE_MESSAGES.get(str(request.args.get("done") or ""), "")
        return render_page(
            request, "handoff.html", status=status,
            handoff=handoff, who=who, clinical=clinical, show_transcript=show_transcript,
            transcript=transcript, transcript_error=transcript_error,
            live=show_transcript and handoff.status != HandoffStatus.RESOLVED,
            notes=handoffs.notes(session, handoff.id),
            can_reply=staff.can("conversation.reply"), holder=holder, held_by_me=held_by_me,
            notice=notice, action_error=error, note_max=NOTE_MAX,
            reply_max=takeover.MAX_REPLY_CHARS, score_labels=summary_view.SCORE_LABELS,
            **values,
        )


@bp.get("/handoffs/<handoff_id>")
@requires("handoff.view")
async def show(request: Request, handoff_id: str) -> HTTPResponse:
    """The handoff page."""
    return await handoff_page(request, handoff_id)


@bp.get("/handoffs/<handoff_id>/transcript")
@requires("transcript.view")
async def transcript_page(request: Request, handoff_id: str) -> HTTPResponse:
    """The whole conversation on its own page."""
    staff = signed_in(request)
    sender_id = _sender_id(request, handoff_id)
    transcript, transcript_error = await _load_transcript(request, sender_id)
    with console(request).unit_of_work() as session:
        handoff = _handoff(session, handoff_id)
        if not transcript_error:
            audit.record(session, staff.id, audit.TRANSCRIPT_VIEW, "handoff", handoff.id,
                         person_id=handoff.person_id)
        return render_page(request, "transcript.html", handoff=handoff,
                           who=people.describe(session, handoff), transcript=transcript,
                           transcript_error=transcript_error, live=False)


# -- claim, note, resolve -----------------------------------------------------------------


def _conflict(error: Exception) -> ConsoleError:
    return ConsoleError(409, str(error) or "That cannot be done to this handoff now.")


@bp.post("/handoffs/<handoff_id>/claim")
@requires("handoff.act")
async def claim(request: Request, handoff_id: str) -> HTTPResponse:
    """Assign the handoff to the signed-in staff member."""
    staff = signed_in(request)
    with console(request).unit_of_work() as session:
        handoff = _handoff(session, handoff_id)
        try:
            handoffs.claim(session, handoff.id, staff.id)
        except handoffs.HandoffError as error:
            raise _conflict(error) from None
        return see_other(f"/handoffs/{handoff.id}", done="claimed")


@bp.post("/handoffs/<handoff_id>/notes")
@requires("handoff.act")
async def add_note(request: Request, handoff_id: str) -> HTTPResponse:
    """Add a note to the handoff."""
    staff = signed_in(request)
    body = form_value(request, "body", NOTE_MAX)
    if not body:
        raise bad_request("A note needs some text.")
    with console(request).unit_of_work() as session:
        handoff = _handoff(session, handoff_id)
        try:
            handoffs.add_note(session, handoff.id, staff.id, body)
        except handoffs.HandoffError as error:
            raise _conflict(error) from None
        return see_other(f"/handoffs/{handoff.id}", done="noted")


@bp.post("/handoffs/<handoff_id>/resolve")
@requires("handoff.act")
async def resolve(request: Request, handoff_id: str) -> HTTPResponse:
    """Resolve the handoff with an outcome (and an optional closing note)."""
    staff = signed_in(request)
    outcome = form_value(request, "outcome", 40)
    if outcome not in OUTCOME_LABELS:
        raise bad_request("Choose an outcome: " + ", ".join(OUTCOME_LABELS.values()) + ".")
    note = form_value(request, "note", NOTE_MAX) or None
    with console(request).unit_of_work() as session:
        handoff = _handoff(session, handoff_id)
        try:
            handoffs.resolve(session, handoff.id, staff.id, HandoffOutcome(outcome), note=note)
        except handoffs.HandoffError as error:
            raise _conflict(error) from None
        return see_other(f"/handoffs/{handoff.id}", done="resolved")


# -- takeover -------------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return "application/json" in str(request.headers.get("accept") or "")


def _conversation_step(request: Request, handoff_id: Any, staff: Staff, step: str,
                       text: str = "") -> dict[str, Any]:
    """Take over, reply or hand back, in one unit of work (run in a worker thread: it waits
    on Rasa, and for SMS on Twilio)."""
    ctx = console(request)
    with ctx.unit_of_work() as session:
        handoff = _handoff(session, handoff_id)
        user = session.get(StaffUser, staff.id)
        sender_id = handoff.conversation.sender_id
        if step == "take_over":
            if handoff.status == HandoffStatus.RESOLVED:
                raise ConsoleError(409, "This handoff is resolved; reopen a conversation from a "
                                        "new handoff.")
            takeover.take_over(session, ctx.rasa_api, sender_id, user)
            return {}
        if step == "reply":
            result = takeover.reply(session, ctx.rasa_api, sender_id, user, text)
            return {"took_over": result.took_over, "recorded": result.recorded,
                    "segments": result.segments}
        takeover.hand_back(session, ctx.rasa_api, sender_id, user)
        return {}


async def _step(request: Request, handoff_id: str, step: str, done: str,
                text: str = "") -> HTTPResponse:
    staff = signed_in(request)
    try:
        result = await asyncio.to_thread(_conversation_step, request, handoff_id, staff, step,
                                         text)
    except takeover.TakeoverError as error:
        if _wants_json(request):
            return json_response({"error": str(error)}, status=409)
        return await handoff_page(request, handoff_id, status=409, error=str(error))
    except ConsoleError as error:
        if _wants_json(request):
            return json_response({"error": error.message}, status=error.status)
        raise
    if _wants_json(request):
        return json_response({"ok": True, **result})
    return see_other(f"/handoffs/{parse_id(handoff_id)}", done=done)


@bp.post("/handoffs/<handoff_id>/takeover")
@requires("conversation.reply")
async def take_over(request: Request, handoff_id: str) -> HTTPResponse:
    """Pause the assistant in this handoff's conversation; the signed-in staff member replies."""
    return await _step(request, handoff_id, "take_over", "taken_over")


@bp.post("/handoffs/<handoff_id>/reply")
@requires("conversation.reply")
async def reply(request: Request, handoff_id: str) -> HTTPResponse:
    """Send a reply into the conversation's own channel (widget or SMS)."""
    raw = str((request.form or {}).get("text") or "")
    try:
        text = takeover.check_reply_text(raw)
    except takeover.TakeoverError as error:
        if _wants_json(request):
            return json_response({"error": str(error)}, status=400)
        raise bad_request(str(error)) from None
    return await _step(request, handoff_id, "reply", "replied", text)


@bp.post("/handoffs/<handoff_id>/handback")
@requires("conversation.reply")
async def hand_back(request: Request, handoff_id: str) -> HTTPResponse:
    """Resume the assistant in this handoff's conversation."""
    return await _step(request, handoff_id, "hand_back", "handed_back")


# -- the live conversation ------------------------------------------------------------------


def _conversation_state(request: Request, staff: Staff, sender_id: str
                        ) -> tuple[bool, str]:
    ctx = console(request)
    with ctx.unit_of_work() as session:
        if not still_signed_in(session, staff, ctx.clock()):
            return False, ""
        return True, _holder_name(session, sender_id)


@bp.get("/events/conversation/<handoff_id>")
@requires("transcript.view")
async def conversation_events(request: Request, handoff_id: str) -> None:
    """Server-sent events: new lines of the conversation about every second.

    ``?after=N`` says how many lines the page already shows. Events: ``lines`` (the new
    lines), ``holder`` (who replies now; empty for the assistant), ``unavailable`` (Rasa did
    not answer; the stream keeps trying) and ``logout``.
    """
    staff = signed_in(request)
    raw_after = str(request.args.get("after") or "0")
    if not raw_after.isdigit() or int(raw_after) > MAX_AFTER:
        raise bad_request("“after” must be a line count.")
    sent = int(raw_after)
    ctx = console(request)
    with ctx.unit_of_work() as session:
        handoff = _handoff(session, handoff_id)
        sender_id = str(handoff.conversation.sender_id)
        audit.record(session, staff.id, audit.TRANSCRIPT_VIEW, "handoff", handoff.id,
                     person_id=handoff.person_id, detail={"live": True})
    holder: str | None = None
    async with EventStream(request, ctx.stream_seconds) as stream:
        while stream.open:
            alive, current_holder = await asyncio.to_thread(
                _conversation_state, request, staff, sender_id)
            if not alive:
                await stream.send("logout", "{}")
                break
            if current_holder != holder:
                holder = current_holder
                await stream.send("holder", json.dumps({"holder": holder}))
            try:
                lines = await asyncio.to_thread(ctx.rasa_api.transcript, sender_id)
            except RasaApiError as error:
                await stream.send("unavailable", json.dumps({"code": error.code}))
            else:
                if len(lines) < sent:
                    sent = 0
                    await stream.send("reset", "{}")
                if len(lines) > sent:
                    when = ctx.templates.filters["when"]
                    await stream.send("lines", json.dumps(
                        {"lines": [{**line.as_dict(), "when": when(line.at)}
                                   for line in lines[sent:]],
                         "count": len(lines)}))
                    sent = len(lines)
            await stream.pause(ctx.conversation_poll_seconds)
