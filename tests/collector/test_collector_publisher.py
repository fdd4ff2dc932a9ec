"""DebugPublisher on a real RabbitMQ: what it publishes, and that it never holds up the call path."""

from __future__ import annotations

import asyncio
import logging
import time

import aio_pika
import aio_pika.abc
import orjson
import pytest

from pivot_worker.contracts import check
from pivot_worker.debug import DebugPublisher, EventBuilder, Redactor
from pivot_worker.errors import Reason
from pivot_worker.settings import Settings
from pivot_worker.trace import Outcome, PivotTrace

from .support import make_trace

pytestmark = pytest.mark.rabbit

Broker = tuple[aio_pika.abc.AbstractRobustConnection, str]


async def _tap(broker: Broker, **arguments: object) -> aio_pika.abc.AbstractQueue:
    """A private queue bound to every debug key of the test exchange."""
    connection, exchange_name = broker
    channel = await connection.channel()
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True, arguments=arguments or None)
    await queue.bind(exchange, "debug.*")
    return queue


async def _drain(
    queue: aio_pika.abc.AbstractQueue, count: int, timeout: float = 5.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.02)
            continue
        await message.ack()
        got.append(message)
    return got


async def test_events_are_persistent_confirmed_and_routed_by_account(broker: Broker) -> None:
    queue = await _tap(broker)
    publisher = DebugPublisher(Settings(debug_exchange=broker[1], redact_params=("tenant",)))
    await publisher.start(broker[0])
    trace = make_trace(account="acct.with.dots")
    publisher.record(trace)
    await publisher.stop()
    messages = await _drain(queue, 3)
    assert len(messages) == 3
    assert publisher.published == 3
    assert publisher.dropped == 0
    for message in messages:
        event = orjson.loads(message.body)
        assert check("debug_event", event) is None
        assert message.routing_key == "debug.acct%2Ewith%2Edots"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == event["event_id"]
        assert message.content_type == "application/json"
        assert event["call_id"] == trace.call_id
        assert "tenant=***" in event["uri"]
    assert [orjson.loads(m.body)["event_type"] for m in messages] == ["request", "response", "result"]


async def test_only_debug_traces_and_failures_are_published(broker: Broker) -> None:
    queue = await _tap(broker)
    publisher = DebugPublisher(Settings(debug_exchange=broker[1]))
    await publisher.start(broker[0])
    publisher.record(make_trace(debug=False))  # a success without debug: nothing
    failed = make_trace(debug=False, status=502, outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS)
    publisher.record(failed)
    await publisher.stop()
    events = [orjson.loads(m.body) for m in await _drain(queue, 3)]
    assert {e["call_id"] for e in events} == {failed.call_id}
    assert all("resp_body" not in e and "req_body" not in e for e in events)
    assert await queue.get(fail=False) is None


async def test_a_full_buffer_drops_and_counts_without_blocking(broker: Broker) -> None:
    queue = await _tap(broker)
    publisher = DebugPublisher(Settings(debug_exchange=broker[1], debug_buffer=3))
    started = time.perf_counter()
    for _ in range(10):  # before start(): nothing drains the buffer yet
        publisher.record(make_trace())
    assert time.perf_counter() - started < 0.05
    assert (publisher.pending, publisher.dropped) == (3, 7)
    await publisher.start(broker[0])
    await publisher.stop()
    assert len(await _drain(queue, 9)) == 9
    assert publisher.dropped == 7


async def test_broker_refusal_is_dropped_and_counted(broker: Broker) -> None:
    # A queue that holds one message and refuses the rest: the broker nacks those publishes.
    await _tap(broker, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    publisher = DebugPublisher(Settings(debug_exchange=broker[1]))
    await publisher.start(broker[0])
    for _ in range(5):
        publisher.record(make_trace())
    await publisher.stop(timeout_s=5)
    assert publisher.published == 1
    assert publisher.dropped == 5  # every trace lost at least one event


async def test_unroutable_events_are_dropped_and_counted(broker: Broker) -> None:
    publisher = DebugPublisher(Settings(debug_exchange=broker[1]))  # no queue bound: no collector
    await publisher.start(broker[0])
    publisher.record(make_trace())
    await publisher.stop()
    assert (publisher.published, publisher.dropped) == (0, 1)


async def _settled(publisher: DebugPublisher, dropped: int, published: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (publisher.dropped, publisher.published) != (dropped, published):
        assert time.monotonic() < deadline, (publisher.dropped, publisher.published)
        await asyncio.sleep(0.02)


def _failed_request() -> PivotTrace:
    """A failed request with debug off: it still publishes (body-less) debug events."""
    return make_trace(debug=False, status=500, outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS)


async def test_no_collector_is_logged_once_not_for_every_failed_request(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    # `pivot-worker run --no-collector` with no pivot-collector: nothing is bound to the exchange,
    # and every failed request still produces a debug event.
    publisher = DebugPublisher(Settings(debug_exchange=broker[1]))
    await publisher.start(broker[0])
    with caplog.at_level(logging.WARNING, logger="pivot_worker.debug.publisher"):
        for n in range(1, 6):  # one at a time: each trace is its own publishing round
            publisher.record(_failed_request())
            await _settled(publisher, dropped=n, published=0)
        first_outage = [r.getMessage() for r in caplog.records]

        tap = await _tap(broker)  # a collector comes up: events are routed again ...
        routed = _failed_request()
        events = len(EventBuilder(Redactor(())).build(routed))
        publisher.record(routed)
        await _settled(publisher, dropped=5, published=events)
        await tap.delete(if_unused=False, if_empty=False)  # ... and goes away: one more warning
        for n in (6, 7):
            publisher.record(_failed_request())
            await _settled(publisher, dropped=n, published=events)
        await publisher.stop()
    assert len(first_outage) == 1, first_outage
    assert "no queue is bound to debug exchange" in first_outage[0]
    during = [r.getMessage() for r in caplog.records if "stopped" not in r.getMessage()]
    assert len(during) == 2, during
    assert all("no queue is bound" in m for m in during)
    assert (publisher.unroutable, publisher.dropped) == (7, 7)


async def test_record_costs_microseconds_and_never_raises(broker: Broker) -> None:
    await _tap(broker)
    publisher = DebugPublisher(Settings(debug_exchange=broker[1], debug_buffer=100_000))
    await publisher.start(broker[0])
    traces = [make_trace() for _ in range(2000)]
    started = time.perf_counter()
    for trace in traces:
        publisher.record(trace)
    per_call_us = (time.perf_counter() - started) / len(traces) * 1e6
    publisher.record(None)  # type: ignore[arg-type]  # garbage in: counted, not raised
    await publisher.stop(timeout_s=10)
    assert per_call_us < 50, per_call_us
    assert publisher.dropped == 1
    assert publisher.published == 3 * len(traces)
