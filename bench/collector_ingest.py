"""Measure the collector's ingest rate (debug events stored per second) on SQLite and PostgreSQL.

The queue is filled first (N events from realistic traces, 3 events per call), then one collector
drains it; the rate is N divided by the time from the collector's start to the last commit. Every
event goes through the real path: JSON decode, contract check, batched idempotent insert, summary
merge, multiple-ack after commit. Loopback only; bounded by --events and --timeout.

    python bench/collector_ingest.py --events 20000
    python bench/collector_ingest.py --backend postgres --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pivot_worker.collector import Collector
from pivot_worker.collector.consumer import queue_name_for
from pivot_worker.debug import EventBuilder, Redactor
from pivot_worker.settings import Settings
from pivot_worker.trace import HttpExchange, Outcome, PivotTrace, Timings


def make_events(count: int) -> list[bytes]:
    builder = EventBuilder(Redactor(["api_key"]))
    out: list[bytes] = []
    now = time.time()
    while len(out) < count:
        trace = PivotTrace(
            call_id=str(uuid.uuid4()),
            account_id="3a1b2c4d5e6f708192a3b4c5d6e7f809",
            debug=True,
            node="pivot_worker@bench",
            voice_uri="https://ivr.example.com/pivot/start?tenant=7&api_key=K",
            method="get",
            request_format="twiml",
            received_at=now,
        )
        trace.exchanges.append(
            HttpExchange(
                method="GET",
                url=trace.voice_uri + "&CallSid=CA1&From=1001&To=2000&Direction=inbound",
                request_headers={"User-Agent": "pivot-worker/0.1.0", "Accept": "text/xml, application/json"},
                request_body=b"",
                status=200,
                response_headers=[("Content-Type", "text/xml"), ("Content-Length", "400")],
                response_body=b"<Response><Say>Hello</Say><Gather numDigits='1' action='/next'>"
                + b"<Say>Press one</Say></Gather><Redirect>/start</Redirect></Response>" * 3,
                timings=Timings(dns_ms=0.1, connect_ms=0.4, ttfb_ms=2.0, total_ms=2.5),
            )
        )
        trace.outcome = Outcome.SUCCESS
        trace.flow = {
            "module": "tts",
            "data": {"text": "Hello"},
            "children": {"_": {"module": "collect_dtmf"}},
        }
        out += [orjson.dumps(e) for e in builder.build(trace)]
    return out[:count]


async def fill(
    connection: aio_pika.abc.AbstractRobustConnection, exchange_name: str, bodies: list[bytes]
) -> None:
    channel = await connection.channel()
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    window = 200
    for i in range(0, len(bodies), window):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(b, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "debug.bench"
                )
                for b in bodies[i : i + window]
            )
        )
    await channel.close()


async def run(backend: str, database_url: str, events: int, amqp_url: str, timeout: float) -> float:
    exchange = f"pivot_bench_{uuid.uuid4().hex[:8]}"
    schema = None
    admin = None
    if backend == "postgres":
        admin = await asyncpg.connect(database_url)
        schema = f"pivot_bench_{uuid.uuid4().hex[:8]}"
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        settings = Settings(amqp_url=amqp_url, debug_exchange=exchange, database_url=database_url)
        declare = Collector(
            settings, api=False, db_schema=schema
        )  # declares queue + schema, consumes nothing
        await declare.start(connection)
        await declare.stop()
        bodies = make_events(events)
        await fill(connection, exchange, bodies)
        collector = Collector(settings, api=False, db_schema=schema)
        started = time.perf_counter()
        await collector.start(connection)
        assert collector.consumer is not None
        deadline = started + timeout
        while collector.consumer.stats.stored < events and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        stored = collector.consumer.stats.stored
        batches = collector.consumer.stats.batches
        await collector.stop()
        rate = stored / elapsed
        print(
            f"{backend}: {stored} events in {elapsed:.2f} s = {rate:,.0f} events/s "
            f"({batches} batches, {stored / max(batches, 1):.0f} events per batch)"
        )
        return rate
    finally:
        channel = await connection.channel()
        await channel.queue_delete(queue_name_for(exchange))
        await channel.exchange_delete(exchange)
        await connection.close()
        if admin is not None:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        rates = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.sqlite3" if backend == "sqlite" else args.database_url
                rates.append(asyncio.run(run(backend, url, args.events, args.amqp_url, args.timeout)))
        rates.sort()
        print(f"{backend}: median {rates[len(rates) // 2]:,.0f} events/s [{rates[0]:,.0f}..{rates[-1]:,.0f}]")


if __name__ == "__main__":
    main()
