"""One `pivot-worker run` process: a hanging developer host trips its circuit, others are served."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.e2e.conftest import delete_queues, worker_env
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import KazooCallflow, pivot_req
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit

FAILURES = 3
TTS = '{"module": "tts", "data": {"text": "Hello"}}'


@pytest.fixture(scope="module")
def isolation_queue() -> str:
    return f"pivot_isolation_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker(
    broker: str, isolation_queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = Path(tmp_path_factory.mktemp("isolation-logs")) / "w.log"
    env = worker_env(
        broker,
        isolation_queue,
        PIVOT_BREAKER_FAILURES=str(FAILURES),
        PIVOT_BREAKER_OPEN_S="60",
    )
    proc = WorkerProcess(env, log, "iso").start()
    yield proc
    proc.stop()
    asyncio.run(delete_queues(broker, isolation_queue, f"{isolation_queue}.dead"))


@pytest.fixture
async def other_dev() -> AsyncIterator[DevServer]:
    server = DevServer()
    await server.start()
    yield server
    await server.stop()


async def test_a_hanging_host_is_refused_at_once_after_its_timeouts_while_another_host_is_served(
    worker: WorkerProcess, kazoo: KazooCallflow, dev: DevServer, other_dev: DevServer
) -> None:
    async def hang(_r: web.Request) -> web.StreamResponse:
        await dev.hold()
        return web.Response(text=TTS, content_type="application/json")

    hanging = dev.route("/hang", hang) + "?token=abc"
    healthy = other_dev.answer("/ok", TTS)

    sides = []
    for _ in range(FAILURES):
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, hanging, **{"Request-Timeout": 500}))
        sides.append(side)
    for side in sides:
        (failed,) = await side.wait_for(1, timeout=10)
        assert failed.body["Event-Name"] == "failed" and failed.body["Failure-Reason"] == "timeout"
    assert len(dev.seen_at("/hang")) == FAILURES

    side, call = kazoo.new_call()
    started = time.monotonic()
    await kazoo.publish(side, pivot_req(call, hanging, **{"Request-Timeout": 6000}))
    (refused,) = await side.wait_for(1, timeout=10)
    assert refused.body["Failure-Reason"] == "circuit_open"
    assert refused.at - started < 4.0  # answered long before its 6 s Request-Timeout

    ok_side, ok_call = kazoo.new_call()
    await kazoo.publish(ok_side, pivot_req(ok_call, healthy))
    await ok_side.wait_for(2, timeout=10)
    assert sorted(ok_side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"]

    await asyncio.sleep(0.3)
    assert len(dev.seen_at("/hang")) == FAILURES  # the refused request never reached the server
    host = f"http://127.0.0.1:{dev.port}"
    transitions = [line for line in worker.log().splitlines() if "pivot_worker.breaker" in line]
    assert len(transitions) == 1 and f"circuit open for {host} " in transitions[0], transitions
    assert "/hang" not in transitions[0] and "token" not in transitions[0]
