"""Fakes for driving the real :class:`~pivot_worker.worker.Worker` in-process.

* :class:`FakeBroker` records every commit (applied or not) and what the applied ones carried:
  replies, dead letters, acks and requeues, each with its epoch and commit;
* :class:`FakeEpoch` has what the worker uses of :class:`~pivot_worker.link.Epoch` (``alive``,
  ``broken``, ``bus``); its bus's ``commit`` is atomic (replies, dead letter and ack all applied,
  or none) and can be scripted per event name to fail as the broker does (connection gone before
  or after applying, a reply returned unroutable), to raise a bug, or to block. Acking or requeuing
  a delivery tag twice, or on a channel that did not deliver it, is recorded as a violation (the
  real broker closes the channel) and fails the test (``conftest.py``);
* :class:`FakeLink` replaces ``worker.link``: ``wait_ready`` returns the live epoch or waits for
  :meth:`FakeLink.install` (a reconnect) until its deadline;
* :class:`FakeMessage` looks its acks and requeues up on the broker;
* :class:`FakePipeline` answers each ``handle`` with a scripted :class:`Decision`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelClosed, ChannelInvalidStateError, PublishError
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from pivot_worker.errors import Reason
from pivot_worker.ledger import MemoryLedger
from pivot_worker.pipeline import Decision
from pivot_worker.replies import Reply
from pivot_worker.settings import Settings
from pivot_worker.trace import NullDebugSink, Outcome
from pivot_worker.worker import Worker
from tests.e2e.kazoo_side import base_call, pivot_req

PROCESSING = "processing"
CHANNEL_PIVOT = "CHANNEL_PIVOT"
FAILED = "failed"
QUEUE = "pid://<0.2345.0>/callflow_route_1"
FLOW = {"module": "tts", "data": {"text": "Hello"}}


# -- the broker side ----------------------------------------------------------------------------


@dataclass
class Published:
    epoch: int
    exchange: str
    routing_key: str
    event: str
    body: dict[str, Any]
    commit: int  # index in FakeBroker.commits of the commit that carried it


@dataclass
class DeadLetter:
    epoch: int
    reason: Reason
    detail: str
    body: bytes
    commit: int


@dataclass
class Commit:
    """One ``Bus.commit`` call as the broker saw it, and whether it took effect."""

    epoch: int
    events: list[str]  # the replies' Event-Names, in order
    dead_letter: Reason | None
    ack: int | None
    requeue: int | None
    applied: bool = False
    returned: list[str] = field(default_factory=list)


@dataclass
class FakeBroker:
    """What reached the broker, across every epoch (connection)."""

    published: list[Published] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    attempts: list[tuple[int, str]] = field(default_factory=list)  # (epoch, event) of every reply tried
    commits: list[Commit] = field(default_factory=list)  # every commit tried, applied or not
    acks: list[tuple[int, int]] = field(default_factory=list)  # (epoch, delivery tag) applied
    requeues: list[tuple[int, int]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # what a real broker closes the channel for

    def __post_init__(self) -> None:
        BROKERS.append(self)

    def events(self) -> list[str]:
        return [p.event for p in self.published]

    def on(self, epoch: int) -> list[str]:
        return [p.event for p in self.published if p.epoch == epoch]

    def applied(self) -> list[Commit]:
        return [c for c in self.commits if c.applied]


BROKERS: list[FakeBroker] = []  # every broker of the running test; the conftest checks their violations


@dataclass
class Action:
    """What the broker does with the next commit carrying a scripted event."""

    kind: str  # "down", "unroutable", "bug", "block"
    exc: BaseException | None = None
    applied: bool = False  # "down": the broker applied the commit, its commit-ok was lost
    gate: asyncio.Event | None = None  # "block"
    then: Action | None = None  # "block": what happens once the gate opens


def broker_down(exc: BaseException | None = None, *, applied: bool = False) -> Action:
    """The connection dies during the commit: the channel is closed and ``exc`` raised.

    ``applied=True``: the broker applied the commit (replies routed, request acked) but the worker
    never heard back; it cannot tell this from ``applied=False`` (nothing applied).
    """
    return Action("down", exc or ChannelInvalidStateError("channel closed"), applied=applied)


def returned(reply: Reply) -> PublishError:
    """The error aiormq raises for a returned mandatory reply (Basic.Return, NO_ROUTE) on a confirm
    channel: the worker must not mistake it for a broker failure."""
    frame = Basic.Return(
        reply_code=312, reply_text="NO_ROUTE", exchange=reply.exchange, routing_key=reply.routing_key
    )
    message = DeliveredMessage(
        delivery=frame,
        header=ContentHeader(),
        body=orjson.dumps(reply.body),
        channel=None,  # type: ignore[arg-type]
    )
    return PublishError(message, frame)


def unroutable() -> Action:
    """The broker returns the reply (no queue bound for its routing key); the rest is applied."""
    return Action("unroutable")


def bug(exc: Exception | None = None) -> Action:
    """A non-broker exception from the publishing code, raised before anything is applied."""
    return Action("bug", exc or ValueError("bug while publishing"))


def block(gate: asyncio.Event, *, then: Action | None = None) -> Action:
    """Hold the commit (frames written, ``tx.commit`` sent) until ``gate`` is set, then apply it
    (or run ``then``). A commit whose connection closed meanwhile is never applied."""
    return Action("block", gate=gate, then=then)


class FakeBus:
    """``commit`` as the worker calls it on :class:`~pivot_worker.bus.Bus`: all or nothing.

    Scripts are per event name: a commit's keys are its replies' Event-Names, then ``dead_letter``,
    ``ack``, ``requeue`` for what it carries; the next scripted action of each key is used.
    """

    def __init__(self, epoch: FakeEpoch) -> None:
        self.epoch = epoch
        self.scripts: dict[str, list[Action]] = {}
        self.blocked = asyncio.Event()

    def script(self, event: str, *actions: Action) -> None:
        """The next commits carrying ``event`` run ``actions`` in turn; later ones succeed."""
        self.scripts.setdefault(event, []).extend(actions)

    async def commit(
        self,
        replies: Sequence[Reply],
        *,
        ack: int | None = None,
        requeue: int | None = None,
        dead_letter: Any = None,
    ) -> list[Reply]:
        # As TxBatcher: the frames are written, then a cancelled caller does not cancel the commit.
        task = asyncio.ensure_future(self._commit(list(replies), ack, requeue, dead_letter))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    async def _commit(
        self, replies: list[Reply], ack: int | None, requeue: int | None, dead: Any
    ) -> list[Reply]:
        epoch, broker = self.epoch, self.epoch.broker
        events = [reply.body["Event-Name"] for reply in replies]
        broker.attempts.extend((epoch.number, event) for event in events)
        record = Commit(epoch.number, events, dead.reason if dead is not None else None, ack, requeue)
        index = len(broker.commits)
        broker.commits.append(record)
        if epoch.closed:
            raise ChannelInvalidStateError("channel closed")  # what aiormq raises on a dead channel
        keys = [*events]
        keys += ["dead_letter"] if dead is not None else []
        keys += ["ack"] if ack is not None else []
        keys += ["requeue"] if requeue is not None else []
        actions: list[tuple[str, Action]] = []
        for key in keys:
            pending = self.scripts.get(key)
            if pending:
                actions.append((key, pending.pop(0)))
        for position, (key, action) in enumerate(actions):
            if action.kind == "block":
                assert action.gate is not None
                self.blocked.set()
                await action.gate.wait()
                if epoch.closed:  # the connection died before the commit: the broker discards it
                    raise ChannelInvalidStateError("channel closed")
                if action.then is not None:
                    actions[position] = (key, action.then)
        for _, action in actions:
            if action.kind == "bug":
                assert action.exc is not None
                raise action.exc
        down = next((action for _, action in actions if action.kind == "down"), None)
        if down is None or down.applied:
            self._settle_check(ack, requeue)
            returned = {key for key, action in actions if action.kind == "unroutable"}
            for reply, event in zip(replies, events, strict=True):
                if event in returned:
                    record.returned.append(event)
                    continue
                broker.published.append(
                    Published(epoch.number, reply.exchange, reply.routing_key, event, reply.body, index)
                )
            if dead is not None:
                broker.dead_letters.append(
                    DeadLetter(epoch.number, dead.reason, dead.detail, dead.message.body, index)
                )
            if ack is not None:
                epoch.settled.add(ack)
                broker.acks.append((epoch.number, ack))
            if requeue is not None:
                epoch.settled.add(requeue)
                broker.requeues.append((epoch.number, requeue))
            record.applied = True
        if down is not None:
            epoch.closed = True
            assert down.exc is not None
            raise down.exc
        return [reply for reply, event in zip(replies, events, strict=True) if event in record.returned]

    def _settle_check(self, *tags: int | None) -> None:
        """The real broker closes the channel (406, unknown delivery tag), discarding the transaction,
        when a tag is acked or requeued twice or on a channel that did not deliver it."""
        epoch = self.epoch
        for tag in tags:
            if tag is None:
                continue
            if tag in epoch.settled or tag not in epoch.delivered:
                why = "settled twice" if tag in epoch.settled else "not delivered on this channel"
                epoch.broker.violations.append(f"epoch {epoch.number}: delivery tag {tag} {why}")
                epoch.closed = True
                raise ChannelClosed(406, f"PRECONDITION_FAILED - unknown delivery tag {tag}")


class FakeEpoch:
    def __init__(self, number: int, broker: FakeBroker) -> None:
        self.number = number
        self.broker = broker
        self.broken = asyncio.Event()
        self.closed = False  # the channel closed under us (Epoch checks ``channel.is_closed``)
        self.delivered: set[int] = set()  # delivery tags this channel handed out
        self.settled: set[int] = set()  # ... and those acked or requeued on it
        self.bus = FakeBus(self)

    @property
    def alive(self) -> bool:
        return not self.broken.is_set() and not self.closed


class FakeLink:
    """Stands in for :class:`~pivot_worker.link.BrokerLink`; :meth:`install` is a reconnect."""

    def __init__(self, epoch: FakeEpoch | None) -> None:
        self.epoch = epoch
        self.ready = asyncio.Event()
        self.waiting = asyncio.Event()  # set while someone waits for a live epoch
        if epoch is not None:
            self.ready.set()

    def install(self, epoch: FakeEpoch) -> None:
        self.epoch = epoch
        self.ready.set()

    async def wait_ready(self, until: float) -> FakeEpoch | None:
        while True:
            epoch = self.epoch
            if epoch is not None and epoch.alive:
                return epoch
            self.ready.clear()
            remaining = until - time.time()
            if remaining <= 0:
                return None
            self.waiting.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), min(remaining, 0.05))

    async def stop_consuming(self) -> None:
        return None

    async def close(self) -> None:
        return None


# -- the delivered messages ---------------------------------------------------------------------


class FakeMessage:
    """The parts of an aio-pika ``IncomingMessage`` the worker reads; acks and requeues are looked
    up on the broker that delivered it (they only ever go through ``Bus.commit``)."""

    _tags = iter(range(1, 1_000_000))

    def __init__(
        self,
        body: bytes,
        *,
        timestamp: datetime.datetime | None = None,
        redelivered: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> None:
        self.body = body
        self.timestamp = timestamp
        self.redelivered = redelivered
        self.headers = headers or {}
        self.delivery_tag = next(self._tags)
        self.broker: FakeBroker | None = None  # set when delivered
        self.exchange = "callmgr"
        self.routing_key = "pivot.req.sip.example.com"
        self.content_type = "application/json"

    def delivered_on(self, epoch: FakeEpoch) -> None:
        self.broker = epoch.broker
        epoch.delivered.add(self.delivery_tag)

    @property
    def acked(self) -> int:
        """How many times the broker applied an ack of this delivery."""
        if self.broker is None:
            return 0
        return sum(1 for _, tag in self.broker.acks if tag == self.delivery_tag)

    @property
    def nacks(self) -> list[bool]:
        """The requeue flag of every applied nack (the worker only nacks to requeue)."""
        if self.broker is None:
            return []
        return [True for _, tag in self.broker.requeues if tag == self.delivery_tag]

    def ack_commit(self) -> Commit:
        """The one applied commit that acked this delivery."""
        assert self.broker is not None
        (commit,) = [c for c in self.broker.applied() if c.ack == self.delivery_tag]
        return commit

    def again(self, **changes: Any) -> FakeMessage:
        """The broker's redelivery of this message (same body, a new delivery tag)."""
        fields: dict[str, Any] = {"timestamp": self.timestamp, "redelivered": True, "headers": self.headers}
        fields.update(changes)
        return FakeMessage(self.body, **fields)


def stamp(unix_s: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix_s, tz=datetime.UTC)


def request_body(
    call_id: str = "c1@10.0.0.5", voice_uri: str = "http://127.0.0.1:9/start", **fields: Any
) -> bytes:
    """A schema-valid pivot_req (unique Msg-ID, so a unique ledger key)."""
    return orjson.dumps(pivot_req(base_call(call_id, QUEUE), voice_uri, **fields))


# -- the pipeline -------------------------------------------------------------------------------


def success(call_id: str = "c1@10.0.0.5", flow: dict[str, Any] | None = None) -> Decision:
    return Decision(Outcome.SUCCESS, call_id=call_id, controller_queue=QUEUE, flow=flow or FLOW)


def failure(reason: Reason, call_id: str = "c1@10.0.0.5") -> Decision:
    return Decision(Outcome.FAILED, call_id=call_id, controller_queue=QUEUE, reason=reason, message="no")


def dead_letter(reason: Reason = Reason.INVALID_REQUEST) -> Decision:
    return Decision(Outcome.DEAD_LETTERED, reason=reason, message="not JSON", dead_letter=True)


Script = Decision | BaseException | Callable[[], Awaitable[Decision]]


class FakePipeline:
    """Answers ``handle`` from ``script`` in turn (the last one repeats); records every call."""

    def __init__(self, *script: Script) -> None:
        self.script = list(script)
        self.calls: list[bytes] = []
        self.entered = asyncio.Event()

    async def handle(self, body: bytes, timestamp: datetime.datetime | None = None) -> Decision:
        self.calls.append(body)
        self.entered.set()
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Decision):
            return step
        return await step()


async def hang() -> Decision:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


# -- the worker ---------------------------------------------------------------------------------


@dataclass
class Rig:
    """One worker wired to fakes; ``deliver`` is what the link does for each message."""

    worker: Worker
    broker: FakeBroker
    link: FakeLink
    ledger: MemoryLedger

    @property
    def epoch(self) -> FakeEpoch:
        assert self.link.epoch is not None
        return self.link.epoch

    async def deliver(self, message: FakeMessage, epoch: FakeEpoch | None = None) -> None:
        epoch = epoch or self.epoch
        message.delivered_on(epoch)
        await self.worker._on_message(message, epoch)  # type: ignore[arg-type]

    def spawn(self, message: FakeMessage, epoch: FakeEpoch | None = None) -> asyncio.Task[None]:
        message.delivered_on(epoch or self.epoch)  # now, not when the task first runs
        return asyncio.create_task(self.deliver(message, epoch))

    def reconnect(self) -> FakeEpoch:
        number = self.link.epoch.number + 1 if self.link.epoch is not None else 1
        epoch = FakeEpoch(number, self.broker)
        self.link.install(epoch)
        return epoch


def make_rig(
    pipeline: Any = None,
    *,
    ledger: MemoryLedger | None = None,
    broker: FakeBroker | None = None,
    **settings: Any,
) -> Rig:
    """A worker on a fake link with one live epoch (number 1); must be called inside the event loop."""
    settings.setdefault("node", "pivot_worker@test")
    settings.setdefault("continuation_key", "k")
    settings.setdefault("ledger_url", "memory://")
    ledger = ledger if ledger is not None else MemoryLedger()
    broker = broker if broker is not None else FakeBroker()
    worker = Worker(Settings(**settings), sink=NullDebugSink(), ledger=ledger)
    link = FakeLink(FakeEpoch(1, broker))
    worker.link = link  # type: ignore[assignment]
    if pipeline is not None:
        worker.pipeline = pipeline
    return Rig(worker, broker, link, ledger)


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def stale_count(worker: Worker) -> float:
    """``pivot_stale_requests_total`` of the worker's own registry."""
    return worker.metrics.registry.get_sample_value("pivot_stale_requests_total") or 0.0
