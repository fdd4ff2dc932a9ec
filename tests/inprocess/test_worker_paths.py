"""One delivery through the real Worker: what goes on the bus, what is acked, dead-lettered, requeued.

Replies, dead letter and ack of one request are committed together (one AMQP transaction), so each
test also checks which commit carried what."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiormq.exceptions import (
    AMQPConnectionError,
    ChannelClosed,
    ChannelInvalidStateError,
    ConnectionClosed,
    DeliveryError,
)
from pamqp.commands import Basic

from pivot_worker.errors import Reason
from pivot_worker.ledger import request_key
from pivot_worker.replies import Reply
from pivot_worker.worker import is_broker_failure

from .support import (
    CHANNEL_PIVOT,
    FAILED,
    FLOW,
    PROCESSING,
    FakeMessage,
    FakePipeline,
    bug,
    dead_letter,
    failure,
    hang,
    make_rig,
    request_body,
    returned,
    stale_count,
    success,
    unroutable,
)


async def test_success_commits_processing_then_channel_pivot_with_one_ack() -> None:
    rig = make_rig(FakePipeline(success()))
    message = FakeMessage(request_body())
    await rig.deliver(message)

    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
    (commit,) = rig.broker.commits  # one commit: both replies and the ack, all or nothing
    assert commit == message.ack_commit()
    assert (commit.events, commit.dead_letter, commit.requeue) == ([PROCESSING, CHANNEL_PIVOT], None, None)
    processing, pivot = rig.broker.published
    assert (processing.exchange, processing.routing_key) == ("targeted", "callflow_route_1")
    assert pivot.exchange == "callevt"
    assert pivot.routing_key.startswith("call.CHANNEL_PIVOT.")
    assert orjson.loads(pivot.body["Application-Data"]) == FLOW
    assert message.acked == 1
    assert message.nacks == []
    assert rig.broker.dead_letters == []
    # A first delivery whose commit went through never touches the ledger: the ack is in the same
    # commit, so the request never returns. Only a cut commit or a redelivery claims it.
    assert await rig.ledger.lookup(request_key(message.body)) is None
    assert rig.worker.counts["success"] == 1


async def test_failed_decision_publishes_one_failed_and_acks() -> None:
    rig = make_rig(FakePipeline(failure(Reason.TIMEOUT)))
    message = FakeMessage(request_body())
    await rig.deliver(message)

    assert rig.broker.events() == [FAILED]
    assert rig.broker.published[0].body["Failure-Reason"] == "timeout"
    assert rig.broker.published[0].routing_key == "callflow_route_1"
    assert message.acked == 1
    assert message.ack_commit().events == [FAILED]  # the reply and the ack: one commit
    assert len(rig.broker.commits) == 1
    assert rig.broker.dead_letters == []


async def test_dead_letter_decision_without_identity_is_dead_lettered_acked_and_unanswered() -> None:
    rig = make_rig(FakePipeline(dead_letter()))
    message = FakeMessage(b"{not json")
    await rig.deliver(message)

    assert rig.broker.published == []
    assert [(d.reason, d.body) for d in rig.broker.dead_letters] == [(Reason.INVALID_REQUEST, b"{not json")]
    assert message.acked == 1
    (commit,) = rig.broker.commits  # the copy and the ack: one commit
    assert (commit.events, commit.dead_letter, commit.ack) == (
        [],
        Reason.INVALID_REQUEST,
        message.delivery_tag,
    )
    assert rig.worker.counts["dead_lettered"] == 1


async def test_a_bug_in_the_pipeline_answers_internal_error_dead_letters_and_never_requeues() -> None:
    pipeline = FakePipeline(ValueError("boom"), success())
    rig = make_rig(pipeline)
    message = FakeMessage(request_body())
    await rig.deliver(message)

    assert rig.broker.events() == [FAILED]
    assert rig.broker.published[0].body["Failure-Reason"] == "internal_error"
    assert rig.broker.published[0].routing_key == "callflow_route_1"
    (dead,) = rig.broker.dead_letters
    assert dead.reason is Reason.INTERNAL_ERROR
    assert "ValueError: boom" in dead.detail
    assert message.acked == 1
    assert message.nacks == []
    commit = message.ack_commit()  # failed, the copy and the ack: one commit
    assert (commit.events, commit.dead_letter) == ([FAILED], Reason.INTERNAL_ERROR)
    assert rig.broker.published[0].commit == dead.commit == rig.broker.commits.index(commit)

    # the worker is not wedged: the next request is served normally
    following = FakeMessage(request_body("c2@10.0.0.5"))
    await rig.deliver(following)
    assert rig.broker.events() == [FAILED, PROCESSING, CHANNEL_PIVOT]
    assert following.acked == 1
    assert len(pipeline.calls) == 2


async def test_a_bug_on_a_request_that_names_no_call_is_only_dead_lettered() -> None:
    rig = make_rig(FakePipeline(ValueError("boom")))
    message = FakeMessage(orjson.dumps({"Call": {"Call-ID": "c1"}}))  # no Controller-Queue
    await rig.deliver(message)

    assert rig.broker.published == []
    assert [d.reason for d in rig.broker.dead_letters] == [Reason.INTERNAL_ERROR]
    assert message.acked == 1
    assert message.ack_commit().dead_letter is Reason.INTERNAL_ERROR


async def test_a_bug_committing_the_flow_answers_internal_error_in_one_commit_and_never_processing() -> None:
    # With confirms, processing could be out before a bug hit CHANNEL_PIVOT. In one transaction the
    # bug leaves nothing out: the request is answered failed, copied and acked, together, once.
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(CHANNEL_PIVOT, bug())
    message = FakeMessage(request_body())
    await rig.deliver(message)

    assert rig.broker.events() == [FAILED]  # no processing: it was in the commit that never happened
    assert rig.broker.published[0].body["Failure-Reason"] == "internal_error"
    assert [d.reason for d in rig.broker.dead_letters] == [Reason.INTERNAL_ERROR]
    assert message.acked == 1
    assert message.nacks == []
    assert message.ack_commit().events == [FAILED]
    # tried once, then answered once: no loop
    assert rig.broker.attempts == [(1, PROCESSING), (1, CHANNEL_PIVOT), (1, FAILED)]
    assert [c.applied for c in rig.broker.commits] == [False, True]


async def test_a_persistent_bug_on_the_first_publish_still_dead_letters_and_acks() -> None:
    # Nothing went out, so the worker tries to answer internal_error; that publish hits the same
    # bug. The request must still be dead-lettered and acked, not left unacked on a live channel.
    rig = make_rig(FakePipeline(success()), ledger_lease_ms=50)
    rig.epoch.bus.script(PROCESSING, bug())
    rig.epoch.bus.script(CHANNEL_PIVOT, bug())
    rig.epoch.bus.script(FAILED, bug())
    message = FakeMessage(request_body())
    await asyncio.wait_for(rig.deliver(message), 2)

    assert rig.broker.published == []
    assert [d.reason for d in rig.broker.dead_letters] == [Reason.INTERNAL_ERROR]
    assert message.acked == 1
    assert message.nacks == []
    (commit,) = rig.broker.applied()  # the copy and the ack, together
    assert (commit.events, commit.dead_letter, commit.ack) == (
        [],
        Reason.INTERNAL_ERROR,
        message.delivery_tag,
    )


async def test_a_one_off_bug_on_the_first_publish_gives_one_final_reply_and_one_ack() -> None:
    # The request is already claimed (this delivery holds the claim): the internal-error path
    # answers it once (failed, never processing) with the copy and the ack in one commit.
    rig = make_rig(FakePipeline(success()), ledger_lease_ms=50)
    rig.epoch.bus.script(PROCESSING, bug())
    message = FakeMessage(request_body())
    await asyncio.wait_for(rig.deliver(message), 2)

    finals = [e for e in rig.broker.events() if e in (CHANNEL_PIVOT, FAILED)]
    assert len(finals) == 1
    assert PROCESSING not in rig.broker.events()
    assert [d.reason for d in rig.broker.dead_letters] == [Reason.INTERNAL_ERROR]
    assert message.acked == 1  # one ack: a second closes the channel (the conftest fails on it)
    assert message.ack_commit().events == finals


async def test_unroutable_reply_is_retried_on_the_same_epoch_until_routed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pivot_worker.worker.UNROUTABLE_RETRY_S", 0.01)
    rig = make_rig(FakePipeline(success()))
    rig.epoch.bus.script(CHANNEL_PIVOT, unroutable(), unroutable(), unroutable())
    message = FakeMessage(request_body())
    await rig.deliver(message)

    assert rig.broker.attempts == [(1, PROCESSING)] + [(1, CHANNEL_PIVOT)] * 4
    assert [(p.epoch, p.event) for p in rig.broker.published] == [(1, PROCESSING), (1, CHANNEL_PIVOT)]
    assert rig.epoch.alive  # an unroutable reply is not a broker failure
    assert message.acked == 1
    first, *retries = rig.broker.commits
    assert (first.events, first.returned, first.ack) == (
        [PROCESSING, CHANNEL_PIVOT],
        [CHANNEL_PIVOT],
        message.delivery_tag,
    )
    assert [(c.events, c.ack) for c in retries] == [([CHANNEL_PIVOT], None)] * 3  # alone, never acked again


async def test_a_flow_unroutable_until_its_stale_point_is_dropped_and_the_input_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Otherwise the input stays unacked on a live channel: one prefetch slot lost per such request.
    monkeypatch.setattr("pivot_worker.worker.UNROUTABLE_RETRY_S", 0.01)
    rig = make_rig(FakePipeline(success()), stale_after_ms=150)
    rig.epoch.bus.script(CHANNEL_PIVOT, *[unroutable()] * 1000)
    message = FakeMessage(request_body())
    await asyncio.wait_for(rig.deliver(message), 2)

    assert rig.broker.events() == [PROCESSING]
    assert len(rig.broker.attempts) > 3
    assert stale_count(rig.worker) == 1
    assert message.acked == 1
    assert message.ack_commit() is rig.broker.commits[0]  # acked with the first commit, once


# -- shutdown -----------------------------------------------------------------------------------


async def test_a_message_arriving_while_stopping_is_requeued_unserved() -> None:
    pipeline = FakePipeline(success())
    rig = make_rig(pipeline)
    rig.worker._stopping = True
    message = FakeMessage(request_body())
    await rig.deliver(message)

    assert message.nacks == [True]
    assert message.acked == 0
    assert pipeline.calls == []
    assert rig.broker.published == []


async def test_a_cancelled_in_flight_request_requeues_itself() -> None:
    pipeline = FakePipeline(hang)
    rig = make_rig(pipeline)
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await asyncio.wait_for(pipeline.entered.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert message.nacks == [True]
    assert message.acked == 0
    assert rig.broker.published == []
    assert rig.worker.counts["requeued"] == 1
    assert not rig.worker._inflight


async def test_stop_cancels_what_outlives_the_grace_period_and_it_is_requeued() -> None:
    pipeline = FakePipeline(hang)
    rig = make_rig(pipeline, shutdown_grace_s=0.05)
    await rig.worker.ledger.open()
    message = FakeMessage(request_body())
    task = rig.spawn(message)
    await asyncio.wait_for(pipeline.entered.wait(), 1)
    await asyncio.wait_for(rig.worker.stop("test"), 2)

    assert task.cancelled()
    assert message.nacks == [True]
    assert message.acked == 0


async def test_a_requeue_on_a_dead_epoch_is_not_sent() -> None:
    rig = make_rig(FakePipeline(success()))
    rig.worker._stopping = True
    rig.epoch.broken.set()
    message = FakeMessage(request_body())
    await rig.deliver(message)
    assert message.nacks == []


# -- classification -----------------------------------------------------------------------------


def _nack() -> DeliveryError:
    return DeliveryError(None, Basic.Nack(delivery_tag=1))


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionError("reset"),
        ConnectionResetError(),
        TimeoutError(),
        AMQPConnectionError("gone"),
        ConnectionClosed(320, "CONNECTION_FORCED"),
        ChannelClosed(406, "PRECONDITION_FAILED"),
        ChannelInvalidStateError("channel closed"),  # aio-pika's publish on a closed channel
        _nack(),  # the broker nacked the reply: it did not take it
    ],
    ids=lambda e: type(e).__name__,
)
def test_broker_failures_are_classified_as_such(exc: BaseException) -> None:
    assert is_broker_failure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("x"),
        KeyError("k"),
        RuntimeError("r"),
        TypeError("t"),
        AssertionError(),
        returned(Reply("targeted", "q", {"Event-Name": "failed"}, {})),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bugs_and_unroutable_replies_are_not_broker_failures(exc: BaseException) -> None:
    assert not is_broker_failure(exc)
