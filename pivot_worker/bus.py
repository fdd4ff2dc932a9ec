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

Replies go through a confirm channel, ``mandatory``, and are awaited: an unroutable reply (the
requester's queue not there, e.g. while Kazoo reconnects after a broker restart) raises
:class:`~aiormq.exceptions.PublishError` instead of vanishing.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    DeliveryMode,
    ExchangeType,
)
from aio_pika.exceptions import DeliveryError
from pamqp.commands import Basic

from . import names
from .errors import Reason
from .replies import Reply
from .settings import Settings

JSON = "application/json"
TRANSIENT = 1  # AMQP delivery mode
Properties = Basic.Properties


class Bus:
    """Declared exchanges and queues on one channel, plus the publishing helpers."""

    def __init__(self, settings: Settings, channel: AbstractChannel) -> None:
        self.settings = settings
        self.channel = channel
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
        await ch.declare_queue(self.dead_queue_name, durable=True)
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

    async def publish_reply(self, reply: Reply) -> None:
        await self._publish(reply.exchange, reply.routing_key, reply.body, reply.headers, mandatory=True)

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: dict[str, Any],
        headers: dict[str, Any],
        *,
        mandatory: bool = False,
    ) -> None:
        """Publish a reply and wait for the broker's confirm.

        Straight through the channel's AMQP layer: building aio-pika ``Message`` objects cost
        ~20 us per reply in profiles, and replies need none of their features. Transient (like
        Kazoo's own), ``Msg-ID`` as the AMQP message id. A nack raises.
        """
        channel = await self.channel.get_underlay_channel()
        properties = Properties(
            content_type=JSON,
            delivery_mode=TRANSIENT,
            headers=headers or None,
            message_id=body["Msg-ID"],
        )
        confirmation = await channel.basic_publish(
            orjson.dumps(body),
            exchange=exchange,
            routing_key=routing_key,
            properties=properties,
            mandatory=mandatory,
        )
        if confirmation is not None and not isinstance(confirmation, Basic.Ack):
            raise DeliveryError(None, confirmation)

    async def dead_letter(self, message: AbstractIncomingMessage, reason: Reason, detail: str) -> None:
        """Copy ``message`` to ``<queue>.dead`` with why it was refused; the caller then acks it."""
        headers: dict[str, Any] = dict(message.headers or {})
        headers[names.HEADER_DEAD_REASON] = reason.value
        headers[names.HEADER_DEAD_DETAIL] = detail[:1000]
        headers["x-pivot-original-exchange"] = message.exchange or ""
        headers["x-pivot-original-routing-key"] = message.routing_key or ""
        copy = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            headers=headers,
            delivery_mode=DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(copy, routing_key=self.dead_queue_name)
