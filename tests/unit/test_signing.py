"""Signing keys (file, reload, rotation) and the two signatures, without a network."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import orjson
import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from pivot_worker.fetch import Fetcher
from pivot_worker.settings import Settings
from pivot_worker.signing import (
    SigningKeys,
    SigningKeysError,
    form_fields,
    pivot_signature,
    received_url,
    sign_request,
    twilio_signature,
    verify_pivot_signature,
    with_body_hash,
)

SECRET = "s3cr3t-value-never-logged"


def write(tmp_path: Path, content: bytes | object) -> str:
    path = tmp_path / "keys.json"
    path.write_bytes(content if isinstance(content, bytes) else orjson.dumps(content))
    return str(path)


# -- the keys file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        ([SECRET], "must be a JSON object"),
        ({"acc": SECRET}, "account 'acc' must map to a non-empty list"),
        ({"acc": []}, "account 'acc' must map to a non-empty list"),
        ({"acc": [SECRET, ""]}, "account 'acc' must map to a non-empty list"),
        ({"acc": [SECRET, 7]}, "account 'acc' must map to a non-empty list"),
        ({"": [SECRET]}, "an account id is empty"),
    ],
)
def test_a_bad_file_fails_start_up_naming_the_file_and_the_problem(
    tmp_path: Path, content: bytes | object, problem: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(SigningKeysError) as info:
        SigningKeys(path)
    assert f"PIVOT_SIGNING_KEYS_FILE {path}" in str(info.value)
    assert problem in str(info.value)
    assert SECRET not in str(info.value)


def test_a_missing_file_fails_start_up_and_so_does_the_fetcher(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    with pytest.raises(SigningKeysError, match=r"nope\.json: cannot be read"):
        SigningKeys(missing)
    with pytest.raises(SigningKeysError, match="PIVOT_SIGNING_KEYS_FILE"):
        Fetcher(Settings(signing_keys_file=missing))


def test_settings_read_the_file_name_from_the_environment() -> None:
    settings = Settings.from_env({"PIVOT_SIGNING_KEYS_FILE": "/etc/pivot-worker/signing-keys.json"})
    assert settings.signing_keys_file == "/etc/pivot-worker/signing-keys.json"
    assert Fetcher(Settings()).signing.keys_for("acc") == ()


def test_reload_takes_a_good_file_and_keeps_the_old_keys_on_a_bad_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, {"acc": ["old"]})
    keys = SigningKeys(path)
    assert keys.keys_for("acc") == (b"old",)
    write(tmp_path, {"acc": ["new", "old"], "acc2": ["k2"]})
    assert keys.reload()
    assert keys.keys_for("acc") == (b"new", b"old")
    assert keys.keys_for("acc2") == (b"k2",)
    with caplog.at_level(logging.ERROR, logger="pivot_worker.signing"):
        write(tmp_path, {"acc": SECRET})
        assert not keys.reload()
        Path(path).unlink()
        assert not keys.reload()
    assert keys.keys_for("acc") == (b"new", b"old")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all("keeping the signing keys loaded before" in e and path in e for e in errors)
    assert SECRET not in caplog.text


def test_keys_never_show_in_repr_and_unknown_accounts_have_none() -> None:
    keys = SigningKeys(keys={"acc": [SECRET]})
    assert SECRET not in repr(keys)
    assert keys.keys_for("other") == ()
    assert keys.keys_for(None) == ()
    assert len(keys) == 1


# -- the signed URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "received"),
    [
        (
            "http://user:pw@Ivr.Example.com:80/a%20b?x=1&y=%C3%A9#frag",
            "http://Ivr.Example.com/a%20b?x=1&y=%C3%A9",
        ),
        ("https://h:443/x?", "https://h/x"),
        ("https://h:8443/x?a[b]=1+2", "https://h:8443/x?a[b]=1+2"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
        ("not a url", "not a url"),
    ],
)
def test_the_signed_url_is_the_one_the_server_receives(url: str, received: str) -> None:
    assert received_url(url) == received


def test_twilio_accepts_default_and_explicit_ports_alike() -> None:
    key = b"k"
    url, headers = sign_request(key, "GET", "https://h:443/x?a=1", b"", None)
    signature = headers["X-Twilio-Signature"]
    validator = RequestValidator("k")
    assert validator.validate("https://h/x?a=1", {}, signature)  # what the server rebuilds
    assert validator.validate("https://h:443/x?a=1", {}, signature)  # what the developer configured
    assert url == "https://h:443/x?a=1"


def test_body_hash_replaces_any_earlier_one_and_keeps_the_developers_query() -> None:
    body = b'{"a":1}'
    digest = hashlib.sha256(body).hexdigest()
    assert with_body_hash("http://h/p", body) == f"http://h/p?bodySHA256={digest}"
    assert with_body_hash("http://h/p?bodySHA256=x&t=1", body) == f"http://h/p?t=1&bodySHA256={digest}"


# -- the signatures -------------------------------------------------------------------------------


def test_twilio_signature_equals_twilios_own_over_a_flat_multimap() -> None:
    body = b"b=2&a=1&Custom-SIP-Headers[X-Foo]=bar&User-ID[]=z&User-ID[]=a&User-ID[]=z&e=&u=%C3%A9+x"
    fields = form_fields(body)
    assert ("u", "é x") in fields
    ours = twilio_signature(b"key", "https://h/p?q=1", fields)
    assert ours == RequestValidator("key").compute_signature("https://h/p?q=1", MultiDict(fields))
    assert ours != twilio_signature(b"key", "https://h/p?q=1", [*fields, ("User-ID[]", "b")])


def test_pivot_signature_is_hmac_sha256_over_t_method_url_body() -> None:
    value = pivot_signature(b"key", "post", "https://h/p", b"a=1", 1700000000)
    mac = hmac.new(b"key", b"1700000000.POST.https://h/p.a=1", hashlib.sha256).hexdigest()
    assert value == f"t=1700000000,v1={mac}"


@pytest.mark.parametrize(
    ("header", "keys", "now", "ok"),
    [
        ("good", ["other", "key"], 1700000000, True),
        ("good", [b"key"], 1700000300, True),
        ("good", ["key"], 1699999700, True),
        ("good", ["key"], 1700000301, False),
        ("good", ["other"], 1700000000, False),
        ("good", [], 1700000000, False),
        ("t=1700000000", ["key"], 1700000000, False),
        ("v1=00", ["key"], 1700000000, False),
        ("", ["key"], 1700000000, False),
        ("t=x,v1=00", ["key"], 1700000000, False),
    ],
)
def test_verify_pivot_signature(header: str, keys: list[str | bytes], now: float, ok: bool) -> None:
    if header == "good":
        header = pivot_signature(b"key", "POST", "https://h/p", b"a=1", 1700000000)
    assert verify_pivot_signature(header, "POST", "https://h/p", b"a=1", keys, now=now) is ok


def test_sign_request_per_body_kind() -> None:
    now = lambda: 1700000000.9  # noqa: E731
    url, headers = sign_request(b"k", "POST", "http://h/p", b'{"a":1}', "application/json", now=now)
    assert "bodySHA256=" in url
    assert headers["X-Twilio-Signature"] == twilio_signature(b"k", url)
    assert headers["X-Pivot-Signature"].startswith("t=1700000000,v1=")
    url, headers = sign_request(
        b"k", "POST", "http://h/p", b"a=1", "application/x-www-form-urlencoded; charset=utf-8", now=now
    )
    assert url == "http://h/p"
    assert headers["X-Twilio-Signature"] == twilio_signature(b"k", url, [("a", "1")])
