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
    Rig,
    block,
    broker_down,
    failure,
    hang,
    make_rig,
    request_body,
    success,
)


async def answer_on_the_next_connection(rig: Rig, message: FakeMessage, event: str) -> None:
    """Deliver ``message`` with its commit cut (not applied) and reconnect: its final reply goes out
    on epoch 2 and its ledger entry is done, while the broker still holds the request (unacked)."""
    rig.epoch.bus.script(event, broker_down())
    task = rig.spawn(message)
    await asyncio.wait_for(rig.link.waiting.wait(), 2)
    rig.reconnect()
    await asyncio.wait_for(task, 2)
    assert message.acked == 0
    entry = await rig.ledger.lookup(request_key(message.body))
    assert entry is not None and entry.done


async def test_redelivery_of_an_answered_request_publishes_nothing_and_is_acked() -> None:
    # With confirms, "answered" could mean replies out and the ack lost; in a transaction the ack
    # goes with the replies, so a request comes back answered only after its commit was cut and
    # its final reply went out on the next connection.
    pipeline = FakePipeline(success())
    rig = make_rig(pipeline)
    message = FakeMessage(request_body())
    await answer_on_the_next_connection(rig, message, CHANNEL_PIVOT)
    assert rig.broker.events() == [CHANNEL_PIVOT]

    again = message.again()  # the broker hands it out again on the new connection
    await rig.deliver(again)
    assert rig.broker.events() == [CHANNEL_PIVOT]
    assert again.acked == 1
    assert again.ack_commit().events == []
    assert len(pipeline.calls) == 1  # not served again
    assert rig.worker.counts["resumed"] == 1


async def test_redelivery_of_an_answered_failure_publishes_nothing() -> None:
    rig = make_rig(FakePipeline(failure(Reason.TIMEOUT)))
    message = FakeMessage(request_body())
    await answer_on_the_next_connection(rig, message, FAILED)
    again = message.again()
    await rig.deliver(again)
    assert rig.broker.events() == [FAILED]
    assert again.acked == 1


async def test_a_redelivery_whose_owner_died_during_its_commit_is_served_afresh_at_once() -> None:
    # The owner is killed (SIGKILL) with its frames written but its commit not done: the broker
    # drops them with the connection, so nothing went out, and a first delivery claims nothing.
    ledger, broker = MemoryLedger(), FakeBroker()
    lease_ms = 5000  # long: waiting it out would show
    first = make_rig(FakePipeline(success()), ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    gate = asyncio.Event()
    first.epoch.bus.script(CHANNEL_PIVOT, block(gate))  # the commit is in flight
    message = FakeMessage(request_body())
    dying = first.spawn(message)
    await asyncio.wait_for(first.epoch.bus.blocked.wait(), 1)
    first.epoch.closed = True  # the process dies: its connection closes before the commit
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    gate.set()  # too late: the broker never applies a commit of a closed channel
    await asyncio.sleep(0)
    assert broker.published == [] and broker.requeues == []

    second_pipeline = FakePipeline(success())
    second = make_rig(second_pipeline, ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    second.link.epoch.number = 2  # type: ignore[union-attr]
    again = message.again()
    started = time.monotonic()
    await asyncio.wait_for(second.deliver(again), 2)

    assert time.monotonic() - started < lease_ms / 2000  # no claim to wait for
    # served afresh: both replies and the ack in one commit
    assert [(p.epoch, p.event) for p in broker.published] == [(2, PROCESSING), (2, CHANNEL_PIVOT)]
    assert again.ack_commit().events == [PROCESSING, CHANNEL_PIVOT]
    assert len(second_pipeline.calls) == 1
    assert again.acked == 1 and message.acked == 0
    entry = await ledger.lookup(request_key(message.body))
    assert entry is not None and entry.owner == second.worker.owner


async def test_a_redelivery_while_the_owner_is_still_at_work_waits_and_publishes_nothing() -> None:
    # The broker redelivers only after the owner's connection died; the owner, still alive, waits
    # for the next connection to republish its final reply. Another worker given the redelivery
    # meanwhile must leave it to the owner while its lease holds.
    ledger, broker = MemoryLedger(), FakeBroker()
    lease_ms = 300
    owner = make_rig(FakePipeline(success()), ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    owner.epoch.bus.script(CHANNEL_PIVOT, broker_down())
    message = FakeMessage(request_body())
    working = owner.spawn(message)
    await asyncio.wait_for(owner.link.waiting.wait(), 1)

    other = make_rig(FakePipeline(success()), ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    other.link.epoch.number = 3  # type: ignore[union-attr]
    again = message.again()
    waiting = other.spawn(again)
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the lease is valid: it waits for the owner
    owner.reconnect()  # the owner's broker is back within its lease
    await asyncio.wait_for(working, 1)
    await asyncio.wait_for(waiting, 1)

    assert [(p.epoch, p.event) for p in broker.published] == [(2, CHANNEL_PIVOT)]
    assert [e for e, _ in broker.attempts if e == 3] == []  # the other never tried a reply
    assert message.acked == 0 and again.acked == 1
    assert again.ack_commit().events == []


async def test_a_duplicate_answered_elsewhere_while_it_was_served_publishes_nothing_and_acks_once() -> None:
    # Worker 2 got the broker's redelivery (worker 1's connection had died) before worker 1 had
    # claimed the answer, so its lookup found nothing and it served the request too; its claim then
    # finds worker 1's, which worker 1 finished on its next connection.
    ledger, broker = MemoryLedger(), FakeBroker()
    release = asyncio.Event()

    async def slow() -> Decision:
        await release.wait()
        return success()

    one = make_rig(FakePipeline(success()), ledger=ledger, broker=broker)
    two = make_rig(FakePipeline(slow), ledger=ledger, broker=broker)
    two.link.epoch.number = 3  # type: ignore[union-attr]
    message = FakeMessage(request_body())
    duplicate = message.again()
    served = two.spawn(duplicate)
    await asyncio.wait_for(two.worker.pipeline.entered.wait(), 1)  # type: ignore[attr-defined]
    one.epoch.bus.script(CHANNEL_PIVOT, broker_down())
    answering = one.spawn(message)
    await asyncio.wait_for(one.link.waiting.wait(), 1)
    one.reconnect()
    await asyncio.wait_for(answering, 1)
    release.set()
    await asyncio.wait_for(served, 1)

    assert [(p.epoch, p.event) for p in broker.published] == [(2, CHANNEL_PIVOT)]
    assert message.acked == 0  # delivered on the dead connection
    assert duplicate.acked == 1  # exactly once (a second would be a violation)
    assert duplicate.ack_commit().events == []


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
    # failed, the copy and the ack in one commit: no "ack lost" can bring it back answered
    commit = poison.ack_commit()
    assert (commit.events, commit.dead_letter) == ([FAILED], Reason.REDELIVERY_LIMIT)


async def test_a_refused_poison_whose_commit_was_cut_is_answered_and_copied_once() -> None:
    # The transactional counterpart of "once more (its ack was lost)": the refusal's commit is cut,
    # so failed and the copy go on the next connection, and the redelivery that follows is only acked.
    max_deliveries = 1
    pipeline = FakePipeline(success())
    rig = make_rig(pipeline, max_deliveries=max_deliveries)
    message = FakeMessage(request_body())
    await rig.ledger.count_delivery(request_key(message.body), time.time() + 60)  # delivered once before
    poison = message.again()
    rig.epoch.bus.script(FAILED, broker_down())
    task = rig.spawn(poison)
    await asyncio.wait_for(rig.link.waiting.wait(), 1)
    rig.reconnect()
    await asyncio.wait_for(task, 1)
    assert [(p.epoch, p.event) for p in rig.broker.published] == [(2, FAILED)]
    assert [(d.epoch, d.reason) for d in rig.broker.dead_letters] == [(2, Reason.REDELIVERY_LIMIT)]

    last = poison.again()
    await asyncio.wait_for(rig.deliver(last), 1)
    assert rig.broker.events() == [FAILED]
    assert len(rig.broker.dead_letters) == 1
    assert last.acked == 1 and poison.acked == 0
    assert pipeline.calls == []


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
