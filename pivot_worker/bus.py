"""The worker's side of RabbitMQ: Kazoo's exchanges, our shared queue, and the replies we publish.

Topology (declared on every (re)connect; idempotent):

* exchanges ``callmgr`` (topic), ``targeted`` (direct), ``callevt`` (topic), declared exactly as
  Kazoo declares them (non-durable, not auto-delete) so both can coexist on one broker;
* our queue (``PIVOT_QUEUE``, default ``pivot_worker``): durable, shared by every worker (competing
  consumers), bound to ``callmgr`` with ``pivot.req.*``, no length limit. Kazoo's own
  ``pivot_listener`` is auto-delete with ``x-max-length 100`` (drop-head), which silently loses
  calls in a burst; that is why we do not reuse it;
* ``<queue>.dead``: durable, where unusable messages go with the reason in a header.

All publishes go through a confirm channel and are awaited: the input is acked only after the
broker confirmed every output.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    DeliveryMode,
    ExchangeType,
)

from . import envelope, names
from .errors import Reason
from .settings import Settings

JSON = "application/json"


class Bus:
    """Declared exchanges and queues on one channel, plus the publishing helpers."""

    def __init__(self, settings: Settings, channel: AbstractChannel) -> None:
        self.settings = settings
        self.channel = channel
        self.callmgr: AbstractExchange | None = None
        self.targeted: AbstractExchange | None = None
        self.callevt: AbstractExchange | None = None
        self.queue: AbstractQueue | None = None

    @property
    def dead_queue_name(self) -> str:
        return f"{self.settings.queue}.dead"

    async def declare(self) -> AbstractQueue:
        ch = self.channel
        self.callmgr = await ch.declare_exchange(
            names.EXCHANGE_CALLMGR, ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        self.targeted = await ch.declare_exchange(
            names.EXCHANGE_TARGETED, ExchangeType.DIRECT, durable=False, auto_delete=False
        )
        self.callevt = await ch.declare_exchange(
            names.EXCHANGE_CALLEVT, ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        await ch.declare_queue(self.dead_queue_name, durable=True)
        queue = await ch.declare_queue(self.settings.queue, durable=True)
        await queue.bind(self.callmgr, names.PIVOT_REQ_BINDING)
        self.queue = queue
        return queue

    def _exchanges(self) -> tuple[AbstractExchange, AbstractExchange]:
        if self.targeted is None or self.callevt is None:
            raise RuntimeError("Bus.declare() must run before publishing")
        return self.targeted, self.callevt

    async def _targeted(self, controller_queue: str, body: dict[str, Any]) -> None:
        targeted, _ = self._exchanges()
        target = names.reply_target(controller_queue)
        headers: dict[str, Any] = dict(target.headers())
        message = aio_pika.Message(
            orjson.dumps(body),
            content_type=JSON,
            headers=headers or None,
            delivery_mode=DeliveryMode.NOT_PERSISTENT,
        )
        await targeted.publish(message, routing_key=target.routing_key, mandatory=False)

    async def publish_success(self, call_id: str, controller_queue: str, flow: dict[str, Any]) -> None:
        """``pivot.processing`` to the requester, then ``CHANNEL_PIVOT`` with the flow.

        Awaited in order on one channel, so the broker routes ``processing`` before the flow.
        """
        _, callevt = self._exchanges()
        await self._targeted(controller_queue, envelope.processing(call_id, self.settings.node))
        event = aio_pika.Message(
            orjson.dumps(envelope.channel_pivot(call_id, self.settings.node, flow)),
            content_type=JSON,
            headers={names.HEADER_CALL_ID: call_id},
            delivery_mode=DeliveryMode.NOT_PERSISTENT,
        )
        await callevt.publish(
            event,
            routing_key=names.call_event_routing_key(names.EVENT_NAME_CHANNEL_PIVOT, call_id),
            mandatory=False,
        )

    async def publish_failed(self, call_id: str, controller_queue: str, reason: Reason) -> None:
        await self._targeted(controller_queue, envelope.failed(call_id, self.settings.node, reason))

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
