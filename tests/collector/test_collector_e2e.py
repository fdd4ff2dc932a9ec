"""Worker-side publisher -> RabbitMQ -> collector -> database -> API, on real services."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aio_pika
import aio_pika.abc
import aiohttp
import orjson
import pytest

from pivot_worker.collector import Collector
from pivot_worker.collector.consumer import queue_name_for
from pivot_worker.collector.store import Store
from pivot_worker.debug import DebugPublisher
from pivot_worker.errors import Reason
from pivot_worker.settings import Settings
from pivot_worker.trace import Outcome

from .support import ACCOUNT_A, TOKEN_A, events_of, get_json, make_trace

pytestmark = pytest.mark.rabbit

Broker = tuple[aio_pika.abc.AbstractRobustConnection, str]
Database = tuple[str, "str | None"]


@pytest.fixture
async def collector(
    broker: Broker, database: Database, tokens_file: Path, amqp_url: str
) -> AsyncIterator[tuple[Collector, str]]:
    settings = Settings(
        amqp_url=amqp_url,
        debug_exchange=broker[1],
        database_url=database[0],
        api_listen="127.0.0.1:0",
        api_tokens_file=str(tokens_file),
        node="collector@test",
    )
    running = Collector(settings, db_schema=database[1])
    await running.start(broker[0])
    address = running.api_address
    assert address is not None
    try:
        yield running, f"http://{address[0]}:{address[1]}"
    finally:
        await running.stop()


async def _publish_raw(broker: Broker, bodies: list[bytes]) -> None:
    channel = await broker[0].channel()
    exchange = await channel.declare_exchange(broker[1], aio_pika.ExchangeType.TOPIC, durable=True)
    for body in bodies:
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "debug.x"
        )
    await channel.close()


async def _until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s")


async def test_a_debug_call_is_visible_in_the_api_within_one_second(
    broker: Broker, collector: tuple[Collector, str], http: aiohttp.ClientSession
) -> None:
    _, api = collector
    publisher = DebugPublisher(Settings(debug_exchange=broker[1]))
    await publisher.start(broker[0])
    trace = make_trace(status=201)
    url = f"{api}/v2/accounts/{ACCOUNT_A}/pivot/debug/{quote(trace.call_id, safe='')}"
    started = time.monotonic()
    publisher.record(trace)
    while True:
        status, body = await get_json(http, url, TOKEN_A)
        if status == 200 and len(body["data"]) == 3:
            break
        assert time.monotonic() - started < 1.0, "records not visible within 1 s"
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - started
    await publisher.stop()
    records = body["data"]
    assert records[1]["resp_status_code"] == "201"
    assert records[2]["callflow"] == trace.flow
    _, listing = await get_json(http, f"{api}/v2/accounts/{ACCOUNT_A}/pivot/debug", TOKEN_A)
    assert [r["status_code"] for r in listing["data"]] == ["201"]
    print(f"visible after {elapsed * 1000:.0f} ms")


async def test_redelivered_and_duplicate_events_are_stored_once(
    broker: Broker, collector: tuple[Collector, str]
) -> None:
    running, _ = collector
    events = events_of(make_trace(status=500, outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS))
    bodies = [orjson.dumps(e) for e in events]
    await _publish_raw(broker, bodies + bodies + bodies[:1])
    assert running.consumer is not None and running.store is not None
    consumer, store = running.consumer, running.store

    async def all_processed() -> bool:
        return consumer.stats.stored == 7

    await _until(all_processed, 5)
    assert await store.count_events() == 3
    [row] = await store.list_calls(ACCOUNT_A, from_key=0, to_key=2**62)
    assert (row.status_code, row.failed) == ("500", True)


async def test_invalid_messages_are_rejected_and_the_rest_is_stored(
    broker: Broker, collector: tuple[Collector, str]
) -> None:
    running, _ = collector
    good = events_of(make_trace())
    broken = dict(good[1])
    broken["resp_status_code"] = 200  # a number: breaks the contract
    await _publish_raw(broker, [b"not json", orjson.dumps(broken), *(orjson.dumps(e) for e in good)])
    assert running.consumer is not None and running.store is not None
    consumer, store = running.consumer, running.store

    async def settled() -> bool:
        return consumer.stats.stored + consumer.stats.rejected == 5

    await _until(settled, 5)
    assert (consumer.stats.stored, consumer.stats.rejected) == (3, 2)
    assert await store.count_events() == 3


async def _queue_depth(broker: Broker) -> int:
    channel = await broker[0].channel()
    queue = await channel.declare_queue(queue_name_for(broker[1]), durable=True, passive=True)
    depth = queue.declaration_result.message_count or 0
    await channel.close()
    return depth


async def test_a_collector_killed_mid_batch_loses_nothing(
    broker: Broker, database: Database, amqp_url: str, tmp_path: Path
) -> None:
    url, schema = database
    settings = Settings(debug_exchange=broker[1], database_url=url, amqp_url=amqp_url)
    # Declare the queue first (a collector that starts and stops at once), then fill it.
    first = Collector(settings, api=False, db_schema=schema)
    await first.start(broker[0])
    await first.stop()
    traces = [make_trace() for _ in range(1500)]
    expected = {e["event_id"]: e for t in traces for e in events_of(t)}
    await _publish_raw(broker, [orjson.dumps(e) for e in expected.values()])

    env = dict(os.environ)
    env.update(
        PIVOT_AMQP_URL=amqp_url,
        PIVOT_DEBUG_EXCHANGE=broker[1],
        PIVOT_DATABASE_URL=url if schema is None else f"{url}?schema={schema}",
        PIVOT_LOG_LEVEL="WARNING",
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pivot_worker.collector", "run", "--no-api", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    reader = await Store.open(url, schema=schema)
    try:
        deadline = time.monotonic() + 20
        stored = 0
        while time.monotonic() < deadline:
            stored = await reader.count_events()
            if stored > 0:
                break
            await asyncio.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        _, stderr = await child.communicate()
        assert 0 < stored < len(expected), (stored, stderr.decode()[-2000:])
        killed_at = await reader.count_events()
        assert killed_at < len(expected)
        assert await _queue_depth(broker) > 0  # un-acked messages went back to the queue

        second = Collector(settings, api=False, db_schema=schema)
        await second.start(broker[0])
        try:

            async def done() -> bool:
                return await reader.count_events() == len(expected) and await _queue_depth(broker) == 0

            await _until(done, 30)
        finally:
            await second.stop()
        stored_ids = {e["event_id"] for t in traces for e in await reader.call_events(ACCOUNT_A, t.call_id)}
        assert stored_ids == set(expected)
        rows = await reader.list_calls(ACCOUNT_A, from_key=0, to_key=2**62, limit=5000)
        assert len(rows) == len(traces)
        assert all(r.status_code == "200" for r in rows)
    finally:
        await reader.close()
        if child.returncode is None:
            child.kill()
            await child.wait()
