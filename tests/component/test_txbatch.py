"""The transaction shim (``pivot_worker.txbatch``) and ``Bus.commit`` on a real RabbitMQ.

These pin what the worker relies on from the broker and from aiormq's internals: one ``tx.commit``
covers every request that wrote while the previous one was in flight; frames never committed are
discarded with their connection, ack included (the request comes back); a returned mandatory
message is seen through ``message_id_delivery_tag``/``confirmations``, and nothing is left there.
Every queue and exchange has a unique name and is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from pamqp.commands import Basic

from pivot_worker.bus import Bus
from pivot_worker.replies import Reply
from pivot_worker.settings import Settings
from pivot_worker.txbatch import TxBatcher, watch_return

pytestmark = pytest.mark.rabbit


def unique(prefix: str) -> str:
    return f"test-txbatch-{prefix}-{uuid.uuid4().hex[:10]}"


class TxChannel:
    """A connection with one channel in ``tx`` mode, as the broker link builds it."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel, underlay: Any) -> None:
        self.connection = connection
        self.channel = channel
        self.underlay = underlay
        self.tx = TxBatcher(underlay)

    @classmethod
    async def open(cls, url: str) -> TxChannel:
        connection = await aio_pika.connect(url)
        channel = await connection.channel(publisher_confirms=False)
        underlay = await channel.get_underlay_channel()
        await underlay.tx_select()
        return cls(connection, channel, underlay)

    def bus(self) -> Bus:
        settings = Settings(node="pivot_worker@test", continuation_key="k", ledger_url="memory://")
        return Bus(settings, self.channel, self.tx)


@pytest.fixture
async def admin(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    """A plain channel to declare, inspect and delete with (queues declared here are not exclusive:
    a tx connection under test must reach them, and may be closed)."""
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    declared: list[AbstractQueue] = []
    original = channel.declare_queue

    async def declare_queue(name: str, **kwargs: Any) -> AbstractQueue:
        queue = await original(name, **kwargs)
        declared.append(queue)
        return queue

    channel.declare_queue = declare_queue  # type: ignore[method-assign]
    try:
        yield channel
    finally:
        for queue in declared:
            await channel.queue_delete(queue.name)
        await connection.close()


async def drain(queue: AbstractQueue, count: int, timeout: float = 5.0) -> list[AbstractIncomingMessage]:
    got: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.01)
            continue
        await message.ack()
        got.append(message)
    return got


def reply_to(queue: str, n: int) -> Reply:
    return Reply("", queue, {"Msg-ID": f"{queue}-{n}", "Event-Name": "test", "N": n}, {})


async def test_concurrent_commits_on_one_channel_are_grouped_and_all_arrive(
    amqp_url: str, admin: AbstractChannel
) -> None:
    queue = await admin.declare_queue(unique("group"), auto_delete=False)
    tx = await TxChannel.open(amqp_url)
    try:
        bus = tx.bus()
        requests = 200
        returned = await asyncio.gather(*(bus.commit([reply_to(queue.name, n)]) for n in range(requests)))
        assert returned == [[]] * requests
        assert 0 < tx.tx.commits < requests  # group commit: one tx.commit covered several requests
    finally:
        await tx.connection.close()
    got = await drain(queue, requests)
    assert sorted(orjson.loads(m.body)["N"] for m in got) == list(range(requests))
    assert await queue.get(fail=False) is None  # each exactly once


async def test_frames_whose_commit_never_happens_are_discarded_and_the_ack_rolled_back(
    amqp_url: str, admin: AbstractChannel
) -> None:
    requests = await admin.declare_queue(unique("requests"), auto_delete=False)
    replies = await admin.declare_queue(unique("replies"), auto_delete=False)
    await admin.default_exchange.publish(aio_pika.Message(b"request"), routing_key=requests.name)

    tx = await TxChannel.open(amqp_url)
    worker_queue = await tx.channel.get_queue(requests.name, ensure=False)
    message = await worker_queue.get(timeout=5)
    assert message is not None and not message.redelivered
    async with tx.tx.gate:  # what a request writes before its commit: a reply and the ack
        await tx.underlay.basic_publish(
            b"reply",
            exchange="",
            routing_key=replies.name,
            properties=Basic.Properties(message_id="r1"),
            mandatory=True,
            wait=False,
        )
        await tx.underlay.basic_ack(message.delivery_tag, wait=False)
    await tx.connection.close()  # the worker dies before tx.commit

    assert await drain(replies, 1, timeout=0.5) == []  # the reply was never published
    (again,) = await drain(requests, 1)  # the ack was rolled back: the request is delivered again
    assert again.body == b"request"
    assert again.redelivered


async def test_watch_return_sees_an_unroutable_mandatory_message_and_not_a_routed_one(
    amqp_url: str, admin: AbstractChannel
) -> None:
    exchange_name = unique("nobinding")
    await admin.declare_exchange(exchange_name, aio_pika.ExchangeType.DIRECT, auto_delete=False)
    routed_queue = await admin.declare_queue(unique("routed"), auto_delete=False)
    tx = await TxChannel.open(amqp_url)
    channel = tx.underlay
    try:
        watches = {}

        async def write() -> None:
            for name, exchange, key in [
                ("lost", exchange_name, "nobody"),
                ("routed", "", routed_queue.name),
            ]:
                message_id = f"{name}-{uuid.uuid4().hex}"
                watches[name] = watch_return(channel, message_id)
                await channel.basic_publish(
                    b"x",
                    exchange=exchange,
                    routing_key=key,
                    properties=Basic.Properties(message_id=message_id),
                    mandatory=True,
                    wait=False,
                )

        await tx.tx.commit(write)
        assert watches["lost"].returned  # the broker sends basic.return before commit-ok
        assert not watches["routed"].returned
        for watch in watches.values():
            watch.close()
            assert watch._message_id not in channel.message_id_delivery_tag
            assert watch._tag not in channel.confirmations
        assert len(await drain(routed_queue, 1)) == 1

        # the same through Bus.commit: it reports the returned reply and leaves nothing behind
        lost = Reply(exchange_name, "nobody", {"Msg-ID": unique("bus-lost")}, {})
        routed = reply_to(routed_queue.name, 1)
        assert await tx.bus().commit([lost, routed]) == [lost]
        assert lost.body["Msg-ID"] not in channel.message_id_delivery_tag
        assert routed.body["Msg-ID"] not in channel.message_id_delivery_tag
        assert all(tag >= 0 for tag in channel.confirmations)  # no watch of ours is left
        assert len(await drain(routed_queue, 1)) == 1
    finally:
        await tx.connection.close()
        await admin.exchange_delete(exchange_name)
