"""The worker process: consume pivot_req, serve each in its own task, reply exactly once, ack.

Failure classes, each with one handling:

* **the broker** (connection, channel or consumer gone; a commit that failed): the request stays in
  memory; its final reply is published on the next connection while it is still before its stale
  point (never after); the input is acked only inside the commit of its replies, on the connection
  that delivered it, so a dead connection's inputs come back from the broker and the ledger
  (``pivot_worker.ledger``) makes sure nobody publishes them twice;
* **a bug** (any other exception): logged with its traceback, answered ``pivot.failed``
  (``internal_error``) if nothing was published for it yet and it names a call, dead-lettered and
  acked: a bug never loops;
* **a poison message** that kills the whole process: after ``PIVOT_MAX_DELIVERIES`` deliveries it is
  dead-lettered (``redelivery_limit``) without being served again.

Shutdown: stop consuming, requeue whatever still arrives, wait up to ``PIVOT_SHUTDOWN_GRACE_S`` for
in-flight requests, then cancel the rest (they requeue themselves); one summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import Counter
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiohttp import web
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, PublishError

from . import amqp_compat, callflow
from .bus import DeadLetter
from .debug import DebugPublisher
from .errors import Reason
from .fetch import Fetcher
from .ledger import Answer, Entry, Ledger, open_ledger, request_key
from .ledger.base import ResilientLedger
from .link import BrokerLink, Epoch
from .logs import LIFECYCLE, REQUEST_FIELDS
from .metrics import WorkerMetrics
from .pipeline import Decision, Pipeline, origin_time
from .replies import Reply, replies_for
from .request import reply_identity
from .settings import Settings, redact_url
from .trace import DebugSink, NullDebugSink, Outcome

logger = logging.getLogger(__name__)
request_log = logging.getLogger("pivot_worker.requests")
lifecycle_log = logging.getLogger(LIFECYCLE)

UNROUTABLE_RETRY_S = 0.1
PRUNE_INTERVAL_S = 5.0
LEDGER_KEEP_S = 60.0  # a ledger entry outlives its request's stale point by this much
FAILED_REPLY_WINDOW_S = 30.0  # how long a pivot.failed may wait for the broker to come back


def is_broker_failure(exc: BaseException) -> bool:
    """True for errors that mean "the broker or our link to it failed", not "this message is bad".

    ``ChannelInvalidStateError`` (publishing on a channel or connection that closed) is a
    ``RuntimeError`` in aiormq, not an ``AMQPError``, so it is named here.
    """
    return isinstance(
        exc, AMQPError | ChannelInvalidStateError | ConnectionError | TimeoutError
    ) and not isinstance(exc, PublishError)


class Worker:
    """One consumer on the shared queue; run several processes to scale out."""

    def __init__(
        self,
        settings: Settings,
        *,
        sink: DebugSink | None = None,
        ledger: Ledger | None = None,
        private_binding: str | None = None,
    ) -> None:
        """``sink`` receives every finished trace (default: a :class:`DebugPublisher` on the bus);
        ``ledger`` remembers answers across processes (default: the one ``PIVOT_LEDGER_URL`` names);
        ``private_binding`` consumes an exclusive queue bound with that key alone (the simulator)."""
        amqp_compat.install()
        self.settings = settings
        self.fetcher = Fetcher(settings)
        self.pipeline = Pipeline(settings, self.fetcher)
        self.ledger: Ledger = ResilientLedger(
            ledger if ledger is not None else open_ledger(settings.ledger_url)
        )
        self.owner = f"{settings.node}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._publisher = DebugPublisher(settings) if sink is None else None
        self.sink: DebugSink = self._publisher if self._publisher is not None else sink or NullDebugSink()
        self._debug_connection: AbstractRobustConnection | None = None
        self.counts: Counter[str] = Counter()
        self.metrics = WorkerMetrics()
        self.link = BrokerLink(settings, self._on_message, private_binding=private_binding)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._stopping = False
        self._health: web.AppRunner | None = None

    async def start(self) -> None:
        """Open the ledger and the HTTP client, connect, declare and start consuming."""
        if not self.settings.continuation_key:
            logger.warning(
                "PIVOT_CONTINUATION_KEY is not set: TwiML continuation tokens are signed with a key "
                "derived from PIVOT_AMQP_URL; set a shared secret for production"
            )
        callflow.prepare()  # compile every schema now, not on the first call that needs it
        await self.ledger.open()
        await self.fetcher.start()
        await self.link.start()
        if self._publisher is not None:
            self._debug_connection = await aio_pika.connect_robust(
                self.settings.amqp_urls[0],
                reconnect_interval=0.5,
                client_properties={"connection_name": f"pivot-worker debug {self.settings.node}"},
            )
            await self._publisher.start(self._debug_connection)
            publisher = self._publisher
            self.metrics.watch_debug_drops(lambda: publisher.dropped)
        self.metrics.watch_translation_memo(self.pipeline.translations)
        self.metrics.watch_circuits(self.fetcher.breakers)
        if self.settings.metrics_listen:
            self._health = await self.metrics.serve(self.settings.metrics_listen, self.readiness)
        self._background.append(asyncio.create_task(self._prune_ledger(), name="pivot-ledger-prune"))
        lifecycle_log.info(
            "consuming %s on %s (prefetch %d, node %s)",
            self.settings.queue,
            redact_url(self.link.epoch.url if self.link.epoch else self.settings.amqp_url),
            self.settings.prefetch,
            self.settings.node,
        )

    async def stop(self, why: str = "stop") -> None:
        """Stop consuming, drain in-flight requests within the grace period, requeue the rest, close."""
        self._stopping = True
        await self.link.stop_consuming()
        pending = set(self._inflight)
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=2)
        for task in self._background:
            task.cancel()
        await self.fetcher.close()
        if self._publisher is not None:
            await self._publisher.stop()
        if self._debug_connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._debug_connection.close(), 2)
        await self.link.close()
        await self.ledger.close()
        if self._health is not None:
            await self._health.cleanup()
            self._health = None
        c = self.counts
        lifecycle_log.info(
            "shutdown on %s: %d ok, %d failed, %d dead-lettered, %d requeued, %d resumed, %d in flight",
            why,
            c["success"],
            c["failed"],
            c["dead_lettered"],
            c["requeued"],
            c["resumed"],
            len([t for t in self._inflight if not t.done()]),
        )

    def readiness(self) -> str | None:
        """``None`` when this worker can take requests, else which check failed (``/readyz``)."""
        if self.link.fatal.is_set():
            return "broker_link_fatal"
        epoch = self.link.epoch
        if epoch is None or not epoch.alive:
            return "broker_connection"
        try:
            consuming = epoch.consuming()
        except Exception:  # the channel went away under us
            consuming = False
        if not consuming:
            return "broker_consumer"
        if self._publisher is not None and not self._publisher.has_channel:
            return "debug_publisher_channel"
        return None

    # -- one delivery ---------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage, epoch: Epoch) -> None:
        if self._stopping:
            await self._requeue(message, epoch)
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        self.metrics.in_flight.inc()
        delivery = _Delivery(message, epoch)
        try:
            await self._handle(delivery)
        except asyncio.CancelledError:
            if not delivery.ack_written:  # a written ack commits anyway: a nack would close the channel
                await self._requeue(message, epoch)
            raise
        except Exception as exc:
            await self._on_bug(delivery, exc)
        finally:
            self.metrics.in_flight.dec()
            if task is not None:
                self._inflight.discard(task)

    async def _handle(self, delivery: _Delivery) -> None:
        message = delivery.message
        received_at = time.time()
        stale_at = origin_time(message.timestamp, received_at) + self.settings.stale_after_ms / 1000.0
        if message.redelivered and await self._redelivered(delivery, stale_at):
            return
        started = time.perf_counter()
        decision = await self.pipeline.handle(message.body, message.timestamp)
        dead = None
        if decision.dead_letter:
            reason = decision.reason or Reason.INVALID_REQUEST
            dead = DeadLetter(message, reason, decision.message)
        await self._answer(delivery, _answer_of(decision, stale_at), dead)
        self._account(decision, started)

    async def _redelivered(self, delivery: _Delivery, stale_at: float) -> bool:
        """Handle a request the broker delivered before; ``True`` when nothing is left to serve.

        A redelivered request was never committed (its ack commits with its replies), so nothing
        went out for it, unless a worker that lost its connection republished its final reply
        afterwards: the ledger entry says which.
        """
        message = delivery.message
        delivery.key = request_key(message.body)
        deliveries = _quorum_delivery_count(message)
        if deliveries is None:  # the first delivery is not counted: it was not redelivered
            deliveries = 1 + await self.ledger.count_delivery(delivery.key, stale_at + LEDGER_KEEP_S)
        entry = await self.ledger.lookup(delivery.key)
        if entry is not None and entry.owner is not None and entry.answer is not None:
            self.counts["resumed"] += 1
            await self._resume(delivery, entry)
            return True
        if deliveries > self.settings.max_deliveries:
            await self._refuse_poison(delivery, deliveries, stale_at)
            return True
        return False

    async def _resume(self, delivery: _Delivery, entry: Entry) -> None:
        """Someone claimed this request (a worker that died, or lost its connection, before its
        commit): after its lease, take the claim over and commit the final reply with the ack."""
        key = delivery.key
        assert key is not None and entry.answer is not None
        answer = entry.answer
        while True:
            now = time.time()
            if entry.done or now >= answer.stale_at:
                break
            if entry.lease_until > now:  # the owner may still be at work: give it its lease
                await asyncio.sleep(min(entry.lease_until, answer.stale_at) - now + 0.01)
            elif await self.ledger.take_over(key, self.owner, entry.owner, now + self._lease_s):
                delivery.claimed = True
                await self._commit(delivery, answer, _final(replies_for(answer, self.settings.node)))
                return
            fresh = await self.ledger.lookup(key)
            if fresh is None:
                break
            entry = fresh
        await self._ack(delivery)

    async def _answer(self, delivery: _Delivery, answer: Answer | None, dead: DeadLetter | None) -> None:
        """Commit the replies, the dead letter and the ack together.

        A first delivery commits without touching the ledger: if this worker dies before the
        commit, nothing went out and the redelivery is served afresh. A redelivered request is
        claimed first, because the worker that had it may still be alive and about to publish it
        on a new connection (it claims too before it does, so exactly one of them goes on).
        """
        if answer is None:
            await self._commit(delivery, None, [], dead)
            return
        if delivery.message.redelivered and not await self._claim(delivery, answer):
            return
        await self._commit(delivery, answer, replies_for(answer, self.settings.node), dead)

    async def _claim(self, delivery: _Delivery, answer: Answer) -> bool:
        """Make this worker the owner of the request's answer; ``False`` (and the request is
        finished by :meth:`_resume`) when another worker claimed it first."""
        if delivery.claimed:
            return True
        key = delivery.key = delivery.key or request_key(delivery.message.body)
        lease = time.time() + self._lease_s
        claimed = await self.ledger.claim(key, self.owner, answer, lease, answer.stale_at + LEDGER_KEEP_S)
        if claimed is not None:
            await self._resume(delivery, claimed)
            return False
        delivery.claimed = True
        return True

    async def _commit(
        self,
        delivery: _Delivery,
        answer: Answer | None,
        replies: list[Reply],
        dead: DeadLetter | None = None,
    ) -> None:
        """Commit ``replies`` with the ack on the connection that delivered the request.

        If that connection is gone (or goes during the commit), the request is claimed in the ledger
        and its replies published on the next connection (:meth:`_keep`); replies the broker could
        not route are published again until they are routed (the ack is already in).
        """
        started = time.perf_counter()
        tag = delivery.message.delivery_tag
        if not delivery.epoch.alive:  # gone before anything was written: all of it is still to send
            if answer is not None and replies:
                await self._keep(delivery, answer, replies, dead)
            return
        try:
            ack = None if delivery.acked else tag  # a tag acked twice makes the broker close the channel
            delivery.ack_written = delivery.ack_written or ack is not None
            returned = await delivery.epoch.bus.commit(replies, ack=ack, dead_letter=dead)
        except Exception as exc:
            if not is_broker_failure(exc):
                raise
            delivery.epoch.broken.set()
            if answer is not None and replies:
                logger.warning(
                    "call %s: replies not committed (%s: %s); keeping them for the next connection",
                    answer.call_id,
                    type(exc).__name__,
                    exc,
                )
                await self._keep(delivery, answer, _final(replies), dead)
            return
        delivery.acked = True
        delivery.published = bool(replies)
        self.metrics.publish_latency.observe(time.perf_counter() - started)
        returned = _worth_resending(returned)
        if returned and answer is not None:
            await self._publish_until(delivery, answer, returned, verify_owner=False)

    async def _keep(
        self, delivery: _Delivery, answer: Answer, replies: list[Reply], dead: DeadLetter | None
    ) -> None:
        """The connection failed around the commit: claim the request (unless this worker already
        owns it), then publish on the next connection. If another worker claimed it first (its
        redelivery got there before us), that worker answers it."""
        if not await self._claim(delivery, answer):
            return
        # verified again once connected: while we waited, our lease may have run out and the
        # request's redelivery been taken over by another worker
        await self._publish_until(delivery, answer, replies, verify_owner=True, dead=dead)

    async def _publish_until(
        self,
        delivery: _Delivery,
        answer: Answer,
        replies: list[Reply],
        *,
        verify_owner: bool,
        dead: DeadLetter | None = None,
    ) -> bool:
        """Publish ``replies`` on whatever connection is up until each is routed, or give up at the
        deadline: a flow never after the stale point; a failure (how a stale request is answered)
        within a bounded window. After a broker failure the ledger must still name us the owner,
        and ``processing`` is dropped (the failed commit may have carried it). ``dead``, the copy
        for ``<queue>.dead`` that was in the cut commit, goes with the first one that succeeds (its
        redelivery finds the answer done and is only acked, so it would never be copied)."""
        key = delivery.key = delivery.key or request_key(delivery.message.body)
        deadline = answer.stale_at
        if answer.reason is not None:
            deadline = max(deadline, time.time()) + FAILED_REPLY_WINDOW_S
        pending = replies
        while pending:
            epoch = await self.link.wait_ready(deadline)
            if epoch is None or time.time() >= deadline:
                self._give_up_stale(answer, pending[0])
                return False
            if verify_owner:
                if not await self.ledger.take_over(key, self.owner, self.owner, time.time() + self._lease_s):
                    logger.info("call %s: another worker took over its answer", answer.call_id)
                    return False
                verify_owner = False
            try:
                unroutable = await epoch.bus.commit(pending, dead_letter=dead)
            except Exception as exc:
                if not is_broker_failure(exc):
                    raise
                epoch.broken.set()
                verify_owner = True
                pending = _final(pending)  # its outcome is unknown: processing may be out
                continue
            dead = None
            delivery.published = True
            if unroutable:  # the requester's queue is not (yet) there: not delivered, so safe to resend
                await asyncio.sleep(UNROUTABLE_RETRY_S)
            pending = _worth_resending(unroutable)
        if delivery.claimed:  # a redelivery may look it up: it must find it done
            await self.ledger.finish(key)
        return True

    def _give_up_stale(self, answer: Answer, reply: Reply) -> None:
        self.metrics.stale.inc()
        logger.warning(
            "call %s: %s not published: its time ran out before it could be (broker unavailable or "
            "the requester's queue missing; PIVOT_STALE_AFTER_MS=%d); the callflow has failed over",
            answer.call_id,
            reply.body.get("Event-Name"),
            self.settings.stale_after_ms,
        )

    async def _refuse_poison(self, delivery: _Delivery, deliveries: int, stale_at: float) -> None:
        detail = (
            f"delivered {deliveries} times (PIVOT_MAX_DELIVERIES={self.settings.max_deliveries}): "
            "it keeps coming back without being answered, so a worker likely dies serving it"
        )
        logger.error("refusing a pivot_req: %s", detail)
        await self._fail_and_dead_letter(delivery, Reason.REDELIVERY_LIMIT, detail, stale_at)
        self.counts["dead_lettered"] += 1
        self.metrics.observe(Outcome.DEAD_LETTERED.value, Reason.REDELIVERY_LIMIT.value, 0.0, None)

    async def _on_bug(self, delivery: _Delivery, exc: Exception) -> None:
        """Any exception that is not the broker's: a bug. Never requeued, so it never loops."""
        if is_broker_failure(exc):
            logger.warning("delivery lost with the broker connection (%s: %s)", type(exc).__name__, exc)
            return  # its connection is gone: the broker gives it to another consumer
        logger.exception("internal error on a pivot_req; answering failed and dead-lettering it")
        detail = f"{type(exc).__name__}: {exc}"
        stale_at = (
            origin_time(delivery.message.timestamp, time.time()) + self.settings.stale_after_ms / 1000.0
        )
        try:
            await self._fail_and_dead_letter(delivery, Reason.INTERNAL_ERROR, detail, stale_at)
        except Exception:
            logger.exception("could not answer or dead-letter after an internal error")
        self.counts["failed"] += 1
        self.metrics.observe(Outcome.FAILED.value, Reason.INTERNAL_ERROR.value, 0.0, None)

    async def _fail_and_dead_letter(
        self, delivery: _Delivery, reason: Reason, detail: str, stale_at: float
    ) -> None:
        """Answer ``failed`` (if nothing went out and the request names a call), dead-letter, ack:
        one commit. If a bug breaks even that, dead-letter and ack without the answer."""
        dead = DeadLetter(delivery.message, reason, detail)
        if delivery.acked:  # replies and ack are in: only the copy is left to keep
            with contextlib.suppress(Exception):
                await self._commit(delivery, None, [], dead)
            return
        identity = None if delivery.published else _identity(delivery.message.body)
        answer = Answer(identity[0], identity[1], stale_at, reason.value) if identity else None
        try:
            await self._answer(delivery, answer, dead)
        except Exception:  # the bug may be in publishing itself
            logger.exception("could not answer %s for a pivot_req", reason.value)
            await self._commit(delivery, None, [], dead)

    async def _ack(self, delivery: _Delivery) -> None:
        """Commit the ack alone, on the connection that delivered the request; skip a dead one
        (the broker has requeued the request, or will) and never ack one tag twice (the broker
        closes a channel that does)."""
        if delivery.acked or not delivery.epoch.alive:
            return
        with contextlib.suppress(Exception):
            await self._commit(delivery, None, [])

    async def _requeue(self, message: AbstractIncomingMessage, epoch: Epoch) -> None:
        self.counts["requeued"] += 1
        if epoch.alive and message.delivery_tag is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(epoch.bus.commit([], requeue=message.delivery_tag))

    async def _prune_ledger(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            await self.ledger.prune(time.time())

    @property
    def _lease_s(self) -> float:
        return self.settings.ledger_lease_ms / 1000.0

    # -- accounting -----------------------------------------------------------------------------

    def _account(self, decision: Decision, started: float) -> None:
        self.counts[decision.outcome.value] += 1
        reason = decision.reason.value if decision.reason else ""
        self.metrics.observe(decision.outcome.value, reason, time.perf_counter() - started, decision.trace)
        self._log(decision, started)
        if decision.trace is not None:
            self.sink.record(decision.trace)

    def _log(self, decision: Decision, started: float) -> None:
        if not request_log.isEnabledFor(logging.INFO):
            return
        trace = decision.trace
        fields: dict[str, Any] = {
            "call_id": decision.call_id or "-",
            "outcome": decision.outcome.value,
            "reason": decision.reason.value if decision.reason else "-",
            "status": _last_status(decision),
            "attempts": trace.attempts if trace is not None else 0,
            "ms": round((time.perf_counter() - started) * 1000.0, 1),
        }
        if decision.reason is not None:
            fields["error"] = decision.message[:300]
        request_log.info(
            "call_id=%s outcome=%s reason=%s status=%s attempts=%d ms=%.1f%s",
            fields["call_id"],
            fields["outcome"],
            fields["reason"],
            fields["status"],
            fields["attempts"],
            fields["ms"],
            f" error={fields['error']!r}" if "error" in fields else "",
            extra={REQUEST_FIELDS: fields},
        )


class _Delivery:
    """One delivered message, the connection it came on, and what was done for it so far."""

    __slots__ = ("ack_written", "acked", "claimed", "epoch", "key", "message", "published")

    def __init__(self, message: AbstractIncomingMessage, epoch: Epoch) -> None:
        self.message = message
        self.epoch = epoch
        self.key: bytes | None = None
        self.published = False
        self.claimed = False
        self.acked = False
        self.ack_written = False  # a commit carrying the ack was started (it may still be in flight)


def _worth_resending(returned: list[Reply]) -> list[Reply]:
    """Of the replies the broker returned, those to publish again: none once the final reply got
    through (a ``processing`` after ``CHANNEL_PIVOT`` tells ``cf_exe`` nothing), else all of them."""
    return returned if any(not reply.at_most_once for reply in returned) else []


def _final(replies: list[Reply]) -> list[Reply]:
    """The replies to send again when the first try's fate is unknown: never ``processing``."""
    return [reply for reply in replies if not reply.at_most_once]


def _answer_of(decision: Decision, stale_at: float) -> Answer | None:
    if decision.call_id is None or decision.controller_queue is None:
        return None
    if decision.outcome is Outcome.SUCCESS and decision.flow is not None:
        return Answer(
            decision.call_id, decision.controller_queue, stale_at, None, orjson.dumps(decision.flow)
        )
    reason = decision.reason or Reason.INTERNAL_ERROR
    return Answer(decision.call_id, decision.controller_queue, stale_at, reason.value)


def _identity(body: bytes) -> tuple[str, str] | None:
    try:
        return reply_identity(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


def _quorum_delivery_count(message: AbstractIncomingMessage) -> int | None:
    """Deliveries so far as a quorum queue counts them (``x-delivery-count``), if it does."""
    value = (message.headers or {}).get("x-delivery-count")
    return int(value) + 1 if isinstance(value, int) else None


def _last_status(decision: Decision) -> str:
    trace = decision.trace
    if trace is None or not trace.exchanges or trace.exchanges[-1].status is None:
        return "-"
    return str(trace.exchanges[-1].status)
