"""Staff alerts against real loopback transports (HTTP and SMTP) and real databases."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from bot.alerts import Alert, Delivery, deliver, notifier
from bot.alerts.receiver import serve_receiver, verify_signature
from bot.db.models import (
    AlertStatus,
    Answer,
    Channel,
    Conversation,
    Handoff,
    HandoffPriority,
    HandoffReason,
    Person,
    StaffAlert,
)
from bot.db.session import get_engine, unit_of_work
from bot.services import handoffs, intake
from bot.settings import Settings, SettingsError, get_settings, load_settings
from tests.alerts_support import FAILURE_BODY, SmtpReceiver, WebhookReceiver, free_port

SECRET = "test-webhook-secret"
# Patient data the handoff holds; none of it may leave in an alert.
PHI = {
    "first_name": "Maria",
    "phone": "+15035550199",
    "message": "I keep thinking about ending my life",
}
PAYLOAD_KEYS = {"kind", "priority", "title", "channel", "conversation_ref", "handoff_id",
                "occurred_at", "console_link"}


class Sleeps:
    """Stands in for asyncio.sleep: records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@dataclasses.dataclass
class AlertDb:
    """A database holding one crisis handoff with patient data in it."""

    url: str
    engine: Engine
    handoff_id: int
    ref: str

    def rows(self) -> list[StaffAlert]:
        with unit_of_work(self.engine) as session:
            return list(session.scalars(
                select(StaffAlert).where(StaffAlert.conversation_ref == self.ref)
                .order_by(StaffAlert.id)))


@pytest.fixture
def alert_db(db_engine: Engine) -> Iterator[AlertDb]:
    """Committed rows (deliver() writes in its own transaction), removed afterwards."""
    sender = f"alert-test-{uuid.uuid4().hex}"
    with unit_of_work(db_engine) as session:
        intake.record_answer(session, sender, Channel.WIDGET, "first_name", PHI["first_name"])
        intake.record_answer(session, sender, Channel.WIDGET, "phone", PHI["phone"])
        handoff = handoffs.create(session, sender, Channel.WIDGET, HandoffReason.CRISIS,
                                  HandoffPriority.URGENT, {"last_message": PHI["message"]})
        ids = (handoff.id, handoff.conversation_id, handoff.person_id)
    url = db_engine.url.render_as_string(hide_password=False)
    yield AlertDb(url=url, engine=db_engine, handoff_id=ids[0], ref=f"c-{uuid.uuid4().hex[:8]}")
    get_engine(url).dispose()
    get_engine.cache_clear()
    handoff_id, conversation_id, person_id = ids
    with unit_of_work(db_engine) as session:
        session.execute(delete(StaffAlert).where(StaffAlert.handoff_id == handoff_id))
        session.execute(delete(Handoff).where(Handoff.id == handoff_id))
        session.execute(delete(Answer).where(Answer.conversation_id == conversation_id))
        session.execute(delete(Conversation).where(Conversation.id == conversation_id))
        session.execute(delete(Person).where(Person.id == person_id))


@pytest.fixture
def configure(override_settings, monkeypatch: pytest.MonkeyPatch):
    """Set the alert environment for one test (nothing else inherited) and return the settings
    deliver() will read."""

    def _configure(**values: str) -> Settings:
        for name in [n for n in os.environ if n.startswith("BOT_ALERT_")]:
            monkeypatch.delenv(name)
        override_settings(BOT_ALERT_RETRY_DELAY="0.5", **values)
        return get_settings()

    return _configure


def crisis_alert(handoff_id: int | None, ref: str = "c-1a2b3c4d") -> Alert:
    return Alert(kind="crisis", priority="urgent", conversation_ref=ref, channel="widget",
                 handoff_id=handoff_id, occurred_at=datetime(2026, 11, 28, 9, 30,
                                                             tzinfo=timezone.utc))


def assert_no_phi(text: str) -> None:
    for value in PHI.values():
        assert value.lower() not in text.lower()


# --- Webhook --------------------------------------------------------------------------------


async def test_webhook_delivers_a_signed_alert_and_records_it(
        alert_db, configure, webhook, sleeps):
    configure(BOT_DATABASE_URL=alert_db.url, BOT_ALERT_WEBHOOK_URL=webhook.url,
              BOT_ALERT_WEBHOOK_SECRET=SECRET, BOT_CONSOLE_URL="https://console.example/")
    alert = crisis_alert(alert_db.handoff_id, alert_db.ref)

    deliveries = await deliver(alert, sleep=sleeps)

    assert deliveries == [Delivery(transport="webhook", ok=True, attempts=1, error=None)]
    assert sleeps.delays == []
    [request] = webhook.requests
    assert request.header("Content-Type") == "application/json"
    assert verify_signature(SECRET.encode(), request.body, request.header("X-Clinic-Signature"))
    assert not verify_signature(b"another-secret", request.body,
                                request.header("X-Clinic-Signature"))
    assert abs(int(request.header("X-Clinic-Timestamp")) - time.time()) < 60
    assert request.json() == {
        "kind": "crisis",
        "priority": "urgent",
        "title": "[URGENT] Crisis flag - open the staff console",
        "channel": "widget",
        "conversation_ref": alert_db.ref,
        "handoff_id": alert_db.handoff_id,
        "occurred_at": "2026-11-28T09:30:00+00:00",
        "console_link": f"https://console.example/handoffs/{alert_db.handoff_id}",
    }
    [row] = alert_db.rows()
    assert (row.handoff_id, row.kind, row.priority, row.transport, row.status, row.attempts,
            row.last_error) == (alert_db.handoff_id, "crisis", HandoffPriority.URGENT, "webhook",
                                AlertStatus.SENT, 1, None)
    assert row.created_at <= row.finished_at


async def test_webhook_is_retried_with_backoff_until_it_succeeds(
        alert_db, configure, webhook, sleeps):
    configure(BOT_DATABASE_URL=alert_db.url, BOT_ALERT_WEBHOOK_URL=webhook.url,
              BOT_ALERT_WEBHOOK_SECRET=SECRET)
    webhook.fail_next(2)

    deliveries = await deliver(crisis_alert(alert_db.handoff_id, alert_db.ref), sleep=sleeps)

    assert deliveries == [Delivery(transport="webhook", ok=True, attempts=3, error=None)]
    assert sleeps.delays == [0.5, 1.0]
    assert len(webhook.requests) == 3
    assert len({r.body for r in webhook.requests}) == 1
    assert [(r.status, r.attempts) for r in alert_db.rows()] == [(AlertStatus.SENT, 3)]


@pytest.mark.parametrize("status", [500, 302], ids=["server-error", "redirect-not-followed"])
async def test_webhook_that_always_fails_is_recorded_as_failed(
        alert_db, configure, webhook, sleeps, caplog, status):
    configure(BOT_DATABASE_URL=alert_db.url, BOT_ALERT_WEBHOOK_URL=webhook.url,
              BOT_ALERT_WEBHOOK_SECRET=SECRET)
    webhook.always_fail(status)

    with caplog.at_level(logging.INFO, logger="bot.alerts"):
        deliveries = await deliver(crisis_alert(alert_db.handoff_id, alert_db.ref), sleep=sleeps)

    assert deliveries == [Delivery("webhook", ok=False, attempts=3, error=f"HTTP {status}")]
    assert sleeps.delays == [0.5, 1.0]
    assert [r.path for r in webhook.requests] == ["/alerts"] * 3
    [row] = alert_db.rows()
    assert (row.status, row.attempts, row.last_error) == (AlertStatus.FAILED, 3, f"HTTP {status}")
    assert any(r.levelno == logging.ERROR and "NOT delivered" in r.getMessage()
               for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert FAILURE_BODY.decode() not in logged
    assert alert_db.ref not in logged  # kind, priority, transport and handoff id only


async def test_webhook_connection_refused(configure, sleeps):
    settings = configure(BOT_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/alerts",
                         BOT_ALERT_WEBHOOK_SECRET=SECRET)

    deliveries = await deliver(crisis_alert(None), settings, record=False, sleep=sleeps)

    assert deliveries == [Delivery("webhook", ok=False, attempts=3,
                                   error="ConnectionRefusedError")]
    assert sleeps.delays == [0.5, 1.0]


async def test_webhook_timeout_is_a_failure(configure, webhook, monkeypatch):
    monkeypatch.setattr(notifier, "WEBHOOK_TIMEOUT_SECONDS", 0.2)
    webhook.delay = 1.0
    settings = configure(BOT_ALERT_WEBHOOK_URL=webhook.url,
                         BOT_ALERT_WEBHOOK_SECRET=SECRET, BOT_ALERT_ATTEMPTS="1")

    deliveries = await deliver(crisis_alert(None), settings, record=False)

    assert deliveries == [Delivery("webhook", ok=False, attempts=1, error="TimeoutError")]


# --- Email ----------------------------------------------------------------------------------


def smtp_env(smtp: SmtpReceiver, **extra: str) -> dict[str, str]:
    return {
        "BOT_ALERT_SMTP_HOST": smtp.host,
        "BOT_ALERT_SMTP_PORT": str(smtp.port),
        "BOT_ALERT_SMTP_FROM": "assistant@clinic.example",
        "BOT_ALERT_SMTP_TO": "oncall@clinic.example, nurse@clinic.example",
        **extra,
    }


async def test_email_alert_reaches_staff_without_patient_data(
        alert_db, configure, smtp, sleeps):
    configure(BOT_DATABASE_URL=alert_db.url, BOT_CONSOLE_URL="https://console.example",
              **smtp_env(smtp))

    deliveries = await deliver(crisis_alert(alert_db.handoff_id, alert_db.ref), sleep=sleeps)

    assert deliveries == [Delivery("email", ok=True, attempts=1, error=None)]
    [mail] = smtp.messages
    assert mail.mail_from == "assistant@clinic.example"
    assert mail.rcpt_tos == ["oncall@clinic.example", "nurse@clinic.example"]
    message = mail.message
    assert message["Subject"] == "[URGENT] Crisis flag - open the staff console"
    assert message["To"] == "oncall@clinic.example, nurse@clinic.example"
    assert message["Importance"] == "high"
    body = message.get_content()
    assert f"https://console.example/handoffs/{alert_db.handoff_id}" in body
    assert f"Conversation reference: {alert_db.ref}" in body
    assert_no_phi(mail.data.decode())
    [row] = alert_db.rows()
    assert (row.transport, row.status, row.attempts) == ("email", AlertStatus.SENT, 1)


async def test_email_login_is_used_when_configured(configure):
    with SmtpReceiver(credentials=("alerts", "s3cret")) as smtp:
        settings = configure(**smtp_env(smtp, BOT_ALERT_SMTP_USERNAME="alerts",
                                        BOT_ALERT_SMTP_PASSWORD="s3cret"))
        deliveries = await deliver(crisis_alert(None), settings, record=False)

    assert deliveries == [Delivery("email", ok=True, attempts=1, error=None)]
    assert smtp.logins == [("alerts", "s3cret")]
    assert len(smtp.messages) == 1


async def test_email_is_not_sent_in_clear_when_starttls_is_unavailable(
        configure, smtp, sleeps):
    settings = configure(**smtp_env(smtp, BOT_ALERT_SMTP_STARTTLS="true"))

    deliveries = await deliver(crisis_alert(None), settings, record=False, sleep=sleeps)

    assert deliveries == [Delivery("email", ok=False, attempts=3, error="SMTPNotSupportedError")]
    assert smtp.messages == []


async def test_email_refused_by_every_recipient_is_a_failure(configure, sleeps):
    with SmtpReceiver(refuse={"oncall@clinic.example", "nurse@clinic.example"}) as smtp:
        settings = configure(**smtp_env(smtp))
        deliveries = await deliver(crisis_alert(None), settings, record=False, sleep=sleeps)

    assert deliveries == [Delivery("email", ok=False, attempts=3, error="SMTPRecipientsRefused")]
    assert smtp.messages == []


# --- Both, neither, no database -------------------------------------------------------------


async def test_both_transports_are_used_and_recorded(
        alert_db, configure, webhook, smtp, sleeps):
    configure(BOT_DATABASE_URL=alert_db.url, BOT_ALERT_WEBHOOK_URL=webhook.url,
              BOT_ALERT_WEBHOOK_SECRET=SECRET, **smtp_env(smtp))
    webhook.always_fail()

    deliveries = await deliver(crisis_alert(alert_db.handoff_id, alert_db.ref), sleep=sleeps)

    # A failing webhook neither stops nor delays the email.
    assert deliveries == [
        Delivery("webhook", ok=False, attempts=3, error="HTTP 500"),
        Delivery("email", ok=True, attempts=1, error=None),
    ]
    assert len(smtp.messages) == 1
    assert sorted((r.transport, r.status, r.attempts) for r in alert_db.rows()) == [
        ("email", AlertStatus.SENT, 1),
        ("webhook", AlertStatus.FAILED, 3),
    ]


async def test_no_transport_configured_is_an_error_and_recorded(alert_db, configure, caplog):
    configure(BOT_DATABASE_URL=alert_db.url)

    with caplog.at_level(logging.ERROR, logger="bot.alerts"):
        deliveries = await deliver(crisis_alert(alert_db.handoff_id, alert_db.ref))

    assert deliveries == [Delivery("none", ok=False, attempts=0,
                                   error="no alert transport configured")]
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "no alert transport configured" in caplog.records[0].getMessage()
    [row] = alert_db.rows()
    assert (row.transport, row.status, row.attempts, row.last_error) == (
        "none", AlertStatus.FAILED, 0, "no alert transport configured")


@pytest.mark.parametrize("database_url", [
    "postgresql://postgres@127.0.0.1:1/unreachable",
    "sqlite:///{tmp}/never-migrated.db",
], ids=["server-down", "schema-missing"])
async def test_alerts_go_out_when_the_database_is_unavailable(
        configure, webhook, caplog, tmp_path, database_url):
    configure(BOT_DATABASE_URL=database_url.format(tmp=tmp_path),
              BOT_ALERT_WEBHOOK_URL=webhook.url, BOT_ALERT_WEBHOOK_SECRET=SECRET)

    with caplog.at_level(logging.ERROR, logger="bot.alerts"):
        deliveries = await deliver(crisis_alert(7))

    assert deliveries == [Delivery("webhook", ok=True, attempts=1, error=None)]
    assert len(webhook.requests) == 1
    [record] = caplog.records
    # The error type only: SQLAlchemy's message would quote the statement and its values.
    assert record.getMessage().endswith("deliveries not recorded (OperationalError)")
    get_engine.cache_clear()


# --- Payload, alert and receiver ------------------------------------------------------------


async def test_payload_holds_no_message_text_or_patient_details(
        alert_db, configure, webhook, smtp):
    configure(BOT_DATABASE_URL=alert_db.url, BOT_ALERT_WEBHOOK_URL=webhook.url,
              BOT_ALERT_WEBHOOK_SECRET=SECRET, **smtp_env(smtp))
    alert = crisis_alert(alert_db.handoff_id, alert_db.ref)

    await deliver(alert)

    # A fixed set of fields: adding one (a summary, a name) must be a deliberate change.
    assert set(alert.payload()) == PAYLOAD_KEYS
    [request] = webhook.requests
    assert set(request.json()) == PAYLOAD_KEYS
    assert_no_phi(request.body.decode())
    assert_no_phi(smtp.messages[0].data.decode())
    assert alert_db.ref in request.body.decode()


def test_payload_without_a_handoff_has_no_console_link(configure):
    settings = configure(BOT_CONSOLE_URL="https://console.example")
    payload = Alert(kind="phq9_item9", priority=HandoffPriority.SOON, conversation_ref="c-42",
                    channel=Channel.SMS, handoff_id=None,
                    occurred_at=datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=-8))),
                    ).payload(settings)
    assert payload["console_link"] is None
    assert (payload["priority"], payload["channel"]) == ("soon", "sms")
    assert payload["occurred_at"] == "2026-01-02T11:04:00+00:00"
    assert payload["title"] == "[SOON] PHQ-9 item 9 flag - open the staff console"
    json.dumps(payload)


@pytest.mark.parametrize("change", [
    {"occurred_at": datetime(2026, 1, 1, 12, 0)},
    {"priority": "high"},
    {"conversation_ref": ""},
    {"conversation_ref": "x" * 65},
    {"kind": ""},
], ids=["naive-time", "unknown-priority", "empty-ref", "long-ref", "empty-kind"])
def test_alert_refuses_values_it_cannot_send_or_store(change):
    with pytest.raises(ValueError):
        dataclasses.replace(crisis_alert(1), **change)


async def test_demo_receiver_stores_verified_alerts_and_refuses_forged_ones(
        configure, tmp_path: Path):
    out = tmp_path / "alerts" / "staff-alerts.jsonl"
    receiver = serve_receiver(0, out, SECRET.encode())
    try:
        settings = configure(BOT_ALERT_WEBHOOK_URL=receiver.url, BOT_ALERT_WEBHOOK_SECRET=SECRET)
        deliveries = await deliver(crisis_alert(5), settings, record=False)
        forged = dataclasses.replace(settings, alert_webhook_secret=b"guessed",
                                     alert_attempts=1)
        forged_deliveries = await deliver(crisis_alert(6), forged, record=False)
        request = urllib.request.Request(receiver.url, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as unsigned:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 (loopback)
    finally:
        receiver.shutdown()
        receiver.server_close()

    assert deliveries == [Delivery("webhook", ok=True, attempts=1, error=None)]
    assert forged_deliveries == [Delivery("webhook", ok=False, attempts=1, error="HTTP 401")]
    assert unsigned.value.code == 401
    lines = out.read_text().splitlines()
    assert [json.loads(line)["handoff_id"] for line in lines] == [5]
    assert out.stat().st_mode & 0o777 == 0o600


# --- Settings -------------------------------------------------------------------------------


def base_env(tmp_path: Path, env: str = "production", **extra: str) -> dict[str, str]:
    values = {"BOT_ENV": env, "BOT_DATA_DIR": str(tmp_path)}
    if env != "local":
        values.update(BOT_DATA_KEY="k", BOT_INDEX_KEY="i", BOT_WIDGET_SECRET="w")
    return {**values, **extra}


def test_webhook_url_outside_local_requires_its_secret(tmp_path):
    with pytest.raises(SettingsError, match="BOT_ALERT_WEBHOOK_SECRET"):
        load_settings(base_env(tmp_path, BOT_ALERT_WEBHOOK_URL="https://hooks.example/a"))
    settings = load_settings(base_env(tmp_path, BOT_ALERT_WEBHOOK_URL="https://hooks.example/a",
                                      BOT_ALERT_WEBHOOK_SECRET="s"))
    assert settings.alert_webhook_secret == b"s"


def test_alert_settings_default_to_nothing_configured_outside_local(tmp_path):
    settings = load_settings(base_env(tmp_path))
    assert (settings.alert_webhook_url, settings.alert_webhook_secret,
            settings.alert_smtp_host) == (None, None, None)
    assert (settings.alert_attempts, settings.alert_retry_delay, settings.console_url) == (
        3, 1.0, "http://localhost:8030")
    assert not (tmp_path / "secrets.json").exists()


def test_local_demo_generates_the_webhook_secret_once_and_keeps_existing_keys(tmp_path):
    old = {"BOT_DATA_KEY": "old-data-key", "BOT_INDEX_KEY": "old-index",
           "BOT_WIDGET_SECRET": "old-widget"}
    (tmp_path / "secrets.json").write_text(json.dumps(old))

    first = load_settings(base_env(tmp_path, env="local"))
    second = load_settings(base_env(tmp_path, env="local"))

    assert first.data_key == "old-data-key"  # never regenerated: it decrypts patient data
    assert first.alert_webhook_secret and first.alert_webhook_secret == second.alert_webhook_secret
    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert stored == {**old, "BOT_ALERT_WEBHOOK_SECRET": first.alert_webhook_secret.decode(),
                      "BOT_RASA_API_TOKEN": first.rasa_api_token,
                      # The local Twilio stand-in's account (bot.sms.standin).
                      "TWILIO_ACCOUNT_SID": first.twilio_account_sid,
                      "TWILIO_AUTH_TOKEN": first.twilio_auth_token}
    assert first.twilio_account_sid == second.twilio_account_sid
    assert str(first.twilio_account_sid).startswith("AC")
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_smtp_settings_are_read(tmp_path):
    settings = load_settings(base_env(
        tmp_path, BOT_ALERT_SMTP_HOST="smtp.example", BOT_ALERT_SMTP_PORT="587",
        BOT_ALERT_SMTP_FROM="bot@clinic.example", BOT_ALERT_SMTP_TO=" a@x.example, ,b@x.example",
        BOT_ALERT_SMTP_USERNAME="u", BOT_ALERT_SMTP_PASSWORD="p", BOT_ALERT_SMTP_STARTTLS="yes",
        BOT_ALERT_ATTEMPTS="5", BOT_ALERT_RETRY_DELAY="0.25",
        BOT_CONSOLE_URL="https://console.example/"))
    assert (settings.alert_smtp_host, settings.alert_smtp_port, settings.alert_smtp_from,
            settings.alert_smtp_to, settings.alert_smtp_username, settings.alert_smtp_password,
            settings.alert_smtp_starttls) == ("smtp.example", 587, "bot@clinic.example",
                                              ("a@x.example", "b@x.example"), "u", "p", True)
    assert (settings.alert_attempts, settings.alert_retry_delay, settings.console_url) == (
        5, 0.25, "https://console.example")


@pytest.mark.parametrize("extra", [
    {"BOT_ALERT_SMTP_HOST": "smtp.example", "BOT_ALERT_SMTP_FROM": "bot@clinic.example"},
    {"BOT_ALERT_SMTP_USERNAME": "u"},
    {"BOT_ALERT_SMTP_STARTTLS": "maybe"},
    {"BOT_ALERT_ATTEMPTS": "0"},
    {"BOT_ALERT_RETRY_DELAY": "soon"},
], ids=["smtp-without-recipients", "username-without-password", "bad-bool", "zero-attempts",
        "bad-delay"])
def test_alert_settings_that_cannot_work_are_refused(tmp_path, extra):
    with pytest.raises(SettingsError):
        load_settings(base_env(tmp_path, **extra))
