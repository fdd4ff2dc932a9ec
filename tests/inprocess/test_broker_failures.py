"""Broker failures while replying: the answer waits for the next connection, at most until its stale
point; ``processing`` is never sent twice; nothing is acked on a dead connection.

A request's replies and ack are one transaction, so a commit cut by the broker left either all of
it applied or none; the worker cannot tell which, and commits the final reply alone (no ack: the
ack belonged to the dead channel) on the next connection."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiormq.exceptions import ChannelInvalidStateError, ConnectionClosed

from pivot_worker.errors import Reason
from pivot_worker.ledger import request_key
from pivot_worker.pipeline import Decision

from .support import (
    CHANNEL_PIVOT,
    FAILED,
    PROCESSING,
    FakeMessage,
    FakePipeline,
    Rig,
    broker_down,
    failure,
    make_rig,
    request_body,
    stale_count,
    stamp,
    success,
)

BROKER_ERRORS = [
    ChannelInvalidStateError("channel closed"),  # aio-pika, publishing on a channel that closed
    ConnectionClosed(320, "CONNECTION_FORCED"),
    ConnectionResetError("reset by peer"),
]


async def reconnect_when_waited_for(rig: Rig, task: asyncio.Task[None]) -> None:
    """Install epoch 2 once the worker waits for a live epoch (it must not finish before that)."""
    waiting = asyncio.create_task(rig.link.waiting.wait())
    await asyncio.wait({waiting, task}, timeout=2, return_when=asyncio.FIRST_COMPLETED)
    assert not task.done(), "the worker gave up instead of waiting for the broker"
    assert waiting.done(), "the worker never waited for a new connection"
    rig.link.waiting.clear()  # so that a later call waits for the next wait
    rig.reconnect()


@pytest.mark.parametrize("error", BROKER_ERRORS, ids=lambda e: type(e).__name__)
async def test_channel_pivot_lost_with_the_connection_is_published_once_on_the_next(
    error: BaseException,
) -> None:
    # With confirms, processing could be out and CHANNEL_PIVOT lost; in a transaction the cut
    # commit took both with it (applied=False), so CHANNEL_PIVOT alone goes on the next connection.
    rig = make_rig(FakePipeline(success()))
    first = rig.epoch
    first.bus.script(CHANNEL_PIVOT, broker_down(error))
    message = FakeMessage(request_body())
    task = rig.spawn(message, first)
    await reconnect_when_waited_for(rig, task)
    await asyncio.wait_for(task, 2)

    assert [(p.epoch, p.event) for p in rig.broker.published] == [(2, CHANNEL_PIVOT)]
    assert [(c.epoch, c.events, c.ack, c.applied) for c in rig.broker.commits] == [
        (1, [PROCESSING, CHANNEL_PIVOT], message.delivery_tag, False),
        (2, [CHANNEL_PIVOT], None, True),  # never processing again, never the old tag
    ]
    assert message.acked == 0  # its connection is gone: the broker redelivers it
    assert message.nacks == []
    assert rig.broker.dead_letters == []
    entry = await rig.ledger.lookup(request_key(message.body))
    assert entry is not None and entry.done

    # the broker's redelivery on the new connection finds the answer done: nothing more goes out
    again = message.again()
    await rig.deliver(again)
    assert [(p.epoch, p.event) for p in rig.broker.published] == [(2, CHANNEL_PIVOT)]
    assert again.acked == 1
    assert again.ack_commit().events == []  # the ack alone


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
async def test_processing_in_a_cut_commit_is_not_sent_again(applied: bool) -> None:
    # The transactional counterpart of "processing delivered but its confirm lost": the commit that
    # carried processing was cut, and the broker applied it (applied) or discarded it (not-applied).
    rig = make_rig(FakePipeline(success()))
    first = rig.epoch
    first.bus.script(PROCESSING, broker_down(applied=applied))
    message = FakeMessage(request_body())
    task = rig.spawn(message, first)
    await reconnect_when_waited_for(rig, task)
    await asyncio.wait_for(task, 2)

    assert rig.broker.attempts == [(1, PROCESSING), (1, CHANNEL_PIVOT), (2, CHANNEL_PIVOT)]
    expected = [(1, PROCESSING), (1, CHANNEL_PIVOT)] if applied else []
    assert [(p.epoch, p.event) for p in rig.broker.published] == [*expected, (2, CHANNEL_PIVOT)]
    assert message.acked == (1 if applied else 0)  # the ack went (or not) with the replies
    assert rig.broker.commits[-1].ack is None


async def test_failed_reply_lost_with_the_connection_is_published_on_the_next() -> None:
    rig = make_rig(FakePipeline(failure(Reason.HTTP_STATUS)))
    rig.epoch.bus.script(FAILED, broker_down())
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await reconnect_when_waited_for(rig, task)
    await asyncio.wait_for(task, 2)

    assert [(p.epoch, p.event) for p in rig.broker.published] == [(2, FAILED)]
    assert rig.broker.published[0].body["Failure-Reason"] == "http_status"
    assert [(c.epoch, c.events, c.ack) for c in rig.broker.applied()] == [(2, [FAILED], None)]
    assert message.acked == 0


async def test_the_worker_does_not_publish_after_another_took_its_answer_over() -> None:
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(CHANNEL_PIVOT, broker_down())
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    waiting = asyncio.create_task(rig.link.waiting.wait())
    await asyncio.wait_for(waiting, 2)
    # meanwhile another worker got the redelivery, took the answer over and finished it
    key = request_key(message.body)
    assert await rig.ledger.take_over(key, "other", rig.worker.owner, time.time() + 5)
    rig.reconnect()
    await asyncio.wait_for(task, 2)

    assert rig.broker.published == []  # the cut commit carried processing away with it
    assert rig.broker.attempts == [(1, PROCESSING), (1, CHANNEL_PIVOT)]  # nothing tried on epoch 2
    entry = await rig.ledger.lookup(key)
    assert entry is not None and entry.owner == "other"


async def test_no_channel_pivot_once_the_stale_point_passed_while_the_broker_was_down() -> None:
    stale_after_ms = 1000
    rig = make_rig(FakePipeline(success()), stale_after_ms=stale_after_ms)
    rig.epoch.bus.script(CHANNEL_PIVOT, broker_down())
    # sent 0.8 s ago: its stale point is 0.2 s from now
    message = FakeMessage(request_body(), timestamp=stamp(time.time() - 0.8))
    started = time.monotonic()
    await asyncio.wait_for(rig.deliver(message), 2)
    waited = time.monotonic() - started

    assert 0.1 < waited < 0.6  # it waited for the broker until the stale point, not longer
    assert rig.broker.events() == []
    assert stale_count(rig.worker) == 1

    rig.reconnect()  # the broker is back, too late: nothing is published for that request
    await asyncio.sleep(0.05)
    assert rig.broker.events() == []
    entry = await rig.ledger.lookup(request_key(message.body))
    assert entry is not None and not entry.done

    # and the broker's redelivery of it publishes nothing either
    again = message.again()
    await asyncio.wait_for(rig.deliver(again), 2)
    assert rig.broker.events() == []
    assert again.acked == 1
    assert message.acked == 0


async def test_a_reconnect_before_the_stale_point_still_delivers_the_flow() -> None:
    rig = make_rig(FakePipeline(success()), stale_after_ms=1000)
    rig.epoch.bus.script(CHANNEL_PIVOT, broker_down())
    message = FakeMessage(request_body(), timestamp=stamp(time.time() - 0.5))
    task = rig.spawn(message)
    await reconnect_when_waited_for(rig, task)
    await asyncio.wait_for(task, 2)
    assert [(p.epoch, p.event) for p in rig.broker.published] == [(2, CHANNEL_PIVOT)]


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
async def test_an_answer_whose_connection_went_before_its_commit_is_published_whole_on_the_next(
    applied: bool,
) -> None:
    # Nothing was written on the dead connection, so processing may still go (once): on the next
    # connection, without the old tag. If that commit is cut too, only CHANNEL_PIVOT is tried again.
    release = asyncio.Event()

    async def slow() -> Decision:
        await release.wait()
        return success()

    rig = make_rig(FakePipeline(slow))
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await asyncio.wait_for(rig.worker.pipeline.entered.wait(), 1)  # type: ignore[attr-defined]
    rig.epoch.closed = True  # the connection goes while the answer is being fetched
    release.set()
    await reconnect_when_waited_for(rig, task)
    second = rig.epoch
    second.bus.script(PROCESSING, broker_down(applied=applied))
    await reconnect_when_waited_for(rig, task)
    await asyncio.wait_for(task, 2)

    assert [(c.epoch, c.events, c.ack) for c in rig.broker.commits] == [
        (2, [PROCESSING, CHANNEL_PIVOT], None),
        (3, [CHANNEL_PIVOT], None),
    ]
    expected = [(2, PROCESSING), (2, CHANNEL_PIVOT)] if applied else []
    assert [(p.epoch, p.event) for p in rig.broker.published] == [*expected, (3, CHANNEL_PIVOT)]
    assert message.acked == 0
    entry = await rig.ledger.lookup(request_key(message.body))
    assert entry is not None and entry.done
