"""``pivot-worker simulate VOICE_URL``: a call through a real broker and a real worker, without Kazoo.

The command plays Kazoo's callflow side (``cf_pivot`` and ``cf_exe``, docs/kazoo-contract.md §1-3):
it publishes a real-shaped ``pivot_req`` on ``callmgr`` (the serialized ``Call`` of the contract's
example, a new Call-ID, a ``pid://`` Controller-Queue, Kazoo's Gregorian-microsecond timestamp),
waits on a queue of its own bound to ``targeted`` (its name) and ``callevt``
(``call.*.<encoded call id>``) for ``pivot.processing`` + ``CHANNEL_PIVOT`` or ``pivot.failed``, then
walks the returned flow as Kazoo's engine would (:mod:`pivot_worker.simulate_walk`). A nested
``pivot`` node sends the next ``pivot_req`` with the node's data and the digits collected so far.

Which worker answers (``--worker``):

* ``embedded``: a real :class:`~pivot_worker.worker.Worker` in this process, with its own settings:
  the address policy opens 127.0.0.0/8 and ::1 (``--allow-local``, the default; ``--no-allow-local``
  keeps ``PIVOT_ALLOW_NETWORKS`` as it is), no ledger, no metrics, debug events on (the call
  shows in the debug API and the inspector), and a random continuation key unless
  ``PIVOT_CONTINUATION_KEY`` is set. It consumes an exclusive queue
  ``pivot_simulate.<id>`` (gone when the process ends) bound to ``callmgr`` with
  ``pivot.req.simulate.<id>``, and the simulator publishes its requests with that key. The key has
  one level more than ``pivot.req.<realm>``: a realm is always encoded (a dot becomes ``%2E``), so
  Kazoo never sends such a key, and ``pivot.req.*`` (the binding of every worker queue and of
  Kazoo's ``pivot_listener``) never matches it, ``*`` being exactly one level. So production workers
  on the same broker never see the simulator's requests, and the embedded worker, bound to nothing
  else, never sees production's. (Only a queue bound with ``#`` under ``pivot.req`` would see
  both; neither Kazoo nor pivot-worker binds one.)
* ``running``: the workers consuming ``PIVOT_QUEUE`` answer. The request goes out exactly as Kazoo's
  would, on ``pivot.req.<encoded From-Realm>``, so **every** queue bound with ``pivot.req.*``
  receives it: each pivot-worker deployment on that broker, and Kazoo's own pivot app if it runs
  there (it would answer too, as it does for a real call).
* ``auto`` (default): ``running`` when ``PIVOT_QUEUE`` has consumers (a passive declare) and the
  voice URL's host resolves only to addresses the address policy (``PIVOT_ALLOW_NETWORKS``) allows;
  otherwise ``embedded``. A ``make run`` worker refuses 127.0.0.1, so a script served on this
  machine always gets the embedded worker.

Exit status: 0 when the call ends normally (hang-up, end of the flow, ``--max-steps``), 1 when a
request fails or gets no answer (cf_pivot would run the pivot node's ``_`` child), 2 for a usage or
broker problem.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import datetime
import ipaddress
import logging
import os
import secrets
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, ExchangeType
from aiormq.exceptions import AMQPError, ChannelNotFoundEntity

from . import names
from .settings import Settings, SettingsError
from .simulate_walk import CallState, Step, Stop, parse_digits, pivot_line, shown_url, walk
from .trace import DebugSink, PivotTrace

logger = logging.getLogger(__name__)

ANSWER_WAIT_S = 10.0  # cf_pivot's ?DEFAULT_EVENT_WAIT (docs/kazoo-contract.md §3.1)
GREGORIAN_UNIX_EPOCH_S = 62_167_219_200  # kz_time.erl ?UNIX_EPOCH_IN_GREGORIAN
LOCAL_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
REALM = "sip.example.com"
ACCOUNT_ID = "3a1b2c4d5e6f708192a3b4c5d6e7f809"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` subcommand to the ``pivot-worker`` command line."""
    cmd = subparsers.add_parser(
        "simulate",
        help="play a call against a voice URL through the broker and a worker, printing each step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("voice_url", metavar="VOICE_URL", help="the developer's script URL")
    cmd.add_argument("--format", choices=("twiml", "kazoo"), default="twiml", help="Request-Format (twiml)")
    cmd.add_argument("--method", choices=("get", "post"), default="get", help="HTTP-Method (get)")
    cmd.add_argument("--digits", default="", help="what the caller presses at each collect, e.g. 1234#,2")
    cmd.add_argument("--caller", default="+14155550100", help="the caller's number (+14155550100)")
    cmd.add_argument("--json", action="store_true", help="one JSON object per step")
    cmd.add_argument(
        "--interactive",
        action="store_true",
        help="ask for the digits at each collect once --digits ran out (an empty line is a timeout)",
    )
    cmd.add_argument(
        "--answer-dials",
        action="store_true",
        help="dials are answered, then the called party hangs up (default: not answered); with "
        "PIVOT_AFTER_DIAL_EXTENSION set the caller goes on to the Dial's action or next verbs",
    )
    cmd.add_argument("--max-steps", type=int, default=50, help="stop after this many steps (50)")
    cmd.add_argument("--amqp-url", help="broker (PIVOT_AMQP_URL)")
    cmd.add_argument(
        "--worker",
        choices=("auto", "embedded", "running"),
        default="auto",
        help="who answers: a worker in this process, the running workers, or auto (see above)",
    )
    cmd.add_argument(
        "--allow-local",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let the embedded worker fetch 127.0.0.0/8 and ::1 (default: on)",
    )
    cmd.set_defaults(func=run)


@dataclass
class Options:
    voice_url: str
    format: str = "twiml"
    method: str = "get"
    digits: list[str] = field(default_factory=list)
    caller: str = "+14155550100"
    json: bool = False
    max_steps: int = 50
    amqp_url: str | None = None
    worker: str = "auto"
    allow_local: bool = True
    interactive: bool = False
    answer_dials: bool = False


def _ask_digits() -> str | None:
    """The caller's keys, typed at the terminal (blocks the simulation while it waits, which is
    the point: the call waits for the caller). End of input hangs up the prompt: a timeout."""
    try:
        typed = input("digits (empty = timeout)> ").strip()
    except EOFError:
        return ""
    return typed


def run(args: argparse.Namespace) -> int:
    """Entry point of ``pivot-worker simulate``; returns the process exit code."""
    from .runtime import run_loop

    if args.max_steps < 1:
        print("pivot-worker simulate: --max-steps must be at least 1", file=sys.stderr)
        return 2
    options = Options(
        voice_url=args.voice_url,
        format=args.format,
        method=args.method,
        digits=parse_digits(args.digits),
        caller=args.caller,
        json=args.json,
        max_steps=args.max_steps,
        amqp_url=args.amqp_url,
        worker=args.worker,
        allow_local=args.allow_local,
        interactive=args.interactive,
        answer_dials=args.answer_dials,
    )
    try:
        return run_loop(simulate(options, sys.stdout))
    except BrokenPipeError:  # the reader went away (``| head``): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


# -- the call Kazoo would describe ---------------------------------------------------------------


def build_call(call_id: str, controller_queue: str, caller: str) -> dict[str, Any]:
    """The serialized ``Call`` of ``amqp_schemas/examples/valid/pivot_req/kazoo_wire_example.json``
    (``kapps_call:to_json/1``) for a new call from ``caller`` to ``2000``."""
    flow_id = "c0ffee00c0ffee00c0ffee00c0ffee00"
    return {
        "Account-DB": "account%2F3a%2F1b%2F2c4d5e6f708192a3b4c5d6e7f809",
        "Account-ID": ACCOUNT_ID,
        "Authorizing-ID": "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
        "Authorizing-Type": "device",
        "Call-Bridged": False,
        "Call-Direction": "inbound",
        "Call-ID": call_id,
        "Callee-ID-Number": "2000",
        "Caller-ID-Name": caller,
        "Caller-ID-Number": caller,
        "Control-Queue": f"ecallmgr@fs1.example.com-<0.8812.0>-{uuid.uuid4().hex[:8]}",
        "Controller-Queue": controller_queue,
        "Custom-Application-Vars": {},
        "Custom-Channel-Vars": {
            "Account-ID": ACCOUNT_ID,
            "Authorizing-ID": "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
            "Authorizing-Type": "device",
            "CallFlow-ID": flow_id,
            "Owner-ID": "6d2f0c1b2a3948576a5b4c3d2e1f0a9b",
            "Realm": REALM,
            "Username": "user_simulated",
        },
        "Custom-SIP-Headers": {},
        "From": f"{caller}@{REALM}",
        "From-Realm": REALM,
        "From-Tag": uuid.uuid4().hex[:8],
        "From-User": caller,
        "Is-Call-Forward": False,
        "Is-Recording": False,
        "Key-Value-Store": {
            "cf_capture_groups": {},
            "cf_flow_id": flow_id,
            "cf_flow_name": "2000",
            "cf_last_action": "cf_pivot",
            "cf_no_match": False,
            "dtmf_collections": {},
        },
        "Language": "en-us",
        "Message-Left": False,
        "Owner-ID": "6d2f0c1b2a3948576a5b4c3d2e1f0a9b",
        "Request": f"2000@{REALM}",
        "Request-Realm": REALM,
        "Request-User": "2000",
        "Resource-Type": "audio",
        "Switch-Hostname": "fs1.example.com",
        "Switch-Nodename": "freeswitch@fs1.example.com",
        "To": f"2000@{REALM}",
        "To-Realm": REALM,
        "To-User": "2000",
    }


def build_pivot_req(call: dict[str, Any], pivot_data: dict[str, Any]) -> dict[str, Any]:
    """The ``pivot_req`` ``cf_pivot:handle/2`` builds from a pivot node's ``data`` (contract §2.2):
    ``method`` defaults to ``get``, ``req_body_format`` to ``form``, ``debug`` to ``false``; an absent
    ``req_format`` stays absent (the runtime then means ``twiml``)."""
    kvs = call["Key-Value-Store"]
    kvs["cf_flow"] = {"module": "pivot", "data": pivot_data, "children": {}}
    msg: dict[str, Any] = {
        "App-Name": "callflow",
        "App-Version": "4.0.0",
        "Event-Category": "dialplan",
        "Event-Name": "pivot_req",
        "Msg-ID": uuid.uuid4().hex,
        "Node": "kazoo_apps@simulate.example.com",
        "Voice-URI": pivot_data["voice_url"],
        "HTTP-Method": str(pivot_data.get("method") or "get").lower(),
        "Request-Body-Format": pivot_data.get("req_body_format") or "form",
        "Debug": bool(pivot_data.get("debug", False)),
        "Call": copy.deepcopy(call),
    }
    if pivot_data.get("req_format"):
        msg["Request-Format"] = pivot_data["req_format"]
    if isinstance(pivot_data.get("req_timeout_ms"), int):
        msg["Request-Timeout"] = pivot_data["req_timeout_ms"]
    return msg


class KazooStamp(datetime.datetime):
    """A ``datetime`` whose ``timestamp()`` is Kazoo's ``kz_time:now_us()`` (Gregorian microseconds).

    The AMQP client packs ``int(value.timestamp())`` into the ``timestamp`` property, so the request
    carries the stamp Kazoo's publisher sets (contract §1.6) without changing the client's encoder.
    """

    def timestamp(self) -> float:
        return float(int(super().timestamp() * 1_000_000) + GREGORIAN_UNIX_EPOCH_S * 1_000_000)


def kazoo_stamp() -> KazooStamp:
    now = datetime.datetime.now(datetime.UTC)
    return KazooStamp.fromtimestamp(now.timestamp(), tz=datetime.UTC)


# -- the embedded worker --------------------------------------------------------------------------


class TraceSink:
    """Keeps the last trace of each call, to explain a failure beyond its ``Failure-Reason``."""

    def __init__(self) -> None:
        self.last: dict[str, PivotTrace] = {}

    def record(self, trace: PivotTrace) -> None:
        self.last[trace.call_id] = trace


class _Both:
    """Hands each trace to two sinks: the worker's debug publisher and the simulator's own."""

    def __init__(self, first: DebugSink, second: DebugSink) -> None:
        self.first, self.second = first, second

    def record(self, trace: PivotTrace) -> None:
        self.first.record(trace)
        self.second.record(trace)


@contextlib.asynccontextmanager
async def embedded_worker(settings: Settings, binding_key: str, sink: TraceSink) -> AsyncIterator[None]:
    """A real worker in this process, on an exclusive queue bound with ``binding_key`` alone."""
    from .worker import Worker

    worker = Worker(settings, private_binding=binding_key)
    worker.sink = _Both(worker.sink, sink)  # debug events too: the call shows in the inspector
    try:
        await worker.start()
        yield
    finally:
        with contextlib.suppress(Exception):
            await worker.stop("simulation over")


def embedded_settings(options: Options, queue: str) -> Settings:
    base = Settings.from_env(amqp_url=options.amqp_url)
    allow = base.allow_networks + (LOCAL_NETWORKS if options.allow_local else ())
    return Settings.from_env(
        amqp_url=base.amqp_urls[0],
        queue=queue,
        prefetch=16,
        ledger_url="off",
        metrics_listen="",
        shutdown_grace_s=2.0,
        reconnect_give_up_s=5.0,
        allow_networks=allow,
        continuation_key=base.continuation_key or secrets.token_urlsafe(32),
    )


# -- choosing who answers -------------------------------------------------------------------------


async def consumer_count(channel_factory: Callable[[], Any], queue: str) -> int:
    """Consumers on ``queue`` (passive declare), 0 when the queue does not exist."""
    channel: AbstractChannel = await channel_factory()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.consumer_count or 0)
    except ChannelNotFoundEntity:
        return 0
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def url_allowed_by_policy(url: str, settings: Settings) -> bool:
    """Whether a worker with ``settings``' address policy may fetch ``url``'s host (every address)."""
    from .netguard import AddressPolicy

    policy = AddressPolicy(settings.allow_networks)
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    ip, allowed = policy.literal_verdict(host)
    if ip is not None:
        return allowed
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}
    return bool(addresses) and all(policy.is_allowed(a) for a in addresses)


# -- the simulation -------------------------------------------------------------------------------


@dataclass
class Reply:
    kind: str  # "processing" | "failed" | "flow"
    body: dict[str, Any]


class Printer:
    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def step(self, step: Step) -> None:
        if self.as_json:
            self.out.write(orjson.dumps(step.as_json()).decode() + "\n")
        else:
            self.out.write(f"{step.number:>3}  {step.text}\n")
        self.out.flush()

    def note(self, text: str) -> None:
        if not self.as_json:
            self.out.write(f"     {text}\n")
            self.out.flush()

    def end(self, number: int, end: str, **extra: Any) -> None:
        if self.as_json:
            self.out.write(orjson.dumps({"step": number, "end": end, **extra}).decode() + "\n")
        else:
            for key, value in extra.items():
                if value not in (None, ""):
                    self.out.write(f"     {key}: {value}\n")
            self.out.write(f"     end: {end}\n")
        self.out.flush()


async def simulate(options: Options, out: TextIO) -> int:
    """Run one simulated call; prints steps to ``out``; returns the exit status."""
    printer = Printer(out, options.json)
    try:
        settings = Settings.from_env(amqp_url=options.amqp_url)
    except (SettingsError, ValueError) as exc:
        print(f"pivot-worker simulate: {exc}", file=sys.stderr)
        return 2
    run_id = uuid.uuid4().hex[:12]
    try:
        connection = await aio_pika.connect(settings.amqp_urls[0], timeout=5)
    except (TimeoutError, OSError, AMQPError) as exc:
        print(f"pivot-worker simulate: cannot connect to the broker: {exc}", file=sys.stderr)
        return 2
    async with connection:
        mode = options.worker
        if mode != "embedded":
            consumers = await consumer_count(connection.channel, settings.queue)
            if mode == "running" and consumers == 0:
                print(f"pivot-worker simulate: no worker consumes {settings.queue!r}", file=sys.stderr)
                return 2
            if mode == "auto":
                local_ok = await url_allowed_by_policy(options.voice_url, settings)
                mode = "running" if consumers and local_ok else "embedded"
        call = Call(connection, run_id, options, printer)
        await call.open()
        if mode == "embedded":
            queue = f"pivot_simulate.{run_id}"
            key = f"{names.PIVOT_REQ_PREFIX}simulate.{run_id}"
            try:
                worker_settings = embedded_settings(options, queue)
            except (SettingsError, ValueError) as exc:
                print(f"pivot-worker simulate: {exc}", file=sys.stderr)
                return 2
            printer.note(f"worker: embedded (queue {queue}, routing key {key})")
            async with embedded_worker(worker_settings, key, call.traces):
                return await call.run(key)
        key = names.pivot_req_routing_key(REALM)
        printer.note(f"worker: the running workers on {settings.queue} (routing key {key})")
        return await call.run(key)


class Call:
    """One simulated call: its reply queue, its state, and the loop request -> flow -> walk."""

    def __init__(self, connection: Any, run_id: str, options: Options, printer: Printer) -> None:
        self.connection = connection
        self.options = options
        self.printer = printer
        self.call_id = str(uuid.uuid4())
        self.reply_queue_name = f"pivot_simulate.{run_id}.replies"
        controller = f"pid://<0.{4000 + secrets.randbelow(5000)}.0>/{self.reply_queue_name}"
        self.call = build_call(self.call_id, controller, options.caller)
        ask = _ask_digits if options.interactive else None
        self.state = CallState(
            list(options.digits),
            self.call["Key-Value-Store"],
            options.max_steps,
            ask=ask,
            variables=self.call["Custom-Application-Vars"],
            answer_dials=options.answer_dials,
        )
        self.replies: asyncio.Queue[Reply] = asyncio.Queue()
        self.traces = TraceSink()

    async def open(self) -> None:
        channel = await self.connection.channel()
        self.channel = channel
        self.callmgr = await channel.declare_exchange(
            names.EXCHANGE_CALLMGR, ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        targeted = await channel.declare_exchange(
            names.EXCHANGE_TARGETED, ExchangeType.DIRECT, durable=False, auto_delete=False
        )
        callevt = await channel.declare_exchange(
            names.EXCHANGE_CALLEVT, ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        queue = await channel.declare_queue(self.reply_queue_name, exclusive=True)
        await queue.bind(targeted, self.reply_queue_name)
        await queue.bind(callevt, f"call.*.{names.encode_key_part(self.call_id)}")
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            body = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict) or body.get("Call-ID") != self.call_id:
            return
        name = body.get("Event-Name")
        if name == names.EVENT_NAME_CHANNEL_PIVOT:
            self.replies.put_nowait(Reply("flow", body))
        elif name in (names.EVENT_NAME_PROCESSING, names.EVENT_NAME_FAILED):
            self.replies.put_nowait(Reply(str(name), body))

    async def publish(self, routing_key: str, msg: dict[str, Any]) -> None:
        message = aio_pika.Message(
            orjson.dumps(msg), content_type="application/json", timestamp=kazoo_stamp()
        )
        await self.callmgr.publish(message, routing_key=routing_key)

    async def answer(self) -> tuple[Reply, float]:
        """The final reply to the request just sent (flow or failure), or a ``timeout`` reply."""
        started = time.monotonic()
        deadline = started + ANSWER_WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Reply("timeout", {}), ANSWER_WAIT_S
            try:
                reply = await asyncio.wait_for(self.replies.get(), remaining)
            except TimeoutError:
                continue
            if reply.kind != "processing":
                return reply, time.monotonic() - started

    async def run(self, routing_key: str) -> int:
        printer, state = self.printer, self.state
        node: dict[str, Any] = {
            "module": "pivot",
            "data": {
                "voice_url": self.options.voice_url,
                "method": self.options.method,
                "req_format": self.options.format,
                "debug": True,  # every request and answer recorded for the debug API and inspector
            },
            "children": {},
        }
        first = state.next_step()
        assert first is not None
        printer.step(
            Step(first, "pivot", node["data"], pivot_line(node["data"]), {"url": self.options.voice_url})
        )
        while True:
            if state.step >= state.max_steps:  # Kazoo would send the request; the simulation stops here
                printer.end(state.step, "max_steps", detail=f"{state.max_steps} steps")
                return 0
            await self.publish(routing_key, build_pivot_req(self.call, node["data"]))
            reply, took = await self.answer()
            if reply.kind != "flow":
                return await self._failed(node, reply)
            flow = reply.body.get("Application-Data")
            flow = orjson.loads(flow) if isinstance(flow, str) else flow
            if not isinstance(flow, dict):
                self.printer.end(self.state.step, "failed", reason="no flow in CHANNEL_PIVOT")
                return 1
            printer.note(f"<- pivot.processing + CHANNEL_PIVOT ({took * 1000:.0f} ms)")
            stop: Stop = walk(flow, state, printer.step)
            if stop.end != "pivot":
                printer.end(state.step, stop.end, detail="" if stop.end == "hangup" else stop.detail)
                return 0
            assert stop.node is not None
            node = stop.node

    async def _failed(self, node: dict[str, Any], reply: Reply) -> int:
        fallback = (node.get("children") or {}).get("_")
        if fallback is None:
            runs = "the call would fall back to the pivot node's _ child (none here: Kazoo would hang up)"
        else:
            runs = f"cf_pivot would run the pivot node's _ child: {fallback.get('module')}"
        if reply.kind == "timeout":
            self.printer.end(
                self.state.step,
                "no_answer",
                message=f"no answer within {ANSWER_WAIT_S:.0f} s",
                fallback=runs,
            )
            return 1
        trace = None
        for _ in range(20):  # the trace is recorded right after the reply is committed
            trace = self.traces.last.get(self.call_id)
            if trace is not None and trace.voice_uri == node["data"]["voice_url"]:
                break
            await asyncio.sleep(0.025)
        message = ""
        if trace is not None and trace.voice_uri == node["data"]["voice_url"]:
            message = trace.message or "; ".join(e.message for e in trace.errors[:3])
        self.printer.end(
            self.state.step,
            "failed",
            reason=reply.body.get("Failure-Reason", "unknown"),
            message=message,
            url=shown_url(str(node["data"].get("voice_url", ""))),
            fallback=runs,
        )
        return 1
