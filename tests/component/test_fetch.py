"""The HTTP fetcher against a real server on 127.0.0.1: retries, limits, redirects, timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from pivot_worker.errors import FetchError, Reason
from pivot_worker.fetch import ACCEPT_KAZOO, Fetcher, HttpRequestSpec
from pivot_worker.settings import Settings, parse_networks
from pivot_worker.trace import PivotTrace
from tests.e2e.devserver import DevServer


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    f = Fetcher(Settings(allow_networks=parse_networks("127.0.0.0/8"), max_response_bytes=1000))
    await f.start()
    yield f
    await f.close()


def new_trace(debug: bool = False) -> PivotTrace:
    return PivotTrace("c1", "a1", debug, "n", "http://x", "get", "kazoo", received_at=time.time())


def spec(url: str, method: str = "get") -> HttpRequestSpec:
    return HttpRequestSpec(
        method=method, url=url, params={"Call-ID": "c1"}, body_format="form", accept=ACCEPT_KAZOO
    )  # type: ignore[arg-type]


def deadline(seconds: float = 2.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_success_records_one_exchange_and_debug_timings(fetcher: Fetcher, dev: DevServer) -> None:
    url = dev.answer("/ok", '{"module": "hangup"}')
    trace = new_trace(debug=True)
    result = await fetcher.fetch(spec(url), deadline=deadline(), trace=trace)
    assert result.status == 200
    assert result.body == b'{"module": "hangup"}'
    (exchange,) = trace.exchanges
    assert exchange.url.endswith("/ok?Call-ID=c1")
    assert exchange.timings.total_ms is not None
    assert exchange.timings.ttfb_ms is not None
    assert exchange.timings.connect_ms is not None
    assert ("Content-Type", "application/json") in exchange.response_headers


async def test_429_retry_after_is_honoured_and_counted(fetcher: Fetcher, dev: DevServer) -> None:
    stamps: list[float] = []

    async def limited(_r: web.Request) -> web.StreamResponse:
        stamps.append(time.monotonic())
        if len(stamps) == 1:
            return web.Response(status=429, headers={"Retry-After": "0.3"})
        return web.Response(text="{}", content_type="application/json")

    trace = new_trace()
    await fetcher.fetch(spec(dev.route("/rl", limited)), deadline=deadline(), trace=trace)
    assert stamps[1] - stamps[0] >= 0.29
    assert trace.attempts == 2


async def test_retries_stop_at_the_deadline(fetcher: Fetcher, dev: DevServer) -> None:
    url = dev.answer("/down", "x", status=503, content_type="text/plain", headers={"Retry-After": "1"})
    trace = new_trace()
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(spec(url), deadline=deadline(0.5), trace=trace)
    assert info.value.reason is Reason.HTTP_STATUS
    assert time.monotonic() - started < 0.5  # it did not sleep into the deadline
    assert trace.attempts == 1


async def test_chunked_body_over_the_limit_is_refused(fetcher: Fetcher, dev: DevServer) -> None:
    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(20):
            await response.write(b"x" * 100)
        await response.write_eof()
        return response

    with pytest.raises(FetchError) as info:
        await fetcher.fetch(spec(dev.route("/big", streamed)), deadline=deadline(), trace=new_trace())
    assert info.value.reason is Reason.RESPONSE_TOO_LARGE


@pytest.mark.parametrize(("method", "attempts"), [("get", 3), ("post", 1)])
async def test_read_errors_are_retried_for_get_only(
    fetcher: Fetcher, dev: DevServer, method: str, attempts: int
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "500"})
        await response.prepare(request)
        await response.write(b"{")
        assert request.transport is not None
        request.transport.close()
        return response

    url = dev.route("/broken", broken)
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(spec(url, method), deadline=deadline(), trace=new_trace())
    assert info.value.reason is Reason.READ_ERROR
    assert len(dev.seen_at("/broken")) == attempts


async def test_a_name_that_resolves_to_a_blocked_address_is_refused(dev: DevServer) -> None:
    # localhost resolves to 127.0.0.1/::1, blocked by default: the resolver refuses before connecting.
    strict = Fetcher(Settings())
    await strict.start()
    try:
        with pytest.raises(FetchError) as info:
            await strict.fetch(spec(f"http://localhost:{dev.port}/x"), deadline=deadline(), trace=new_trace())
    finally:
        await strict.close()
    assert info.value.reason is Reason.BLOCKED_ADDRESS
    assert dev.seen == []


async def test_cookies_are_never_carried_between_requests(fetcher: Fetcher, dev: DevServer) -> None:
    url = dev.answer("/c", "{}", headers={"Set-Cookie": "session=abc; Path=/"})
    await fetcher.fetch(spec(url), deadline=deadline(), trace=new_trace())
    await fetcher.fetch(spec(url), deadline=deadline(), trace=new_trace())
    assert "Cookie" not in dev.seen_at("/c")[1].headers


@pytest.mark.parametrize("method", ["get", "post"])
async def test_the_document_url_is_the_developers_url_not_the_query_the_worker_added(
    fetcher: Fetcher, dev: DevServer, method: str
) -> None:
    # Relative references and a Gather without action resolve against it, as Kazoo's voice_uri.
    url = dev.answer("/ivr?tenant=7", "<Response/>", content_type="text/xml")
    dev.answer("/ivr", "<Response/>", content_type="text/xml")
    result = await fetcher.fetch(spec(url, method), deadline=deadline(), trace=new_trace())
    assert result.url == url
    (seen,) = dev.seen_at("/ivr")
    assert "Call-ID=c1" in (seen.query_string if method == "get" else seen.body.decode())


async def test_after_a_redirect_the_document_url_is_where_the_script_came_from(
    fetcher: Fetcher, dev: DevServer
) -> None:
    target = dev.answer("/moved/menu.xml", "<Response/>", content_type="text/xml")
    start = dev.answer(
        "/start", "", content_type=None, status=302, headers={"Location": "/moved/menu.xml?v=2"}
    )
    result = await fetcher.fetch(spec(start), deadline=deadline(), trace=new_trace())
    assert result.url == target + "?v=2"
    assert result.body == b"<Response/>"
