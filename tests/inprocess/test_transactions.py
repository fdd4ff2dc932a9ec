"""What the transactional reply path guarantees: a request's replies, dead letter and ack commit
together, so a killed worker published everything or nothing; only a commit whose outcome the
broker never reported can still duplicate a reply, and then only ``CHANNEL_PIVOT`` (or ``failed``).
"""

from __future__ import annotations

import asyncio
import time

import orjson
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
    bug,
    dead_letter,
    failure,
    hang,
    make_rig,
    request_body,
    success,
    unroutable,
)


async def reconnect_when_waited_for(rig: Rig, task: asyncio.Task[None]) -> None:
    waiting = asyncio.create_task(rig.link.waiting.wait())
    await asyncio.wait({waiting, task}, timeout=2, return_when=asyncio.FIRST_COMPLETED)
    assert not task.done(), "the worker gave up instead of waiting for the broker"
    rig.link.waiting.clear()
    rig.reconnect()


@pytest.mark.parametrize(
    ("script", "body", "events", "dead"),
    [
        (success(), request_body(), [PROCESSING, CHANNEL_PIVOT], None),
        (failure(Reason.HTTP_STATUS), request_body(), [FAILED], None),
        (ValueError("boom"), request_body(), [FAILED], Reason.INTERNAL_ERROR),
        (dead_letter(), b"{not json", [], Reason.INVALID_REQUEST),
    ],
    ids=["flow", "failed", "bug", "dead-letter"],
)
async def test_a_requests_replies_dead_letter_and_ack_are_one_commit(
    script: Decision | Exception, body: bytes, events: list[str], dead: Reason | None
) -> None:
    rig = make_rig(FakePipeline(script))
    message = FakeMessage(body)
    await rig.deliver(message)

    (commit,) = rig.broker.commits
    assert commit.applied
    assert (commit.events, commit.dead_letter, commit.ack, commit.requeue) == (
        events,
        dead,
        message.delivery_tag,
        None,
    )
    assert {p.commit for p in rig.broker.published} | {d.commit for d in rig.broker.dead_letters} <= {0}
    assert rig.broker.events() == events
    assert message.acked == 1


@pytest.mark.parametrize("killed", ["serving", "committing"])
async def test_a_killed_worker_published_nothing_and_the_redelivery_answers_once(killed: str) -> None:
    """SIGKILL: the process and its connection vanish; whatever it wrote was never committed.

    Killed while serving or during its commit, the first delivery never claimed anything (a
    clean first delivery needs no claim: its ack is in its commit), so the redelivery is served
    afresh, at once: ``processing`` then ``CHANNEL_PIVOT``, once.
    """
    ledger, broker = MemoryLedger(), FakeBroker()
    lease_ms = 100
    gate = asyncio.Event()
    first_pipeline = FakePipeline(hang if killed == "serving" else success())
    first = make_rig(first_pipeline, ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    first.epoch.bus.script(CHANNEL_PIVOT, block(gate))
    message = FakeMessage(request_body())
    dying = first.spawn(message)
    if killed == "serving":
        await asyncio.wait_for(first_pipeline.entered.wait(), 1)
    else:
        await asyncio.wait_for(first.epoch.bus.blocked.wait(), 1)
    first.epoch.closed = True  # SIGKILL: the connection closes with the process
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    gate.set()
    await asyncio.sleep(0)
    assert broker.published == [] and broker.dead_letters == []
    assert broker.acks == [] and broker.requeues == []

    second_pipeline = FakePipeline(success())
    second = make_rig(second_pipeline, ledger=ledger, broker=broker, ledger_lease_ms=lease_ms)
    second.link.epoch.number = 2  # type: ignore[union-attr]
    again = message.again()
    await asyncio.wait_for(second.deliver(again), 2)

    assert [(p.epoch, p.event) for p in broker.published] == [(2, PROCESSING), (2, CHANNEL_PIVOT)]
    assert len(second_pipeline.calls) == 1
    assert again.acked == 1
    assert again.ack_commit().events == broker.events()  # its replies and its ack: one commit
    pivot = broker.published[-1]
    assert orjson.loads(pivot.body["Application-Data"])["module"] == "tts"


async def test_commit_outcome_unknown_but_applied_duplicates_channel_pivot_at_most_once() -> None:
    """The one duplicate left: the broker applied the commit (replies routed, request acked) and the
    connection died before its ``commit-ok`` reached the worker. The worker cannot tell this from a
    commit that was discarded, so it commits ``CHANNEL_PIVOT`` again on the next connection: one
    extra ``CHANNEL_PIVOT``, never a second ``processing``, and no redelivery (the ack was in)."""
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(CHANNEL_PIVOT, broker_down(applied=True))
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await reconnect_when_waited_for(rig, task)
    await asyncio.wait_for(task, 2)

    assert [(p.epoch, p.event) for p in rig.broker.published] == [
        (1, PROCESSING),
        (1, CHANNEL_PIVOT),
        (2, CHANNEL_PIVOT),  # the duplicate
    ]
    assert rig.broker.events().count(PROCESSING) == 1
    assert message.acked == 1  # with the first commit, which the broker applied
    assert [(c.epoch, c.events, c.ack) for c in rig.broker.applied()] == [
        (1, [PROCESSING, CHANNEL_PIVOT], message.delivery_tag),
        (2, [CHANNEL_PIVOT], None),  # the old tag is never sent on the new channel
    ]
    entry = await rig.ledger.lookup(request_key(message.body))
    assert entry is not None and entry.done


async def test_commit_outcome_unknown_and_not_applied_gives_exactly_one_channel_pivot() -> None:
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(CHANNEL_PIVOT, broker_down(applied=False))
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await reconnect_when_waited_for(rig, task)
    await asyncio.wait_for(task, 2)

    assert [(p.epoch, p.event) for p in rig.broker.published] == [(2, CHANNEL_PIVOT)]
    assert message.acked == 0  # discarded with its commit: the broker redelivers the request
    again = message.again()
    await rig.deliver(again)  # on the new connection: answered already, only acked
    assert rig.broker.events() == [CHANNEL_PIVOT]
    assert again.acked == 1
    assert again.ack_commit().events == []


@pytest.mark.parametrize(
    ("decision", "event"),
    [(success(), CHANNEL_PIVOT), (failure(Reason.TIMEOUT), FAILED)],
    ids=["flow", "failed"],
)
async def test_returned_replies_are_committed_again_alone_without_a_second_ack(
    decision: Decision, event: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pivot_worker.worker.UNROUTABLE_RETRY_S", 0.01)
    rig = make_rig(FakePipeline(decision))
    rig.epoch.bus.script(event, unroutable(), unroutable())
    message = FakeMessage(request_body())
    await asyncio.wait_for(rig.deliver(message), 2)

    first, *retries = rig.broker.commits
    assert (first.returned, first.ack) == ([event], message.delivery_tag)
    assert [(c.events, c.ack, c.dead_letter, c.requeue) for c in retries] == [([event], None, None, None)] * 2
    assert [c.returned for c in retries] == [[event], []]
    assert rig.broker.events().count(event) == 1
    assert message.acked == 1
    # acked with the first commit, so the request never comes back: nothing to settle in the ledger
    assert await rig.ledger.lookup(request_key(message.body)) is None


async def test_a_request_cancelled_while_its_commit_is_in_flight_is_not_requeued() -> None:
    # Shutdown cancels what outlives the grace period. Frames already written commit anyway (the
    # commit is shielded from its waiters), so a requeue would nack a tag the same channel acks:
    # the broker closes the channel for that (the conftest fails the test).
    rig = make_rig(FakePipeline(success()))
    gate = asyncio.Event()
    rig.epoch.bus.script(CHANNEL_PIVOT, block(gate))
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await asyncio.wait_for(rig.epoch.bus.blocked.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    await asyncio.sleep(0.01)

    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
    assert message.acked == 1
    assert message.nacks == []
    assert rig.epoch.alive


async def test_a_request_cancelled_while_retrying_a_returned_reply_is_not_requeued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pivot_worker.worker.UNROUTABLE_RETRY_S", 0.01)
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(CHANNEL_PIVOT, *[unroutable()] * 1000)
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await asyncio.sleep(0.05)
    assert message.acked == 1  # acked with the first commit; CHANNEL_PIVOT still being retried
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert message.nacks == []


async def test_a_bug_after_the_commit_dead_letters_without_a_second_ack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pivot_worker.worker.UNROUTABLE_RETRY_S", 0.01)
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(CHANNEL_PIVOT, unroutable(), bug())
    message = FakeMessage(request_body())
    await asyncio.wait_for(rig.deliver(message), 2)

    assert rig.broker.events() == [PROCESSING]  # no failed after processing
    assert [d.reason for d in rig.broker.dead_letters] == [Reason.INTERNAL_ERROR]
    assert message.acked == 1
    assert [(c.events, c.dead_letter, c.ack) for c in rig.broker.applied()] == [
        ([PROCESSING, CHANNEL_PIVOT], None, message.delivery_tag),
        ([], Reason.INTERNAL_ERROR, None),  # the copy alone: the request was acked already
    ]
    assert rig.epoch.alive


async def test_many_requests_each_commit_their_own_replies_with_their_own_ack() -> None:
    pipeline = FakePipeline(*[success(f"c{i}@10.0.0.5") for i in range(20)])  # in order of calls
    rig = make_rig(pipeline)
    messages = [FakeMessage(request_body(f"m{i}@10.0.0.5")) for i in range(20)]
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(rig.deliver(m) for m in messages)), 2)
    assert time.monotonic() - started < 1

    for message in messages:
        commit = message.ack_commit()
        call_id = f"c{pipeline.calls.index(message.body)}@10.0.0.5"  # the answer to this request
        carried = [p for p in rig.broker.published if p.commit == rig.broker.commits.index(commit)]
        assert [(p.event, p.body["Call-ID"]) for p in carried] == [
            (PROCESSING, call_id),
            (CHANNEL_PIVOT, call_id),
        ]
    assert len(rig.broker.published) == 40


async def test_a_returned_processing_is_not_resent_once_its_flow_got_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The requester's queue was missing but the call's events were routed: ``CHANNEL_PIVOT`` got
    through, and a ``processing`` after it would tell ``cf_exe`` nothing, so nothing is resent."""
    monkeypatch.setattr("pivot_worker.worker.UNROUTABLE_RETRY_S", 0.01)
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(PROCESSING, unroutable())
    message = FakeMessage(request_body())
    await asyncio.wait_for(rig.deliver(message), 2)

    (only,) = rig.broker.commits
    assert only.returned == [PROCESSING] and only.ack == message.delivery_tag
    assert rig.broker.events() == [CHANNEL_PIVOT]
    assert message.acked == 1


async def test_both_replies_returned_are_resent_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pivot_worker.worker.UNROUTABLE_RETRY_S", 0.01)
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(PROCESSING, unroutable())
    rig.epoch.bus.script(CHANNEL_PIVOT, unroutable())
    message = FakeMessage(request_body())
    await asyncio.wait_for(rig.deliver(message), 2)

    first, retry = rig.broker.commits
    assert first.returned == [PROCESSING, CHANNEL_PIVOT]
    assert (retry.events, retry.ack, retry.returned) == ([PROCESSING, CHANNEL_PIVOT], None, [])
    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
