"""Capacity and tenant isolation of one worker process, against slow and hanging developer servers.

``python bench/isolation.py [--quick] [--json OUT]`` from the repository root, with RabbitMQ on
127.0.0.1. It starts developer servers (:mod:`bench.devserver`: one answering in 300 ms, tenant B's
answering in 100 ms, tenant A's accepting connections and never answering, one answering in 5 s)
and the load driver (:mod:`bench.loadgen`), each in its own process, then:

1. **slow**: one ``pivot-worker run`` at default settings; 250 req/s for 20 s (after a 2 s warm-up)
   to the 300 ms server. Every request must be answered with a flow, p99 publish -> CHANNEL_PIVOT
   <= 700 ms. With the old prefetch of 50 a process could only have 50 requests in flight, at most
   50 / 0.3 s = 167 req/s, and the queue grew without end.
2. **tenants**, same worker: B alone at 100 req/s for 10 s, then A and B at 100 req/s each for
   15 s, A's requests with ``Request-Timeout`` 2000 ms. B must keep >= 99.9% answered with a flow
   and p99 <= 1.5x its p99 alone; every A request must be answered ``failed`` within its
   ``Request-Timeout`` + 1 s (timeouts at first, then ``circuit_open`` / ``host_busy`` at once).
3. **memory**: a second worker with room for 2,000 requests in flight (``PIVOT_PREFETCH``,
   ``PIVOT_HOST_CONCURRENCY`` and ``PIVOT_HTTP_MAX_CONNECTIONS`` at 2,000) gets 2,000 requests in
   2 s to the 5 s server; resident memory (``VmRSS``) at the peak of requests in flight (counted as
   the worker's open sockets above its idle count) minus the idle figure gives MiB per 1,000
   requests in flight.

Every request is timed by the driver from just before its publish to its answer, a
``CHANNEL_PIVOT`` or a ``pivot.failed``. The script prints the figures and PASS/FAIL per target,
writes JSON (default ``bench/results/isolation-<timestamp>.json``, logs next to it), stops every
process it started and deletes every queue it made, also on Ctrl-C, error or when the time budget
(``--budget-s``) runs out. Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import orjson
import uvloop

from bench.broker import BrokerControl
from bench.harness import (
    DriverClient,
    cancel_on_signals,
    clean_env,
    start_load_driver,
    stop_run,
    worker_queues,
)
from bench.pipeline import LOOPBACK_HOSTS, _git_revision
from bench.procs import Child, Children
from bench.procstat import Snapshot, find_broker_pid, rss_mib, socket_count
from bench.report import FOREIGN_LOAD_CORES

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
SLOW_P99_MS = 700.0
B_ANSWERED_SHARE = 0.999
B_P99_RATIO = 1.5
A_GRACE_MS = 1000.0
MEMORY_RAMP_S = 2.0
POLL_S = 0.05


@dataclass(frozen=True)
class Plan:
    slow_rate: float = 250.0
    slow_seconds: float = 20.0
    slow_warmup: float = 2.0
    slow_delay_ms: float = 300.0
    tenant_rate: float = 100.0
    alone_seconds: float = 10.0
    mixed_seconds: float = 15.0
    tenant_warmup: float = 1.0
    b_delay_ms: float = 100.0
    a_timeout_ms: int = 2000
    memory_in_flight: int = 2000
    memory_delay_ms: float = 5000.0


FULL = Plan()
QUICK = Plan(slow_seconds=5.0, slow_warmup=1.0, alone_seconds=4.0, mixed_seconds=6.0, memory_in_flight=1000)


# -- the arithmetic (pure, unit-tested) -----------------------------------------------------------


def share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def mib_per_1000(idle_mib: float, loaded_mib: float, in_flight: int) -> float:
    """Resident memory each 1,000 requests in flight add, from an idle and a loaded reading."""
    if in_flight <= 0:
        return float("nan")
    return (loaded_mib - idle_mib) / in_flight * 1000.0


@dataclass(frozen=True)
class Verdict:
    target: str
    passed: bool | None  # None: a figure to report, not a pass/fail target, or not measured
    detail: str


def _num(value: float | None) -> float:
    """A figure from the driver's JSON, where NaN (no samples) arrives as null."""
    return float("nan") if value is None else float(value)


def _ok(value: float | None, limit: float) -> bool:
    number = _num(value)
    return not math.isnan(number) and number <= limit


def verdicts(result: dict[str, Any]) -> list[Verdict]:
    """The targets, from the figures a run collected (missing scenarios are reported as not run)."""
    plan = result["plan"]
    out: list[Verdict] = []
    slow = result.get("slow")
    if slow is None:
        out.append(Verdict("slow: all answered, p99 <= 700 ms", None, "not run"))
    else:
        all_flows = slow["flows"] == slow["sent"] and slow["sent"] > 0
        passed = all_flows and _ok(slow["flow_p99_ms"], SLOW_P99_MS)
        out.append(
            Verdict(
                f"slow: all answered, p99 <= {SLOW_P99_MS:.0f} ms",
                passed,
                f"{slow['flows']}/{slow['sent']} flows, p99 {_ms(slow['flow_p99_ms'])} ms",
            )
        )
    tenants = result.get("tenants")
    if tenants is None:
        out.append(Verdict("tenants: B >= 99.9% answered, p99 <= 1.5x alone", None, "not run"))
        out.append(Verdict("tenants: every A failed within Request-Timeout + 1 s", None, "not run"))
    else:
        alone, mixed, a = tenants["b_alone"], tenants["b_with_a"], tenants["a"]
        b_share = share(mixed["flows"], mixed["sent"])
        ratio = (
            _num(mixed["flow_p99_ms"]) / _num(alone["flow_p99_ms"]) if alone["flow_p99_ms"] else float("nan")
        )
        out.append(
            Verdict(
                f"tenants: B >= {B_ANSWERED_SHARE:.1%} answered, p99 <= {B_P99_RATIO}x alone",
                b_share >= B_ANSWERED_SHARE and _ok(ratio, B_P99_RATIO),
                f"B answered {b_share:.2%}, p99 {_ms(mixed['flow_p99_ms'])} ms vs "
                f"{_ms(alone['flow_p99_ms'])} ms alone ({ratio:.2f}x)",
            )
        )
        limit = plan["a_timeout_ms"] + A_GRACE_MS
        a_failed = a["failed"] == a["sent"] and a["sent"] > 0
        out.append(
            Verdict(
                "tenants: every A failed within Request-Timeout + 1 s",
                a_failed and _ok(a["answer_max_ms"], limit),
                f"A failed {a['failed']}/{a['sent']}, slowest answer {_ms(a['answer_max_ms'])} ms "
                f"(limit {limit:.0f} ms)",
            )
        )
    memory = result.get("memory")
    if memory is None:
        out.append(Verdict("memory per 1,000 requests in flight", None, "not run"))
    else:
        out.append(
            Verdict(
                "memory per 1,000 requests in flight",
                None,
                f"{memory['mib_per_1000']:.1f} MiB ({memory['in_flight']} in flight: "
                f"{memory['idle_rss_mib']:.1f} -> {memory['loaded_rss_mib']:.1f} MiB resident)",
            )
        )
    return out


def _ms(value: float | None) -> str:
    number = _num(value)
    return "-" if math.isnan(number) else f"{number:.0f}"


def _cores(value: float | None) -> str:
    number = _num(value)
    return "-" if math.isnan(number) else f"{number:.2f}"


def render(result: dict[str, Any]) -> str:
    lines = []
    plan = result["plan"]
    rows: list[tuple[str, dict[str, Any]]] = []
    if "slow" in result:
        rows.append((f"slow ({plan['slow_delay_ms']:.0f} ms server)", result["slow"]))
    if "tenants" in result:
        t = result["tenants"]
        rows += [("B alone", t["b_alone"]), ("B with A", t["b_with_a"]), ("A (hanging server)", t["a"])]
    if rows:
        lines.append(
            f"{'stream':<20} {'rate/s':>6} {'sent':>6} {'flows':>6} {'failed':>6} {'lost':>5} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'failed max ms':>13} {'worker':>6} {'other':>6}  "
            "failure reasons"
        )
        for name, s in rows:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["failure_reasons"].items())) or "-"
            lines.append(
                f"{name:<20} {s['rate']:>6.0f} {s['sent']:>6} {s['flows']:>6} {s['failed']:>6} "
                f"{s['unanswered']:>5} {_ms(s['flow_p50_ms']):>7} {_ms(s['flow_p99_ms']):>7} "
                f"{_ms(s['flow_max_ms']):>7} {_ms(s['failed_max_ms']):>13} "
                f"{_cores(s.get('worker_cores')):>6} {_cores(s.get('other_cores')):>6}  {reasons}"
            )
    if "slow" in result and "slow_rss_mib" in result:
        lines.append(f"slow: worker resident memory {result['slow_rss_mib']:.1f} MiB after the run")
    if rows:
        lines.append(
            "(worker, other: cores used by the worker, and by programs other than this run's, over the "
            "measured window)"
        )
        busy = [name for name, s in rows if _num(s.get("other_cores")) > FOREIGN_LOAD_CORES]
        if busy:
            lines.append(
                f"WARNING: other programs used more than {FOREIGN_LOAD_CORES} cores while measuring "
                f"{', '.join(busy)}: those latencies may be disturbed; run again on a quieter machine"
            )
    lines.append("")
    for v in verdicts(result):
        mark = "INFO" if v.passed is None else "PASS" if v.passed else "FAIL"
        lines.append(f"{mark:<4}  {v.target}: {v.detail}")
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------------


class Isolation:
    def __init__(self, args: argparse.Namespace, plan: Plan, log_dir: Path) -> None:
        self.args = args
        self.plan = plan
        self.run_id = secrets.token_hex(4)
        self.children = Children(log_dir)
        self.control = BrokerControl(args.amqp_url)
        self.driver: DriverClient | None = None
        self.servers: dict[str, str] = {}
        self.queues: list[str] = []
        self.debug_exchange = f"pivot-iso-{self.run_id}-debug"
        self._seq = 0
        self.result: dict[str, Any] = {"plan": asdict(plan)}

    async def start(self) -> None:
        await self.control.connect()
        p = self.plan
        for name, extra in (
            ("slow", ["--delay-ms", str(p.slow_delay_ms)]),
            ("b", ["--delay-ms", str(p.b_delay_ms)]),
            ("a", ["--hang"]),
            ("memory", ["--delay-ms", str(p.memory_delay_ms)]),
        ):
            child = await self.children.spawn(
                f"devserver-{name}",
                [sys.executable, str(BENCH_DIR / "devserver.py"), *extra],
                stdout_pipe=True,
            )
            assert child.process.stdout is not None
            line = await asyncio.wait_for(child.process.stdout.readline(), 15)
            if not line.startswith(b"READY "):
                raise RuntimeError(f"developer server {name} did not start:\n{child.log_tail()}")
            self.servers[name] = line.split()[1].decode()
        self.driver = await start_load_driver(self.children, self.args.amqp_url)

    async def close(self) -> None:
        await stop_run(self.driver, self.children, self.control, self.queues, self.debug_exchange)

    async def worker(self, name: str, **settings: str) -> tuple[Child, str]:
        """``pivot-worker run`` as users start it, on a queue of its own; ``settings`` add to the
        defaults (only what keeps it apart from other programs is set otherwise)."""
        queue = f"pivot-iso-{self.run_id}-{name}"
        self.queues += worker_queues(queue)
        logs = self.children.log_dir.resolve()
        env = clean_env() | {
            "PIVOT_AMQP_URL": self.args.amqp_url,
            "PIVOT_QUEUE": queue,
            "PIVOT_ALLOW_NETWORKS": "127.0.0.0/8",
            "PIVOT_CONTINUATION_KEY": "bench",
            "PIVOT_LOG_LEVEL": "WARNING",
            "PIVOT_DEBUG_EXCHANGE": self.debug_exchange,
            "PIVOT_API_LISTEN": "127.0.0.1:0",
            "PIVOT_DATABASE_URL": f"sqlite:///{logs / name}.sqlite3",
            "PIVOT_LEDGER_URL": f"sqlite:///{logs / name}.ledger",
            "PIVOT_NODE": f"pivot_iso_{name}@bench",
        }
        env |= settings | self.args.worker_env
        argv = [sys.executable, "-m", "pivot_worker", "run"]
        if self.args.no_collector:
            argv.append("--no-collector")
        child = await self.children.spawn(f"worker-{name}", argv, env=env)

        def problem() -> str | None:
            return (
                None
                if child.alive()
                else f"worker exited with {child.process.returncode}:\n{child.log_tail()}"
            )

        await self.control.wait_consumers(queue, 1, 60, problem)
        return child, queue

    def _stream(self, name: str, server: str, rate: float, **extra: Any) -> dict[str, Any]:
        self._seq += 1
        return {
            "name": name,
            "rate": rate,
            "voice_uri": f"{self.servers[server]}/kazoo",
            "format": "kazoo",
            "prefix": f"pi{self.run_id}{self._seq:02d}{name}",
            "reply_queue": f"pivot-iso-{self.run_id}-{self._seq:02d}-replies",
            **extra,
        }

    def _pids(self, worker: Child) -> dict[str, int]:
        pids = {c.name: c.pid for c in self.children.started if c.alive()}
        pids["worker"] = worker.pid
        broker = find_broker_pid()
        if broker is not None:
            pids["broker"] = broker
        pids["orchestrator"] = os.getpid()
        return pids

    async def streams(
        self,
        queue: str,
        streams: list[dict[str, Any]],
        seconds: float,
        warmup: float,
        settle_s: float,
        worker: Child,
    ) -> dict[str, dict[str, Any]]:
        """Run the driver's ``streams`` command; each stream's summary gets the CPU figures of the
        measured window: the worker's cores, and what programs other than ours used meanwhile."""
        assert self.driver is not None
        pids = self._pids(worker)
        marks: dict[str, tuple[Snapshot, float]] = {}

        def on_event(event: dict[str, Any]) -> None:
            marks[event["phase"]] = (Snapshot.take(pids), time.perf_counter())

        answer = await self.driver.request(
            {
                "cmd": "streams",
                "queue": queue,
                "seconds": seconds,
                "warmup": warmup,
                "settle_s": settle_s,
                "streams": streams,
            },
            timeout_s=warmup + seconds + settle_s + 60,
            on_event=on_event,
        )
        result: dict[str, dict[str, Any]] = answer["streams"]
        if "start" in marks and "end" in marks:
            (before, t0), (after, t1) = marks["start"], marks["end"]
            window = {
                "worker_cores": after.since(before).get("worker", 0.0) / (t1 - t0),
                "other_cores": after.other_s(before) / (t1 - t0),
            }
            for summary in result.values():
                summary.update(window)
        return result

    def _progress(self, text: str) -> None:
        print(f"isolation: {text}", file=sys.stderr, flush=True)

    async def slow_and_tenants(self) -> None:
        child, queue = await self.worker("default")
        if "slow" in self.args.scenarios:
            await self.slow(child, queue)
        if "tenants" in self.args.scenarios:
            await self.tenants(child, queue)
        if not child.alive():
            raise RuntimeError(f"the worker exited:\n{child.log_tail()}")
        await self.children.stop([child])

    async def slow(self, child: Child, queue: str) -> None:
        p = self.plan
        self._progress(
            f"slow: {p.slow_rate:.0f} req/s for {p.slow_seconds:.0f} s to a {p.slow_delay_ms:.0f} ms server"
        )
        slow = await self.streams(
            queue,
            [self._stream("slow", "slow", p.slow_rate)],
            p.slow_seconds,
            p.slow_warmup,
            settle_s=5.0,
            worker=child,
        )
        self.result["slow"] = slow["slow"]
        rss = rss_mib(child.pid)
        if rss is not None:
            self.result["slow_rss_mib"] = rss

    async def tenants(self, child: Child, queue: str) -> None:
        p = self.plan
        self._progress(f"tenants: B alone, {p.tenant_rate:.0f} req/s for {p.alone_seconds:.0f} s")
        alone = await self.streams(
            queue,
            [self._stream("b", "b", p.tenant_rate)],
            p.alone_seconds,
            p.tenant_warmup,
            settle_s=5.0,
            worker=child,
        )
        self._progress(
            f"tenants: A (hanging) + B, {p.tenant_rate:.0f} req/s each for {p.mixed_seconds:.0f} s"
        )
        mixed = await self.streams(
            queue,
            [
                self._stream("b", "b", p.tenant_rate),
                self._stream("a", "a", p.tenant_rate, request_timeout_ms=p.a_timeout_ms),
            ],
            p.mixed_seconds,
            p.tenant_warmup,
            settle_s=p.a_timeout_ms / 1000.0 + 5.0,
            worker=child,
        )
        self.result["tenants"] = {"b_alone": alone["b"], "b_with_a": mixed["b"], "a": mixed["a"]}

    async def memory(self) -> None:
        p = self.plan
        n = str(p.memory_in_flight)
        child, queue = await self.worker(
            "memory", PIVOT_PREFETCH=n, PIVOT_HOST_CONCURRENCY=n, PIVOT_HTTP_MAX_CONNECTIONS=n
        )
        self._progress("memory: warm-up")
        await self.streams(queue, [self._stream("warm", "b", 200.0)], 1.0, 0.0, settle_s=5.0, worker=child)
        await asyncio.sleep(1.0)
        idle_rss, idle_sockets = rss_mib(child.pid), socket_count(child.pid)
        if idle_rss is None or idle_sockets is None:
            raise RuntimeError("cannot read the memory worker's /proc entries")
        self._progress(
            f"memory: {p.memory_in_flight} requests in {MEMORY_RAMP_S:.0f} s "
            f"to a {p.memory_delay_ms:.0f} ms server"
        )
        rate = p.memory_in_flight / MEMORY_RAMP_S
        stream = self._stream("mem", "memory", rate, request_timeout_ms=8000)
        load = asyncio.ensure_future(
            self.streams(
                queue, [stream], MEMORY_RAMP_S, 0.0, settle_s=p.memory_delay_ms / 1000.0 + 5.0, worker=child
            )
        )
        peak_in_flight, loaded_rss = 0, idle_rss
        try:
            while not load.done():
                sockets, rss = socket_count(child.pid), rss_mib(child.pid)
                if sockets is not None and rss is not None:
                    in_flight = sockets - idle_sockets
                    if in_flight > peak_in_flight:
                        peak_in_flight = in_flight
                    if in_flight >= 0.98 * peak_in_flight:
                        loaded_rss = max(loaded_rss, rss)
                await asyncio.sleep(POLL_S)
            summary = (await load)["mem"]
        finally:
            if not load.done():
                load.cancel()
        self.result["memory"] = {
            "requested_in_flight": p.memory_in_flight,
            "in_flight": peak_in_flight,
            "idle_rss_mib": idle_rss,
            "loaded_rss_mib": loaded_rss,
            "mib_per_1000": mib_per_1000(idle_rss, loaded_rss, peak_in_flight),
            "answered": summary,
        }
        await self.children.stop([child])

    async def run(self) -> None:
        if "slow" in self.args.scenarios or "tenants" in self.args.scenarios:
            await self.slow_and_tenants()
        if "memory" in self.args.scenarios:
            await self.memory()


SCENARIOS = ("slow", "tenants", "memory")


async def main_async(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.json) if args.json else RESULTS_DIR / f"isolation-{stamp}.json"
    log_dir = out.with_suffix(".logs")
    bench = Isolation(args, plan, log_dir)
    started = time.time()
    error: str | None = None
    signals = cancel_on_signals("isolation")
    try:
        async with asyncio.timeout(args.budget_s):
            await bench.start()
            await bench.run()
    except asyncio.CancelledError:
        if not signals:
            raise
        error = f"interrupted by {signals[0]}"
    except TimeoutError:
        error = f"time budget of {args.budget_s:.0f} s ran out"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if error:
            print(
                f"isolation: stopped early: {error}; stopping processes and deleting queues", file=sys.stderr
            )
        await bench.close()
        result = bench.result | {
            "meta": {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "duration_s": round(time.time() - started, 1),
                "mode": "quick" if args.quick else "full",
                "scenarios": list(args.scenarios),
                "worker_embedded_collector": not args.no_collector,
                "worker_env": dict(args.worker_env),
                "git": _git_revision(),
                "error": error,
            }
        }
        result["verdicts"] = [asdict(v) for v in verdicts(result)]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        print(render(result))
        print(f"\nresults: {out}\nlogs:    {log_dir}  ({result['meta']['duration_s']} s)")
    failed = any(v["passed"] is False for v in result["verdicts"])
    return 130 if signals else 1 if error else 2 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Capacity and tenant isolation of one worker process.")
    parser.add_argument(
        "--quick", action="store_true", help="shorter windows, 1,000 in flight for memory (~1 min)"
    )
    parser.add_argument(
        "--json", help="where to write results (default bench/results/isolation-<timestamp>.json)"
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/", help="loopback broker")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS)
    )
    parser.add_argument("--budget-s", type=float, default=300.0, help="stop everything after this long")
    parser.add_argument(
        "--no-collector", action="store_true", help="run the workers with --no-collector (default: embedded)"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="PIVOT_NAME=VALUE",
        help="a setting for every worker, e.g. PIVOT_PREFETCH=50 to see the old default (repeatable)",
    )
    args = parser.parse_args(argv)
    worker_env: dict[str, str] = {}
    for item in args.worker_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("PIVOT_"):
            parser.error(f"--worker-env {item!r}: expected PIVOT_NAME=VALUE")
        worker_env[name] = value
    args.worker_env = worker_env
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown or not args.scenarios:
        parser.error(f"--scenarios: {', '.join(unknown) or 'nothing'} not among {', '.join(SCENARIOS)}")
    if args.budget_s <= 0:
        parser.error("--budget-s must be more than 0")
    host = urlsplit(args.amqp_url).hostname
    if host not in LOOPBACK_HOSTS:
        parser.error(f"--amqp-url must name a loopback host (127.0.0.1, localhost or ::1), not {host!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: int = uvloop.run(main_async(args))
    return result


if __name__ == "__main__":
    raise SystemExit(main())
