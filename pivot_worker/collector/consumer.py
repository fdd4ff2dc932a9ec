"""Consuming debug events: validate, batch, store, then ack.

Messages are acked only after the batch that holds them is committed, so a collector killed at
any moment loses nothing: un-acked messages go back to the queue and are stored again, which
changes nothing because storage is idempotent. A message that is not a valid debug event is
rejected without requeue (it would fail the same way forever) and counted.

A database that is down is retried with backoff while the messages wait un-acked; an event the
database refuses on its own is rejected alone, never with its whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
import aio_pika.abc
import orjson
import sqlalchemy.exc as sa_exc

from ..contracts import check
from ..debug.routing import BINDING_KEY
from ..queues import declare_bounded
from .store import Store

logger = logging.getLogger(__name__)

SCHEMA_NAME = "debug_event"
MAX_BATCH = 200
MAX_WAIT_S = 0.05
RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0


def queue_name_for(exchange: str) -> str:
    """The durable queue shared by every collector of one debug exchange (``pivot`` -> ``pivot.debug``)."""
    return f"{exchange}.debug"


@dataclass
class ConsumerStats:
    received: int = 0
    stored: int = 0
    rejected: int = 0
    batches: int = 0
    write_retries: int = 0


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, OSError, TimeoutError))


def parse_event(body: bytes) -> dict[str, Any] | str:
    """The decoded event, or a sentence saying why the body is not a valid debug event."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"body is not JSON ({exc})"
    breach = check(SCHEMA_NAME, doc)
    if breach is not None:
        return breach.describe(SCHEMA_NAME)
    assert isinstance(doc, dict)  # the schema requires an object
    return doc


class EventConsumer:
    """Reads the collector queue into ``store`` in batches of up to ``max_batch`` or ``max_wait_s``."""

    def __init__(
        self,
        store: Store,
        connection: aio_pika.abc.AbstractRobustConnection,
        *,
        exchange: str,
        queue: str | None = None,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        queue_arguments: dict[str, Any] | None = None,
    ) -> None:
        """``queue_arguments``: the queue's bounds when it is created (see :mod:`pivot_worker.queues`)."""
        self.store = store
        self._queue_arguments = queue_arguments or {}
        self.stats = ConsumerStats()
        self._connection = connection
        self._exchange_name = exchange
        self._queue_name = queue or queue_name_for(exchange)
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._pending: list[tuple[aio_pika.abc.AbstractIncomingMessage, dict[str, Any]]] = []
        self._full = asyncio.Event()
        self._arrived = asyncio.Event()
        self._stopping = False
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._flusher: asyncio.Task[None] | None = None

    @property
    def queue_name(self) -> str:
        return self._queue_name

    @property
    def connected(self) -> bool:
        """True while the consumer's broker connection is open (for ``/healthz``)."""
        transport = self._connection.transport
        return not self._connection.is_closed and transport is not None and not transport.connection.is_closed

    async def start(self) -> None:
        """Declare the durable exchange, queue and binding, then start consuming."""
        await declare_bounded(self._connection, self._queue_name, self._queue_arguments)
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._max_batch * 2)
        exchange = await self._channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._queue = await self._channel.declare_queue(self._queue_name, durable=True, passive=True)
        await self._queue.bind(exchange, BINDING_KEY)
        self._flusher = asyncio.create_task(self._flush_loop(), name="pivot-collector-flush")
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self) -> None:
        """Stop taking messages, store and ack what is held, close the channel."""
        self._stopping = True
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._tag)
        self._full.set()
        self._arrived.set()
        if self._flusher is not None:
            await self._flusher
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        # No await before the append: batches keep delivery order, which multiple-acks rely on.
        self.stats.received += 1
        parsed = parse_event(message.body)
        if isinstance(parsed, str):
            self.stats.rejected += 1
            logger.warning("rejecting debug message %s: %s", message.message_id, parsed)
            await message.reject(requeue=False)
            return
        self._pending.append((message, parsed))
        self._arrived.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()

    async def _flush_loop(self) -> None:
        """Write a batch when it is full, or ``max_wait_s`` after its first message arrived."""
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._pending) < self._max_batch and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_wait_s)
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            if len(self._pending) < self._max_batch:
                self._full.clear()
            await self._store_batch(batch)

    async def _store_batch(
        self, batch: list[tuple[aio_pika.abc.AbstractIncomingMessage, dict[str, Any]]]
    ) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                await self.store.write([event for _, event in batch])
            except Exception as exc:
                if not _transient(exc):
                    await self._store_one_by_one(batch)
                    return
                if self._stopping:
                    logger.warning(
                        "database unavailable at shutdown, returning %d events: %s", len(batch), exc
                    )
                    await self._settle(batch, ack=False)
                    return
                self.stats.write_retries += 1
                logger.warning("debug store write failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.stats.stored += len(batch)
            self.stats.batches += 1
            await self._settle(batch, ack=True)
            return

    async def _store_one_by_one(
        self, batch: list[tuple[aio_pika.abc.AbstractIncomingMessage, dict[str, Any]]]
    ) -> None:
        for message, event in batch:
            try:
                await self.store.write([event])
            except Exception as exc:
                if _transient(exc):
                    await self._settle([(message, event)], ack=False)
                    continue
                self.stats.rejected += 1
                logger.error("database refused debug event %s: %s", event.get("event_id"), exc)
                with contextlib.suppress(Exception):
                    await message.reject(requeue=False)
                continue
            self.stats.stored += 1
            await self._settle([(message, event)], ack=True)

    async def _settle(
        self, batch: list[tuple[aio_pika.abc.AbstractIncomingMessage, dict[str, Any]]], *, ack: bool
    ) -> None:
        """Ack (or requeue) a batch: one multiple-ack per channel, up to its highest delivery tag."""
        try:
            if ack:
                last: dict[int, aio_pika.abc.AbstractIncomingMessage] = {}
                for message, _ in batch:
                    prev = last.get(id(message.channel))
                    if prev is None or (message.delivery_tag or 0) > (prev.delivery_tag or 0):
                        last[id(message.channel)] = message
                for message in last.values():
                    await message.ack(multiple=True)
            else:
                for message, _ in batch:
                    await message.nack(requeue=True)
        except Exception as exc:  # channel lost: the broker redelivers, storage deduplicates
            logger.warning(
                "could not settle %d debug messages (they will be redelivered): %s", len(batch), exc
            )
