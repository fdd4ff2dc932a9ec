"""The orchestrator's own AMQP connection: waits for consumers, counts results, removes queues.

Counting is done by polling queue depths (``queue.declare`` with ``passive``), not by consuming,
so the measured processes pay nothing for it: a throughput run ends when the sink queue bound to
``callevt`` holds N ``CHANNEL_PIVOT`` events. Sink and reply queues are exclusive to this
connection, so the broker removes them even if the orchestrator dies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity


class BrokerControl:
    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    async def connect(self) -> None:
        self.connection = await aio_pika.connect(
            self.amqp_url, client_properties={"connection_name": "pivot bench control"}
        )
        self._channel = await self.connection.channel()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def channel(self) -> AbstractChannel:
        """The control channel, reopened if a failed passive declare closed it."""
        assert self.connection is not None
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel()
        return self._channel

    async def depth(self, name: str) -> tuple[int, int] | None:
        """``(ready messages, consumers)`` of queue ``name``, or ``None`` if it does not exist."""
        channel = await self.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            return None
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0

    async def wait_consumers(
        self, name: str, count: int, timeout_s: float, still_running: Callable[[], str | None]
    ) -> None:
        """Wait until ``count`` consumers are on ``name``; fail early if a child has exited."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            state = await self.depth(name)
            if state is not None and state[1] >= count:
                return
            problem = still_running()
            if problem is not None:
                raise RuntimeError(problem)
            if loop.time() > deadline:
                have = state[1] if state else 0
                raise RuntimeError(f"queue {name!r} has {have} of {count} consumers after {timeout_s:.0f} s")
            await asyncio.sleep(0.05)

    async def counting_queues(self, sink: str, replies: str) -> None:
        """``sink`` collects every ``CHANNEL_PIVOT``; ``replies`` the targeted replies to this run."""
        channel = await self.channel()
        callevt = await channel.declare_exchange("callevt", aio_pika.ExchangeType.TOPIC, durable=False)
        targeted = await channel.declare_exchange("targeted", aio_pika.ExchangeType.DIRECT, durable=False)
        sink_queue = await channel.declare_queue(sink, exclusive=True, auto_delete=False)
        await sink_queue.bind(callevt, "call.CHANNEL_PIVOT.*")
        replies_queue = await channel.declare_queue(replies, exclusive=True, auto_delete=False)
        await replies_queue.bind(targeted, replies)

    async def drain_events(self, name: str, idle_s: float = 0.5) -> list[dict[str, object]]:
        """Consume what ``name`` holds (only after a measurement) and return the decoded bodies."""
        channel = await self.channel()
        await channel.set_qos(prefetch_count=1000)
        queue: AbstractQueue = await channel.declare_queue(name, passive=True)
        bodies: list[dict[str, object]] = []
        arrived = asyncio.Event()

        async def take(message: AbstractIncomingMessage) -> None:
            with contextlib.suppress(orjson.JSONDecodeError):
                bodies.append(orjson.loads(message.body))
            arrived.set()

        tag = await queue.consume(take, no_ack=True)
        try:
            while True:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), idle_s)
                except TimeoutError:
                    return bodies
        finally:
            await queue.cancel(tag)

    async def delete_exchange(self, name: str) -> None:
        channel = await self.channel()
        with contextlib.suppress(ChannelNotFoundEntity):
            await channel.exchange_delete(name)

    async def delete(self, *names: str) -> None:
        for name in names:
            channel = await self.channel()
            with contextlib.suppress(ChannelNotFoundEntity):
                await channel.queue_delete(name)
