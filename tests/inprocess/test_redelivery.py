"""Redelivered requests: answered ones stay answered, half-answered ones are finished exactly once,
and a request that keeps coming back is refused."""

from __future__ import annotations

import asyncio
import time

import pytest

from pivot_worker.errors import Reason
from pivot_worker.ledger import MemoryLedger, request_key
from pivot_worker.pipeline import Decision

from .support import (
    CHANNEL_PIVOT,
    FAILED,
    PROCESSING,
    FakeBroker,
    FakeMessage,
    FakePipeline,
    block,
    failure,
    hang,
    make_rig,
    request_body,
    success,
)


async def test_redelivery_of_an_answered_request_publishes_nothing_and_is_acked() -> None:
    pipeline = FakePipeline(success())
    rig = make_rig(pipeline)
    message = FakeMessage(request_body())
    await rig.deliver(message)
    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]

    again = message.again()  # the ack was lost: the broker hands it out again
    await rig.deliver(again)
    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
    assert again.acked == 1
    assert len(pipeline.calls) == 1  # not served again
    assert rig.worker.counts["resumed"] == 1


async def test_redelivery_of_an_answered_failure_publishes_nothing() -> None:
    rig = make_rig(FakePipeline(failure(Reason.TIMEOUT)))
    message = FakeMessage(request_body())
    await rig.deliver(message)
    again = message.again()
    await rig.deliver(again)
    assert rig.broker.events() == [FAILED]
    assert again.acked == 1


async def test_a_redelivery_whose_owner_died_before_channel_pivot_gets_only_channel_pivot() -> None:
    ledger, broker = MemoryLedger(), FakeBroker()
    lease_ms = 100
    first = make_rig(FakePipeline(success()), ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    first.epoch.bus.script(CHANNEL_PIVOT, block(asyncio.Event()))  # never confirmed
    message = FakeMessage(request_body())
    dying = first.spawn(message)
    await asyncio.wait_for(first.epoch.bus.blocked.wait(), 1)
    dying.cancel()  # the first worker dies after processing went out
    with pytest.raises(asyncio.CancelledError):
        await dying
    first.epoch.broken.set()  # and its connection with it

    second_pipeline = FakePipeline(success())
    second = make_rig(second_pipeline, ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    second.link.epoch.number = 2  # type: ignore[union-attr]
    again = message.again()
    started = time.monotonic()
    await asyncio.wait_for(second.deliver(again), 2)

    assert time.monotonic() - started >= 0.05  # it let the dead owner's lease run out first
    assert [(p.epoch, p.event) for p in broker.published] == [(1, PROCESSING), (2, CHANNEL_PIVOT)]
    assert second_pipeline.calls == []  # the stored answer was published, not a new one
    assert again.acked == 1
    entry = await ledger.lookup(request_key(message.body))
    assert entry is not None and entry.done and entry.owner == second.worker.owner


async def test_a_redelivery_while_the_owner_is_still_at_work_waits_and_publishes_nothing() -> None:
    ledger, broker = MemoryLedger(), FakeBroker()
    lease_ms = 200
    owner = make_rig(FakePipeline(success()), ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    gate = asyncio.Event()
    owner.epoch.bus.script(CHANNEL_PIVOT, block(gate))
    message = FakeMessage(request_body())
    working = owner.spawn(message)
    await asyncio.wait_for(owner.epoch.bus.blocked.wait(), 1)

    other = make_rig(FakePipeline(success()), ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    again = message.again()
    waiting = other.spawn(again)
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the lease is valid: it waits for the owner
    gate.set()  # the owner finishes within its lease
    await asyncio.wait_for(working, 1)
    await asyncio.wait_for(waiting, 1)

    assert broker.events() == [PROCESSING, CHANNEL_PIVOT]
    assert other.broker.attempts == [(1, PROCESSING), (1, CHANNEL_PIVOT)]  # the other never tried
    assert message.acked == 1 and again.acked == 1


async def test_a_duplicate_answered_elsewhere_while_it_was_served_publishes_nothing_and_acks_once() -> None:
    # Worker 2 got the broker's redelivery before worker 1 had claimed the answer, so its lookup
    # found nothing and it served the request too; its claim then finds worker 1's.
    ledger, broker = MemoryLedger(), FakeBroker()
    release = asyncio.Event()

    async def slow() -> Decision:
        await release.wait()
        return success()

    one = make_rig(FakePipeline(success()), ledger=ledger, broker=broker)
    two = make_rig(FakePipeline(slow), ledger=ledger, broker=broker)
    message = FakeMessage(request_body())
    duplicate = message.again()
    served = two.spawn(duplicate)
    await asyncio.wait_for(two.worker.pipeline.entered.wait(), 1)  # type: ignore[attr-defined]
    await one.deliver(message)
    release.set()
    await asyncio.wait_for(served, 1)

    assert broker.events() == [PROCESSING, CHANNEL_PIVOT]
    assert message.channel.acks == [message.delivery_tag]
    assert duplicate.channel.acks == [duplicate.delivery_tag]  # exactly once


# -- poison -------------------------------------------------------------------------------------


async def test_a_request_redelivered_past_max_deliveries_is_refused_without_being_served() -> None:
    max_deliveries = 3
    pipeline = FakePipeline(hang)  # a request whose worker never gets to answer
    rig = make_rig(pipeline, max_deliveries=max_deliveries)
    message = FakeMessage(request_body())
    for delivery in range(1, max_deliveries + 1):
        attempt = message if delivery == 1 else message.again()
        pipeline.entered.clear()
        task = rig.spawn(attempt)
        await asyncio.wait_for(pipeline.entered.wait(), 1)
        task.cancel()  # stands for the worker dying while serving it
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(pipeline.calls) == max_deliveries

    poison = message.again()
    await asyncio.wait_for(rig.deliver(poison), 1)
    assert len(pipeline.calls) == max_deliveries  # not served again
    assert [d.reason for d in rig.broker.dead_letters] == [Reason.REDELIVERY_LIMIT]
    assert rig.broker.events() == [FAILED]
    assert rig.broker.published[0].body["Failure-Reason"] == "redelivery_limit"
    assert poison.acked == 1

    # once more (its ack was lost): answered already, so neither published nor dead-lettered again
    last = message.again()
    await asyncio.wait_for(rig.deliver(last), 1)
    assert rig.broker.events() == [FAILED]
    assert len(rig.broker.dead_letters) == 1
    assert last.acked == 1


@pytest.mark.parametrize(("previous", "refused"), [(2, False), (3, True), (7, True)])
async def test_a_quorum_queues_delivery_count_caps_deliveries(previous: int, refused: bool) -> None:
    pipeline = FakePipeline(success())
    rig = make_rig(pipeline, max_deliveries=3)
    message = FakeMessage(request_body(), redelivered=True, headers={"x-delivery-count": previous})
    await rig.deliver(message)

    if refused:
        assert pipeline.calls == []
        assert [d.reason for d in rig.broker.dead_letters] == [Reason.REDELIVERY_LIMIT]
        assert rig.broker.events() == [FAILED]
        assert rig.broker.published[0].body["Failure-Reason"] == "redelivery_limit"
    else:
        assert len(pipeline.calls) == 1
        assert rig.broker.dead_letters == []
        assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
    assert message.acked == 1
