"""Signed requests against a real server on 127.0.0.1, checked the way a developer's server checks
them: Twilio's own ``RequestValidator`` on the request as Flask (werkzeug) decodes it, and an
``X-Pivot-Signature`` recomputed here with ``hmac`` alone."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request as FlaskRequest

from pivot_worker.fetch import ACCEPT_KAZOO, Fetcher, HttpRequestSpec
from pivot_worker.settings import Settings, parse_networks
from pivot_worker.signing import SigningKeys, reload_on_sighup, verify_pivot_signature
from pivot_worker.trace import PivotTrace

NEW, OLD = "k-new-5d1f0c", "k-old-93ab7e"
ACCOUNT = "acc1"

FORM_PARAMS: dict[str, Any] = {
    "Account-ID": ACCOUNT,
    "Call-ID": "c1",
    "Caller-ID-Name": "Zoë Ünïcode 日本 & co",
    "Custom-SIP-Headers": {"X-Foo": "bar", "X-Empty": "", "X-Sym": "a&b=c+d %", "X-Ünï": "ö"},
    "Custom-Application-Vars": {"tier": "gold"},
    "Digits": {"default": "42"},
    "User-ID": ["b", "a", "b"],  # a repeated key, one value twice
    "To": "2000",
}


@dataclass
class Received:
    """A request as it arrived: the raw request target, headers, body."""

    method: str
    host: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def url(self) -> str:
        """The URL on the wire (what Django's ``build_absolute_uri`` and a raw request target give)."""
        return f"http://{self.host}{self.target}"

    def flask(self) -> FlaskRequest:
        """The request as a Flask app sees it (``request.url``, ``request.form``)."""
        path, _, query = self.target.partition("?")
        environ = {
            "REQUEST_METHOD": self.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": self.host.rpartition(":")[2],
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": self.host,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(self.body)),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(self.body),
            "wsgi.errors": io.StringIO(),
        }
        return FlaskRequest(environ)

    @property
    def twilio(self) -> str:
        return self.headers["X-Twilio-Signature"]

    @property
    def pivot(self) -> str:
        return self.headers["X-Pivot-Signature"]


class Server:
    """Records every request; ``/redirect303``, ``/redirect307`` and ``/flaky`` script hops and retries."""

    def __init__(self) -> None:
        self.seen: list[Received] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._flaky = 0

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}{target}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Received(request.method, request.headers["Host"], request.raw_path, dict(request.headers), body)
        )
        if request.path == "/redirect303":
            return web.Response(status=303, headers={"Location": "/after303?x=1"})
        if request.path == "/redirect307":
            return web.Response(status=307, headers={"Location": "/after307?y=2"})
        if request.path == "/flaky":
            self._flaky += 1
            if self._flaky == 1:
                return web.Response(status=503)
        return web.Response(body=b'{"module": "hangup"}', content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    yield s
    await s.stop()


def keys_file(tmp_path: Path, mapping: dict[str, list[str]]) -> str:
    path = tmp_path / "signing-keys.json"
    path.write_bytes(orjson.dumps(mapping))
    return str(path)


@pytest.fixture
async def signing(tmp_path: Path) -> SigningKeys:
    return SigningKeys(keys_file(tmp_path, {ACCOUNT: [NEW, OLD]}))


@pytest.fixture
async def fetcher(signing: SigningKeys) -> AsyncIterator[Fetcher]:
    f = Fetcher(Settings(allow_networks=parse_networks("127.0.0.0/8")), signing=signing)
    await f.start()
    yield f
    await f.close()


async def fetch(
    fetcher: Fetcher,
    url: str,
    method: str = "get",
    body_format: str = "form",
    params: dict[str, Any] | None = None,
    account_id: str | None = ACCOUNT,
) -> PivotTrace:
    trace = PivotTrace("c1", account_id, False, "n", url, method, "kazoo", received_at=time.time())
    spec = HttpRequestSpec(
        method=method,  # type: ignore[arg-type]
        url=url,
        params=FORM_PARAMS if params is None else params,
        body_format=body_format,  # type: ignore[arg-type]
        accept=ACCEPT_KAZOO,
        account_id=account_id,
    )
    deadline = asyncio.get_running_loop().time() + 3.0
    await fetcher.fetch(spec, deadline=deadline, trace=trace)
    return trace


def independent_pivot_check(header: str, key: str, method: str, url: str, body: bytes) -> None:
    """Recompute X-Pivot-Signature from its definition, with nothing from pivot_worker."""
    t_item, v1_item = header.split(",")
    assert t_item.startswith("t=")
    assert v1_item.startswith("v1=")
    t = int(t_item[2:])
    assert abs(time.time() - t) < 10
    message = f"{t}.{method}.{url}.".encode() + body
    assert v1_item[3:] == hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


# -- GET -------------------------------------------------------------------------------------------


async def test_get_is_signed_over_its_url_and_twilio_accepts_it(fetcher: Fetcher, server: Server) -> None:
    await fetch(fetcher, server.url("/voice?tenant=7&tag=a&tag=b"))
    (got,) = server.seen
    assert "Caller-ID-Name=Zo%C3%AB" in got.url  # unicode, escaped on the wire
    validator = RequestValidator(NEW)
    assert validator.validate(got.url, {}, got.twilio)
    assert not RequestValidator(OLD).validate(got.url, {}, got.twilio)  # only the first key signs
    assert not validator.validate(got.url.replace("To=2000", "To=2001"), {}, got.twilio)
    assert not validator.validate(got.url.replace("/voice", "/voicE"), {}, got.twilio)
    independent_pivot_check(got.pivot, NEW, "GET", got.url, b"")
    assert verify_pivot_signature(got.pivot, "GET", got.url, b"", [NEW], now=time.time())
    assert not verify_pivot_signature(got.pivot, "GET", got.url + "&x=1", b"", [NEW], now=time.time())
    assert not verify_pivot_signature(got.pivot, "POST", got.url, b"", [NEW], now=time.time())


async def test_get_with_ascii_bracket_params_validates_with_flasks_request_url(
    fetcher: Fetcher, server: Server
) -> None:
    params = {"Call-ID": "c1", "Custom-SIP-Headers": {"X-Foo": "bar baz"}, "User-ID": ["a", "b"]}
    await fetch(fetcher, server.url("/voice"), params=params)
    (got,) = server.seen
    flask = got.flask()
    assert flask.url == got.url  # raw brackets and '+' survive Flask's URL rebuilding
    assert RequestValidator(NEW).validate(flask.url, flask.form, got.twilio)


# -- POST form ------------------------------------------------------------------------------------


async def test_post_form_with_nested_unicode_and_repeated_keys_validates_in_flask(
    fetcher: Fetcher, server: Server
) -> None:
    await fetch(fetcher, server.url("/hook?tenant=7"), method="post")
    (got,) = server.seen
    flask = got.flask()
    form = flask.form
    assert form.getlist("User-ID[]") == ["b", "a", "b"]
    assert form["Custom-SIP-Headers[X-Ünï]"] == "ö"
    assert form["Custom-SIP-Headers[X-Sym]"] == "a&b=c+d %"
    assert form["Custom-SIP-Headers[X-Empty]"] == ""
    validator = RequestValidator(NEW)
    assert flask.url == got.url
    assert validator.validate(flask.url, form, got.twilio)
    assert validator.validate(got.url, form, got.twilio)

    tampered = MultiDict(form)
    tampered.setlist("User-ID[]", ["b", "a", "c"])
    assert not validator.validate(flask.url, tampered, got.twilio)
    added = MultiDict(form)
    added.add("Digits[default]", "43")
    assert not validator.validate(flask.url, added, got.twilio)
    assert not validator.validate(flask.url.replace("tenant=7", "tenant=8"), form, got.twilio)
    # The dict a naive app builds (last value per key) loses a value of User-ID[]: no longer valid.
    assert not validator.validate(flask.url, {k: form[k] for k in form}, got.twilio)

    independent_pivot_check(got.pivot, NEW, "POST", got.url, got.body)
    now = time.time()
    assert verify_pivot_signature(got.pivot, "POST", got.url, got.body, [NEW], now=now)
    assert not verify_pivot_signature(got.pivot, "POST", got.url, got.body + b"&x=1", [NEW], now=now)
    t = got.pivot.split(",")[0][2:]
    earlier = got.pivot.replace(f"t={t}", f"t={int(t) - 1}")
    assert not verify_pivot_signature(earlier, "POST", got.url, got.body, [NEW], now=now)
    assert not verify_pivot_signature(got.pivot, "POST", got.url, got.body, [NEW], now=now + 301)


# -- POST JSON ------------------------------------------------------------------------------------


async def test_post_json_carries_body_sha256_and_twilio_validates_the_body(
    fetcher: Fetcher, server: Server
) -> None:
    await fetch(fetcher, server.url("/json?tenant=7"), method="post", body_format="json")
    (got,) = server.seen
    body_text = got.body.decode()
    assert orjson.loads(got.body)["Caller-ID-Name"] == FORM_PARAMS["Caller-ID-Name"]
    assert got.target.endswith(f"?tenant=7&bodySHA256={hashlib.sha256(got.body).hexdigest()}")
    validator = RequestValidator(NEW)
    assert validator.validate(got.flask().url, body_text, got.twilio)
    assert not validator.validate(got.url, body_text.replace("2000", "2001"), got.twilio)
    assert not validator.validate(got.url.replace("tenant=7", "tenant=8"), body_text, got.twilio)
    independent_pivot_check(got.pivot, NEW, "POST", got.url, got.body)
    assert not verify_pivot_signature(
        got.pivot, "POST", got.url, got.body.replace(b"2000", b"2001"), [NEW], now=time.time()
    )


# -- hops, retries, accounts without keys -------------------------------------------------------


async def test_every_redirect_hop_and_retry_is_signed_for_what_it_sends(
    fetcher: Fetcher, server: Server
) -> None:
    await fetch(fetcher, server.url("/redirect307"), method="post", body_format="json")
    await fetch(fetcher, server.url("/redirect303"), method="post")
    await fetch(fetcher, server.url("/flaky"), method="post")
    assert [(r.method, r.target.partition("?")[0]) for r in server.seen] == [
        ("POST", "/redirect307"),
        ("POST", "/after307"),
        ("POST", "/redirect303"),
        ("GET", "/after303"),
        ("POST", "/flaky"),
        ("POST", "/flaky"),
    ]
    validator = RequestValidator(NEW)
    for got in server.seen:
        if got.headers.get("Content-Type") == "application/json":
            assert "bodySHA256=" in got.target
            assert validator.validate(got.url, got.body.decode(), got.twilio), got.target
        else:
            assert validator.validate(got.flask().url, got.flask().form, got.twilio), got.target
        independent_pivot_check(got.pivot, NEW, got.method, got.url, got.body)
    assert server.seen[3].body == b""
    assert server.seen[3].target == "/after303?x=1"


async def test_accounts_without_keys_send_no_signature(fetcher: Fetcher, server: Server) -> None:
    await fetch(fetcher, server.url("/a"), method="post", body_format="json", account_id="other")
    await fetch(fetcher, server.url("/b"), account_id=None)
    assert len(server.seen) == 2
    for got in server.seen:
        assert "X-Twilio-Signature" not in got.headers
        assert "X-Pivot-Signature" not in got.headers
        assert "bodySHA256" not in got.target


async def test_the_trace_records_the_signed_request_as_sent(fetcher: Fetcher, server: Server) -> None:
    trace = await fetch(fetcher, server.url("/json"), method="post", body_format="json")
    (exchange,) = trace.exchanges
    (got,) = server.seen
    assert exchange.url == got.url
    assert exchange.request_headers["X-Pivot-Signature"] == got.pivot
    for value in exchange.request_headers.values():
        assert NEW not in value
        assert OLD not in value


# -- rotation and reload --------------------------------------------------------------------------


async def test_rotation_old_signatures_still_verify_against_the_new_list(
    tmp_path: Path, server: Server
) -> None:
    path = keys_file(tmp_path, {ACCOUNT: [OLD]})
    signing = SigningKeys(path)
    f = Fetcher(Settings(allow_networks=parse_networks("127.0.0.0/8")), signing=signing)
    await f.start()
    try:
        await fetch(f, server.url("/before"), method="post")
        keys_file(tmp_path, {ACCOUNT: [NEW, OLD]})
        assert signing.reload()
        await fetch(f, server.url("/after"), method="post")
    finally:
        await f.close()
    before, after = server.seen
    now = time.time()
    rotated = [NEW, OLD]
    assert verify_pivot_signature(before.pivot, "POST", before.url, before.body, rotated, now=now)
    assert verify_pivot_signature(after.pivot, "POST", after.url, after.body, rotated, now=now)
    assert not verify_pivot_signature(before.pivot, "POST", before.url, before.body, [NEW], now=now)
    independent_pivot_check(after.pivot, NEW, "POST", after.url, after.body)
    assert RequestValidator(OLD).validate(before.url, before.flask().form, before.twilio)
    assert RequestValidator(NEW).validate(after.url, after.flask().form, after.twilio)


async def test_a_real_sighup_reloads_the_keys(tmp_path: Path) -> None:
    path = keys_file(tmp_path, {ACCOUNT: [OLD]})
    signing = SigningKeys(path)
    loop = asyncio.get_running_loop()
    reload_on_sighup(signing)
    try:
        keys_file(tmp_path, {ACCOUNT: [NEW, OLD], "acc2": ["k2"]})
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if len(signing) == 2:
                break
            await asyncio.sleep(0.01)
        assert signing.keys_for(ACCOUNT) == (NEW.encode(), OLD.encode())
        assert signing.keys_for("acc2") == (b"k2",)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
