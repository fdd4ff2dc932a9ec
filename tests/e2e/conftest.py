"""End-to-end fixtures: two competing `pivot-worker run` processes, Kazoo's callflow side, a dev server."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import pytest

from tests.conftest import IN_CI
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


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def broker(amqp_url: str) -> Iterator[str]:
    """A virtual host of its own for each test module.

    Every queue bound to ``callmgr`` with ``pivot.req.*`` gets a copy of every pivot_req (that is
    why Kazoo's own pivot app must be stopped in production), so workers of different tests on one
    virtual host would all answer the same call. A vhost per module keeps tests honest.
    """
    if shutil.which("rabbitmqctl") is None:
        message = "end-to-end tests need rabbitmqctl to create an isolated virtual host"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    vhost = f"pivot_e2e_{uuid.uuid4().hex[:8]}"
    user = urlsplit(amqp_url).username or "guest"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    yield urlunsplit(urlsplit(amqp_url)._replace(path="/" + quote(vhost, safe="")))
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def worker_queue() -> str:
    return f"pivot_worker_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def workers(
    broker: str, worker_queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    """Two workers competing on one queue, for the whole module."""
    logs = tmp_path_factory.mktemp("worker-logs")
    procs = [WorkerProcess(worker_env(broker, worker_queue), logs / f"w{i}.log", f"w{i}") for i in (1, 2)]
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture
async def kazoo(broker: str) -> AsyncIterator[KazooCallflow]:
    async with KazooCallflow(broker) as side:
        yield side
