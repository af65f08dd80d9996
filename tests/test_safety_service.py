"""The crisis records: one open crisis handoff per conversation, repeats, denials and the
PHQ-9 item 9 path. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from bot.db.models import Channel, HandoffPriority, HandoffReason, HandoffStatus
from bot.services import handoffs, safety

T0 = dt.datetime(2026, 11, 21, 15, 0, tzinfo=dt.timezone.utc)
DETECTION = {"crisis": True, "layers": ["patterns"], "families": ["explicit"]}


def _crisis(session: Session, sender: str, text: str, now: dt.datetime) -> safety.CrisisRecord:
    return safety.record_crisis(
        session, sender, Channel.WIDGET, text=text, detection=DETECTION,
        context=["earlier message"], paused_form="intake_form", now=now,
    )


def test_a_crisis_creates_an_urgent_handoff_with_message_and_context(db_session: Session) -> None:
    record = _crisis(db_session, "web-a", "I want to end my life", T0)
    assert record.created and record.alert_kind == safety.KIND_CRISIS
    assert record.priority == HandoffPriority.URGENT
    [handoff] = handoffs.for_conversation(db_session, "web-a")
    assert handoff.reason == HandoffReason.CRISIS
    assert handoff.priority == HandoffPriority.URGENT
    assert handoff.status == HandoffStatus.OPEN
    assert handoff.summary["messages"][0]["text"] == "I want to end my life"
    assert handoff.summary["messages"][0]["detection"] == DETECTION
    assert handoff.summary["context"] == ["earlier message"]
    assert handoff.summary["paused_form"] == "intake_form"


def test_repeats_join_the_open_handoff_and_realert_only_after_a_while(db_session: Session) -> None:
    first = _crisis(db_session, "web-b", "first", T0)
    soon = _crisis(db_session, "web-b", "second", T0 + dt.timedelta(minutes=2))
    later_time = T0 + safety.REALERT_AFTER + dt.timedelta(minutes=3)
    later = _crisis(db_session, "web-b", "third", later_time)
    assert soon.handoff_id == first.handoff_id == later.handoff_id
    assert not soon.created and soon.alert_kind is None
    assert later.alert_kind == safety.KIND_REPEAT
    [handoff] = handoffs.for_conversation(db_session, "web-b")
    assert [m["text"] for m in handoff.summary["messages"]] == ["first", "second", "third"]


def test_a_denial_lowers_the_priority_but_keeps_the_handoff_open(db_session: Session) -> None:
    crisis = _crisis(db_session, "web-c", "I want to die", T0)
    denial = safety.record_denial(db_session, "web-c", Channel.WIDGET,
                                  text="you misunderstood me", now=T0 + dt.timedelta(minutes=1))
    assert denial.handoff_id == crisis.handoff_id
    assert denial.priority == HandoffPriority.SOON
    assert denial.alert_kind == safety.KIND_DENIAL
    [handoff] = handoffs.for_conversation(db_session, "web-c")
    assert handoff.status == HandoffStatus.OPEN
    assert handoff.priority == HandoffPriority.SOON
    assert handoff.summary["denials"][0]["text"] == "you misunderstood me"
    assert handoff.summary["messages"][0]["text"] == "I want to die"


def test_a_crisis_after_a_denial_is_urgent_again_and_alerts(db_session: Session) -> None:
    _crisis(db_session, "web-d", "I want to die", T0)
    safety.record_denial(db_session, "web-d", Channel.WIDGET, text="I'm fine",
                         now=T0 + dt.timedelta(minutes=1))
    again = _crisis(db_session, "web-d", "actually I have the pills", T0 + dt.timedelta(minutes=2))
    assert again.priority == HandoffPriority.URGENT
    assert again.alert_kind == safety.KIND_REPEAT
    [handoff] = handoffs.for_conversation(db_session, "web-d")
    assert handoff.priority == HandoffPriority.URGENT


def test_a_denial_without_a_recorded_crisis_is_still_kept(db_session: Session) -> None:
    record = safety.record_denial(db_session, "web-e", Channel.SMS, text="you got it wrong",
                                  now=T0)
    assert record.created and record.priority == HandoffPriority.SOON
    [handoff] = handoffs.for_conversation(db_session, "web-e")
    assert handoff.reason == HandoffReason.CRISIS
    assert handoff.summary["denials"][0]["text"] == "you got it wrong"


def test_a_resolved_crisis_handoff_is_not_reused(db_session: Session) -> None:
    first = _crisis(db_session, "web-f", "I want to die", T0)
    [handoff] = handoffs.for_conversation(db_session, "web-f")
    handoff.status = HandoffStatus.RESOLVED
    db_session.flush()
    second = _crisis(db_session, "web-f", "it's back", T0 + dt.timedelta(days=3))
    assert second.created and second.handoff_id != first.handoff_id


@pytest.mark.parametrize("score", [1, 2, 3])
def test_phq9_item9_above_zero_takes_the_crisis_path(db_session: Session, score: int) -> None:
    record = safety.record_phq9_item9(db_session, f"sms-{score}", Channel.SMS, score=score,
                                      answer_text="several days", now=T0)
    assert record is not None
    assert record.priority == HandoffPriority.URGENT
    assert record.alert_kind == safety.KIND_PHQ9
    [handoff] = handoffs.for_conversation(db_session, f"sms-{score}")
    assert handoff.reason == HandoffReason.CRISIS
    assert handoff.summary["messages"][0]["detection"]["phq9_item9"] == score


def test_phq9_item9_zero_records_nothing(db_session: Session) -> None:
    assert safety.record_phq9_item9(db_session, "sms-0", Channel.SMS, score=0,
                                    answer_text="not at all", now=T0) is None
    assert handoffs.for_conversation(db_session, "sms-0") == []


def test_phq9_item9_rejects_scores_outside_the_scale(db_session: Session) -> None:
    with pytest.raises(ValueError):
        safety.record_phq9_item9(db_session, "sms-x", Channel.SMS, score=4, answer_text="?")
