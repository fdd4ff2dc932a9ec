"""The load driver: its own process, driven by JSON lines on stdin, answering JSON lines on stdout.

Kept apart from the orchestrator and the workers so its CPU is its own and its event loop only
publishes and receives. Commands (one JSON object per line):

* ``{"cmd": "prefill", "queue": Q, "n": N, ...request}`` publishes N pivot_req messages to queue
  Q (through the default exchange, so no other queue on the broker gets a copy), with publisher
  confirms, and answers once the broker has taken all of them.
* ``{"cmd": "latency", "queue": Q, "rate": R, "seconds": S, "warmup": W, ...request}`` publishes
  open-loop at R messages/s for W + S seconds and times each request from just before its publish
  to the arrival of its ``CHANNEL_PIVOT`` on a queue bound to ``callevt`` (same clock, same
  process). Samples from the first W seconds are dropped. It prints ``{"event": "window", ...}``
  when the measured window starts and ends, so the caller can read CPU counters around it.
* ``{"cmd": "streams", "queue": Q, "seconds": S, "warmup": W, "settle_s": T, "streams": [...]}``
  runs several open-loop streams at once, each ``{"name", "rate", ...request}`` publishing at its
  own rate for W + S seconds, and times every request to its answer, whichever it is: its
  ``CHANNEL_PIVOT`` (on ``callevt``) or its ``pivot.failed`` (on ``targeted``, to the stream's
  ``reply_queue``). It then waits up to T seconds for the last answers and reports, per stream,
  what was sent, answered with a flow, answered failed (by reason) and never answered, with
  percentiles of both kinds of answer (flows only after the W-second warm-up).
* ``{"cmd": "quit"}``.

``...request`` is ``voice_uri``, ``format`` (``kazoo``/``twiml``), ``prefix`` (Call-ID prefix, unique
per run), ``reply_queue`` (put in ``Controller-Queue``) and, optionally, ``request_timeout_ms``
(the pivot_req's ``Request-Timeout``). Every message carries Kazoo's AMQP
``timestamp`` in microseconds. Each request gets its own Call-ID, so only this run's events count.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import aio_pika
import orjson
import pamqp.encode
import uvloop
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp import common

from bench.payloads import RequestFactory

PREFILL_WINDOW = 500  # publishes awaiting their confirm at once
STRAGGLER_WAIT_S = 3.0

_seconds_encoder = pamqp.encode.METHODS["timestamp"]


def _raw_timestamp(value: Any) -> bytes:
    """Encode an ``int`` timestamp as is: Kazoo's Erlang client sends microseconds there."""
    if isinstance(value, int):
        return common.Struct.timestamp.pack(value)
    return _seconds_encoder(value)


def install_raw_timestamps() -> None:
    """Let this process publish Kazoo-style integer timestamps (pamqp only encodes datetimes)."""
    pamqp.encode.METHODS["timestamp"] = _raw_timestamp


def _message(body: bytes) -> aio_pika.Message:
    message = aio_pika.Message(body, content_type="application/json")
    message.timestamp = time.time_ns() // 1000  # type: ignore[assignment]  # raw microseconds
    return message


def _factory(cmd: dict[str, Any]) -> RequestFactory:
    timeout = cmd.get("request_timeout_ms")
    extra = {"Request-Timeout": int(timeout)} if timeout else None
    return RequestFactory(cmd["voice_uri"], cmd["format"], cmd["prefix"], cmd["reply_queue"], extra)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def _call_seq(call_id: str) -> tuple[str, int] | None:
    """``(prefix, seq)`` of a Call-ID made by :class:`RequestFactory`, or ``None``."""
    prefix, sep, seq = call_id.rpartition("-")
    if not sep or not seq.isdigit():
        return None
    return prefix, int(seq)


class _Stream:
    """One open-loop stream of a ``streams`` command and what came back for it."""

    def __init__(self, spec: dict[str, Any], seconds: float, warmup: float) -> None:
        self.name = str(spec["name"])
        self.rate = float(spec["rate"])
        self.factory = _factory(spec)
        self.total = round((warmup + seconds) * self.rate)
        self.skip = round(warmup * self.rate)
        self.sent_at: dict[int, int] = {}
        self.flows: dict[int, int] = {}  # seq -> ns from publish to CHANNEL_PIVOT
        self.failures: dict[int, tuple[int, str]] = {}  # seq -> (ns to pivot.failed, reason)
        self.max_lag = 0.0

    def answered(self) -> int:
        return len(self.flows) + len(self.failures)

    def summary(self) -> dict[str, Any]:
        flows = sorted(ns / 1e6 for seq, ns in self.flows.items() if seq >= self.skip)
        failed = sorted(ns / 1e6 for ns, _ in self.failures.values())
        every = sorted([ns / 1e6 for ns in self.flows.values()] + failed)
        reasons: dict[str, int] = {}
        for _, reason in self.failures.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        sent = len(self.sent_at)
        return {
            "rate": self.rate,
            "sent": sent,
            "flows": len(self.flows),
            "failed": len(self.failures),
            "unanswered": sent - self.answered(),
            "failure_reasons": reasons,
            "flow_samples": len(flows),
            "flow_p50_ms": percentile(flows, 50),
            "flow_p99_ms": percentile(flows, 99),
            "flow_max_ms": flows[-1] if flows else float("nan"),
            "failed_p50_ms": percentile(failed, 50),
            "failed_max_ms": failed[-1] if failed else float("nan"),
            "answer_max_ms": every[-1] if every else float("nan"),
            "publish_lag_max_ms": self.max_lag * 1000.0,
        }


class Driver:
    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.confirming: AbstractChannel | None = None
        self.plain: AbstractChannel | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect(
            self.amqp_url, client_properties={"connection_name": "pivot bench loadgen"}
        )
        self.confirming = await self.connection.channel(publisher_confirms=True)
        self.plain = await self.connection.channel(publisher_confirms=False)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def prefill(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.confirming is not None
        factory = _factory(cmd)
        exchange = self.confirming.default_exchange
        queue, n, first = cmd["queue"], int(cmd["n"]), int(cmd.get("start_seq", 0))
        started = time.perf_counter()
        for low in range(first, first + n, PREFILL_WINDOW):
            high = min(low + PREFILL_WINDOW, first + n)
            await asyncio.gather(
                *(exchange.publish(_message(factory.body(i)), routing_key=queue) for i in range(low, high))
            )
        return {"ok": True, "published": n, "seconds": time.perf_counter() - started}

    async def latency(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.plain is not None
        factory = _factory(cmd)
        rate, seconds, warmup = float(cmd["rate"]), float(cmd["seconds"]), float(cmd["warmup"])
        first = int(cmd.get("start_seq", 0))
        total = round((warmup + seconds) * rate)
        skip = round(warmup * rate)
        sent_at: dict[int, int] = {}
        latencies_ns: dict[int, int] = {}
        prefix = factory.prefix + "-"
        everything = asyncio.Event()

        async def on_event(message: AbstractIncomingMessage) -> None:
            now = time.perf_counter_ns()
            raw = (message.headers or {}).get("call-id")
            call_id = raw.decode() if isinstance(raw, bytes) else raw
            if not isinstance(call_id, str) or not call_id.startswith(prefix):
                return  # someone else's call on the shared broker
            seq = int(call_id[len(prefix) :])
            t0 = sent_at.get(seq)
            if t0 is not None and seq not in latencies_ns:
                latencies_ns[seq] = now - t0
                if len(latencies_ns) == total:
                    everything.set()

        callevt = await self.plain.declare_exchange("callevt", aio_pika.ExchangeType.TOPIC, durable=False)
        sink = await self.plain.declare_queue("", exclusive=True, auto_delete=True)
        await sink.bind(callevt, "call.CHANNEL_PIVOT.*")
        tag = await sink.consume(on_event, no_ack=True)
        exchange = self.plain.default_exchange
        queue = cmd["queue"]
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        max_lag = 0.0
        window_started = 0.0
        for i in range(total):
            due = start + i / rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                max_lag = max(max_lag, -wait) if i >= skip else max_lag
            if i == skip:
                window_started = time.perf_counter()
                _emit({"event": "window", "phase": "start"})
            seq = first + i
            body = factory.body(seq)
            sent_at[seq] = time.perf_counter_ns()
            await exchange.publish(_message(body), routing_key=queue)
        window_ended = time.perf_counter()
        _emit({"event": "window", "phase": "end"})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everything.wait(), STRAGGLER_WAIT_S)
        await sink.cancel(tag)
        await sink.delete(if_unused=False, if_empty=False)
        measured = sorted(ns / 1e6 for seq, ns in latencies_ns.items() if seq >= first + skip)
        expected = total - skip
        elapsed = window_ended - window_started
        return {
            "ok": True,
            "offered_per_s": rate,
            "achieved_per_s": expected / elapsed if elapsed > 0 else 0.0,
            "samples": len(measured),
            "lost": expected - len(measured),
            "p50_ms": percentile(measured, 50),
            "p90_ms": percentile(measured, 90),
            "p99_ms": percentile(measured, 99),
            "max_ms": measured[-1] if measured else float("nan"),
            "mean_ms": sum(measured) / len(measured) if measured else float("nan"),
            "publish_lag_max_ms": max_lag * 1000.0,
        }

    async def streams(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.plain is not None
        seconds, warmup = float(cmd["seconds"]), float(cmd.get("warmup", 0.0))
        settle_s = float(cmd.get("settle_s", STRAGGLER_WAIT_S))
        streams = [_Stream(spec, seconds, warmup) for spec in cmd["streams"]]
        by_prefix = {s.factory.prefix: s for s in streams}
        if len(by_prefix) != len(streams):
            raise ValueError("every stream needs its own prefix")
        expected = sum(s.total for s in streams)
        everything = asyncio.Event()
        answered = 0

        def lookup(call_id: object) -> tuple[_Stream, int] | None:
            if isinstance(call_id, bytes):
                call_id = call_id.decode()
            found = _call_seq(call_id) if isinstance(call_id, str) else None
            if found is None or found[0] not in by_prefix:
                return None  # someone else's call on the shared broker
            stream = by_prefix[found[0]]
            return (stream, found[1]) if found[1] in stream.sent_at else None

        def count() -> None:
            nonlocal answered
            answered += 1
            if answered >= expected:
                everything.set()

        async def on_flow(message: AbstractIncomingMessage) -> None:
            now = time.perf_counter_ns()
            hit = lookup((message.headers or {}).get("call-id"))
            if hit is not None and hit[1] not in hit[0].flows and hit[1] not in hit[0].failures:
                hit[0].flows[hit[1]] = now - hit[0].sent_at[hit[1]]
                count()

        async def on_reply(message: AbstractIncomingMessage) -> None:
            now = time.perf_counter_ns()
            try:
                body = orjson.loads(message.body)
            except orjson.JSONDecodeError:
                return
            if not isinstance(body, dict) or body.get("Event-Name") != "failed":
                return  # pivot.processing
            hit = lookup(body.get("Call-ID"))
            if hit is not None and hit[1] not in hit[0].flows and hit[1] not in hit[0].failures:
                hit[0].failures[hit[1]] = (now - hit[0].sent_at[hit[1]], str(body.get("Failure-Reason", "?")))
                count()

        callevt = await self.plain.declare_exchange("callevt", aio_pika.ExchangeType.TOPIC, durable=False)
        targeted = await self.plain.declare_exchange("targeted", aio_pika.ExchangeType.DIRECT, durable=False)
        sink = await self.plain.declare_queue("", exclusive=True, auto_delete=True)
        await sink.bind(callevt, "call.CHANNEL_PIVOT.*")
        replies = await self.plain.declare_queue("", exclusive=True, auto_delete=True)
        for spec in cmd["streams"]:
            await replies.bind(targeted, spec["reply_queue"])
        tags = [(sink, await sink.consume(on_flow, no_ack=True))]
        tags.append((replies, await replies.consume(on_reply, no_ack=True)))
        exchange = self.plain.default_exchange
        queue = cmd["queue"]
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        async def publish(stream: _Stream) -> None:
            for i in range(stream.total):
                wait = start + i / stream.rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    stream.max_lag = max(stream.max_lag, -wait)
                body = stream.factory.body(i)
                stream.sent_at[i] = time.perf_counter_ns()
                await exchange.publish(_message(body), routing_key=queue)

        async def window() -> None:
            await asyncio.sleep(max(0.0, start + warmup - loop.time()))
            _emit({"event": "window", "phase": "start"})
            await asyncio.sleep(max(0.0, start + warmup + seconds - loop.time()))
            _emit({"event": "window", "phase": "end"})

        await asyncio.gather(window(), *(publish(s) for s in streams))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everything.wait(), settle_s)
        for q, tag in tags:
            await q.cancel(tag)
            await q.delete(if_unused=False, if_empty=False)
        return {"ok": True, "streams": {s.name: s.summary() for s in streams}}


async def serve(amqp_url: str) -> int:
    install_raw_timestamps()
    driver = Driver(amqp_url)
    await driver.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"event": "ready"})
    try:
        while line := await reader.readline():
            cmd = orjson.loads(line)
            name = cmd.get("cmd")
            try:
                if name == "prefill":
                    _emit(await driver.prefill(cmd))
                elif name == "latency":
                    _emit(await driver.latency(cmd))
                elif name == "streams":
                    _emit(await driver.streams(cmd))
                elif name == "quit":
                    break
                else:
                    _emit({"ok": False, "error": f"unknown command {name!r}"})
            except Exception as exc:
                _emit({"ok": False, "error": f"{name} failed: {type(exc).__name__}: {exc}"})
    finally:
        await driver.close()
    return 0


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/"
    return uvloop.run(serve(url))


if __name__ == "__main__":
    raise SystemExit(main())
