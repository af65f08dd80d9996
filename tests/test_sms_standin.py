"""The Twilio stand-in, driven by the real twilio library client over 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from bot.settings import PROJECT_ROOT
from bot.sms.outbound import check_base_url, make_client, rebase_url
from bot.sms.standin import StandIn
from tests.alerts_support import free_port

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = secrets.token_hex(16)
CLINIC_NUMBER = "+15555550100"
PATIENT = "+15555550123"
SID = re.compile(r"SM[0-9a-f]{32}")


@pytest.fixture()
def record(tmp_path: Path) -> Path:
    return tmp_path / "var" / "sms-outbox.jsonl"


@pytest.fixture()
def standin(record: Path) -> Iterator[StandIn]:
    with StandIn(ACCOUNT_SID, AUTH_TOKEN, record=record) as running:
        yield running


@pytest.fixture()
def client(standin: StandIn) -> Client:
    return make_client(ACCOUNT_SID, AUTH_TOKEN, standin.url)


def send(client: Client, body: str = "Hi Maria, this is your check-in.", to: str = PATIENT):
    return client.messages.create(to=to, from_=CLINIC_NUMBER, body=body)


def recorded(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def control(standin: StandIn, method: str, path: str, form: dict | None = None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(standin.url + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return response.status, response.read()


def test_listens_on_loopback_only(standin):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", standin.url)


def test_send_is_recorded_in_memory_and_on_disk(standin, client, record):
    message = send(client)

    assert SID.fullmatch(message.sid)
    assert message.status == "queued"
    assert message.to == PATIENT
    assert message.from_ == CLINIC_NUMBER
    assert message.body == "Hi Maria, this is your check-in."
    assert message.num_segments == "1"
    assert message.direction == "outbound-api"
    assert message.account_sid == ACCOUNT_SID
    assert message.date_created is not None  # the library parsed the RFC 2822 date
    assert [m["sid"] for m in standin.messages] == [message.sid]
    assert recorded(record) == standin.messages
    assert oct(record.stat().st_mode & 0o777) == "0o600"


def test_messages_are_kept_in_order_and_listed_over_http(standin, client):
    sids = [send(client, body=f"message {n}").sid for n in range(3)]
    status, body = control(standin, "GET", "/_standin/messages")
    assert status == 200
    listed = json.loads(body)["messages"]
    assert [m["sid"] for m in listed] == sids
    assert [m["body"] for m in listed] == ["message 0", "message 1", "message 2"]


def test_clearing_forgets_memory_but_keeps_the_file(standin, client, record):
    send(client)
    standin.clear()
    assert standin.messages == []
    send(client)
    assert control(standin, "DELETE", "/_standin/messages")[0] == 204
    assert standin.messages == []
    assert len(recorded(record)) == 2


def test_messages_property_returns_copies(standin, client):
    send(client)
    standin.messages[0]["body"] = "changed"
    assert standin.messages[0]["body"] == "Hi Maria, this is your check-in."


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),  # GSM-7: 153 per segment once split
        ("a" * 306, "2"),
        ("a" * 307, "3"),
        ("{" * 80, "1"),  # extension characters count twice
        ("{" * 81, "2"),
        ("a" * 69 + "😊", "2"),  # UCS-2: the emoji takes two units, 71 > 70
        ("a" * 68 + "😊", "1"),
        ("It\u2019s your check-in", "1"),  # a curly quote switches to UCS-2, still short
        ("\u2019" * 71, "2"),
    ],
)
def test_segments_follow_gsm7_and_ucs2(client, body, segments):
    assert send(client, body=body).num_segments == segments


def test_messaging_service_without_from_is_accepted(standin, client):
    message = client.messages.create(
        to=PATIENT, messaging_service_sid="MG" + "0" * 32, body="Hello"
    )
    assert message.status == "accepted"
    assert message.messaging_service_sid == "MG" + "0" * 32
    assert standin.messages[0]["from"] is None


# --- Authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account_sid", "auth_token"),
    [
        (ACCOUNT_SID, "wrong-token"),
        ("AC" + "f" * 32, AUTH_TOKEN),  # another account, with this account's token
    ],
)
def test_bad_credentials_get_20003(standin, record, account_sid, auth_token):
    intruder = make_client(account_sid, auth_token, standin.url)
    with pytest.raises(TwilioRestException) as raised:
        send(intruder)
    assert raised.value.status == 401
    assert raised.value.code == 20003
    assert standin.messages == []
    assert not record.exists()


def test_no_credentials_get_20003(standin):
    url = f"{standin.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    data = urllib.parse.urlencode({"To": PATIENT, "From": CLINIC_NUMBER, "Body": "x"}).encode()
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url, data=data, timeout=5)  # noqa: S310 - loopback
    assert raised.value.code == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Basic")
    assert json.loads(raised.value.read())["code"] == 20003


# --- Validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "body", "code"),
    [
        ("", "Hello", 21604),
        ("555-0123", "Hello", 21211),
        ("5555550123", "Hello", 21211),  # not E.164
        ("+1 555 555 0123", "Hello", 21211),  # E.164 has no spaces
        ("+1555555012", "Hello", 21211),
        ("not a number", "Hello", 21211),
        (PATIENT, "", 21602),
        (PATIENT, "   ", 21602),
        (PATIENT, "x" * 1601, 21617),
    ],
    ids=[
        "no-to",
        "seven-digits",
        "national",
        "spaces",
        "short-nanp",
        "words",
        "empty-body",
        "blank-body",
        "body-too-long",
    ],
)
def test_invalid_messages_get_twilio_errors(standin, client, record, to, body, code):
    with pytest.raises(TwilioRestException) as raised:
        send(client, body=body, to=to)
    assert raised.value.status == 400
    assert raised.value.code == code
    assert raised.value.msg.startswith("Unable to create record: ")
    assert standin.messages == []
    assert not record.exists()


def test_longest_body_is_accepted(client):
    assert send(client, body="x" * 1600).num_segments == "11"


def test_missing_from_gets_21603(client):
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=PATIENT, body="Hello")
    assert (raised.value.status, raised.value.code) == (400, 21603)


def test_error_body_is_twilio_shaped(standin):
    url = f"{standin.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode({"To": "123", "From": CLINIC_NUMBER, "Body": "x"}).encode(),
        headers={"Authorization": _basic(ACCOUNT_SID, AUTH_TOKEN)},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
    payload = json.loads(raised.value.read())
    assert payload == {
        "code": 21211,
        "message": "The 'To' number 123 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_unknown_paths_are_404(standin):
    with pytest.raises(urllib.error.HTTPError) as raised:
        control(standin, "GET", "/2010-04-01/Accounts/AC1/Calls.json")
    assert raised.value.code == 404


# --- Injected failures ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (429, 20429)])
def test_injected_failures_then_success(standin, client, record, status, code):
    standin.fail_next(2, status)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as raised:
            send(client)
        assert (raised.value.status, raised.value.code) == (status, code)
    message = send(client)
    assert [m["sid"] for m in standin.messages] == [message.sid]
    assert len(recorded(record)) == 1


def test_a_retrying_sender_gets_through(standin, client):
    standin.fail_next(2, 503)
    attempts = 0
    while True:
        attempts += 1
        try:
            message = send(client)
            break
        except TwilioRestException as error:
            assert error.status == 503
            assert attempts < 5
    assert attempts == 3
    assert standin.messages[0]["sid"] == message.sid


def test_failures_are_not_used_up_by_unauthenticated_requests(standin, client):
    standin.fail_next(1, 500)
    with pytest.raises(TwilioRestException) as raised:
        send(make_client(ACCOUNT_SID, "wrong-token", standin.url))
    assert raised.value.status == 401
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert raised.value.status == 500


def test_failures_can_be_set_over_http(standin, client):
    assert control(standin, "POST", "/_standin/fail", {"count": 1, "status": 429})[0] == 204
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert raised.value.status == 429
    send(client)
    assert len(standin.messages) == 1


@pytest.mark.parametrize(("count", "status"), [(-1, 500), (1, 200), (1, 302), (1, 600)])
def test_nonsense_failures_are_refused(standin, count, status):
    with pytest.raises(ValueError):
        standin.fail_next(count, status)
    with pytest.raises(urllib.error.HTTPError) as raised:
        control(standin, "POST", "/_standin/fail", {"count": count, "status": status})
    assert raised.value.code == 400


# --- Pointing the twilio client elsewhere -----------------------------------------------------


def test_rebase_url_keeps_path_and_query():
    url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=5"
    assert rebase_url(url, "http://127.0.0.1:8026") == (
        f"http://127.0.0.1:8026/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=5"
    )
    assert rebase_url(url, "http://127.0.0.1:8026/twilio").startswith(
        "http://127.0.0.1:8026/twilio/2010-04-01/"
    )


@pytest.mark.parametrize(
    "base_url",
    ["http://clinic.example.org", "ftp://127.0.0.1", "127.0.0.1:8026", "http://127.0.0.1/?x=1"],
)
def test_unsafe_or_malformed_base_urls_are_refused(base_url):
    with pytest.raises(ValueError):
        check_base_url(base_url)
    with pytest.raises(ValueError):
        make_client(ACCOUNT_SID, AUTH_TOKEN, base_url)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8026/",
        "http://localhost:8026",
        "http://[::1]:8026",
        "https://twilio-mock.example.org",
    ],
)
def test_acceptable_base_urls(base_url):
    assert check_base_url(base_url) == base_url.rstrip("/")


@pytest.mark.parametrize(("account_sid", "auth_token"), [("", AUTH_TOKEN), (ACCOUNT_SID, "")])
def test_make_client_needs_both_credentials(account_sid, auth_token):
    # Without the check, twilio's Client would silently read TWILIO_* from the environment.
    with pytest.raises(ValueError):
        make_client(account_sid, auth_token, "http://127.0.0.1:8026")


def test_client_ignores_proxy_environment(standin, monkeypatch):
    # A proxy that does not exist: a request routed through it would fail.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    send(make_client(ACCOUNT_SID, AUTH_TOKEN, standin.url))
    assert len(standin.messages) == 1


def test_stop_releases_the_port(record):
    standin = StandIn(ACCOUNT_SID, AUTH_TOKEN, record=record).start()
    url = standin.url
    standin.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        send(make_client(ACCOUNT_SID, AUTH_TOKEN, url, timeout=2))


# --- As a process -----------------------------------------------------------------------------


def test_runs_as_a_process(tmp_path):
    port = free_port()
    out = tmp_path / "outbox.jsonl"
    env = {**os.environ, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "bot.sms.standin", "--port", str(port), "--record", str(out)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        started = time.monotonic()
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner, banner + process.stderr.read()
        assert time.monotonic() - started < 10
        message = send(make_client(ACCOUNT_SID, AUTH_TOKEN, f"http://127.0.0.1:{port}"))
        assert [m["sid"] for m in recorded(out)] == [message.sid]
    finally:
        process.terminate()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_process_refuses_to_start_without_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    result = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            "-m",
            "bot.sms.standin",
            "--port",
            "0",
            "--record",
            str(tmp_path / "x.jsonl"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "TWILIO_AUTH_TOKEN" in result.stderr
