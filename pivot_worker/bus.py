"""The worker's side of RabbitMQ: Kazoo's exchanges, our shared queue, and the replies we publish.

Topology (declared on every (re)connect; idempotent):

* exchanges ``callmgr`` (topic), ``targeted`` (direct), ``callevt`` (topic), declared exactly as
  Kazoo declares them (non-durable, not auto-delete) so both can coexist on one broker;
* our queue (``PIVOT_QUEUE``, default ``pivot_worker``): durable, shared by every worker (competing
  consumers), bound to ``callmgr`` with ``pivot.req.*``, no length limit. Kazoo's own
  ``pivot_listener`` is auto-delete with ``x-max-length 100`` (drop-head), which silently loses
  calls in a burst; that is why we do not reuse it;
* ``<queue>.dead``: durable, where unusable messages go with the reason in a header.

With ``PIVOT_QUEUE_TYPE=quorum`` the work queue is a quorum queue (replicated, persistent even for
Kazoo's transient messages) with a delivery limit, past which the broker dead-letters a request to
``<queue>.dead`` by itself.

Replies and the request's ack are committed together in one AMQP transaction on the consuming
channel (:mod:`pivot_worker.txbatch`), ``mandatory``: an unroutable reply (the requester's queue not
there, e.g. while Kazoo reconnects after a broker restart) is reported instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    DeliveryMode,
    ExchangeType,
)
from pamqp.commands import Basic

from . import names
from .errors import Reason
from .replies import Reply
from .settings import Settings
from .txbatch import ReturnWatch, TxBatcher, watch_return

JSON = "application/json"
TRANSIENT = 1  # AMQP delivery mode
Properties = Basic.Properties


class Bus:
    """Declared exchanges and queues on one channel, plus the publishing helpers."""

    def __init__(
        self,
        settings: Settings,
        channel: AbstractChannel,
        tx: TxBatcher,
        *,
        private_binding: str | None = None,
    ) -> None:
        """``private_binding``: instead of the shared durable queue bound with ``pivot.req.*``, an
        exclusive queue bound with that key only (the simulator's embedded worker)."""
        self.settings = settings
        self.channel = channel
        self.tx = tx
        self.private_binding = private_binding
        self.queue: AbstractQueue | None = None

    @property
    def dead_queue_name(self) -> str:
        return f"{self.settings.queue}.dead"

    async def declare(self) -> AbstractQueue:
        ch = self.channel
        callmgr = await ch.declare_exchange(
            names.EXCHANGE_CALLMGR, ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        await ch.declare_exchange(
            names.EXCHANGE_TARGETED, ExchangeType.DIRECT, durable=False, auto_delete=False
        )
        await ch.declare_exchange(
            names.EXCHANGE_CALLEVT, ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        if self.private_binding is not None:
            queue = await ch.declare_queue(self.settings.queue, exclusive=True)
            await queue.bind(callmgr, self.private_binding)
            self.queue = queue
            return queue
        await ch.declare_queue(self.dead_queue_name, durable=True, passive=True)  # made by the link
        queue = await ch.declare_queue(self.settings.queue, durable=True, arguments=self.queue_arguments())
        await queue.bind(callmgr, names.PIVOT_REQ_BINDING)
        self.queue = queue
        return queue

    def queue_arguments(self) -> dict[str, Any] | None:
        if self.settings.queue_type != "quorum":
            return None
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.settings.max_deliveries,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dead_queue_name,
        }

    async def commit(
        self,
        replies: Sequence[Reply],
        *,
        ack: int | None = None,
        requeue: int | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> list[Reply]:
        """Publish ``replies`` (in order), the dead-letter copy and the ack (or requeue) in one
        transaction; returns the replies the broker could not route (``mandatory``).

        Straight through the channel's AMQP layer: building aio-pika ``Message`` objects cost
        ~20 us per reply in profiles, and replies need none of their features. Transient (like
        Kazoo's own), ``Msg-ID`` as the AMQP message id.
        """
        channel: Any = await self.channel.get_underlay_channel()  # aiormq's: ``wait=False`` is there
        watches: list[ReturnWatch] = []

        async def write() -> None:
            for reply in replies:
                message_id = reply.body["Msg-ID"]
                watches.append(watch_return(channel, message_id))
                properties = Properties(
                    content_type=JSON,
                    delivery_mode=TRANSIENT,
                    headers=reply.headers or None,
                    message_id=message_id,
                )
                await channel.basic_publish(
                    orjson.dumps(reply.body),
                    exchange=reply.exchange,
                    routing_key=reply.routing_key,
                    properties=properties,
                    mandatory=True,
                    wait=False,
                )
            if dead_letter is not None:
                await self._write_dead_letter(channel, dead_letter)
            if ack is not None:
                await channel.basic_ack(ack, wait=False)
            if requeue is not None:
                await channel.basic_nack(requeue, requeue=True, wait=False)

        try:
            await self.tx.commit(write)
            return [reply for reply, watch in zip(replies, watches, strict=True) if watch.returned]
        finally:
            for watch in watches:
                watch.close()

    async def _write_dead_letter(self, channel: Any, dead: DeadLetter) -> None:
        """Copy the message to ``<queue>.dead`` with why it was refused (persistent)."""
        message = dead.message
        headers: dict[str, Any] = dict(message.headers or {})
        headers[names.HEADER_DEAD_REASON] = dead.reason.value
        headers[names.HEADER_DEAD_DETAIL] = dead.detail[:1000]
        headers["x-pivot-original-exchange"] = message.exchange or ""
        headers["x-pivot-original-routing-key"] = message.routing_key or ""
        properties = Properties(
            content_type=message.content_type, headers=headers, delivery_mode=DeliveryMode.PERSISTENT
        )
        await channel.basic_publish(
            message.body, exchange="", routing_key=self.dead_queue_name, properties=properties, wait=False
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message to copy to ``<queue>.dead``, and why."""

    message: AbstractIncomingMessage
    reason: Reason
    detail: str
