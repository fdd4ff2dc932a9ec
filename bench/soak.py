"""Soak under production faults: workers SIGKILLed under load, optionally a broker restart mid-run.

``python bench/soak.py [--rate 100] [--seconds 20] [--workers 3] [--kill-every 5] [--broker-restart]``
from the repository root. It plays Kazoo's callflow side as Kazoo does on the wire: the
non-durable exchanges ``callmgr`` (topic), ``targeted`` (direct) and ``callevt`` (topic); a
``callflow_route_<run>`` queue with Kazoo's queue defaults bound to ``targeted``; for every request
a real-shaped serialized Call (:mod:`bench.payloads`) with its own Call-ID, Msg-ID and
``pid://<0.N.0>/callflow_route_<run>`` Controller-Queue, published on ``callmgr`` with key
``pivot.req.<encoded From-Realm>`` and the AMQP timestamp Kazoo sets (``kz_time:now_us()``: Gregorian
microseconds). It starts the developer server (:mod:`bench.devserver`, answering Kazoo JSON or
TwiML at once, or with ``--answer-delay-ms`` one that takes that long) and N ``pivot-worker run
--no-collector`` processes on a durable queue of the run's own, publishes open loop at ``--rate``
for ``--seconds``, SIGKILLs a worker every ``--kill-every`` seconds (by default the one whose
``pivot.processing`` just arrived, so the kill lands between its first reply and its ack) and
starts a replacement, optionally restarts the broker once, waits a bounded drain, then prints what
every request got.

Counting: a request is *sent* only when the broker confirmed it (publisher confirms, ``mandatory``:
a request no queue was bound to come back is "unroutable", not sent; one published while the
Kazoo side is disconnected is "broker down"). For each sent request it counts ``pivot.processing``,
``pivot.failed`` (with ``Failure-Reason``) on the route queue, checking ``Deliver-To-PID`` against
the request's pid, and ``CHANNEL_PIVOT`` on a queue bound to ``callevt`` with
``call.CHANNEL_PIVOT.*`` (Kazoo's cf_exe gets call events through a consistent-hash exchange that
needs a plugin; the events are the same). *Answered* means exactly one ``CHANNEL_PIVOT`` or one
``pivot.failed``; *lost* means neither arrived. Latency is end to end, from just before the
publish to the first answer, on one clock. After each kill or restart, *recovery* is how long until
(a) a request published after the event was answered and (b) every request still unanswered at
the event was answered: normal service again, nothing left behind.

Exit status: 0 when nothing was lost or duplicated and no ``processing`` came without its
``CHANNEL_PIVOT`` (nor any other problem the summary lists); 1 otherwise; 2 if the run could not be
made (a broker or a worker did not start). Only loopback is used. The broker is a private node
(:mod:`bench.rabbit_node`) started for the run and removed after it, unless ``--amqp-url`` names a
loopback broker (or virtual host) to use instead; ``--broker-restart`` always uses a private node.
Every process the run starts is stopped at the end, also on Ctrl-C or an error, and every queue and
exchange of its own is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import os
import random
import secrets
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import aio_pika
import orjson
import uvloop
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage
from aiohttp import web
from aiormq.exceptions import DeliveryError, PublishError

from bench import payloads
from bench.broker import BrokerControl
from bench.harness import cancel_on_signals, worker_queues
from bench.loadgen import install_raw_timestamps, percentile
from bench.procs import Child, Children
from bench.rabbit_node import RabbitNode
from pivot_worker import amqp_compat
from pivot_worker.names import encode_key_part

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
GREGORIAN_UNIX_EPOCH_US = 62_167_219_200 * 1_000_000  # kz_time.erl ?UNIX_EPOCH_IN_GREGORIAN, in µs
KAZOO_QUEUE_ARGS: dict[str, Any] = {
    "x-max-length": 100,
    "x-message-ttl": 60000,
}  # kz_amqp_util:new_queue/2 defaults
CONFIRM_TIMEOUT_S = 5.0
RECONNECT_EVERY_S = 0.2
WORKER_STOP_GRACE_S = 8.0
NOT_SENT = ("broker_down", "unroutable", "nacked", "unconfirmed")


def kazoo_timestamp_us() -> int:
    """What Kazoo puts in the AMQP ``timestamp``: ``kz_time:now_us()``, Gregorian microseconds."""
    return time.time_ns() // 1000 + GREGORIAN_UNIX_EPOCH_US


def worker_env(amqp_url: str, queue: str, **extra: str) -> dict[str, str]:
    """The workers' settings: as the end-to-end tests start them, plus the run's own names."""
    env = {
        "PIVOT_AMQP_URL": amqp_url,
        "PIVOT_QUEUE": queue,
        "PIVOT_ALLOW_NETWORKS": "127.0.0.0/8",
        "PIVOT_REQUEST_TIMEOUT_MS": "2000",
        "PIVOT_CONTINUATION_KEY": "soak-continuation-key",
        "PIVOT_SHUTDOWN_GRACE_S": "5",
        "PIVOT_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def worker_command(source: Path | None = None) -> list[str]:
    """``pivot-worker run --no-collector``, the console script next to this interpreter if installed.

    With ``source`` (a directory holding another revision's ``pivot_worker`` package, put first on
    the workers' ``PYTHONPATH``), ``python -m pivot_worker run --no-collector``.
    """
    script = Path(sys.executable).parent / "pivot-worker"
    if script.exists() and source is None:
        return [str(script), "run", "--no-collector"]
    # -P: the working directory (this checkout) must not come before ``source`` on sys.path
    return [sys.executable, "-P", "-m", "pivot_worker", "run", "--no-collector"]


@dataclass
class SoakConfig:
    rate: float = 100.0
    seconds: float = 20.0
    workers: int = 3
    kill_every: float = 5.0  # 0: no kills
    kill_at: str = "any"  # "any": any moment; "mid-reply": the worker that just sent a processing
    broker_restart: bool = False
    restart_at: float | None = None  # seconds into the run; default a third of --seconds
    tail_after_restart: float = 3.0  # publishing goes on at least this long after the broker is back
    drain_s: float = 20.0
    settle_s: float = 1.5  # after everything was answered, how long to keep listening for duplicates
    answer: str = "kazoo"
    answer_delay_ms: float = 0.0  # the developer server's time per answer
    queue_type: str | None = None
    worker_env: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    log_dir: Path | None = None
    worker_source: Path | None = None  # run the pivot_worker package found in this directory
    worker_start_timeout_s: float = 40.0


@dataclass
class Request:
    seq: int
    call_id: str
    msg_id: str
    pid: str
    published_at: float = 0.0
    status: str = "pending"  # then "sent" or one of NOT_SENT
    processing: int = 0
    channel_pivot: int = 0
    failed: list[str] = field(default_factory=list)
    first_answer_at: float | None = None
    misaddressed: int = 0
    nodes: list[str] = field(default_factory=list)

    @property
    def answers(self) -> int:
        return self.channel_pivot + len(self.failed)


@dataclass
class Disruption:
    kind: str  # "kill" or "broker restart"
    label: str
    at: float
    back_at: float  # when the broker accepted connections again (kills: = at)


@dataclass
class Tally:
    """Everything the Kazoo side saw, by Call-ID; the report is computed from it."""

    requests: list[Request] = field(default_factory=list)
    by_call: dict[str, Request] = field(default_factory=dict)
    foreign: int = 0
    other_events: int = 0
    on_processing: Callable[[str], None] | None = None  # called with the replying worker's Node

    def new_request(self, seq: int) -> Request:
        req = Request(seq, f"{uuid.uuid4()}@10.0.0.5", uuid.uuid4().hex, f"<0.{1000 + seq}.0>")
        self.requests.append(req)
        self.by_call[req.call_id] = req
        return req

    def record(self, body: dict[str, Any], headers: dict[str, Any], now: float) -> None:
        req = self.by_call.get(body.get("Call-ID"))  # type: ignore[arg-type]
        if req is None:
            self.foreign += 1
            return
        kind = (body.get("Event-Category"), body.get("Event-Name"))
        node = str(body.get("Node", "?"))
        if kind == ("pivot", "processing"):
            req.processing += 1
            if self.on_processing is not None:
                self.on_processing(node)
        elif kind == ("pivot", "failed"):
            req.failed.append(str(body.get("Failure-Reason", "-")))
        elif kind == ("call_event", "CHANNEL_PIVOT"):
            req.channel_pivot += 1
        else:
            self.other_events += 1
            return
        req.nodes.append(f"{kind[1]}@{node}")
        if kind[0] == "pivot":
            pid = headers.get("Deliver-To-PID")
            if isinstance(pid, bytes):
                pid = pid.decode(errors="replace")
            if pid != req.pid:
                req.misaddressed += 1
        if kind[1] != "processing" and req.first_answer_at is None:
            req.first_answer_at = now


@dataclass
class Recovery:
    label: str
    at_s: float  # since publishing started
    broker_down_s: float | None
    first_new_answer_s: float | None
    outstanding: int
    outstanding_unanswered: int
    outstanding_answered_s: float | None

    @property
    def recovery_s(self) -> float | None:
        if self.first_new_answer_s is None or self.outstanding_unanswered:
            return None
        return max(self.first_new_answer_s, self.outstanding_answered_s or 0.0)


@dataclass
class SoakReport:
    config: dict[str, Any]
    duration_s: float
    offered: int
    sent: int
    not_sent: dict[str, int]
    answered_once: int
    answered_flow: int
    answered_failed: int
    failed_by_reason: dict[str, int]
    lost: int
    duplicated_channel_pivot: int
    duplicated_processing: int
    processing_without_flow: int
    answered_more_than_once: int
    flow_without_processing: int
    misaddressed: int
    answers_to_unsent: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    recoveries: list[Recovery]
    kills: int
    broker_restarts: int
    worker_exits: list[str]
    kazoo_reconnects: int
    route_queue_overflow: int
    examples: dict[str, list[str]]
    log_dir: str

    def problems(self) -> list[str]:
        """Everything that makes the run a failure (the exit status is non-zero if any)."""
        checks = [
            ("lost", self.lost),
            ("duplicated CHANNEL_PIVOT", self.duplicated_channel_pivot),
            ("duplicated processing", self.duplicated_processing),
            ("processing without its CHANNEL_PIVOT", self.processing_without_flow),
            ("answered more than once", self.answered_more_than_once),
            ("replies with a wrong Deliver-To-PID", self.misaddressed),
            ("workers that exited on their own", len(self.worker_exits)),
        ]
        out = [f"{name}: {n}" for name, n in checks if n]
        if self.sent == 0:
            out.append("nothing was sent")
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["recoveries"] = [asdict(r) | {"recovery_s": r.recovery_s} for r in self.recoveries]
        data["problems"] = self.problems()
        return data

    def render(self) -> str:
        c = self.config
        restart = f", broker restart at {c['restart_at']:.1f} s" if c["broker_restart"] else ""
        kills = f"kill every {c['kill_every']:g} s ({c['kill_at']})" if c["kill_every"] else "no kills"
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.failed_by_reason.items())) or "-"
        not_sent = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.not_sent.items())
        lines = [
            f"soak: {c['workers']} workers, {c['rate']:g} req/s for {c['seconds']:g} s, {kills}{restart}, "
            f"queue {c['queue_type'] or 'default'}, answer {c['answer']} after {c['answer_delay_ms']:g} ms "
            f"({self.duration_s:.1f} s)"
            + (f"\n  workers from {c['worker_source']}" if c["worker_source"] else ""),
            f"  offered                         {self.offered}",
            f"  sent (confirmed by the broker)  {self.sent}",
            f"  not sent                        {not_sent}",
            f"  answered exactly once           {self.answered_once}"
            f"  (CHANNEL_PIVOT {self.answered_flow}, failed {self.answered_failed})",
            f"  failed by reason                {reasons}",
            f"  lost (no answer at all)         {self.lost}",
            f"  duplicated CHANNEL_PIVOT        {self.duplicated_channel_pivot}",
            f"  duplicated processing           {self.duplicated_processing}",
            f"  processing without its flow     {self.processing_without_flow}",
            f"  answered more than once         {self.answered_more_than_once}",
            f"  flow without processing         {self.flow_without_processing}",
            f"  wrong Deliver-To-PID            {self.misaddressed}",
            f"  answers to unsent requests      {self.answers_to_unsent}",
            f"  end to end (first answer)       p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"max {self.max_ms:.2f} ms",
            f"  kills {self.kills}, broker restarts {self.broker_restarts}, "
            f"Kazoo side reconnects {self.kazoo_reconnects}",
        ]
        if self.route_queue_overflow:
            lines.append(
                f"  note: {self.route_queue_overflow} replies overflowed the route queue's Kazoo limit "
                "(x-max-length 100; this process fell behind) and were counted from its dead letters"
            )
        if self.recoveries:
            lines.append("  recovery (new requests answered again / everything outstanding answered):")
        for r in self.recoveries:
            down = f", broker down {r.broker_down_s:.2f} s" if r.broker_down_s is not None else ""
            first = "never" if r.first_new_answer_s is None else f"{r.first_new_answer_s:.3f} s"
            if r.outstanding_unanswered:
                cleared = f"{r.outstanding_unanswered} of {r.outstanding} never answered"
            elif r.outstanding_answered_s is None:
                cleared = "none outstanding"
            else:
                cleared = f"{r.outstanding} answered after {r.outstanding_answered_s:.3f} s"
            total = "not recovered" if r.recovery_s is None else f"recovered after {r.recovery_s:.3f} s"
            lines.append(f"    {r.at_s:6.2f} s  {r.label}{down}: new answers {first}; {cleared}; {total}")
        for name, items in self.examples.items():
            if items:
                lines.append(f"  e.g. {name}: " + "; ".join(items))
        for exit_line in self.worker_exits:
            lines.append(f"  worker exited on its own: {exit_line}")
        problems = self.problems()
        lines.append("  verdict: " + ("OK" if not problems else "FAIL (" + "; ".join(problems) + ")"))
        lines.append(f"  logs: {self.log_dir}")
        return "\n".join(lines)


class KazooSide:
    """Kazoo's callflow node on the wire: declares as Kazoo does, publishes with confirms, reconnects.

    On a lost connection (a broker restart) it reconnects every 0.2 s and declares everything again,
    as Kazoo's AMQP layer does; the route queue keeps its name, so replies to requests published
    before the restart still reach it once it is back.
    """

    def __init__(self, amqp_url: str, run_id: str, tally: Tally) -> None:
        self.amqp_url = amqp_url
        self.tally = tally
        self.route_queue = f"callflow_route_{run_id}"
        self.events_queue = f"callflow_events_{run_id}"
        self.overflow_exchange = f"pivot_soak_{run_id}_overflow"
        self.overflowed = 0
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._connection: AbstractConnection | None = None
        self._callmgr: AbstractExchange | None = None
        self._closing = False
        self._reconnecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect()

    async def _connect(self) -> None:
        connection = await aio_pika.connect(
            self.amqp_url, client_properties={"connection_name": "pivot soak: Kazoo callflow side"}
        )
        try:
            consuming = await connection.channel()
            publishing: AbstractChannel = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            # Kazoo declares its exchanges non-durable and not auto-delete.
            callmgr = await publishing.declare_exchange("callmgr", aio_pika.ExchangeType.TOPIC, durable=False)
            targeted = await consuming.declare_exchange(
                "targeted", aio_pika.ExchangeType.DIRECT, durable=False
            )
            callevt = await consuming.declare_exchange("callevt", aio_pika.ExchangeType.TOPIC, durable=False)
            # Kazoo's queue defaults drop the oldest message beyond 100 waiting; should this process
            # fall that far behind, the dropped replies are dead-lettered to a queue of ours and
            # still counted (and the overflow reported), so the measurement never loses a reply.
            overflow = await consuming.declare_exchange(
                self.overflow_exchange, aio_pika.ExchangeType.FANOUT, durable=False
            )
            route = await consuming.declare_queue(
                self.route_queue,
                auto_delete=True,
                arguments={**KAZOO_QUEUE_ARGS, "x-dead-letter-exchange": self.overflow_exchange},
            )
            await route.bind(targeted, self.route_queue)
            events = await consuming.declare_queue(self.events_queue, auto_delete=True, exclusive=True)
            await events.bind(callevt, "call.CHANNEL_PIVOT.*")
            overflowed = await consuming.declare_queue("", auto_delete=True, exclusive=True)
            await overflowed.bind(overflow)
            await route.consume(self._on_message, no_ack=True)
            await events.consume(self._on_message, no_ack=True)
            await overflowed.consume(self._on_overflow, no_ack=True)
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        connection.close_callbacks.add(self._on_close)
        self._connection = connection
        self._callmgr = callmgr
        self.connected.set()

    def _on_close(self, _sender: object, _exc: BaseException | None = None) -> None:
        self.connected.clear()
        if self._closing or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closing:
            await asyncio.sleep(RECONNECT_EVERY_S)
            try:
                await self._connect()
            except Exception:  # the broker is still down or booting
                continue
            self.reconnects += 1
            return

    async def _on_overflow(self, message: AbstractIncomingMessage) -> None:
        self.overflowed += 1
        await self._on_message(message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        now = time.monotonic()
        try:
            body = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            self.tally.other_events += 1
            return
        if isinstance(body, dict):
            self.tally.record(body, dict(message.headers or {}), now)

    async def publish(self, req: Request, body: bytes, routing_key: str) -> None:
        """Publish one pivot_req and classify it by what the broker said."""
        callmgr = self._callmgr
        if not self.connected.is_set() or callmgr is None:
            req.status = "broker_down"
            return
        message = aio_pika.Message(body, content_type="application/json", message_id=req.msg_id)
        message.timestamp = kazoo_timestamp_us()  # type: ignore[assignment]  # raw, as Kazoo's client sends it
        req.published_at = time.monotonic()
        try:
            await asyncio.wait_for(
                callmgr.publish(message, routing_key=routing_key, mandatory=True), CONFIRM_TIMEOUT_S
            )
        except PublishError:
            req.status = "unroutable"
        except DeliveryError:
            req.status = "nacked"
        except (TimeoutError, Exception):
            req.status = "unconfirmed"
        else:
            req.status = "sent"

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reconnecting
        if self._connection is not None:
            with contextlib.suppress(Exception):
                channel = await self._connection.channel()
                await channel.exchange_delete(self.overflow_exchange)
            with contextlib.suppress(Exception):
                await self._connection.close()


class WorkerPool:
    """The ``pivot-worker`` processes of a run; tracks which ones we killed and which died alone."""

    def __init__(
        self, children: Children, env: dict[str, str], run_id: str, source: Path | None = None
    ) -> None:
        self.children = children
        self.source = source
        self.env = env
        self.run_id = run_id
        self.alive: list[Child] = []
        self.killed: set[int] = set()
        self.exits: list[str] = []
        self.stopping = False
        self.by_node: dict[str, Child] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._count = 0

    async def spawn(self) -> Child:
        self._count += 1
        name = f"w{self._count}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIVOT_")}
        env.update(self.env)
        env["PIVOT_NODE"] = node = f"soak-{name}@{self.run_id}"
        if self.source is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.source), env.get("PYTHONPATH")]))
        child = await self.children.spawn(name, worker_command(self.source), env=env)
        self.alive.append(child)
        self.by_node[node] = child
        self._watchers.append(asyncio.get_running_loop().create_task(self._watch(child)))
        return child

    async def _watch(self, child: Child) -> None:
        code = await child.process.wait()
        if child in self.alive:
            self.alive.remove(child)
        if not self.stopping and child.pid not in self.killed:
            tail = child.log_tail(5).replace("\n", " | ")
            self.exits.append(f"{child.name} (pid {child.pid}) exit {code}: {tail}")

    def problem(self) -> str | None:
        return self.exits[0] if self.exits else None

    def kill_now(self, child: Child) -> None:
        """SIGKILL at once (from a message callback, too: no await between the cue and the kill)."""
        self.killed.add(child.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)

    async def stop(self) -> None:
        self.stopping = True
        await self.children.stop(list(self.alive), grace_s=WORKER_STOP_GRACE_S)
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


class SlowDeveloper:
    """The developer's server taking ``delay_ms`` per answer, as real ones do, so kills and restarts
    find requests in flight. Runs in this process on :class:`tests.e2e.devserver.DevServer` (an
    aiohttp server on 127.0.0.1); without a delay the run uses :mod:`bench.devserver` instead."""

    def __init__(self, delay_ms: float) -> None:
        from tests.e2e.devserver import DevServer  # the end-to-end tests' scriptable server

        self.delay_s = delay_ms / 1000.0
        self.server = DevServer()
        self.server.seen = collections.deque(maxlen=100)  # type: ignore[assignment]  # bounded record

    async def start(self) -> str:
        await self.server.start()
        base_url = self.server.url("")
        documents = {
            payloads.KAZOO_PATH: (payloads.kazoo_document(base_url), "application/json"),
            payloads.TWIML_PATH: (payloads.TWIML_DOCUMENT, "text/xml"),
        }
        for path, (body, content_type) in documents.items():
            self.server.route(path, self._handler(body, content_type))
        return base_url

    def _handler(self, body: bytes, content_type: str) -> Any:
        async def answer(_request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(self.delay_s)
            return web.Response(body=body, content_type=content_type)

        return answer

    async def stop(self) -> None:
        await self.server.stop()


async def _start_devserver(children: Children) -> str:
    child = await children.spawn(
        "devserver", [sys.executable, str(BENCH_DIR / "devserver.py")], stdout_pipe=True
    )
    assert child.process.stdout is not None
    line = await asyncio.wait_for(child.process.stdout.readline(), 20)
    text = line.decode().strip()
    if not text.startswith("READY "):
        raise RuntimeError(f"developer server did not start: {text!r} {child.log_tail()}")
    return text.split(" ", 1)[1]


class Soak:
    def __init__(self, config: SoakConfig, amqp_url: str, node: RabbitNode | None) -> None:
        if config.broker_restart and node is None:
            raise ValueError("a broker restart needs a private node (bench.rabbit_node.RabbitNode)")
        if config.answer not in ("kazoo", "twiml"):
            raise ValueError("answer must be kazoo or twiml")
        self.config = config
        self.amqp_url = amqp_url
        self.node = node
        self.run_id = secrets.token_hex(4)
        self.queue = f"pivot_soak_{self.run_id}"
        self.debug_exchange = f"pivot_soak_{self.run_id}_debug"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir = config.log_dir or RESULTS_DIR / f"soak-{stamp}-{self.run_id}"
        self.children = Children(self.log_dir)
        self.tally = Tally()
        self.tally.on_processing = self._kill_mid_reply
        self.rng = random.Random(config.seed)
        self.disruptions: list[Disruption] = []
        self.slow: SlowDeveloper | None = None
        self._armed: asyncio.Future[Child] | None = None
        self.kazoo: KazooSide | None = None
        self.pool: WorkerPool | None = None
        self.offered = 0
        self.publish_until = 0.0
        self.started = 0.0

    async def run(self) -> SoakReport:
        install_raw_timestamps()
        amqp_compat.install()  # returned requests carry Kazoo's timestamp; read it back without failing
        began = time.monotonic()
        cfg = self.config
        try:
            if cfg.answer_delay_ms > 0:
                self.slow = SlowDeveloper(cfg.answer_delay_ms)
                base_url = await self.slow.start()
            else:
                base_url = await _start_devserver(self.children)
            voice_uri = base_url + (payloads.KAZOO_PATH if cfg.answer == "kazoo" else payloads.TWIML_PATH)
            extra = {
                "PIVOT_DEBUG_EXCHANGE": self.debug_exchange,
                # one reply ledger for the run's workers (they share a host), kept with the logs
                "PIVOT_LEDGER_URL": f"sqlite:///{self.log_dir.resolve() / 'ledger'}",
            }
            if cfg.queue_type:
                extra["PIVOT_QUEUE_TYPE"] = cfg.queue_type
            env = worker_env(self.amqp_url, self.queue, **extra)
            env.update(cfg.worker_env)
            self.pool = WorkerPool(self.children, env, self.run_id, cfg.worker_source)
            for _ in range(cfg.workers):
                await self.pool.spawn()
            control = BrokerControl(self.amqp_url)
            await control.connect()
            try:
                await control.wait_consumers(
                    self.queue, cfg.workers, cfg.worker_start_timeout_s, self.pool.problem
                )
            finally:
                await control.close()
            self.kazoo = KazooSide(self.amqp_url, self.run_id, self.tally)
            await self.kazoo.start()
            await self._load(voice_uri)
            await self._drain()
        finally:
            await self._close()
        return self._report(time.monotonic() - began)

    async def _load(self, voice_uri: str) -> None:
        cfg = self.config
        assert self.kazoo is not None
        template = payloads.pivot_req(voice_uri, cfg.answer)
        call = template["Call"]
        routing_key = "pivot.req." + encode_key_part(call["From-Realm"])
        route_queue = self.kazoo.route_queue
        loop = asyncio.get_running_loop()
        self.started = time.monotonic()
        start = loop.time()
        self.publish_until = start + cfg.seconds
        side_tasks: list[asyncio.Task[None]] = []
        if cfg.kill_every > 0:
            side_tasks.append(loop.create_task(self._killer(start)))
        restarting: asyncio.Task[None] | None = None
        if cfg.broker_restart:
            at = cfg.restart_at if cfg.restart_at is not None else cfg.seconds / 3
            restarting = loop.create_task(self._restarter(start + at))
            side_tasks.append(restarting)
        publishes: set[asyncio.Task[None]] = set()
        i = 0
        try:
            while True:
                due = start + i / cfg.rate
                # A restart still under way keeps the load going; once the broker is back,
                # publish_until moves to at least tail_after_restart later.
                if due >= self.publish_until and (restarting is None or restarting.done()):
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                req = self.tally.new_request(i)
                msg = dict(template)
                msg["Msg-ID"] = req.msg_id
                msg["Call"] = {
                    **call,
                    "Call-ID": req.call_id,
                    "Controller-Queue": f"pid://{req.pid}/{route_queue}",
                }
                task = loop.create_task(self.kazoo.publish(req, orjson.dumps(msg), routing_key))
                publishes.add(task)
                task.add_done_callback(publishes.discard)
                i += 1
            self.offered = i
            if restarting is not None:
                await restarting  # surfaces a failed restart
            if publishes:
                await asyncio.wait(set(publishes), timeout=CONFIRM_TIMEOUT_S + 2)
        finally:
            for task in side_tasks:
                task.cancel()
            await asyncio.gather(*side_tasks, return_exceptions=True)

    def _kill_mid_reply(self, node: str) -> None:
        """A ``pivot.processing`` just arrived from ``node``: if a kill is due, that worker dies now,
        between its first reply and its ack (where a redelivery can double an answer)."""
        armed, pool = self._armed, self.pool
        if armed is None or armed.done() or pool is None:
            return
        child = pool.by_node.get(node)
        if child is None or not child.alive() or child.pid in pool.killed:
            return
        pool.kill_now(child)
        armed.set_result(child)

    async def _killer(self, start: float) -> None:
        assert self.pool is not None
        loop = asyncio.get_running_loop()
        k = 1
        while True:
            at = start + k * self.config.kill_every
            k += 1
            if at >= self.publish_until - 0.5:
                return  # no kill in the last half second: its replacement could not matter
            await asyncio.sleep(max(0.0, at - loop.time()))
            victim: Child | None = None
            how = "at a random moment"
            if self.config.kill_at == "mid-reply":
                self._armed = loop.create_future()
                with contextlib.suppress(TimeoutError):
                    victim = await asyncio.wait_for(asyncio.shield(self._armed), 2.0)
                    how = "right after its pivot.processing"
                self._armed = None
            killed_at = time.monotonic()
            if victim is None:
                if not self.pool.alive:
                    continue
                victim = self.rng.choice(self.pool.alive)
                self.pool.kill_now(victim)
            self.disruptions.append(
                Disruption("kill", f"SIGKILL {victim.name} (pid {victim.pid}) {how}", killed_at, killed_at)
            )
            await victim.process.wait()
            await self.pool.spawn()

    async def _restarter(self, at: float) -> None:
        assert self.node is not None
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, at - loop.time()))
        now = time.monotonic()
        await self.node.arestart()
        back = time.monotonic()
        self.disruptions.append(Disruption("broker restart", f"restart {self.node.node_name}", now, back))
        self.publish_until = max(self.publish_until, loop.time() + self.config.tail_after_restart)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_s
        while loop.time() < deadline:
            if all(r.first_answer_at is not None for r in self.tally.requests if r.status == "sent"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(self.config.settle_s)

    async def _close(self) -> None:
        if self.pool is not None:
            await self.pool.stop()
        if self.kazoo is not None:
            await self.kazoo.close()
        await self.children.stop_all()
        if self.slow is not None:
            await self.slow.stop()
        with contextlib.suppress(Exception):
            control = BrokerControl(self.amqp_url)
            await asyncio.wait_for(control.connect(), 10)
            try:
                await control.delete(*worker_queues(self.queue))
                await control.delete_exchange(self.debug_exchange)
            finally:
                await control.close()

    def _report(self, duration: float) -> SoakReport:
        cfg = self.config
        reqs = self.tally.requests
        sent = [r for r in reqs if r.status == "sent"]
        not_sent = {name: sum(1 for r in reqs if r.status == name) for name in NOT_SENT}
        once = [r for r in sent if r.answers == 1]
        reasons = Counter(r.failed[0] for r in once if r.failed)
        latencies = sorted(
            (r.first_answer_at - r.published_at) * 1000 for r in sent if r.first_answer_at is not None
        )
        examples: dict[str, list[str]] = {}

        def pick(name: str, rows: list[Request]) -> int:
            examples[name] = [f"{r.call_id[:13]}.. {','.join(r.nodes) or 'nothing'}" for r in rows[:3]]
            return len(rows)

        lost = [r for r in sent if r.answers == 0]
        dup_cp = [r for r in sent if r.channel_pivot > 1]
        dup_pr = [r for r in sent if r.processing > 1]
        pr_no_cp = [r for r in sent if r.processing > 0 and r.channel_pivot == 0]
        many = [r for r in sent if r.answers > 1]
        report = SoakReport(
            config={
                **{
                    k: v
                    for k, v in asdict(cfg).items()
                    if k not in ("log_dir", "worker_env", "worker_source")
                },
                "worker_env": dict(cfg.worker_env),
                "worker_source": str(cfg.worker_source) if cfg.worker_source else None,
                "restart_at": cfg.restart_at if cfg.restart_at is not None else cfg.seconds / 3,
                "broker": self.node.node_name if self.node is not None else self.amqp_url,
            },
            duration_s=duration,
            offered=self.offered,
            sent=len(sent),
            not_sent=not_sent,
            answered_once=len(once),
            answered_flow=sum(1 for r in once if r.channel_pivot),
            answered_failed=sum(1 for r in once if r.failed),
            failed_by_reason=dict(reasons),
            lost=pick("lost", lost),
            duplicated_channel_pivot=pick("duplicated CHANNEL_PIVOT", dup_cp),
            duplicated_processing=pick("duplicated processing", dup_pr),
            processing_without_flow=pick("processing without flow", pr_no_cp),
            answered_more_than_once=len(many),
            flow_without_processing=sum(1 for r in sent if r.channel_pivot and not r.processing),
            misaddressed=sum(r.misaddressed for r in sent),
            answers_to_unsent=sum(1 for r in reqs if r.status != "sent" and r.answers),
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            max_ms=latencies[-1] if latencies else float("nan"),
            recoveries=[self._recovery(d, sent) for d in self.disruptions],
            kills=sum(1 for d in self.disruptions if d.kind == "kill"),
            broker_restarts=sum(1 for d in self.disruptions if d.kind == "broker restart"),
            worker_exits=list(self.pool.exits) if self.pool is not None else [],
            kazoo_reconnects=self.kazoo.reconnects if self.kazoo is not None else 0,
            route_queue_overflow=self.kazoo.overflowed if self.kazoo is not None else 0,
            examples=examples,
            log_dir=str(self.log_dir),
        )
        return report

    def _recovery(self, d: Disruption, sent: list[Request]) -> Recovery:
        # "New" requests are those published once the disruption was over (for a kill, at once;
        # for a restart, once the broker accepted connections again); "outstanding" ones were
        # published before that and not answered when the disruption began.
        after = [
            r.first_answer_at for r in sent if r.published_at >= d.back_at and r.first_answer_at is not None
        ]
        outstanding = [
            r
            for r in sent
            if r.published_at < d.back_at and (r.first_answer_at is None or r.first_answer_at > d.at)
        ]
        unanswered = [r for r in outstanding if r.first_answer_at is None]
        answered_at = [r.first_answer_at for r in outstanding if r.first_answer_at is not None]
        return Recovery(
            label=d.label,
            at_s=d.at - self.started,
            broker_down_s=(d.back_at - d.at) if d.kind == "broker restart" else None,
            first_new_answer_s=(min(after) - d.at) if after else None,
            outstanding=len(outstanding),
            outstanding_unanswered=len(unanswered),
            outstanding_answered_s=(max(answered_at) - d.at) if answered_at and not unanswered else None,
        )


async def run_soak(
    config: SoakConfig, *, amqp_url: str | None = None, node: RabbitNode | None = None
) -> SoakReport:
    """Run one soak against ``node`` (a started private node) or the loopback broker ``amqp_url``."""
    if node is not None:
        amqp_url = node.amqp_url
    if amqp_url is None:
        raise ValueError("give a private node or an AMQP URL")
    host = urlsplit(amqp_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the soak only uses loopback brokers, not {host!r}")
    return await Soak(config, amqp_url, node).run()


async def main_async(args: argparse.Namespace) -> int:
    config = SoakConfig(
        rate=args.rate,
        seconds=args.seconds,
        workers=args.workers,
        kill_every=args.kill_every,
        kill_at=args.kill_at,
        broker_restart=args.broker_restart,
        restart_at=args.restart_at,
        drain_s=args.drain,
        settle_s=args.settle,
        answer=args.answer,
        answer_delay_ms=args.answer_delay_ms,
        queue_type=args.queue_type,
        worker_env=args.worker_env,
        seed=args.seed,
        log_dir=Path(args.log_dir) if args.log_dir else None,
        worker_source=Path(args.worker_source).resolve() if args.worker_source else None,
    )
    signals = cancel_on_signals("soak")
    # The Kazoo side's reconnect attempts during a restart are expected; the report counts them.
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    node: RabbitNode | None = None
    try:
        if args.amqp_url is None:
            node = RabbitNode()
            took = await node.astart()
            print(f"soak: private broker {node.node_name} on 127.0.0.1:{node.port}, up in {took:.1f} s")
        report = await run_soak(config, amqp_url=args.amqp_url, node=node)
    except asyncio.CancelledError:
        if not signals:
            raise
        print(f"soak: interrupted by {signals[0]}; every process stopped, queues deleted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"soak: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            await asyncio.to_thread(node.close)
    print(report.render())
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return 1 if report.problems() else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Workers SIGKILLed under load (and a broker restart): every request answered once?"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second, open loop (100)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to publish (20)")
    parser.add_argument("--workers", type=int, default=3, help="worker processes (3)")
    parser.add_argument(
        "--kill-every", type=float, default=5.0, help="SIGKILL a random worker every S seconds; 0: never (5)"
    )
    parser.add_argument(
        "--kill-at",
        choices=("mid-reply", "any"),
        default="any",
        help="mid-reply: the worker whose pivot.processing just arrived dies at once, before its flow "
        "and ack (falls back to a random one after 2 s without replies); any: a random worker at "
        "the scheduled moment (the default)",
    )
    parser.add_argument(
        "--broker-restart", action="store_true", help="restart the (private) broker once, at --restart-at"
    )
    parser.add_argument(
        "--restart-at", type=float, help="seconds into the run (default: a third of --seconds)"
    )
    parser.add_argument(
        "--drain", type=float, default=20.0, help="longest wait for answers after the load (20)"
    )
    parser.add_argument(
        "--settle", type=float, default=1.5, help="listen this long for late duplicates after the drain (1.5)"
    )
    parser.add_argument(
        "--answer", choices=("kazoo", "twiml"), default="kazoo", help="what the server answers"
    )
    parser.add_argument(
        "--answer-delay-ms",
        type=float,
        default=0.0,
        help="the developer server's time per answer, so kills find requests in flight (0)",
    )
    parser.add_argument(
        "--queue-type", choices=("classic", "quorum"), help="passed to the workers as PIVOT_QUEUE_TYPE"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="PIVOT_NAME=VALUE",
        help="a worker setting, e.g. PIVOT_PREFETCH=10 (repeatable)",
    )
    parser.add_argument("--seed", type=int, help="seed for choosing which worker to kill")
    parser.add_argument(
        "--amqp-url",
        help="use this loopback broker (e.g. a virtual host of its own) instead of a private node",
    )
    parser.add_argument(
        "--worker-source",
        metavar="DIR",
        help="run the pivot_worker package in DIR (e.g. another revision: "
        "git archive REV pivot_worker | tar -x -C DIR) instead of the installed one",
    )
    parser.add_argument("--log-dir", help="worker and server logs (default bench/results/soak-<time>-<run>)")
    parser.add_argument("--json", help="also write the report as JSON here")
    args = parser.parse_args(argv)
    env: dict[str, str] = {}
    for item in args.worker_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("PIVOT_"):
            parser.error(f"--worker-env {item!r}: expected PIVOT_NAME=VALUE")
        env[name] = value
    args.worker_env = env
    if args.rate <= 0 or args.seconds <= 0 or args.workers < 1:
        parser.error("--rate and --seconds must be positive, --workers at least 1")
    if args.amqp_url is not None:
        if args.broker_restart:
            parser.error("--broker-restart restarts a private node; it cannot be combined with --amqp-url")
        host = urlsplit(args.amqp_url).hostname
        if host not in LOOPBACK_HOSTS:
            parser.error(f"--amqp-url must name a loopback host, not {host!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
