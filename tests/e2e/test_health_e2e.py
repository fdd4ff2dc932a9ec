"""/livez and /readyz of a real `pivot-worker run`, also while its broker node is down and back."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from bench.rabbit_node import RabbitNode, rabbitmq_bin_dir
from tests.conftest import IN_CI
from tests.e2e.conftest import worker_env
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(url: str) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
        return resp.status, await resp.read()


async def _wait_status(url: str, status: int, within_s: float) -> bytes:
    deadline = time.monotonic() + within_s
    last: tuple[int, bytes] | None = None
    while time.monotonic() < deadline:
        last = await _get(url)
        if last[0] == status:
            return last[1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {within_s}s; last answer {last}")


def _start_worker(amqp_url: str, tmp: Path, name: str, **extra: str) -> tuple[WorkerProcess, str]:
    listen = f"127.0.0.1:{_free_port()}"
    env = worker_env(
        amqp_url,
        f"pivot_health_test_{uuid.uuid4().hex[:8]}",
        PIVOT_METRICS_LISTEN=listen,
        PIVOT_LEDGER_URL=f"sqlite:///{tmp / 'ledger'}",
        **extra,
    )
    return WorkerProcess(env, tmp / f"{name}.log", name).start(), f"http://{listen}"


async def test_livez_readyz_and_metrics_on_one_listener(broker: str, tmp_path: Path) -> None:
    worker, base = _start_worker(broker, tmp_path, "health")
    try:
        status, body = await _get(base + "/livez")
        assert status == 200 and orjson.loads(body) == {"status": "ok"}
        body = await _wait_status(base + "/readyz", 200, 10)
        assert orjson.loads(body) == {"status": "ok"}
        status, body = await _get(base + "/metrics")
        assert status == 200
        assert b"pivot_in_flight_requests" in body
    finally:
        assert worker.stop() == 0, worker.log()


@pytest.fixture(scope="module")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A private RabbitMQ node for this module, always stopped and removed afterwards."""
    if rabbitmq_bin_dir() is None:
        message = "this test starts a private RabbitMQ node and needs rabbitmq-server installed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    try:
        node.start()
        yield node
    finally:
        node.close()


async def test_readyz_follows_the_broker_node_down_and_back(rabbit_node: RabbitNode, tmp_path: Path) -> None:
    worker, base = _start_worker(
        rabbit_node.amqp_url, tmp_path, "health-node", PIVOT_RECONNECT_GIVE_UP_S="300"
    )
    try:
        await _wait_status(base + "/readyz", 200, 10)
        await rabbit_node.astop()
        body = await _wait_status(base + "/readyz", 503, 30)
        assert orjson.loads(body)["failed"] in {"broker_connection", "broker_consumer"}
        status, _ = await _get(base + "/livez")
        assert status == 200  # the process and its loop are fine: only readiness says no
        await rabbit_node.astart()
        await _wait_status(base + "/readyz", 200, 60)
    finally:
        if not rabbit_node.running():
            await rabbit_node.astart()
        worker.stop()
