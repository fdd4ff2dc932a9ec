"""Bounded queues on a real broker: bounds on a new queue, and an old unbounded queue left working."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from pivot_worker.queues import bounds, declare_bounded

pytestmark = pytest.mark.rabbit


def test_bounds_leave_out_what_is_zero() -> None:
    assert bounds(10, 2.5) == {"x-max-length": 10, "x-message-ttl": 2500}
    assert bounds(0, 0) == {}


async def test_a_new_queue_gets_its_bounds_and_an_old_one_keeps_working(
    amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await aio_pika.connect(amqp_url)
    bounded, old = f"pivot_bounded_{uuid.uuid4().hex[:8]}", f"pivot_old_{uuid.uuid4().hex[:8]}"
    try:
        assert await declare_bounded(connection, bounded, bounds(3, 0))
        assert await declare_bounded(connection, bounded, bounds(3, 0))  # again: same arguments
        channel = await connection.channel()
        for n in range(5):
            await channel.default_exchange.publish(aio_pika.Message(str(n).encode()), routing_key=bounded)
        queue = await channel.declare_queue(bounded, durable=True, passive=True)
        assert queue.declaration_result.message_count == 3  # the oldest two were dropped

        await channel.declare_queue(old, durable=True)  # as an older version declared it
        assert not await declare_bounded(connection, old, bounds(3, 60))
        assert any("exists with other arguments" in r.getMessage() for r in caplog.records)
        assert (await channel.declare_queue(old, durable=True, passive=True)).name == old  # still usable
    finally:
        cleanup = await connection.channel()
        for name in (bounded, old):
            await cleanup.queue_delete(name)
        await connection.close()
