"""The intake end to end through the REST channel: Rasa → action server → database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.db.models import Answer, Conversation, Handoff, HandoffReason
from bot.db.session import make_engine, session_factory
from bot.services import intake
from bot.settings import PROJECT_ROOT
from tests.stack.fixtures import RestChat, post_json

pytestmark = pytest.mark.stack


def _session(stack):
    return session_factory(make_engine(stack.database_url))()


def _joined(replies: list[str]) -> str:
    return "\n".join(replies)


def test_full_intake_with_interruptions_and_a_correction(stack, chat: RestChat):
    assert "virtual assistant for Harbor Light" in _joined(chat.say("hi"))
    replies = _joined(chat.say("I'd like to sign up for treatment"))
    assert "what's your first name?" in replies

    assert "mobile number" in _joined(chat.say("Maria"))
    # A general question mid-form is answered, then the same question is asked again.
    replies = _joined(chat.say("what are your opening hours?"))
    assert "We're open Monday to Thursday" in replies and "mobile number" in replies
    assert "email address" in _joined(chat.say("503 555 0199"))
    assert "best time" in _joined(chat.say("maria@example.com"))
    assert "Which US state" in _joined(chat.say("weekday mornings"))
    assert "What would you like help with?" in _joined(chat.say("Oregon"))
    # A clinical question mid-form goes to a clinician; the form carries on.
    replies = _joined(chat.say("can I take ketamine with my lithium?"))
    assert "one for our clinicians" in replies and "What would you like help with?" in replies
    assert "how long" in _joined(chat.say("depression and anxiety"))
    assert "antidepressant" in _joined(chat.say("about ten years"))
    assert "other treatments" in _joined(chat.say("four"))
    assert "ketamine treatment before?" in _joined(chat.say("therapy and TMS"))
    assert "medications are you taking" in _joined(chat.say("no"))
    assert "How did you hear" in _joined(chat.say("sertraline and lamotrigine"))
    assert "contact you by phone or email" in _joined(chat.say("my psychiatrist"))
    assert "text messages" in _joined(chat.say("yes"))
    summary = _joined(chat.say("yes"))
    assert "1. First name: Maria" in summary and "2. Mobile: +15035550199" in summary
    assert "5. State: Oregon" in summary and "10. Ketamine before: no" in summary

    replies = _joined(chat.say("change my email"))
    assert "change that" in replies and "email address" in replies
    summary = _joined(chat.say("maria.lopez@example.com"))
    assert "3. Email: maria.lopez@example.com" in summary
    replies = _joined(chat.say("yes"))
    assert "Thank you, Maria. Your details are now with our care team." in replies

    with _session(stack) as session:
        answers = intake.latest_answers(session, chat.sender)
        assert answers["first_name"] == "Maria"
        assert answers["phone"] == "+15035550199"
        assert answers["email"] == "maria.lopez@example.com"
        assert answers["us_state"] == "OR"
        assert answers["antidepressant_count"] == 4
        assert set(answers["prior_treatments"]["ids"]) == {"therapy", "tms"}
        assert set(answers["current_medications"]["ids"]) == {"sertraline", "lamotrigine"}
        assert answers["prior_ketamine"] is False
        assert "prior_ketamine_when" not in answers
        conversation = session.scalars(
            select(Conversation).where(Conversation.sender_id == chat.sender)).one()
        # Both emails are kept: corrections add rows.
        emails = session.scalars(select(Answer).where(
            Answer.conversation_id == conversation.id, Answer.question_key == "email")).all()
        assert [row.value for row in emails] == ["maria@example.com", "maria.lopez@example.com"]
        reasons = [h.reason for h in session.scalars(
            select(Handoff).where(Handoff.conversation_id == conversation.id)
            .order_by(Handoff.id))]
        assert reasons == [HandoffReason.CLINICAL_QUESTION, HandoffReason.INTAKE_SUBMITTED]


def test_leaving_halfway_leaves_a_partial_intake(stack, chat: RestChat):
    chat.say("I want to book a consultation")
    chat.say("Dev")
    chat.say("415 555 2671")
    with _session(stack) as session:
        assert intake.latest_answers(session, chat.sender) == {
            "first_name": "Dev", "phone": "+14155552671"}
        assert chat.sender in {c.sender_id for c in intake.partial_intakes(session)}


def test_cancel_stops_the_form_and_keeps_answers(stack, chat: RestChat):
    chat.say("how do I get started")
    chat.say("Sam")
    replies = _joined(chat.say("cancel"))
    assert "I've stopped there" in replies
    assert "virtual assistant" in _joined(chat.say("hello"))
    with _session(stack) as session:
        assert intake.latest_answers(session, chat.sender) == {"first_name": "Sam"}


def test_talk_to_a_person_mid_form_then_the_form_resumes(stack, chat: RestChat):
    chat.say("sign me up")
    replies = _joined(chat.say("I want to talk to a real person"))
    assert "asked a member of our care team" in replies
    assert "first name" in replies
    with _session(stack) as session:
        conversation = session.scalars(
            select(Conversation).where(Conversation.sender_id == chat.sender)).one()
        assert [h.reason for h in conversation.handoffs] == [HandoffReason.HUMAN_REQUESTED]


def test_invalid_phone_twice_offers_skip_or_a_person(stack, chat: RestChat):
    chat.say("I'd like to become a patient")
    chat.say("Lee")
    assert "doesn't look like a US mobile number" in _joined(chat.say("12345"))
    assert "talk to a person" in _joined(chat.say("99"))
    assert "email address" in _joined(chat.say("skip"))


def test_clinical_question_outside_the_form(stack, chat: RestChat):
    replies = _joined(chat.say("am I a good candidate for ketamine with bipolar?"))
    assert "one for our clinicians" in replies
    # Nothing in the reply judges suitability either way.
    assert "candidate" not in replies and "eligible" not in replies


@pytest.mark.parametrize(
    "message",
    [
        "",
        "   ",
        "x" * 10_000,
        "😀😀😀",
        "<script>alert(1)</script>",
        "'; DROP TABLE answers; --",
        "مرحبا، أريد المساعدة",
        "שלום",
        "hello\x00world",
        "\u202eevil",
    ],
    ids=["empty", "spaces", "10k-chars", "emoji", "script", "sql", "arabic", "hebrew", "nul",
         "bidi-override"],
)
def test_bad_input_never_breaks_the_conversation(stack, message):
    chat = RestChat(stack)
    status, body = post_json(chat.url, {"sender": chat.sender, "message": message})
    assert status == 200
    assert body and all(reply.get("text") for reply in body)
    # One reply, not a loop of them, and nothing went wrong on the server.
    assert len(body) <= 2
    assert not any("went wrong on our side" in reply["text"] for reply in body)
    assert "virtual assistant" in _joined(chat.say("hi"))


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"\xff\xfe\x00bad", b"[1, 2]", b'{"sender": 5, "message": "hi"}',
     b'{"sender": "ok", "message": 42}', b""],
)
def test_malformed_requests_get_a_4xx(stack, raw):
    status, _ = post_json(f"{stack.rasa_url}/webhooks/rest/webhook", None, raw=raw)
    assert 400 <= status < 500


def test_server_logs_hold_no_patient_data(stack):
    """Rule 4: what people type never reaches the application logs."""
    chat = RestChat(stack)
    for message in ("I'd like to get started", "Quintessa", "503 555 0187",
                    "quintessa.private@example.com"):
        chat.say(message)
    logs = "\n".join(path.read_text(errors="replace")
                     for path in (stack.log_dir or PROJECT_ROOT).glob("*.log"))
    assert logs, "expected the servers to have written logs"
    for secret in ("Quintessa", "5035550187", "503 555 0187", "quintessa.private"):
        assert secret not in logs
