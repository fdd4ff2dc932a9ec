"""End to end: Kazoo's callflow side -> RabbitMQ -> two competing workers -> developer server -> back."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from aiohttp import web

from pivot_worker.contracts import validate_outgoing
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import CallSide, KazooCallflow, kazoo_now_us, pivot_req
from tests.e2e.workers import WorkerProcess
from tests.kazoo_conformance import assert_flow_conforms

pytestmark = pytest.mark.rabbit

TTS = '{"module": "tts", "data": {"text": "Hello"}, "children": {"_": {"module": "hangup", "data": {}}}}'


def by_name(side: CallSide, name: str) -> dict[str, Any]:
    for received in side.events:
        if f"{received.body['Event-Category']}.{received.body['Event-Name']}" == name:
            return {
                "body": received.body,
                "key": received.routing_key,
                "headers": received.headers,
                "exchange": received.exchange,
            }
    raise AssertionError(f"no {name} among {side.names()}")


async def expect_failed(side: CallSide, reason: str, within: float = 1.0) -> dict[str, Any]:
    events = await side.wait_for(1, timeout=within + 3)
    await asyncio.sleep(0.2)  # nothing else may follow a failure
    assert side.names() == ["pivot.failed"], side.names()
    body = events[0].body
    assert body["Failure-Reason"] == reason, body
    elapsed = events[0].at - side.published_at
    assert elapsed < within, f"failed after {elapsed:.3f}s, wanted < {within}s"
    validate_outgoing("pivot_failed", body)
    return body


async def test_kazoo_json_answer_becomes_processing_then_channel_pivot(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    url = dev.answer("/start", TTS)
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, url + "?tenant=7"))
    await side.wait_for(2)
    assert sorted(side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"]

    processing = by_name(side, "pivot.processing")
    assert processing["exchange"] == "targeted"
    assert processing["key"] == kazoo.route_queue
    assert processing["headers"]["Deliver-To-PID"] == side.controller_queue[len("pid://") :].split("/")[0]
    assert processing["body"]["Call-ID"] == side.call_id
    assert processing["body"]["App-Name"] == "translator"
    validate_outgoing("pivot_processing", processing["body"])

    event = by_name(side, "call_event.CHANNEL_PIVOT")
    assert event["exchange"] == "callevt"
    assert event["key"] == "call.CHANNEL_PIVOT." + side.call_id.replace(".", "%2E").replace("@", "%40")
    assert event["headers"]["call-id"] == side.call_id
    validate_outgoing("channel_pivot", event["body"])
    flow = orjson.loads(event["body"]["Application-Data"])
    assert flow["module"] == "tts"
    assert flow["data"]["voice"] == "female"  # Kazoo's schema default, filled in as Kazoo does
    assert len(flow["data"]["terminators"]) == 12
    assert flow["children"]["_"]["module"] == "hangup"
    assert_flow_conforms(flow)

    (request,) = dev.seen_at("/start")
    assert request.method == "GET"
    query = parse_qs(request.query_string)
    assert query["tenant"] == ["7"]
    assert query["Call-ID"] == [side.call_id]
    assert query["Digits[default]"] == ["42"]
    assert query["Custom-SIP-Headers[X-Tenant]"] == ["acme & co"]
    assert query["Api-Version"] == ["4.x"]
    assert request.headers["User-Agent"].startswith("pivot-worker/")
    assert request.headers["Accept"].startswith("application/json")


@pytest.mark.parametrize("body_format", ["form", "json"])
async def test_post_sends_the_params_in_the_body(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer, body_format: str
) -> None:
    url = dev.answer("/post", TTS)
    side, call = kazoo.new_call()
    await kazoo.publish(
        side,
        pivot_req(
            call,
            url,
            **{"HTTP-Method": "post", "Request-Body-Format": body_format, "Request-Format": "twiml"},
        ),
    )
    await side.wait_for(2)
    (request,) = dev.seen_at("/post")
    assert request.method == "POST"
    assert request.query_string == ""
    if body_format == "json":
        assert request.headers["Content-Type"] == "application/json"
        sent = orjson.loads(request.body)
        assert sent["Digits"] == {"default": "42"}
    else:
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        sent = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        assert sent["Digits[default]"] == "42"
    assert sent["CallSid"] == side.call_id
    assert sent["Caller"] == "1001"
    assert sent["ApiVersion"] == "2010-04-01"


async def _slow(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3)
    return web.Response(text=TTS, content_type="application/json")


async def _to_loop(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/loop")


def _redirect_loop(dev: DevServer) -> None:
    dev.route("/f", _to_loop)
    dev.route("/loop", _to_loop)


FAILURES = [
    ("http_404", lambda dev: dev.answer("/f", "nope", status=404, content_type="text/plain"), "http_status"),
    ("http_500", lambda dev: dev.answer("/f", "boom", status=500, content_type="text/plain"), "http_status"),
    (
        "http_503_retried",
        lambda dev: dev.answer("/f", "busy", status=503, content_type="text/plain"),
        "http_status",
    ),
    ("redirect_loop", _redirect_loop, "too_many_redirects"),
    ("too_large", lambda dev: dev.answer("/f", '{"a": "' + "x" * 70_000 + '"}'), "response_too_large"),
    ("empty", lambda dev: dev.answer("/f", b""), "empty_response"),
    (
        "bad_utf8",
        lambda dev: dev.answer("/f", b'{"module": "tts", "data": {"text": "\xff"}}'),
        "invalid_encoding",
    ),
    ("bad_json", lambda dev: dev.answer("/f", '{"module": "tts",'), "parse_error"),
    ("bad_schema", lambda dev: dev.answer("/f", '{"module": "tts", "data": {}}'), "schema_error"),
    ("unknown_module", lambda dev: dev.answer("/f", '{"module": "say", "data": {}}'), "schema_error"),
    (
        "not_a_document",
        lambda dev: dev.answer("/f", "hello", content_type="text/plain"),
        "unsupported_format",
    ),
]


@pytest.mark.parametrize(("case", "setup", "reason"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_each_failure_class_answers_failed_at_once(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer, case: str, setup: Any, reason: str
) -> None:
    setup(dev)
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, dev.url("/f")))
    await expect_failed(side, reason)
    attempts = len(dev.seen_at("/f"))
    assert attempts == (3 if case == "http_503_retried" else 1)


async def test_refused_connection_fails_fast_without_waiting_for_the_timeout(
    workers: list[WorkerProcess], kazoo: KazooCallflow, unused_tcp_port: int
) -> None:
    side, call = kazoo.new_call()
    await kazoo.publish(
        side, pivot_req(call, f"http://127.0.0.1:{unused_tcp_port}/x", **{"Request-Timeout": 5000})
    )
    await expect_failed(side, "connect_error", within=1.0)


async def test_timeout_uses_the_request_timeout(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    dev.route("/slow", _slow)
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, dev.url("/slow"), **{"Request-Timeout": 300}))
    await expect_failed(side, "timeout", within=0.9)


async def test_tls_failure(workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer) -> None:
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, f"https://127.0.0.1:{dev.port}/tls"))
    await expect_failed(side, "tls_error")


@pytest.mark.parametrize(
    ("voice_uri", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
        ("http://10.1.2.3/ivr", "blocked_address"),
        ("http://[::1]/ivr", "blocked_address"),
        ("ftp://127.0.0.1/ivr", "invalid_url"),
    ],
)
async def test_unsafe_or_invalid_urls_are_refused_before_connecting(
    workers: list[WorkerProcess], kazoo: KazooCallflow, voice_uri: str, reason: str
) -> None:
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, voice_uri))
    await expect_failed(side, reason)


async def test_redirect_to_a_blocked_address_is_refused(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    async def to_metadata(_r: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, dev.route("/hop", to_metadata)))
    await expect_failed(side, "blocked_address")


async def test_redirects_are_followed(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    async def moved(_r: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/final")

    dev.answer("/final", TTS)
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, dev.route("/moved", moved), **{"HTTP-Method": "post"}))
    await side.wait_for(2)
    assert dev.seen_at("/final")[0].method == "GET"  # 303 turns a POST into a GET


async def test_a_503_then_200_is_retried_to_success(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    hits: list[float] = []

    async def flaky(_r: web.Request) -> web.StreamResponse:
        hits.append(time.monotonic())
        if len(hits) == 1:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(text=TTS, content_type="application/json")

    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, dev.route("/flaky", flaky)))
    await side.wait_for(2)
    assert len(hits) == 2
    assert sorted(side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"]


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param(lambda: kazoo_now_us(-10), id="kazoo-gregorian-us"),
        pytest.param(lambda: int((time.time() - 10) * 1_000_000), id="unix-us"),
        pytest.param(lambda: int(time.time() - 10), id="unix-s"),
    ],
)
async def test_stale_request_gets_failed_and_never_a_flow(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer, stamp: Any
) -> None:
    # 10 s old by Kazoo's own clock (kz_time:now_us(), Gregorian µs), past the 9 s stale point.
    url = dev.answer("/late", TTS)
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, url), timestamp_us=stamp())
    await expect_failed(side, "stale")
    assert dev.seen_at("/late") == []


async def test_answer_that_arrives_after_the_stale_point_is_not_published(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    async def slow(_r: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3)
        return web.Response(text=TTS, content_type="application/json")

    side, call = kazoo.new_call()
    # Stamped 8 s ago by Kazoo: 1 s left before the 9 s stale point, and the developer answers 3 s
    # later. The worker's deadline is the stale point, so the call gets `stale`, not a late flow.
    url = dev.route("/slow", slow)
    await kazoo.publish(side, pivot_req(call, url), timestamp_us=kazoo_now_us(-8))
    body = await expect_failed(side, "stale", within=2.5)
    assert body["Call-ID"] == side.call_id
    assert len(dev.seen_at("/slow")) == 1  # it was asked, but too late for its answer to count


async def test_call_id_too_long_for_a_routing_key_gets_failed_and_the_worker_goes_on(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    # 120 characters; every "." encodes to "%2E", so call.CHANNEL_PIVOT.<encoded> is 257 bytes.
    long_id = "a." * 55 + "b@10.0.0.5"
    url = dev.answer("/long", TTS)
    side, call = kazoo.new_call(call_id=long_id)
    await kazoo.publish(side, pivot_req(call, url))
    body = await expect_failed(side, "unroutable_call_id")
    assert body["Call-ID"] == long_id
    assert dev.seen_at("/long") == []  # refused before anything was fetched

    # Both workers still serve the next calls.
    for _ in range(4):
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, url))
        await side.wait_for(2)
        assert sorted(side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"]


async def test_invalid_request_with_a_reply_queue_gets_failed_and_is_dead_lettered(
    workers: list[WorkerProcess], kazoo: KazooCallflow, worker_queue: str
) -> None:
    side, call = kazoo.new_call()
    msg = pivot_req(call, "http://127.0.0.1/x", **{"HTTP-Method": "put"})
    await kazoo.publish(side, msg)
    await expect_failed(side, "invalid_request")
    dead = await _take_dead_letter(kazoo, worker_queue, side.call_id.encode())
    assert dead.headers["x-pivot-reason"] == "invalid_request"
    assert "HTTP-Method" in str(dead.headers["x-pivot-detail"])


async def test_message_that_is_not_json_is_dead_lettered(
    workers: list[WorkerProcess], kazoo: KazooCallflow, worker_queue: str
) -> None:
    side, _call = kazoo.new_call()
    marker = f"not json {side.call_id}".encode()
    await kazoo.publish(side, {"Call": {"From-Realm": "x.example"}}, raw=marker)
    dead = await _take_dead_letter(kazoo, worker_queue, marker)
    assert dead.headers["x-pivot-reason"] == "invalid_request"
    assert dead.headers["x-pivot-original-routing-key"] == "pivot.req.x%2Eexample"
    assert side.events == []


async def _take_dead_letter(
    kazoo: KazooCallflow, worker_queue: str, needle: bytes, timeout: float = 5.0
) -> Any:
    queue = await kazoo.channel.get_queue(f"{worker_queue}.dead", ensure=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await queue.get(fail=False, no_ack=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        if needle in message.body:
            await message.ack()
            return message
        await message.nack(requeue=True)
        await asyncio.sleep(0.01)
    raise AssertionError(f"no dead letter containing {needle!r}")


async def test_two_workers_share_the_load(
    workers: list[WorkerProcess], kazoo: KazooCallflow, dev: DevServer
) -> None:
    async def slowish(_r: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return web.Response(text=TTS, content_type="application/json")

    url = dev.route("/shared", slowish)
    sides = []
    for _ in range(40):
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, url))
        sides.append(side)
    for side in sides:
        await side.wait_for(2)
    # A worker logs its line after the ack, so the last lines may trail the replies a little.
    deadline = time.monotonic() + 3
    while True:
        served = {w.name: sum(s.call_id in w.log() for s in sides) for w in workers}
        if sum(served.values()) >= 40 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert sum(served.values()) == 40, served
    assert all(count > 0 for count in served.values()), served
