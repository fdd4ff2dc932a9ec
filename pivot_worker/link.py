"""The worker's connection to the broker: one *epoch* per connection, rebuilt whenever it breaks.

Each epoch has one channel, in transaction mode, that both consumes and replies (replies and acks
commit together: :mod:`pivot_worker.txbatch`).

aio-pika's robust connection hides reconnects, reconnects to one URL only and, by default, waits
5 s between attempts; a caller cannot wait that long, and a delivery tag from a dead channel must
never be acked on the new one (the broker closes a channel that acks an unknown tag: the worker
would stop consuming while looking alive). So the link is explicit:

* every connection is an :class:`Epoch` (connection, confirm channel, declared topology, consumer);
  a message belongs to the epoch that delivered it and is acked only while that epoch lives;
* when the connection, the channel or the consumer goes away, the link tries every broker URL in
  turn (``PIVOT_AMQP_URL`` may list several, comma-separated, as Kazoo's ``amqp_uri`` does), with
  :data:`RETRY_INTERVAL_S` between rounds, so it is back within that time of a broker accepting;
* if no epoch can be built for ``PIVOT_RECONNECT_GIVE_UP_S``, or the broker refuses our topology
  (a queue declared with other arguments), :attr:`BrokerLink.fatal` is set with the reason and the
  process exits non-zero so its supervisor restarts it (or an operator reads why).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from .bus import Bus
from .logs import LIFECYCLE
from .queues import bounds, declare_bounded
from .settings import Settings, redact_url
from .txbatch import TxBatcher

logger = logging.getLogger(__name__)
lifecycle_log = logging.getLogger(LIFECYCLE)

RETRY_INTERVAL_S = 0.25
CONNECT_TIMEOUT_S = 3.0
WATCH_INTERVAL_S = 0.5
REPORT_EVERY_S = 5.0  # while reconnecting, one warning this often (the client libraries are muted)

OnMessage = Callable[[AbstractIncomingMessage, "Epoch"], Coroutine[Any, Any, None]]


class TopologyRefused(RuntimeError):
    """The broker refused to declare our queue as configured: retrying cannot help."""


@dataclass(eq=False)
class Epoch:
    """One live connection with its channel, declared topology and consumer."""

    number: int
    url: str
    connection: AbstractConnection
    channel: AbstractChannel
    bus: Bus
    consumer_tag: str = ""
    broken: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alive(self) -> bool:
        return not self.broken.is_set() and not self.channel.is_closed

    def consuming(self) -> bool:
        underlay: Any = cast(aio_pika.Channel, self.channel).channel  # aiormq's; raises once closed
        return self.consumer_tag in underlay.consumers

    async def close(self) -> None:
        self.broken.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), 2.0)


class BrokerLink:
    def __init__(
        self, settings: Settings, on_message: OnMessage, *, private_binding: str | None = None
    ) -> None:
        self.settings = settings
        self.private_binding = private_binding
        self.urls = settings.amqp_urls
        self._on_message = on_message
        self._numbers = itertools.count(1)
        self._next_url = 0
        self.epoch: Epoch | None = None
        self.ready = asyncio.Event()
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()
        self._consuming = True

    async def start(self) -> None:
        """Connect (trying every URL for up to the give-up time) and start the supervising task."""
        epoch = await self._connect_any()
        if epoch is None:
            raise ConnectionError(self.fatal_reason)
        self._install(epoch)
        self._task = asyncio.create_task(self._supervise(), name="pivot-broker-link")

    async def stop_consuming(self) -> None:
        """Cancel the consumer (for shutdown); the connection stays up for replies."""
        self._consuming = False
        epoch = self.epoch
        if epoch is not None and epoch.alive and epoch.bus.queue is not None and epoch.consumer_tag:
            with contextlib.suppress(Exception):
                await epoch.bus.queue.cancel(epoch.consumer_tag)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.epoch is not None:
            await self.epoch.close()
            self.epoch = None
        self.ready.clear()

    async def wait_ready(self, until: float) -> Epoch | None:
        """The live epoch, waiting for a reconnect until Unix time ``until``; ``None`` if none by then."""
        while True:
            epoch = self.epoch
            if epoch is not None and epoch.alive:
                return epoch
            remaining = until - time.time()
            if remaining <= 0 or self.fatal.is_set():
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), min(remaining, 1.0))

    def _install(self, epoch: Epoch) -> None:
        self.epoch = epoch
        self.ready.set()

    async def _supervise(self) -> None:
        while True:
            epoch = self.epoch
            assert epoch is not None
            await self._watch(epoch)
            self.ready.clear()
            self.epoch = None
            logger.warning(
                "broker connection %d to %s lost; reconnecting", epoch.number, redact_url(epoch.url)
            )
            await epoch.close()
            started = time.monotonic()
            new = await self._connect_any()
            if new is None:
                return
            self.reconnects += 1
            lifecycle_log.info(
                "reconnected to %s in %.0f ms (connection %d)",
                redact_url(new.url),
                (time.monotonic() - started) * 1000,
                new.number,
            )
            self._install(new)

    async def _watch(self, epoch: Epoch) -> None:
        """Return when the epoch's connection, channel or consumer is gone."""
        while not epoch.broken.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(epoch.broken.wait(), WATCH_INTERVAL_S)
            try:
                if epoch.channel.is_closed or (self._consuming and not epoch.consuming()):
                    epoch.broken.set()
            except Exception:  # aiormq raises on a closed channel's attributes
                epoch.broken.set()

    async def _connect_any(self) -> Epoch | None:
        give_up_at = time.monotonic() + self.settings.reconnect_give_up_s
        next_report = time.monotonic() + REPORT_EVERY_S
        last_error = "no broker URL"
        while True:
            for _ in range(len(self.urls)):
                url = self.urls[self._next_url % len(self.urls)]
                try:
                    return await self._connect(url)
                except TopologyRefused as exc:
                    self._give_up(str(exc))
                    return None
                except Exception as exc:  # unreachable, refused, closed mid-way: try the next URL
                    last_error = f"{redact_url(url)}: {type(exc).__name__}: {exc}"
                    logger.debug("broker connect failed: %s", last_error)
                    self._next_url += 1
            now = time.monotonic()
            if now >= next_report:
                next_report = now + REPORT_EVERY_S
                logger.warning("still no broker connection; last error %s", last_error)
            if now >= give_up_at:
                self._give_up(
                    f"no broker reachable for {self.settings.reconnect_give_up_s:g} s "
                    f"(PIVOT_RECONNECT_GIVE_UP_S); last error {last_error}"
                )
                return None
            await asyncio.sleep(RETRY_INTERVAL_S)

    def _give_up(self, reason: str) -> None:
        self.fatal_reason = reason
        self.fatal.set()
        logger.error("giving up on the broker: %s", reason)

    async def _connect(self, url: str) -> Epoch:
        number = next(self._numbers)
        connection = await aio_pika.connect(
            url,
            timeout=CONNECT_TIMEOUT_S,
            client_properties={"connection_name": f"pivot-worker {self.settings.node}"},
        )
        try:
            if self.private_binding is None:
                dead_bounds = bounds(self.settings.dead_letter_max_length, self.settings.dead_letter_ttl_s)
                await declare_bounded(connection, f"{self.settings.queue}.dead", dead_bounds)
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            underlay = await channel.get_underlay_channel()
            await underlay.tx_select()
            bus = Bus(self.settings, channel, TxBatcher(underlay), private_binding=self.private_binding)
            try:
                queue = await bus.declare()
            except (ChannelPreconditionFailed, ChannelAccessRefused) as exc:
                raise TopologyRefused(
                    f"the broker refused to declare queue {self.settings.queue!r} as configured "
                    f"(PIVOT_QUEUE_TYPE={self.settings.queue_type}): {exc}. A queue's type and "
                    "arguments cannot change in place: see the README, 'Queue type and bounds'"
                ) from exc
            epoch = Epoch(number, url, connection, channel, bus)
            connection.close_callbacks.add(lambda *_: epoch.broken.set())
            channel.close_callbacks.add(lambda *_: epoch.broken.set())

            async def deliver(message: AbstractIncomingMessage) -> None:
                # A task of our own: aio-pika cancels its consumer tasks when the channel closes,
                # and a request whose replies could not be committed must outlive its connection.
                task = asyncio.create_task(self._on_message(message, epoch))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)

            if self._consuming:
                epoch.consumer_tag = await queue.consume(deliver)
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        return epoch
