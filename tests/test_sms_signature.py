"""X-Twilio-Signature on SMS webhooks, checked against signatures computed independently here."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bot.sms.signature import (
    SIGNATURE_HEADER,
    compute_signature,
    is_valid_request,
    public_url,
)

TOKEN = "12345678901234567890123456789012"
PUBLIC_URL = "https://clinic.example.org/webhooks/sms/webhook"
# What the app sees behind a proxy that terminates TLS.
INTERNAL_URL = "http://127.0.0.1:5005/webhooks/sms/webhook"
PARAMS = {
    "AccountSid": "AC" + "1" * 32,
    "ApiVersion": "2010-04-01",
    "Body": "Feeling better today, thanks",
    "From": "+15555550123",
    "MessageSid": "SM" + "a" * 32,
    "NumMedia": "0",
    "NumSegments": "1",
    "SmsSid": "SM" + "a" * 32,
    "SmsStatus": "received",
    "To": "+15555550100",
}
PROXY_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "clinic.example.org"}


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm: HMAC-SHA1 of the URL then each POST name+value, sorted
    by name, keyed by the auth token, in base64."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed(url: str = PUBLIC_URL, params: dict[str, str] = PARAMS, **extra: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: twilio_signature(TOKEN, url, params), **extra}


def test_independent_signature_matches_the_library_helper():
    assert compute_signature(TOKEN, PUBLIC_URL, PARAMS) == twilio_signature(
        TOKEN, PUBLIC_URL, PARAMS
    )


def test_published_vector():
    # Twilio's worked example (its docs and its libraries' tests): token "12345".
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    expected = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature("12345", url, params) == expected
    assert compute_signature("12345", url, params) == expected
    assert is_valid_request("12345", "POST", url, params, {SIGNATURE_HEADER: expected})


def test_valid_signature():
    assert is_valid_request(TOKEN, "POST", PUBLIC_URL, PARAMS, signed())


def test_header_name_is_case_insensitive():
    headers = {"x-twilio-signature": twilio_signature(TOKEN, PUBLIC_URL, PARAMS)}
    assert is_valid_request(TOKEN, "post", PUBLIC_URL, PARAMS, headers)


@pytest.mark.parametrize("headers", [{}, {SIGNATURE_HEADER: ""}, {"X-Other": "x"}])
def test_missing_signature(headers):
    assert not is_valid_request(TOKEN, "POST", PUBLIC_URL, PARAMS, headers)


def test_wrong_signature():
    wrong = twilio_signature("another-auth-token", PUBLIC_URL, PARAMS)
    headers = {SIGNATURE_HEADER: wrong}
    assert not is_valid_request(TOKEN, "POST", PUBLIC_URL, PARAMS, headers)
    assert not is_valid_request(TOKEN, "POST", PUBLIC_URL, PARAMS, {SIGNATURE_HEADER: "AAAA"})


@pytest.mark.parametrize(
    "changed",
    [
        {"Body": "Feeling better today, thanks!"},  # body altered in transit
        {"From": "+15555550199"},  # spoofed sender
        {"Extra": "1"},  # a field added
    ],
)
def test_tampered_params(changed):
    params = {**PARAMS, **changed}
    assert not is_valid_request(TOKEN, "POST", PUBLIC_URL, params, signed())


def test_a_dropped_field_invalidates():
    params = {k: v for k, v in PARAMS.items() if k != "NumMedia"}
    assert not is_valid_request(TOKEN, "POST", PUBLIC_URL, params, signed())


@pytest.mark.parametrize(
    "url",
    [
        "https://clinic.example.org/webhooks/sms/other",
        "https://clinic.example.org/webhooks/sms/webhook?x=1",
        "http://clinic.example.org/webhooks/sms/webhook",
        "https://evil.example.net/webhooks/sms/webhook",
        "https://clinic.example.org.evil.example.net/webhooks/sms/webhook",
    ],
)
def test_wrong_url(url):
    assert not is_valid_request(TOKEN, "POST", url, PARAMS, signed())


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_never_validates(token):
    # Even a signature made with an empty key (which HMAC allows) is refused.
    headers = {SIGNATURE_HEADER: twilio_signature("", PUBLIC_URL, PARAMS)}
    assert not is_valid_request(token, "POST", PUBLIC_URL, PARAMS, headers)


def test_signing_without_a_token_is_an_error():
    with pytest.raises(ValueError, match="auth token"):
        compute_signature("", PUBLIC_URL, PARAMS)


def test_default_port_written_either_way():
    # Twilio is inconsistent about writing :443; both forms validate.
    with_port = "https://clinic.example.org:443/webhooks/sms/webhook"
    assert is_valid_request(TOKEN, "POST", PUBLIC_URL, PARAMS, signed(with_port))
    assert is_valid_request(TOKEN, "POST", with_port, PARAMS, signed())


def test_any_port_is_tolerated_by_twilio_validator():
    # RequestValidator (twilio 8.2.2) also tries the URL with its port removed, whatever the
    # port. Recorded here so that a change in the library is noticed.
    other_port = "https://clinic.example.org:8443/webhooks/sms/webhook"
    assert is_valid_request(TOKEN, "POST", other_port, PARAMS, signed())


def test_get_signs_the_url_only():
    url = PUBLIC_URL + "?From=%2B15555550123&Body=hi"
    headers = {SIGNATURE_HEADER: twilio_signature(TOKEN, url, {})}
    assert is_valid_request(TOKEN, "GET", url, None, headers)
    # Form fields are not part of a GET's signature, whatever the caller passes.
    assert is_valid_request(TOKEN, "GET", url, PARAMS, headers)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_refused(method):
    assert not is_valid_request(TOKEN, method, PUBLIC_URL, PARAMS, signed())


def test_post_with_no_fields_signs_the_url_only():
    headers = {SIGNATURE_HEADER: twilio_signature(TOKEN, PUBLIC_URL, {})}
    assert is_valid_request(TOKEN, "POST", PUBLIC_URL, {}, headers)


class _ListForm(dict):
    """Like Sanic's ``request.form``: a dict of lists, with ``getlist``."""

    def getlist(self, name):
        return self[name]


def test_multi_valued_fields_in_every_shape():
    # Twilio appends every value of a repeated field, sorted, after its name.
    url = PUBLIC_URL
    data = url + "Body" + "hi" + "MediaUrl" + "a" + "MediaUrl" + "b"
    expected = base64.b64encode(
        hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    ).decode()
    headers = {SIGNATURE_HEADER: expected}
    shapes = [
        {"Body": "hi", "MediaUrl": ["b", "a"]},
        _ListForm({"Body": ["hi"], "MediaUrl": ["a", "b"]}),
        [("MediaUrl", "b"), ("Body", "hi"), ("MediaUrl", "a")],
    ]
    for params in shapes:
        assert is_valid_request(TOKEN, "POST", url, params, headers), params


# --- Behind a reverse proxy -------------------------------------------------------------------


def test_proxy_trusted_rebuilds_the_public_url():
    headers = signed(**PROXY_HEADERS)
    assert is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers, trust_proxy=True)


def test_proxy_untrusted_ignores_forwarded_headers():
    headers = signed(**PROXY_HEADERS)
    assert not is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers)
    assert not is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers, trust_proxy=False)


def test_untrusted_forwarded_headers_cannot_redirect_a_valid_signature():
    # Signed for the internal URL (as if Twilio called the app directly); a client adding
    # forwarded headers changes nothing when the proxy is not trusted.
    headers = signed(INTERNAL_URL, **{"X-Forwarded-Host": "evil.example.net"})
    assert is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers)
    assert not is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers, trust_proxy=True)


def test_proxy_with_a_non_default_port():
    public = "https://clinic.example.org:8443/webhooks/sms/webhook"
    headers = signed(public, **PROXY_HEADERS, **{"X-Forwarded-Port": "8443"})
    assert is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers, trust_proxy=True)
    assert not is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers)


def test_proxy_headers_with_several_hops_use_the_outermost():
    headers = signed(
        **{
            "X-Forwarded-Proto": "https, http",
            "X-Forwarded-Host": "clinic.example.org, 10.0.0.5:8080",
        }
    )
    assert is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers, trust_proxy=True)


@pytest.mark.parametrize(
    "forwarded",
    [
        {"X-Forwarded-Proto": "ftp", "X-Forwarded-Host": "clinic.example.org"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "clinic.example.org/evil"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "user@clinic.example.org"},
        {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "clinic.example.org",
            "X-Forwarded-Port": "99999",
        },
        {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "clinic.example.org",
            "X-Forwarded-Port": "https",
        },
    ],
)
def test_malformed_trusted_forwarded_headers_fail_closed(forwarded):
    headers = signed(**forwarded)
    assert not is_valid_request(TOKEN, "POST", INTERNAL_URL, PARAMS, headers, trust_proxy=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, INTERNAL_URL),
        ({"X-Forwarded-Proto": "https"}, "https://127.0.0.1:5005/webhooks/sms/webhook"),
        (PROXY_HEADERS, PUBLIC_URL),
        ({**PROXY_HEADERS, "X-Forwarded-Port": "443"}, PUBLIC_URL),
        (
            {**PROXY_HEADERS, "X-Forwarded-Port": "8443"},
            "https://clinic.example.org:8443/webhooks/sms/webhook",
        ),
        (
            {"X-Forwarded-Proto": "HTTPS", "X-Forwarded-Host": "clinic.example.org:8443"},
            "https://clinic.example.org:8443/webhooks/sms/webhook",
        ),
        (
            {"x-forwarded-proto": "https", "x-forwarded-host": "[2001:db8::1]"},
            "https://[2001:db8::1]/webhooks/sms/webhook",
        ),
    ],
)
def test_public_url_when_trusted(headers, expected):
    assert public_url(INTERNAL_URL, headers, trust_proxy=True) == expected


def test_public_url_keeps_the_query_string():
    url = INTERNAL_URL + "?clinic=main"
    assert public_url(url, PROXY_HEADERS, trust_proxy=True) == PUBLIC_URL + "?clinic=main"


def test_public_url_untrusted_is_the_request_url():
    assert public_url(INTERNAL_URL, PROXY_HEADERS, trust_proxy=False) == INTERNAL_URL
