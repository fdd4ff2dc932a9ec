"""Fallback URL pieces without a network: the URL table, the error params, Twilio's codes."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import signal

import orjson
import pytest

from pivot_worker.debug.redact import Redactor
from pivot_worker.errors import Reason
from pivot_worker.fallback import (
    CALL_VAR,
    NO_FALLBACK,
    TWILIO_ERROR_CODES,
    FallbackUrls,
    FallbackUrlsError,
    error_params,
    error_url,
    twilio_error_code,
)
from pivot_worker.request import PivotRequest
from pivot_worker.settings import Settings
from pivot_worker.signing import SigningKeys, reload_on_sighup
from tests.e2e.kazoo_side import ACCOUNT_ID, base_call, pivot_req

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def request(cavs: dict[str, object] | None = None, account: str | None = ACCOUNT_ID) -> PivotRequest:
    call = base_call("c1@10.0.0.5", "q")
    call["Account-ID"] = account
    if cavs is not None:
        call["Custom-Application-Vars"] = cavs
    return PivotRequest.from_message(pivot_req(call, "http://dev.example.com/start"))


def write(tmp_path: pathlib.Path, doc: object) -> str:
    path = tmp_path / "fallbacks.json"
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def test_the_file_maps_accounts_to_urls(tmp_path: pathlib.Path) -> None:
    urls = FallbackUrls.load(write(tmp_path, {ACCOUNT_ID: "https://backup.example.com/fb"}))
    assert len(urls) == 1
    target = urls.for_request(request())
    assert target is not None
    assert (target.url, target.source, target.described) == (
        "https://backup.example.com/fb",
        "file",
        "PIVOT_FALLBACK_URLS_FILE",
    )
    assert urls.for_request(request(account="another")) is None
    assert urls.for_request(request(account=None)) is None


def test_no_file_means_no_fallback_unless_the_call_names_one() -> None:
    urls = FallbackUrls.load("")
    assert urls.for_request(request()) is None
    target = urls.for_request(request({CALL_VAR: " https://call.example.com/fb "}))
    assert target is not None and (target.url, target.source) == ("https://call.example.com/fb", "call")


def test_the_calls_url_wins_over_the_accounts() -> None:
    urls = FallbackUrls({ACCOUNT_ID: "https://file.example.com/fb"})
    target = urls.for_request(request({CALL_VAR: "https://call.example.com/fb"}))
    assert target is not None and target.url == "https://call.example.com/fb"
    # An empty or non-string variable does not hide the account's URL.
    for value in ("", "  ", 42, None):
        target = urls.for_request(request({CALL_VAR: value}))
        assert target is not None and target.url == "https://file.example.com/fb"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1, 2]", "expected a JSON object"),
        (b"{nope", "not JSON"),
        (orjson.dumps({"acct": 7}), "must map an account id to a URL string"),
        (orjson.dumps({"": "https://x.example.com/"}), "must map an account id"),
        (orjson.dumps({"acct": "ftp://x.example.com/fb"}), "not an http(s) URL with a host"),
        (orjson.dumps({"acct": "https:///no-host"}), "not an http(s) URL with a host"),
    ],
)
def test_a_bad_file_fails_start_up_naming_the_file(
    tmp_path: pathlib.Path, content: bytes, message: str
) -> None:
    path = tmp_path / "fallbacks.json"
    path.write_bytes(content)
    with pytest.raises(FallbackUrlsError, match="PIVOT_FALLBACK_URLS_FILE") as info:
        FallbackUrls.load(str(path))
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # `pivot-worker run` prints it and exits 1


def test_a_missing_file_fails_start_up(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FallbackUrlsError, match="No such file"):
        FallbackUrls.load(str(tmp_path / "absent.json"))


def test_reload_picks_up_changes_and_keeps_the_old_table_on_a_bad_file(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, {ACCOUNT_ID: "https://one.example.com/fb"})
    urls = FallbackUrls.load(path)
    write(tmp_path, {ACCOUNT_ID: "https://two.example.com/fb"})
    assert urls.reload()
    target = urls.for_request(request())
    assert target is not None and target.url == "https://two.example.com/fb"
    pathlib.Path(path).write_text("{broken")
    with caplog.at_level(logging.ERROR):
        assert not urls.reload()
    target = urls.for_request(request())
    assert target is not None and target.url == "https://two.example.com/fb"
    assert "keeping the 1 loaded before" in caplog.text


def test_error_url_drops_credentials_fragment_and_redacted_params() -> None:
    redactor = Redactor(("api_key", "X-Token"))
    url = "https://bob:hunter2@ivr.example.com:8443/pivot/start?tenant=7&API_KEY=s3cret&lang=en&X-Token#top"
    assert error_url(url, redactor) == "https://ivr.example.com:8443/pivot/start?tenant=7&lang=en"
    assert error_url("http://ivr.example.com/a?b=1&b=2", Redactor()) == "http://ivr.example.com/a?b=1&b=2"


def test_error_params_by_request_format() -> None:
    assert error_params("twiml", Reason.DNS_ERROR, "http://x.example.com/") == {
        "ErrorCode": "11210",
        "ErrorUrl": "http://x.example.com/",
    }
    assert error_params("kazoo", Reason.DNS_ERROR, "http://x.example.com/") == {
        "Error-Code": "dns_error",
        "Error-URL": "http://x.example.com/",
    }


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (Reason.HTTP_STATUS, 11200),
        (Reason.CONNECT_ERROR, 11205),
        (Reason.DNS_ERROR, 11210),
        (Reason.TOO_MANY_REDIRECTS, 11215),
        (Reason.TLS_ERROR, 11220),
        (Reason.PARSE_ERROR, 12100),
        (Reason.SCHEMA_ERROR, 12200),
        (Reason.UNSUPPORTED_FORMAT, 12300),
        (Reason.RESPONSE_TOO_LARGE, 11750),
        (Reason.INTERNAL_ERROR, 11200),  # not listed: the generic retrieval failure
    ],
)
def test_twilio_error_codes(reason: Reason, code: int) -> None:
    assert twilio_error_code(reason) == code


def test_every_reason_that_can_trigger_a_fallback_has_a_code_and_a_readme_row() -> None:
    before_any_fetch = {
        Reason.INVALID_CONTINUATION,
        Reason.UNROUTABLE_CALL_ID,
        Reason.REDELIVERY_LIMIT,
        Reason.INTERNAL_ERROR,
    }
    triggering = set(Reason) - NO_FALLBACK - before_any_fetch
    assert triggering == set(TWILIO_ERROR_CODES)
    text = README.read_text()
    section = text[text.index("## Fallback URL") :]
    for reason, code in TWILIO_ERROR_CODES.items():
        assert f"| `{reason.value}` | {code} |" in section, reason


def test_the_setting_is_read_from_the_environment() -> None:
    settings = Settings.from_env({"PIVOT_FALLBACK_URLS_FILE": "/etc/pivot-worker/fallback-urls.json"})
    assert settings.fallback_urls_file == "/etc/pivot-worker/fallback-urls.json"


async def test_a_real_sighup_reloads_the_fallback_urls_with_the_signing_keys(tmp_path: pathlib.Path) -> None:
    keys_path = tmp_path / "keys.json"
    keys_path.write_bytes(orjson.dumps({ACCOUNT_ID: ["old"]}))
    signing = SigningKeys(str(keys_path))
    urls = FallbackUrls.load(write(tmp_path, {ACCOUNT_ID: "https://one.example.com/fb"}))
    loop = asyncio.get_running_loop()
    reload_on_sighup(signing, urls)
    try:
        keys_path.write_bytes(orjson.dumps({ACCOUNT_ID: ["new"]}))
        write(tmp_path, {ACCOUNT_ID: "https://two.example.com/fb", "other": "https://x.example.com/"})
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if len(urls) == 2:
                break
            await asyncio.sleep(0.01)
        target = urls.for_request(request())
        assert target is not None and target.url == "https://two.example.com/fb"
        assert signing.keys_for(ACCOUNT_ID) == (b"new",)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
