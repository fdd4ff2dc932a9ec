"""Process lifecycle end to end: SIGKILL loses nothing, SIGTERM drains, leftovers are requeued."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.e2e.conftest import delete_queues, worker_env
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import CallSide, KazooCallflow, pivot_req
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit

TTS = '{"module": "tts", "data": {"text": "Hello"}}'


@pytest.fixture
async def own_queue(broker: str) -> AsyncIterator[str]:
    name = f"pivot_lifecycle_{uuid.uuid4().hex[:8]}"
    yield name
    await delete_queues(broker, name, f"{name}.dead")


def hold_first(dev: DevServer, count: int) -> Any:
    """A handler that does not answer the first ``count`` requests and answers the rest at once."""
    seen: list[int] = []

    async def handler(_r: web.Request) -> web.StreamResponse:
        seen.append(1)
        if len(seen) <= count:
            await dev.hold()
        return web.Response(text=TTS, content_type="application/json")

    return handler


async def publish_calls(kazoo: KazooCallflow, url: str, n: int) -> list[CallSide]:
    sides = []
    for _ in range(n):
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, url))
        sides.append(side)
    return sides


async def assert_each_answered_once(sides: list[CallSide], timeout: float = 8.0) -> None:
    for side in sides:
        await side.wait_for(2, timeout=timeout)
    await asyncio.sleep(0.3)
    for side in sides:
        assert sorted(side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"], side.names()


async def test_sigkill_with_unacked_requests_loses_none(
    broker: str, own_queue: str, kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    handler = hold_first(dev, 5)
    url = dev.route("/held", handler)
    victim = WorkerProcess(worker_env(broker, own_queue), tmp_path / "victim.log", "victim").start()
    sides = await publish_calls(kazoo, url, 5)
    await dev.wait_seen("/held", 5)  # the victim holds all five, unacked
    victim.kill()
    assert all(side.events == [] for side in sides)
    rescuer = WorkerProcess(worker_env(broker, own_queue), tmp_path / "rescuer.log", "rescuer").start()
    try:
        await assert_each_answered_once(sides)
    finally:
        rescuer.stop()


async def test_sigterm_drains_in_flight_requests_then_exits(
    broker: str, own_queue: str, kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    async def slow(_r: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.Response(text=TTS, content_type="application/json")

    url = dev.route("/slow", slow)
    worker = WorkerProcess(worker_env(broker, own_queue), tmp_path / "w.log", "drainer").start()
    sides = await publish_calls(kazoo, url, 3)
    await dev.wait_seen("/slow", 3)
    code = await asyncio.to_thread(worker.stop)
    assert code == 0
    await assert_each_answered_once(sides, timeout=2.0)
    assert "shutdown on SIGTERM: 3 ok, 0 failed, 0 dead-lettered, 0 requeued" in worker.log()


async def test_requests_left_after_the_grace_period_are_requeued_for_another_worker(
    broker: str, own_queue: str, kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    handler = hold_first(dev, 2)
    url = dev.route("/held", handler)
    env = worker_env(broker, own_queue, PIVOT_SHUTDOWN_GRACE_S="0.3")
    first = WorkerProcess(env, tmp_path / "first.log", "first").start()
    sides = await publish_calls(kazoo, url, 2)
    await dev.wait_seen("/held", 2)
    assert await asyncio.to_thread(first.stop) == 0
    assert "2 requeued" in first.log()
    assert all(side.events == [] for side in sides)
    second = WorkerProcess(env, tmp_path / "second.log", "second").start()
    try:
        await assert_each_answered_once(sides)
    finally:
        second.stop()


def _close_broker_connection(node: str) -> None:
    """Have RabbitMQ drop the worker's connection, as a broker restart or network cut would."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if f"pivot-worker {node}" in line]
    assert len(pids) == 1, listing
    subprocess.run(
        ["rabbitmqctl", "-q", "close_connection", pids[0], "test: broker went away"],
        check=True,
        timeout=30,
        capture_output=True,
    )


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to drop a connection")
async def test_worker_reconnects_after_losing_the_broker_connection(
    broker: str, own_queue: str, kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    url = dev.answer("/again", TTS)
    worker = WorkerProcess(worker_env(broker, own_queue), tmp_path / "w.log", "reconnector").start()
    try:
        before = await publish_calls(kazoo, url, 1)
        await assert_each_answered_once(before)
        await asyncio.to_thread(_close_broker_connection, "reconnector@test")
        after = await publish_calls(kazoo, url, 3)
        await assert_each_answered_once(after, timeout=10.0)
        await assert_each_answered_once(before)  # nothing answered twice
    finally:
        worker.stop()


async def test_a_queue_declared_otherwise_makes_the_worker_exit_non_zero_saying_why(
    broker: str, own_queue: str, tmp_path: Path
) -> None:
    """The broker refuses a queue type that differs from the existing queue's: retrying cannot help,
    so the worker exits 1 (its supervisor restarts it, an operator reads why) instead of idling."""
    classic = WorkerProcess(worker_env(broker, own_queue), tmp_path / "classic.log", "classic").start()
    classic.stop()
    env = worker_env(broker, own_queue, PIVOT_QUEUE_TYPE="quorum")
    quorum = WorkerProcess(env, tmp_path / "quorum.log", "quorum")
    with pytest.raises(RuntimeError, match="exited with 1"):
        quorum.start(timeout=30)
    log = quorum.log()
    assert "refused to declare queue" in log and "PIVOT_QUEUE_TYPE=quorum" in log


async def test_a_worker_that_cannot_reach_any_broker_gives_up_with_status_1(tmp_path: Path) -> None:
    """Nothing listens on the port (a closed loopback port): after PIVOT_RECONNECT_GIVE_UP_S the
    worker exits 1 and names the broker it tried, with its password hidden."""
    import socket

    with socket.socket() as probe:  # a free port, closed again: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"amqp://guest:secret-pw@127.0.0.1:{port}/"
    env = worker_env(url, "pivot_unreachable", PIVOT_RECONNECT_GIVE_UP_S="1")
    worker = WorkerProcess(env, tmp_path / "w.log", "unreachable")
    with pytest.raises(RuntimeError, match="exited with 1"):
        worker.start(timeout=30)
    log = worker.log()
    assert f"127.0.0.1:{port}" in log and "secret-pw" not in log
