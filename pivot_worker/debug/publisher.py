"""The non-blocking debug-event publisher: the worker's :class:`~pivot_worker.trace.DebugSink`.

The call path only appends a finished trace to a bounded buffer (:meth:`DebugPublisher.record`);
a background task redacts, serialises and publishes the events with publisher confirms. When the
buffer is full, or the broker refuses, returns or stalls a publish, the trace is dropped and
counted (:attr:`DebugPublisher.dropped`): a debug event is never worth a caller's silence.

Events are published ``mandatory``, so the broker says when no queue is bound to the exchange (no
collector runs, e.g. every worker started with ``--no-collector`` and no ``pivot-collector``): such
traces are counted in :attr:`DebugPublisher.unroutable` as well, and logged once, not once per call,
until an event is routed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import aio_pika
import aio_pika.abc
import orjson
from aio_pika.exceptions import PublishError
from pamqp.commands import Basic

from .. import PRODUCT
from ..settings import Settings
from ..trace import PivotTrace
from .events import Event, EventBuilder, should_keep
from .redact import Redactor
from .routing import debug_routing_key

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "pivot.debug_event"
MAX_TRACES_PER_ROUND = 100
PUBLISH_TIMEOUT_S = 5.0
NO_ROUTE = 312  # AMQP reply code of a returned mandatory message that matched no binding


class DebugPublisher:
    """Implements ``DebugSink``: ``record()`` never blocks and never raises."""

    def __init__(self, settings: Settings, *, builder: EventBuilder | None = None) -> None:
        self._settings = settings
        self._builder = builder or EventBuilder(Redactor(settings.redact_params))
        self._capacity = settings.debug_buffer
        self._buffer: deque[PivotTrace] = deque()
        self._wakeup = asyncio.Event()
        self._dropped = 0
        self._published = 0
        self._unroutable = 0
        self._unroutable_logged = False
        self._closing = False
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """Traces that were kept but whose events did not all reach the broker."""
        return self._dropped

    @property
    def published(self) -> int:
        """Events confirmed by the broker."""
        return self._published

    @property
    def unroutable(self) -> int:
        """Traces dropped (and counted in :attr:`dropped`) because no queue was bound to the exchange."""
        return self._unroutable

    @property
    def pending(self) -> int:
        """Traces waiting in the buffer."""
        return len(self._buffer)

    @property
    def has_channel(self) -> bool:
        """True while the publisher's channel is open (for the worker's ``/readyz``)."""
        return self._channel is not None and not self._channel.is_closed

    async def start(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        """Open an own confirm channel, declare the durable topic exchange, start publishing."""
        if self._task is not None:
            raise RuntimeError("DebugPublisher.start() was called twice")
        self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._channel.declare_exchange(
            self._settings.debug_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._task = asyncio.create_task(self._run(), name="pivot-debug-publisher")

    def record(self, trace: PivotTrace) -> None:
        try:
            if not should_keep(trace):
                return
            if self._closing or len(self._buffer) >= self._capacity:
                self._dropped += 1
                return
            self._buffer.append(trace)
            self._wakeup.set()
        except Exception:  # a sink must never fail the call path
            self._dropped += 1
            logger.debug("debug trace dropped while recording", exc_info=True)

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Publish what is buffered within ``timeout_s``, drop (and count) the rest, close the channel."""
        self._closing = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._buffer:
            self._dropped += len(self._buffer)
            self._buffer.clear()
        if self._channel is not None:
            channel, self._channel = self._channel, None
            with contextlib.suppress(Exception):
                await channel.close()
        if self._dropped:
            logger.warning(
                "debug publisher stopped: %d events published, %d traces dropped (%d: no collector bound)",
                self._published,
                self._dropped,
                self._unroutable,
            )

    async def _run(self) -> None:
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), MAX_TRACES_PER_ROUND))]
            await self._publish_traces(batch)

    async def _publish_traces(self, traces: list[PivotTrace]) -> None:
        jobs = []
        for trace in traces:
            try:
                events = self._builder.build(trace)
            except Exception:
                self._dropped += 1
                logger.exception("could not build debug events for call %s", trace.call_id)
                continue
            jobs.append(self._publish_trace(trace, events))
        await asyncio.gather(*jobs)

    async def _publish_trace(self, trace: PivotTrace, events: list[Event]) -> None:
        key = debug_routing_key(trace.account_id)
        results = await asyncio.gather(*(self._publish(e, key) for e in events), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        self._published += len(results) - len(failures)
        if len(failures) < len(results):
            self._unroutable_logged = False  # something is bound again: warn if it goes away
        if failures and all(_unroutable(f) for f in failures):
            self._dropped += 1
            self._unroutable += 1
            if not self._unroutable_logged:
                self._unroutable_logged = True
                logger.warning(
                    "no queue is bound to debug exchange %r (no collector running?): debug events are "
                    "dropped and counted from now on, without a warning for each",
                    self._settings.debug_exchange,
                )
        elif failures:
            self._dropped += 1
            logger.warning(
                "debug events for call %s dropped (%d of %d): %r",
                trace.call_id,
                len(failures),
                len(results),
                failures[0],
            )

    async def _publish(self, event: Event, routing_key: str) -> None:
        exchange = self._exchange
        if exchange is None:
            raise RuntimeError("debug exchange is not declared")
        message = aio_pika.Message(
            body=orjson.dumps(event),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(event["event_id"]),
            type=MESSAGE_TYPE,
            app_id=PRODUCT,
        )
        await exchange.publish(message, routing_key, mandatory=True, timeout=PUBLISH_TIMEOUT_S)


def _unroutable(error: BaseException) -> bool:
    """Whether ``error`` is the broker returning a mandatory publish that no queue was bound for."""
    if not isinstance(error, PublishError):
        return False
    delivery = getattr(error.message, "delivery", None)
    return isinstance(delivery, Basic.Return) and delivery.reply_code == NO_ROUTE
