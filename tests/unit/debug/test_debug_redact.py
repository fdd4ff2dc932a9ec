"""Redaction: secrets never leave the process, everything else stays byte for byte."""

from __future__ import annotations

import orjson
import pytest

from pivot_worker.debug.redact import MASK, Redactor


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(["api_key", "PIN", "X-Token"])


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", "Basic dXNlcjpwYXNz", f"Basic {MASK}"),
        ("authorization", "Bearer eyJhbGciOi", f"Bearer {MASK}"),
        ("Proxy-Authorization", "Digest username=x, response=y", f"Digest {MASK}"),
        ("Authorization", "opaque-token-without-scheme", MASK),
        ("Cookie", "sid=abc123; theme=Dark", f"sid={MASK}; theme={MASK}"),
        ("Set-Cookie", "sid=XyZ; Path=/; HttpOnly", f"sid={MASK}; Path=/; HttpOnly"),
        ("X-Request-Id", "AbC-123-DeF", "AbC-123-DeF"),
        ("Content-Type", "Text/XML; Charset=UTF-8", "Text/XML; Charset=UTF-8"),
        ("X-Twilio-Signature", "0Lb7s5yQ+/abc=", MASK),
        ("x-pivot-signature", "t=1700000000,v1=9f86d081884c7d65", f"t=1700000000,v1={MASK}"),
        ("X-Pivot-Signature", "t=1700000000,v1=aa,v2=bb", f"t=1700000000,v1={MASK},v2={MASK}"),
        ("X-Pivot-Signature", "t=soon,mac=9f86d0=", f"{MASK},{MASK}"),
    ],
)
def test_secret_headers_are_masked_and_others_kept_verbatim(
    redactor: Redactor, name: str, value: str, expected: str
) -> None:
    assert redactor.header(name, value) == expected


def test_headers_become_an_object_with_lower_case_names_and_untouched_values(redactor: Redactor) -> None:
    out = redactor.headers([("X-Mixed", "KeepMyCase"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")])
    assert out == {"x-mixed": "KeepMyCase", "set-cookie": f"a={MASK}, b={MASK}"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://alice:s3cret@ivr.example.com/start", f"https://alice:{MASK}@ivr.example.com/start"),
        ("http://:onlypass@h/x", f"http://:{MASK}@h/x"),
        ("https://ivr.example.com:8443/p?email=a@b.com", "https://ivr.example.com:8443/p?email=a@b.com"),
        ("https://user@ivr.example.com/", "https://user@ivr.example.com/"),
        ("https://h/p?api_key=K1&tenant=7", f"https://h/p?api_key={MASK}&tenant=7"),
        ("https://h/p?API_KEY=K1&pin=1234", f"https://h/p?API_KEY={MASK}&pin={MASK}"),
        (
            "https://h/p?Custom-SIP-Headers%5BX-Token%5D=abc&To=2000",
            f"https://h/p?Custom-SIP-Headers%5BX-Token%5D={MASK}&To=2000",
        ),
        ("https://h/p?api_keys=not-a-match", "https://h/p?api_keys=not-a-match"),
    ],
)
def test_urls(redactor: Redactor, url: str, expected: str) -> None:
    assert redactor.url(url) == expected


def test_credentials_inside_any_text_are_masked(redactor: Redactor) -> None:
    text = "fetch of ftp://bob:hunter2@files.example.com/a and https://u:p@x.example/y failed"
    out = redactor.text(text)
    assert "hunter2" not in out
    assert ":p@" not in out
    assert out == f"fetch of ftp://bob:{MASK}@files.example.com/a and https://u:{MASK}@x.example/y failed"


def test_form_body_masks_only_named_params_and_keeps_encoding(redactor: Redactor) -> None:
    body = "CallSid=CA1&Digits=42&PIN=9999&From=%2B15551234567&Custom-SIP-Headers[X-Token]=t0k"
    out = redactor.body(body, "application/x-www-form-urlencoded")
    assert out == f"CallSid=CA1&Digits=42&PIN={MASK}&From=%2B15551234567&Custom-SIP-Headers[X-Token]={MASK}"


def test_json_body_masks_named_keys_at_any_depth(redactor: Redactor) -> None:
    body = orjson.dumps(
        {"Call-ID": "c1", "pin": "1234", "Custom-SIP-Headers": {"X-Token": "t"}, "list": [{"api_key": 1}]}
    ).decode()
    out = orjson.loads(redactor.body(body, "application/json"))
    assert out == {
        "Call-ID": "c1",
        "pin": MASK,
        "Custom-SIP-Headers": {"X-Token": MASK},
        "list": [{"api_key": MASK}],
    }


def test_broken_json_body_is_returned_as_is(redactor: Redactor) -> None:
    assert redactor.body('{"pin": ', "application/json") == '{"pin": '


def test_without_redact_params_bodies_only_lose_url_credentials() -> None:
    plain = Redactor()
    assert (
        plain.body("pin=1&x=https://a:b@h/", "application/x-www-form-urlencoded")
        == f"pin=1&x=https://a:{MASK}@h/"
    )
    assert plain.url("https://h/?pin=1") == "https://h/?pin=1"


def test_json_value_copies_and_masks_strings_in_callflows(redactor: Redactor) -> None:
    flow = {"module": "pivot", "data": {"voice_url": "https://u:pw@h/next?api_key=z"}, "children": {}}
    out = redactor.json_value(flow)
    assert out["data"]["voice_url"] == f"https://u:{MASK}@h/next?api_key=z"
    assert flow["data"]["voice_url"] == "https://u:pw@h/next?api_key=z"  # the original is not modified
