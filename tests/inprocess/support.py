"""Fakes for driving the real :class:`~pivot_worker.worker.Worker` in-process.

* :class:`FakeBroker` records every reply and dead letter, with the epoch that carried it;
* :class:`FakeEpoch` has what the worker uses of :class:`~pivot_worker.link.Epoch` (``alive``,
  ``broken``, ``bus``); its bus can be scripted per reply name to fail the next publish as the
  broker does (connection gone, reply unroutable), to raise a bug, or to block;
* :class:`FakeLink` replaces ``worker.link``: ``wait_ready`` returns the live epoch or waits for
  :meth:`FakeLink.install` (a reconnect) until its deadline;
* :class:`FakeMessage` / :class:`FakeChannel` record acks and requeues;
* :class:`FakePipeline` answers each ``handle`` with a scripted :class:`Decision`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError, PublishError
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


@dataclass
class DeadLetter:
    epoch: int
    reason: Reason
    detail: str
    body: bytes


@dataclass
class FakeBroker:
    """What reached the broker, across every epoch (connection)."""

    published: list[Published] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    attempts: list[tuple[int, str]] = field(default_factory=list)  # (epoch, event) of every try

    def events(self) -> list[str]:
        return [p.event for p in self.published]

    def on(self, epoch: int) -> list[str]:
        return [p.event for p in self.published if p.epoch == epoch]


Action = Callable[["FakeBus", Reply], Awaitable[None]]


def broker_down(exc: BaseException | None = None, *, delivered: bool = False) -> Action:
    """The connection dies during the publish: the channel is closed and ``exc`` raised.

    ``delivered=True``: the reply reached the broker but its confirm was lost (the worker cannot
    tell the difference, which is why ``processing`` is at most once).
    """

    async def act(bus: FakeBus, reply: Reply) -> None:
        if delivered:
            bus.record(reply)
        bus.epoch.closed = True
        raise exc if exc is not None else ChannelInvalidStateError("channel closed")

    return act


def returned(reply: Reply) -> PublishError:
    """The error aiormq raises when the broker returns a mandatory reply (Basic.Return, NO_ROUTE)."""
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
    """The broker returns the reply: no queue is bound for its routing key."""

    async def act(bus: FakeBus, reply: Reply) -> None:
        raise returned(reply)

    return act


def bug(exc: Exception | None = None) -> Action:
    """A non-broker exception from the publishing code: a bug."""

    async def act(bus: FakeBus, reply: Reply) -> None:
        raise exc if exc is not None else ValueError("bug while publishing")

    return act


def block(gate: asyncio.Event, *, then: Action | None = None) -> Action:
    """Hold the publish until ``gate`` is set, then publish (or run ``then``)."""

    async def act(bus: FakeBus, reply: Reply) -> None:
        bus.blocked.set()
        await gate.wait()
        if then is not None:
            await then(bus, reply)
        else:
            bus.record(reply)

    return act


class FakeBus:
    """``publish_reply`` and ``dead_letter`` as the worker calls them on :class:`~pivot_worker.bus.Bus`."""

    def __init__(self, epoch: FakeEpoch) -> None:
        self.epoch = epoch
        self.scripts: dict[str, list[Action]] = {}
        self.blocked = asyncio.Event()
        self.dead_letter_error: BaseException | None = None

    def script(self, event: str, *actions: Action) -> None:
        """The next publishes of ``event`` run ``actions`` in turn; later ones succeed."""
        self.scripts.setdefault(event, []).extend(actions)

    def record(self, reply: Reply) -> None:
        event = reply.body["Event-Name"]
        self.epoch.broker.published.append(
            Published(self.epoch.number, reply.exchange, reply.routing_key, event, reply.body)
        )

    async def publish_reply(self, reply: Reply) -> None:
        event = reply.body["Event-Name"]
        self.epoch.broker.attempts.append((self.epoch.number, event))
        if self.epoch.closed:
            raise ChannelInvalidStateError("channel closed")  # what aio-pika raises on a dead channel
        pending = self.scripts.get(event)
        if pending:
            await pending.pop(0)(self, reply)
            return
        self.record(reply)

    async def dead_letter(self, message: Any, reason: Reason, detail: str) -> None:
        if self.dead_letter_error is not None:
            raise self.dead_letter_error
        self.epoch.broker.dead_letters.append(DeadLetter(self.epoch.number, reason, detail, message.body))


class FakeEpoch:
    def __init__(self, number: int, broker: FakeBroker) -> None:
        self.number = number
        self.broker = broker
        self.broken = asyncio.Event()
        self.closed = False  # the channel closed under us (Epoch checks ``channel.is_closed``)
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


@dataclass
class FakeChannel:
    acks: list[int] = field(default_factory=list)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.acks.append(delivery_tag)


class FakeMessage:
    """The parts of an aio-pika ``IncomingMessage`` the worker reads."""

    _tags = iter(range(1, 1_000_000))

    def __init__(
        self,
        body: bytes,
        *,
        timestamp: datetime.datetime | None = None,
        redelivered: bool = False,
        headers: dict[str, Any] | None = None,
        channel: FakeChannel | None = None,
    ) -> None:
        self.body = body
        self.timestamp = timestamp
        self.redelivered = redelivered
        self.headers = headers or {}
        self.delivery_tag = next(self._tags)
        self.channel = channel or FakeChannel()
        self.nacks: list[bool] = []  # the requeue flag of every nack
        self.exchange = "callmgr"
        self.routing_key = "pivot.req.sip.example.com"
        self.content_type = "application/json"

    @property
    def acked(self) -> int:
        return self.channel.acks.count(self.delivery_tag)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self.nacks.append(requeue)

    def again(self, **changes: Any) -> FakeMessage:
        """The broker's redelivery of this message (same body), on ``channel`` if given."""
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
        await self.worker._on_message(message, epoch or self.epoch)  # type: ignore[arg-type]

    def spawn(self, message: FakeMessage, epoch: FakeEpoch | None = None) -> asyncio.Task[None]:
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
