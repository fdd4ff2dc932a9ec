"""The worker process: consume pivot_req, serve each in its own task, reply, ack; drain on shutdown.

Ack policy: an input is acked only after every output it caused was confirmed by the broker. If
the channel dies first, the broker redelivers the input (to this worker after reconnecting, or to
another one), so a crash or SIGKILL loses nothing. Shutdown: stop consuming, requeue whatever
still arrives, wait up to ``PIVOT_SHUTDOWN_GRACE_S`` for in-flight requests, then cancel the rest,
which requeue themselves; finally one summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from . import amqp_compat, callflow
from .bus import Bus
from .debug import DebugPublisher
from .errors import Reason
from .fetch import Fetcher
from .logs import LIFECYCLE
from .metrics import WorkerMetrics
from .pipeline import Decision, Pipeline
from .settings import Settings, redact_url
from .trace import DebugSink, NullDebugSink, Outcome

logger = logging.getLogger(__name__)
request_log = logging.getLogger("pivot_worker.requests")
lifecycle_log = logging.getLogger(LIFECYCLE)

# aio-pika waits 5 s between reconnect attempts by default; a caller cannot wait that long.
RECONNECT_INTERVAL_S = 0.5


class Worker:
    """One consumer on the shared queue; run several processes to scale out."""

    def __init__(self, settings: Settings, *, sink: DebugSink | None = None) -> None:
        """``sink`` receives every finished trace; by default a :class:`DebugPublisher` on the bus."""
        amqp_compat.install()
        self.settings = settings
        self.fetcher = Fetcher(settings)
        self.pipeline = Pipeline(settings, self.fetcher)
        self._publisher = DebugPublisher(settings) if sink is None else None
        self.sink: DebugSink = self._publisher if self._publisher is not None else sink or NullDebugSink()
        self.counts: Counter[str] = Counter()
        self.metrics = WorkerMetrics()
        self.connection: AbstractRobustConnection | None = None
        self._bus: Bus | None = None
        self._consumer_tag: str | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def start(self) -> None:
        """Connect, declare, open the HTTP client and start consuming."""
        if not self.settings.continuation_key:
            logger.warning(
                "PIVOT_CONTINUATION_KEY is not set: TwiML continuation tokens are signed with a key "
                "derived from PIVOT_AMQP_URL; set a shared secret for production"
            )
        callflow.prepare()  # compile every schema now, not on the first call that needs it
        self.connection = await aio_pika.connect_robust(
            self.settings.amqp_url,
            client_properties={"connection_name": f"pivot-worker {self.settings.node}"},
        )
        channel = await self.connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.settings.prefetch)
        self._bus = Bus(self.settings, channel)
        queue = await self._bus.declare()
        await self.fetcher.start()
        if self._publisher is not None:
            await self._publisher.start(self.connection)
            publisher = self._publisher
            self.metrics.watch_debug_drops(lambda: publisher.dropped)
        self.metrics.watch_translation_memo(self.pipeline.translations)
        if self.settings.metrics_listen:
            self.metrics.serve(self.settings.metrics_listen)
        self._consumer_tag = await queue.consume(self._on_message)
        lifecycle_log.info(
            "consuming %s on %s (prefetch %d, node %s)",
            self.settings.queue,
            redact_url(self.settings.amqp_url),
            self.settings.prefetch,
            self.settings.node,
        )

    async def stop(self, why: str = "stop") -> None:
        """Stop consuming, drain in-flight requests within the grace period, requeue the rest, close."""
        self._stopping = True
        bus = self._bus
        if bus is not None and bus.queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await bus.queue.cancel(self._consumer_tag)
        pending = set(self._inflight)
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
        await self.fetcher.close()
        if self._publisher is not None:
            await self._publisher.stop()
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
        c = self.counts
        lifecycle_log.info(
            "shutdown on %s: %d ok, %d failed, %d dead-lettered, %d requeued, %d in flight",
            why,
            c["success"],
            c["failed"],
            c["dead_lettered"],
            c["requeued"],
            len([t for t in self._inflight if not t.done()]),
        )

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            await self._requeue(message)
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            decision = await self.pipeline.handle(message.body, message.timestamp)
            publish_started = time.perf_counter()
            await self._reply(message, decision)
            self.metrics.publish_latency.observe(time.perf_counter() - publish_started)
            await self._ack(message)
        except asyncio.CancelledError:
            await self._requeue(message)
            raise
        except Exception as exc:  # the broker connection failed under us: the input comes back
            logger.warning(
                "reply for delivery %s not confirmed (%s: %s); it will be redelivered",
                message.delivery_tag,
                type(exc).__name__,
                exc,
            )
            await self._requeue(message)
            return
        finally:
            self.metrics.in_flight.dec()
            if task is not None:
                self._inflight.discard(task)
        self.counts[decision.outcome.value] += 1
        reason = decision.reason.value if decision.reason else ""
        self.metrics.observe(decision.outcome.value, reason, time.perf_counter() - started, decision.trace)
        self._log(decision, started)
        if decision.trace is not None:
            self.sink.record(decision.trace)

    async def _reply(self, message: AbstractIncomingMessage, decision: Decision) -> None:
        bus = self._bus
        assert bus is not None
        if decision.call_id is not None and decision.controller_queue is not None:
            if decision.outcome is Outcome.SUCCESS and decision.flow is not None:
                await bus.publish_success(decision.call_id, decision.controller_queue, decision.flow)
            else:
                await bus.publish_failed(
                    decision.call_id, decision.controller_queue, decision.reason or Reason.INTERNAL_ERROR
                )
        if decision.dead_letter:
            await bus.dead_letter(message, decision.reason or Reason.INVALID_REQUEST, decision.message)

    @staticmethod
    async def _ack(message: AbstractIncomingMessage) -> None:
        """Ack without waiting for the frame to reach the socket (aio-pika's ``ack`` waits).

        Nothing is gained by waiting: written or not, an ack the broker never reads means the
        request comes back, exactly as if the connection had dropped just after the write.
        """
        assert message.delivery_tag is not None  # consumed with acks, so always set
        await message.channel.basic_ack(message.delivery_tag, wait=False)

    async def _requeue(self, message: AbstractIncomingMessage) -> None:
        self.counts["requeued"] += 1
        with contextlib.suppress(Exception):
            await asyncio.shield(message.nack(requeue=True))

    def _log(self, decision: Decision, started: float) -> None:
        if not request_log.isEnabledFor(logging.INFO):
            return
        trace = decision.trace
        request_log.info(
            "call_id=%s outcome=%s reason=%s status=%s attempts=%d ms=%.1f%s",
            decision.call_id or "-",
            decision.outcome.value,
            decision.reason.value if decision.reason else "-",
            _last_status(decision),
            trace.attempts if trace is not None else 0,
            (time.perf_counter() - started) * 1000.0,
            f" error={decision.message[:300]!r}" if decision.reason is not None else "",
        )


def _last_status(decision: Decision) -> str:
    trace = decision.trace
    if trace is None or not trace.exchanges or trace.exchanges[-1].status is None:
        return "-"
    return str(trace.exchanges[-1].status)
