"""End-to-end fixtures: two competing `pivot-worker run` processes, Kazoo's callflow side, a dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import KazooCallflow
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit


def worker_env(amqp_url: str, queue: str, **extra: str) -> dict[str, str]:
    env = {
        "PIVOT_AMQP_URL": amqp_url,
        "PIVOT_QUEUE": queue,
        "PIVOT_ALLOW_NETWORKS": "127.0.0.0/8",
        "PIVOT_REQUEST_TIMEOUT_MS": "2000",
        "PIVOT_CONTINUATION_KEY": "test-continuation-key",
        "PIVOT_SHUTDOWN_GRACE_S": "5",
        "PIVOT_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


async def delete_queues(amqp_url: str, *names: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


@pytest.fixture(scope="session")
def worker_queue(amqp_url: str) -> Iterator[str]:
    name = f"pivot_worker_test_{uuid.uuid4().hex[:8]}"
    yield name
    asyncio.run(delete_queues(amqp_url, name, f"{name}.dead"))


@pytest.fixture(scope="session")
def workers(
    amqp_url: str, worker_queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    """Two workers competing on one queue, for the whole session."""
    logs = tmp_path_factory.mktemp("worker-logs")
    procs = [WorkerProcess(worker_env(amqp_url, worker_queue), logs / f"w{i}.log", f"w{i}") for i in (1, 2)]
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture
async def kazoo(amqp_url: str) -> AsyncIterator[KazooCallflow]:
    async with KazooCallflow(amqp_url) as side:
        yield side


@pytest.fixture
async def dev() -> AsyncIterator[DevServer]:
    server = DevServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def tmp_logs(tmp_path: Path) -> Path:
    return tmp_path
