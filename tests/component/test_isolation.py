"""Per-host circuit breaker and bulkhead in ``Fetcher.fetch``, against real servers on 127.0.0.1.

The hanging server accepts connections and never answers, and counts the connections it accepted,
so "refused without any network activity" is checked on the server's side. The breaker's open
period runs on a fake clock; HTTP deadlines are real but short.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest

from pivot_worker.breaker import Breakers, CircuitState
from pivot_worker.errors import FetchError, Reason
from pivot_worker.fetch import ACCEPT_KAZOO, Fetcher, HttpRequestSpec, origin
from pivot_worker.settings import Settings, parse_networks
from pivot_worker.trace import PivotTrace
from tests.e2e.devserver import DevServer

FAILURES = 3
OPEN_S = 30.0


class HangingServer:
    """Accepts TCP connections, reads what it is sent, never answers; or answers, when told to."""

    def __init__(self) -> None:
        self.accepted = 0
        self.answer: bytes | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path: str = "/flow") -> str:
        return f"http://127.0.0.1:{self.port}{path}?secret=1"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:  # one GET head per request on a keep-alive connection
                await reader.readuntil(b"\r\n\r\n")
                if self.answer is None:
                    break
                body = self.answer
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            while await reader.read(4096):
                pass

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def hanging() -> AsyncIterator[HangingServer]:
    server = HangingServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def make_fetcher(clock: FakeClock, **overrides: object) -> Fetcher:
    settings = Settings(
        allow_networks=parse_networks("127.0.0.0/8"),
        breaker_failures=FAILURES,
        breaker_open_s=OPEN_S,
        fetch_attempts=1,
        **overrides,  # type: ignore[arg-type]
    )
    fetcher = Fetcher(settings)
    fetcher.breakers = Breakers(FAILURES, OPEN_S, clock=clock)
    await fetcher.start()
    return fetcher


@pytest.fixture
async def fetcher(clock: FakeClock) -> AsyncIterator[Fetcher]:
    f = await make_fetcher(clock)
    yield f
    await f.close()


def spec(url: str) -> HttpRequestSpec:
    return HttpRequestSpec(
        method="get", url=url, params={"Call-ID": "c1"}, body_format="form", accept=ACCEPT_KAZOO
    )


def new_trace() -> PivotTrace:
    return PivotTrace("c1", "a1", False, "n", "http://x", "get", "kazoo", received_at=time.time())


async def fetch(fetcher: Fetcher, url: str, seconds: float = 0.3) -> FetchError:
    deadline = asyncio.get_running_loop().time() + seconds
    with pytest.raises(FetchError) as info:
        await fetcher.fetch(spec(url), deadline=deadline, trace=new_trace())
    return info.value


async def settle() -> None:
    """Give a connection the fetcher might (wrongly) open time to reach the server."""
    await asyncio.sleep(0.2)


def test_origin_is_scheme_host_and_port_without_credentials_path_or_query() -> None:
    assert origin("http://u:p@Example.COM/a/b?c=d#e") == "http://example.com:80"
    assert origin("https://example.com:8443/x") == "https://example.com:8443"
    assert origin("http://[::1]:81/") == "http://[::1]:81"
    assert origin("ftp://example.com/") is None
    assert origin("not a url") is None


async def test_a_hanging_host_trips_the_breaker_and_is_then_refused_without_connecting(
    fetcher: Fetcher, hanging: HangingServer, caplog: pytest.LogCaptureFixture
) -> None:
    errors = await asyncio.gather(*(fetch(fetcher, hanging.url()) for _ in range(FAILURES)))
    assert [e.reason for e in errors] == [Reason.TIMEOUT] * FAILURES
    assert hanging.accepted == FAILURES
    host = f"http://127.0.0.1:{hanging.port}"
    assert fetcher.breakers.state(host) is CircuitState.OPEN

    started = time.monotonic()
    error = await fetch(fetcher, hanging.url(), seconds=5.0)
    assert time.monotonic() - started < 1.0  # refused at once, not at the 5 s deadline
    assert error.reason is Reason.CIRCUIT_OPEN
    assert host in str(error) and "next probe in" in str(error)
    assert "secret" not in str(error) and "/flow" not in str(error)
    await settle()
    assert hanging.accepted == FAILURES  # no connection was made
    assert fetcher.bulkhead.in_flight(host) == 0
    breaker_lines = [r.getMessage() for r in caplog.records if r.name == "pivot_worker.breaker"]
    assert len(breaker_lines) == 1 and host in breaker_lines[0]
    assert "/flow" not in breaker_lines[0] and "secret" not in breaker_lines[0]


async def test_after_the_open_period_one_probe_goes_through_and_its_answer_closes_the_circuit(
    fetcher: Fetcher, hanging: HangingServer, clock: FakeClock
) -> None:
    await asyncio.gather(*(fetch(fetcher, hanging.url()) for _ in range(FAILURES)))
    clock.now += OPEN_S
    hanging.answer = b'{"module": "hangup"}'
    loop = asyncio.get_running_loop()
    probe = asyncio.create_task(
        fetcher.fetch(spec(hanging.url()), deadline=loop.time() + 5.0, trace=new_trace())
    )
    await asyncio.sleep(0)  # the probe is admitted; a second request meanwhile is refused
    assert (await fetch(fetcher, hanging.url())).reason is Reason.CIRCUIT_OPEN
    result = await probe
    assert result.body == b'{"module": "hangup"}'
    assert hanging.accepted == FAILURES + 1
    host = f"http://127.0.0.1:{hanging.port}"
    assert fetcher.breakers.state(host) is CircuitState.CLOSED
    again = await fetcher.fetch(spec(hanging.url()), deadline=loop.time() + 5.0, trace=new_trace())
    assert again.status == 200


async def test_a_failed_probe_opens_the_circuit_again(
    fetcher: Fetcher, hanging: HangingServer, clock: FakeClock
) -> None:
    await asyncio.gather(*(fetch(fetcher, hanging.url()) for _ in range(FAILURES)))
    clock.now += OPEN_S
    assert (await fetch(fetcher, hanging.url())).reason is Reason.TIMEOUT  # the probe hangs too
    assert hanging.accepted == FAILURES + 1
    assert (await fetch(fetcher, hanging.url())).reason is Reason.CIRCUIT_OPEN
    await settle()
    assert hanging.accepted == FAILURES + 1


async def test_connect_errors_count_and_http_errors_do_not(fetcher: Fetcher, dev: DevServer) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refused = f"http://127.0.0.1:{closed_port}/x"
    for _ in range(FAILURES):
        assert (await fetch(fetcher, refused, seconds=2.0)).reason is Reason.CONNECT_ERROR
    assert (await fetch(fetcher, refused, seconds=2.0)).reason is Reason.CIRCUIT_OPEN

    missing = dev.answer("/gone", "no", status=404, content_type="text/plain")
    for _ in range(FAILURES * 3):
        assert (await fetch(fetcher, missing, seconds=2.0)).reason is Reason.HTTP_STATUS
    assert fetcher.breakers.state(f"http://127.0.0.1:{dev.port}") is CircuitState.CLOSED
    assert len(dev.seen_at("/gone")) == FAILURES * 3


async def test_the_bulkhead_refuses_one_more_request_to_a_busy_host_while_others_are_served(
    clock: FakeClock, hanging: HangingServer, dev: DevServer
) -> None:
    limit = 4
    fetcher = await make_fetcher(clock, host_concurrency=limit)
    try:
        loop = asyncio.get_running_loop()
        held = [
            asyncio.create_task(
                fetcher.fetch(spec(hanging.url()), deadline=loop.time() + 30, trace=new_trace())
            )
            for _ in range(limit)
        ]
        for _ in range(100):
            if hanging.accepted == limit:
                break
            await asyncio.sleep(0.02)
        assert hanging.accepted == limit

        started = time.monotonic()
        busy = await fetch(fetcher, hanging.url(), seconds=5.0)
        assert time.monotonic() - started < 1.0
        assert busy.reason is Reason.HOST_BUSY
        host = f"http://127.0.0.1:{hanging.port}"
        assert host in str(busy) and f"PIVOT_HOST_CONCURRENCY={limit}" in str(busy)
        assert "secret" not in str(busy)

        ok = dev.answer("/ok", '{"module": "hangup"}')
        result = await fetcher.fetch(spec(ok), deadline=loop.time() + 5, trace=new_trace())
        assert result.status == 200

        await settle()
        assert hanging.accepted == limit  # the refused request never connected
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        assert fetcher.bulkhead.in_flight(host) == 0
        # Cancelled requests say nothing about the host: the circuit stays closed, slots are free.
        assert fetcher.breakers.state(host) is CircuitState.CLOSED
        hanging.answer = b"{}"
        again = await fetcher.fetch(spec(hanging.url()), deadline=loop.time() + 5, trace=new_trace())
        assert again.status == 200
    finally:
        await fetcher.close()


def test_the_default_connection_pool_is_not_the_limit() -> None:
    settings = Settings()
    assert settings.http_max_connections >= settings.prefetch
    assert settings.host_concurrency < settings.prefetch
