"""The HTTP client decision, measured: httpx, httpx over an aiohttp transport, and aiohttp itself.

``python bench/http_clients.py [--quick] [--json OUT]`` starts :mod:`bench.devserver` in its own
process and, on uvloop in this process, sends GETs carrying the worker's ~21 Kazoo params (the
query the worker builds for the benchmark's pivot_req) with 1, 10 and 100 requests in flight. Each
cell runs ~3 s (``--quick``: ~1 s) after a short warm-up, with one shared client per cell whose
pool allows as many connections as requests in flight, keep-alive, whole body read. It reports
req/s, client CPU per request (this process, from ``/proc``), server CPU per request and
latency p50/p99, and prints a table.

The clients:

* ``aiohttp``: ``ClientSession.get``, what the worker uses.
* ``httpx``: ``httpx.AsyncClient`` (its own httpcore pool); needs ``sniffio`` importable, without
  which httpcore retries a failing import on every request (~290 µs more per request in the
  reference measurements, bench/README.md).
* ``httpx+aiohttp``: ``httpx.AsyncClient`` with :class:`AiohttpTransport`, a minimal
  ``httpx.AsyncBaseTransport`` over an aiohttp ``ClientSession``: httpx's API without httpcore's pool.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import aiohttp
import httpx
import orjson
import uvloop
from yarl import URL

from bench import payloads
from bench.loadgen import percentile
from bench.procs import Children
from bench.procstat import cpu_ns
from pivot_worker.formencode import merge_query
from pivot_worker.params import request_params

BENCH_DIR = Path(__file__).resolve().parent
CONCURRENCY = (1, 10, 100)
GRACE_S = 10.0  # how long a cell waits for requests still in flight after its time is up


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent through an aiohttp ``ClientSession``: keeps httpx's API, replaces httpcore's pool.

    Minimal on purpose: the request body is sent in one piece, the response body is read whole
    (the worker caps it anyway), and aiohttp's errors are mapped to httpx's two main classes.
    """

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            async with self.http.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
                status = resp.status
        except aiohttp.ClientConnectionError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc)) from exc
        return httpx.Response(status, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.http.close()


Fetch = Callable[[str], Awaitable[int]]


@dataclass
class Client:
    """One client under test: ``fetch(url)`` returns the status after reading the whole body."""

    fetch: Fetch
    close: Callable[[], Awaitable[None]]


def make_aiohttp(concurrency: int) -> Client:
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async def fetch(url: str) -> int:
        async with http.get(url) as resp:
            await resp.read()
            return resp.status

    return Client(fetch, http.close)


def _httpx_client(concurrency: int, transport: httpx.AsyncBaseTransport | None) -> Client:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(limits=limits, transport=transport, timeout=30.0)

    async def fetch(url: str) -> int:
        resp = await client.get(url)
        return resp.status_code

    return Client(fetch, client.aclose)


def make_httpx(concurrency: int) -> Client:
    return _httpx_client(concurrency, None)


def make_httpx_aiohttp(concurrency: int) -> Client:
    connector = aiohttp.TCPConnector(limit=concurrency)
    http = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    return _httpx_client(concurrency, AiohttpTransport(http))


CLIENTS: dict[str, Callable[[int], Client]] = {
    "aiohttp": make_aiohttp,
    "httpx": make_httpx,
    "httpx+aiohttp": make_httpx_aiohttp,
}


async def _drive(client: Client, url: str, concurrency: int, seconds: float) -> tuple[list[int], int, float]:
    """``concurrency`` loops of back-to-back GETs for ``seconds``; latencies (ns), errors, elapsed."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    latencies: list[int] = []
    errors = 0

    async def one_loop() -> None:
        nonlocal errors
        while loop.time() < stop_at:
            t0 = time.perf_counter_ns()
            try:
                status = await client.fetch(url)
            except (httpx.HTTPError, aiohttp.ClientError, OSError):
                errors += 1
                continue
            if status == 200:
                latencies.append(time.perf_counter_ns() - t0)
            else:
                errors += 1

    started = time.perf_counter()
    tasks = [asyncio.create_task(one_loop()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=seconds + GRACE_S)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    return latencies, errors, time.perf_counter() - started


async def measure(name: str, concurrency: int, url: str, seconds: float, server_pid: int) -> dict[str, Any]:
    client = CLIENTS[name](concurrency)
    try:
        await _drive(client, url, concurrency, min(0.3, seconds / 3))  # connections, caches
        own0, srv0 = cpu_ns(os.getpid()) or 0, cpu_ns(server_pid) or 0
        latencies, errors, elapsed = await _drive(client, url, concurrency, seconds)
        own1, srv1 = cpu_ns(os.getpid()) or 0, cpu_ns(server_pid) or 0
    finally:
        await client.close()
    done = max(len(latencies), 1)
    ordered = sorted(ns / 1e6 for ns in latencies)
    return {
        "client": name,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "req_per_s": len(latencies) / elapsed,
        "client_cpu_us_per_req": (own1 - own0) / 1e3 / done,
        "server_cpu_us_per_req": (srv1 - srv0) / 1e3 / done,
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
    }


def benchmark_url(base_url: str) -> str:
    """The devserver's ``/kazoo`` URL with the query the worker sends for the benchmark's pivot_req."""
    return merge_query(base_url + payloads.KAZOO_PATH, request_params(payloads.call(), "kazoo"))


def render(rows: list[dict[str, Any]]) -> str:
    header = (
        "client",
        "in flight",
        "req/s",
        "client CPU µs/req",
        "server µs/req",
        "p50 ms",
        "p99 ms",
        "errors",
    )
    lines = [
        f"{r['client']:<14} {r['concurrency']:>9} {r['req_per_s']:>8.0f} {r['client_cpu_us_per_req']:>17.0f} "
        f"{r['server_cpu_us_per_req']:>13.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['errors']:>6}"
        for r in rows
    ]
    head = f"{header[0]:<14} {header[1]:>9} {header[2]:>8} {header[3]:>17} {header[4]:>13} {header[5]:>8} "
    head += f"{header[6]:>8} {header[7]:>6}"
    return "\n".join([head, "-" * len(head), *lines])


async def main_async(args: argparse.Namespace) -> int:
    log_dir = (
        Path(args.json).with_suffix(".logs") if args.json else BENCH_DIR / "results" / "http_clients.logs"
    )
    children = Children(log_dir)
    rows: list[dict[str, Any]] = []
    try:
        server = await children.spawn(
            "devserver", [sys.executable, str(BENCH_DIR / "devserver.py")], stdout_pipe=True
        )
        assert server.process.stdout is not None
        line = await asyncio.wait_for(server.process.stdout.readline(), 15)
        if not line.startswith(b"READY "):
            print(f"http_clients: developer server did not start:\n{server.log_tail()}", file=sys.stderr)
            return 1
        url = benchmark_url(line.split()[1].decode())
        for concurrency in args.concurrency:
            for name in args.clients:
                row = await measure(name, concurrency, url, args.seconds, server.pid)
                rows.append(row)
                print(render([row]).splitlines()[-1], file=sys.stderr, flush=True)
    finally:
        await children.stop_all()
    print(render(rows))
    if importlib.util.find_spec("sniffio") is None:
        print(
            "note: sniffio is not installed; httpx (httpcore) pays a failing import per request",
            file=sys.stderr,
        )
    if args.json:
        meta = {"seconds": args.seconds, "httpx": httpx.__version__, "aiohttp": aiohttp.__version__}
        meta["sniffio"] = importlib.util.find_spec("sniffio") is not None
        Path(args.json).write_bytes(orjson.dumps({"meta": meta, "rows": rows}, option=orjson.OPT_INDENT_2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 1 s per cell instead of 3")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS)
    )
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)), help="requests in flight")
    args = parser.parse_args(argv)
    args.seconds = 1.0 if args.quick else 3.0
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = [c for c in args.clients if c not in CLIENTS]
    if unknown or not args.clients:
        parser.error(f"--clients: {', '.join(unknown) or 'nothing'} not among {', '.join(CLIENTS)}")
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency takes whole numbers, e.g. 1,10,100")
    if not args.concurrency or any(not 1 <= c <= 1000 for c in args.concurrency):
        parser.error("--concurrency values must be between 1 and 1000")
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
