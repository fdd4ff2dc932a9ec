"""The pipeline benchmark of issue 5: bare reference, real worker and per-call-queue model, side by side.

``python bench/pipeline.py [--quick] [--json OUT]`` from the repository root, with RabbitMQ on
127.0.0.1. One run starts a developer server (:mod:`bench.devserver`) and a load driver
(:mod:`bench.loadgen`), each in its own process, then, for every repetition:

1. starts one worker process per variant, each on a fresh queue, waits until they consume and
   warms them up;
2. **throughput**, per answer format and variant: pauses that variant's workers (SIGSTOP),
   prefills N pivot_req, resumes them (SIGCONT) and times until a sink queue on ``callevt`` holds
   N ``CHANNEL_PIVOT``; CPU of every process (workers, broker ``beam.smp``, server, driver) is read
   from ``/proc`` around exactly that window;
3. **latency**, per format, offered rate (100 and 500 req/s, open loop) and variant: publish ->
   CHANNEL_PIVOT received, p50/p90/p99, with CPU over the measured window. A rate above 80% of the
   variant's own 1-process throughput is skipped: the queue would only grow;
4. starts a second process per variant on the same queues and measures throughput again; stops
   everything and deletes the queues.

Variants are interleaved measurement by measurement (their order rotating per repetition), so the
numbers a ratio compares were taken seconds apart. Before each measurement the run waits, within
a bounded patience, while other programs load the machine, and repeats a measurement they
disturbed; medians prefer undisturbed runs.

The three variants: ``bare`` (:mod:`bench.bare_worker`), ``worker`` (``python -m pivot_worker run``
exactly as users run it) and ``per_call`` (``bare_worker.py --per-call-queue``). It prints one table,
the ratios and issue 5's four targets, and writes everything (every run, medians, ratios, targets,
machine and versions) as JSON, by default to ``bench/results/pipeline-<timestamp>.json`` with the
processes' logs next to it. Every process it starts is stopped at the end (also on Ctrl-C or
error) and every queue it created is deleted. Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import orjson
import uvloop

from bench import report
from bench.broker import BrokerControl
from bench.harness import (
    DriverClient,
    cancel_on_signals,
    clean_env,
    start_load_driver,
    stop_run,
    worker_queues,
)
from bench.procs import Child, Children
from bench.procstat import Snapshot, find_broker_pid, peak_rss_mib
from bench.report import FOREIGN_LOAD_CORES

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VARIANTS = ("bare", "worker", "per_call")
FORMATS = ("kazoo", "twiml")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CAPACITY_MARGIN = 0.8
POLL_S = 0.01
STALL_S = 15.0
QUIET_PROBE_S = 0.25  # how long one look at the machine's other load lasts
QUIET_WAIT_S = 10.0  # longest wait for other load to pass before one measurement


@dataclass(frozen=True)
class Plan:
    """How much to measure; ``FULL`` takes about 8-10 minutes, ``QUICK`` under a minute."""

    reps: int
    n: int  # requests per throughput run (bare and worker)
    n_per_call: int  # the per-call-queue model is ~7x slower: fewer requests, similar duration
    latency: tuple[tuple[int, float, float], ...]  # (offered req/s, warm-up s, measured s)
    warmup: int  # requests through freshly started processes before anything is timed
    patience_s: float  # extra time allowed in total for waiting out, and repeating, foreign load


# The real worker runs with a stale window longer than any run (see Bench.spawn), so N is sized for
# the duration of a measurement only, whatever the machine's speed that day.
FULL = Plan(
    reps=3, n=6_000, n_per_call=800, latency=((100, 1.0, 10.0), (500, 0.5, 3.0)), warmup=1_000, patience_s=120
)
QUICK = Plan(
    reps=1, n=2_000, n_per_call=250, latency=((100, 0.3, 2.0), (500, 0.3, 1.0)), warmup=200, patience_s=0
)


class Bench:
    def __init__(self, args: argparse.Namespace, plan: Plan, log_dir: Path) -> None:
        self.args = args
        self.plan = plan
        self.run_id = secrets.token_hex(4)
        self.children = Children(log_dir)
        self.control = BrokerControl(args.amqp_url)
        self.runs: list[dict[str, Any]] = []
        self.queues: list[str] = []
        self.base_url = ""
        self.server: Child | None = None
        self.driver: DriverClient | None = None
        self.broker_pid: int | None = None
        self.broker_version = ""
        self.git_at_start = _git_revision()  # the code the first workers run; re-read at the end
        self._seq = 0
        self.patience_s = plan.patience_s
        self.workers: list[Child] = []  # every worker process alive, measured or idle
        self.repeated = 0
        self.quiet_waited_s = 0.0
        self.debug_exchange = f"pivot-bench-{self.run_id}-debug"
        self._planned = len(args.variants) * plan.reps * len(args.formats) * (2 + len(plan.latency))

    # -- set-up and tear-down -------------------------------------------------------------------

    async def start(self) -> None:
        await self.control.connect()
        assert self.control.connection is not None and self.control.connection.transport is not None
        props = self.control.connection.transport.connection.server_properties
        version = props.get("version", "")
        self.broker_version = version.decode() if isinstance(version, bytes) else str(version)
        self.broker_pid = find_broker_pid()
        if self.broker_pid is None:
            print("pipeline: beam.smp not found in /proc: broker CPU will not be reported", file=sys.stderr)
        self.server = await self.children.spawn(
            "devserver", [sys.executable, str(BENCH_DIR / "devserver.py")], stdout_pipe=True
        )
        assert self.server.process.stdout is not None
        line = await asyncio.wait_for(self.server.process.stdout.readline(), 15)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"developer server did not start:\n{self.server.log_tail()}")
        self.base_url = line.split()[1].decode()
        self.driver = await start_load_driver(self.children, self.args.amqp_url)

    async def close(self) -> None:
        await stop_run(self.driver, self.children, self.control, self.queues, self.debug_exchange)

    def _pids(self, workers: list[Child]) -> dict[str, int]:
        """The processes whose CPU is read: the measured workers, the others (idle) and the fixtures."""
        pids = {f"worker{i + 1}": w.pid for i, w in enumerate(workers)}
        pids |= {f"idle:{c.name}": c.pid for c in self.workers if c not in workers and c.alive()}
        if self.broker_pid is not None:
            pids["broker"] = self.broker_pid
        if self.server is not None:
            pids["server"] = self.server.pid
        if self.driver is not None:
            pids["driver"] = self.driver.child.pid
        pids["orchestrator"] = os.getpid()
        return pids

    @staticmethod
    def _cpu(before: Snapshot, after: Snapshot, requests: int, seconds: float) -> dict[str, Any]:
        used = after.since(before)
        grouped: dict[str, float] = {}
        for name, cpu_s in used.items():
            key = (
                "worker"
                if name.startswith("worker")
                else "idle_workers"
                if name.startswith("idle:")
                else name
            )
            grouped[key] = grouped.get(key, 0.0) + cpu_s
        per_process = {name: cpu_s / seconds for name, cpu_s in used.items() if name.startswith("worker")}
        return {
            "cpu_us_per_req": {k: v * 1e6 / max(requests, 1) for k, v in grouped.items()},
            "cores": {**{k: v / seconds for k, v in grouped.items()}, **per_process},
            "other_cores": after.other_s(before) / seconds,
            "disturbed": after.other_s(before) / seconds > FOREIGN_LOAD_CORES,
        }

    def _next_ids(self, label: str) -> tuple[str, str, str]:
        self._seq += 1
        stem = f"pivot-bench-{self.run_id}-{self._seq:03d}"
        return f"pb{self.run_id}{self._seq:03d}-{label}", f"{stem}-sink", f"{stem}-replies"

    async def _spawn_worker(self, variant: str, queue: str, index: int, rep: int) -> Child:
        name = f"{variant}-r{rep}-p{index}"
        if variant == "worker":
            env = (
                clean_env()
                | {
                    "PIVOT_AMQP_URL": self.args.amqp_url,
                    "PIVOT_QUEUE": queue,
                    "PIVOT_ALLOW_NETWORKS": "127.0.0.0/8",
                    "PIVOT_PREFETCH": "50",
                    "PIVOT_CONTINUATION_KEY": "bench",
                    "PIVOT_LOG_LEVEL": "WARNING",
                    # The embedded debug collector, kept apart from anything else on the broker and
                    # the machine: its own debug exchange (and queue), API port and SQLite file.
                    "PIVOT_DEBUG_EXCHANGE": self.debug_exchange,
                    "PIVOT_API_LISTEN": "127.0.0.1:0",
                    "PIVOT_DATABASE_URL": f"sqlite:///{self.children.log_dir.resolve() / name}.sqlite3",
                    # The worker processes of a run share one reply ledger, as on a real host.
                    "PIVOT_LEDGER_URL": f"sqlite:///{self.children.log_dir.resolve() / 'ledger'}",
                    # A throughput run prefills its requests while the workers are paused: on a slow
                    # day the last ones would pass the 9 s stale point before being served and the
                    # run would be reported incomplete. The stale guard is not what is measured here.
                    "PIVOT_STALE_AFTER_MS": "600000",
                    "PIVOT_MAX_REQUEST_TIMEOUT_MS": "8000",
                }
                | self.args.worker_env
            )
            argv = [sys.executable, "-m", "pivot_worker", "run"]
            if self.args.no_collector:
                argv.append("--no-collector")
            return await self.children.spawn(name, argv, env=env)
        argv = [sys.executable, str(BENCH_DIR / "bare_worker.py"), "--queue", queue]
        argv += ["--amqp-url", self.args.amqp_url, "--prefetch", "50"]
        if variant == "per_call":
            argv.append("--per-call-queue")
        return await self.children.spawn(name, argv)

    async def _wait_consumers(self, queue: str, workers: list[Child]) -> None:
        def problem() -> str | None:
            for w in workers:
                if not w.alive():
                    return f"{w.name} exited with {w.process.returncode}:\n{w.log_tail()}"
            return None

        await self.control.wait_consumers(queue, len(workers), 60, problem)

    # -- measurements ---------------------------------------------------------------------------

    def _voice_uri(self, fmt: str) -> str:
        return f"{self.base_url}/{fmt}"

    def _progress(self, run: dict[str, Any]) -> None:
        done = len(self.runs)
        what = f"{run['variant']:>8} {run['format']:<5}"
        if run["kind"] == "throughput":
            cpu = run.get("cpu_us_per_req", {})
            text = (
                f"{run['procs']}p throughput {run['req_per_s']:7.0f} req/s  "
                f"worker {cpu.get('worker', 0):5.0f} µs/req  broker {cpu.get('broker', 0):5.0f} µs/req"
            )
            if run["failed"] or not run["valid"]:
                text += f"  INCOMPLETE: {run['completed']}/{run['n']}, failed {run['failure_reasons']}"
        elif run.get("skipped"):
            text = f"latency @{run['rate']}/s skipped: {run['skipped']}"
        else:
            text = (
                f"latency @{run['rate']}/s  p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms  "
                f"({run['samples']} samples, {run['lost']} lost)"
            )
        if "other_cores" in run:
            text += (
                f"  (other load {run['other_cores']:.2f} cores{', DISTURBED' if run['disturbed'] else ''})"
            )
        print(f"[{done:3d}/{self._planned}] r{run['rep']} {what} {text}", file=sys.stderr, flush=True)

    async def warm_up(self, variant: str, queue: str, workers: list[Child]) -> None:
        """Push a few requests of each format through new processes (connections, caches), untimed."""
        n = self.plan.warmup // (7 if variant == "per_call" else 1)
        for fmt in self.args.formats:
            await self.throughput(variant, fmt, queue, workers, 0, n=max(n, 20), record=False)

    async def throughput(
        self,
        variant: str,
        fmt: str,
        queue: str,
        workers: list[Child],
        rep: int,
        *,
        n: int | None = None,
        record: bool = True,
    ) -> dict[str, Any]:
        assert self.driver is not None
        if n is None:
            n = self.plan.n_per_call if variant == "per_call" else self.plan.n
        prefix, sink, replies = self._next_ids(f"{variant}-{fmt}")
        await self.control.counting_queues(sink, replies)
        pids = self._pids(workers)
        Children.pause(workers)
        try:
            prefill = await self.driver.request(
                {
                    "cmd": "prefill",
                    "queue": queue,
                    "n": n,
                    "voice_uri": self._voice_uri(fmt),
                    "format": fmt,
                    "prefix": prefix,
                    "reply_queue": replies,
                },
                timeout_s=120,
            )
            before = Snapshot.take(pids)
            started = time.perf_counter()
        finally:
            Children.resume(workers)
        done, answered = await self._wait_for_sink(sink, replies, n, workers)
        elapsed = time.perf_counter() - started
        after = Snapshot.take(pids)
        failed, reasons = 0, Counter[str]()
        if done < n:
            for body in await self.control.drain_events(replies):
                if body.get("Event-Name") == "failed":
                    failed += 1
                    reasons[str(body.get("Failure-Reason", "?"))] += 1
        await self.control.delete(sink, replies)
        run: dict[str, Any] = {
            "variant": variant,
            "format": fmt,
            "kind": "throughput",
            "procs": len(workers),
            "rep": rep,
            "n": n,
            "completed": min(done, n),
            "answered": answered,
            "failed": failed,
            "failure_reasons": dict(reasons),
            "seconds": elapsed,
            "req_per_s": min(done, n) / elapsed,
            "prefill_s": prefill["seconds"],
            "valid": done >= n,
            **self._cpu(before, after, min(done, n), elapsed),
        }
        peaks = [mib for mib in (peak_rss_mib(w.pid) for w in workers) if mib is not None]
        if peaks:
            run["worker_peak_rss_mib"] = max(peaks)
        if record:
            self.runs.append(run)
            self._progress(run)
        elif not run["valid"]:
            raise RuntimeError(
                f"warm-up of {variant} failed: {run['completed']}/{n}, {run['failure_reasons']}"
            )
        return run

    async def _wait_for_sink(self, sink: str, replies: str, n: int, workers: list[Child]) -> tuple[int, int]:
        """Poll until the sink holds ``n`` flows, or every request was answered (some failed), or stall."""
        loop = asyncio.get_running_loop()
        last_count, last_change = -1, loop.time()
        answered = 0
        while True:
            state = await self.control.depth(sink)
            count = state[0] if state else 0
            now = loop.time()
            if count >= n:
                return count, n
            if count != last_count:
                last_count, last_change = count, now
            elif now - last_change > 1.0:
                replies_state = await self.control.depth(replies)
                answered = replies_state[0] if replies_state else 0
                if answered >= n or now - last_change > STALL_S:
                    return count, answered
                for w in workers:
                    if not w.alive():
                        raise RuntimeError(f"{w.name} exited with {w.process.returncode}:\n{w.log_tail()}")
            await asyncio.sleep(POLL_S)

    async def latency(
        self,
        variant: str,
        fmt: str,
        queue: str,
        workers: list[Child],
        rep: int,
        rate: int,
        warmup: float,
        seconds: float,
        capacity: float | None,
    ) -> dict[str, Any]:
        assert self.driver is not None
        run: dict[str, Any] = {
            "variant": variant,
            "format": fmt,
            "kind": "latency",
            "procs": len(workers),
            "rep": rep,
            "rate": rate,
            "seconds": seconds,
        }
        if capacity is None or rate > CAPACITY_MARGIN * capacity:
            shown = f"{capacity:.0f}" if capacity is not None else "unknown"
            run.update(valid=False, skipped=f"over capacity ({shown} req/s with 1 process)")
            self.runs.append(run)
            self._progress(run)
            return run
        prefix, _, replies = self._next_ids(f"{variant}-{fmt}-lat")
        pids = self._pids(workers)
        marks: dict[str, tuple[Snapshot, float]] = {}

        def on_event(event: dict[str, Any]) -> None:
            marks[event["phase"]] = (Snapshot.take(pids), time.perf_counter())

        result = await self.driver.request(
            {
                "cmd": "latency",
                "queue": queue,
                "rate": rate,
                "warmup": warmup,
                "seconds": seconds,
                "voice_uri": self._voice_uri(fmt),
                "format": fmt,
                "prefix": prefix,
                "reply_queue": replies,  # not bound: the broker drops pivot.processing, as for no listener
            },
            timeout_s=warmup + seconds + 60,
            on_event=on_event,
        )
        run.update({k: v for k, v in result.items() if k != "ok"})
        run["valid"] = result["lost"] == 0 and result["samples"] > 0
        if "start" in marks and "end" in marks:
            (before, t0), (after, t1) = marks["start"], marks["end"]
            run.update(self._cpu(before, after, result["samples"] + result["lost"], t1 - t0))
        self.runs.append(run)
        self._progress(run)
        return run

    async def _wait_for_quiet(self, workers: list[Child]) -> None:
        """Before a measurement, wait (within the patience left) while other programs load the machine."""
        pids = self._pids(workers)
        waited = 0.0
        while self.patience_s > 0 and waited < QUIET_WAIT_S:
            before = Snapshot.take(pids)
            await asyncio.sleep(QUIET_PROBE_S)
            other = Snapshot.take(pids).other_s(before) / QUIET_PROBE_S
            if other <= FOREIGN_LOAD_CORES:
                break
            waited += QUIET_PROBE_S
            self.patience_s -= QUIET_PROBE_S
        if waited:
            self.quiet_waited_s += waited
            print(f"          waited {waited:.1f} s for other load to pass", file=sys.stderr, flush=True)

    async def measured(
        self, workers: list[Child], measure: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """Run ``measure`` on a quiet machine; repeat it, within the patience left, if it was disturbed.

        A disturbed run (other programs used more than ``FOREIGN_LOAD_CORES`` during its window)
        stays in the results, marked ``disturbed``; medians prefer undisturbed runs.
        """
        while True:
            await self._wait_for_quiet(workers)
            started = time.monotonic()
            run = await measure()
            if not run.get("disturbed") or self.patience_s <= 0:
                return run
            self.patience_s -= time.monotonic() - started
            self.repeated += 1
            print("          disturbed by other load: measuring again", file=sys.stderr, flush=True)

    async def _add_workers(self, queues: dict[str, str], procs: dict[str, list[Child]], rep: int) -> None:
        """One more process per variant, each on its variant's queue; wait until all consume, warm up."""
        for variant, queue in queues.items():
            child = await self._spawn_worker(variant, queue, len(procs[variant]) + 1, rep)
            procs[variant].append(child)
            self.workers.append(child)
        for variant, queue in queues.items():
            await self._wait_consumers(queue, procs[variant])
            await self.warm_up(variant, queue, procs[variant])

    async def repetition(self, rep: int) -> None:
        """Every measurement of one repetition, the variants interleaved measurement by measurement.

        All variants' processes stay up (idle ones cost nothing), so bare, worker and per-call
        numbers of the same kind are taken seconds apart and share whatever the machine was doing;
        the variant order rotates from one repetition to the next.
        """
        shift = (rep - 1) % len(self.args.variants)
        order = self.args.variants[shift:] + self.args.variants[:shift]
        queues = {v: f"pivot-bench-{self.run_id}-{v}-r{rep}" for v in order}
        for queue in queues.values():
            self.queues += worker_queues(queue)
        procs: dict[str, list[Child]] = {v: [] for v in order}
        try:
            await self._add_workers(queues, procs, rep)
            capacity: dict[tuple[str, str], float | None] = {}
            for fmt in self.args.formats:
                for v in order:
                    measure = functools.partial(self.throughput, v, fmt, queues[v], procs[v], rep)
                    one = await self.measured(procs[v], measure)
                    capacity[v, fmt] = one["req_per_s"] if one["valid"] else None
            for fmt in self.args.formats:
                for rate, warmup, seconds in self.plan.latency:
                    for v in order:
                        limit = capacity[v, fmt]
                        args = (v, fmt, queues[v], procs[v], rep, rate, warmup, seconds, limit)
                        if limit is None or rate > CAPACITY_MARGIN * limit:
                            await self.latency(*args)  # recorded as skipped: no need for a quiet machine
                        else:
                            await self.measured(procs[v], functools.partial(self.latency, *args))
            await self._add_workers(queues, procs, rep)
            for fmt in self.args.formats:
                for v in order:
                    measure = functools.partial(self.throughput, v, fmt, queues[v], procs[v], rep)
                    await self.measured(procs[v], measure)
        finally:
            everyone = [c for group in procs.values() for c in group]
            await self.children.stop(everyone)
            self.workers = [c for c in self.workers if c not in everyone]
            for queue in queues.values():
                await self.control.delete(*worker_queues(queue))

    async def run(self) -> None:
        for rep in range(1, self.plan.reps + 1):
            await self.repetition(rep)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "implementation": platform.python_implementation()}
    for dist in ("aio-pika", "aiormq", "pamqp", "aiohttp", "orjson", "lxml", "uvloop", "fastjsonschema"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release()}


CODE_PATHS = ("pivot_worker", "bench", "pyproject.toml")  # what the measured processes run


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _git_revision() -> str:
    """``HEAD``'s short hash, with ``+dirty`` when the code the benchmark runs has uncommitted edits."""
    rev = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return f"{rev}{'+dirty' if dirty else ''}" if rev else ""


def _code_changed(start: str, end: str) -> bool:
    """Whether the benchmarked code differs between two revisions (documentation changes do not count)."""
    if start == end:
        return False
    if start.endswith("+dirty") or end.endswith("+dirty"):
        return True
    return bool(_git("diff", "--name-only", start, end, "--", *CODE_PATHS))


def build_result(bench: Bench, args: argparse.Namespace, started: float, error: str | None) -> dict[str, Any]:
    summary = report.summarize(bench.runs)
    ratio_table = report.ratios(summary, list(args.formats))
    return {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": round(time.time() - started, 1),
            "mode": "quick" if args.quick else "full",
            "plan": {
                "reps": bench.plan.reps,
                "n": bench.plan.n,
                "n_per_call": bench.plan.n_per_call,
                "latency": [{"rate": r, "warmup_s": w, "seconds": s} for r, w, s in bench.plan.latency],
                "warmup": bench.plan.warmup,
                "prefetch": 50,
            },
            "variants": list(args.variants),
            "worker_embedded_collector": not args.no_collector,
            "worker_env": dict(args.worker_env),
            "formats": list(args.formats),
            "machine": _machine(),
            "versions": _versions(),
            "rabbitmq": bench.broker_version,
            "git": bench.git_at_start,
            "git_at_end": (end := _git_revision()),
            "code_changed": _code_changed(bench.git_at_start, end),
            "repeated_for_other_load": bench.repeated,
            "waited_for_quiet_s": bench.quiet_waited_s,
            "error": error,
        },
        "runs": bench.runs,
        "summary": summary,
        "ratios": ratio_table,
        "targets": report.targets(ratio_table),
    }


async def main_async(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    if args.reps is not None:
        plan = replace(plan, reps=args.reps)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.json) if args.json else RESULTS_DIR / f"pipeline-{stamp}.json"
    log_dir = out.with_suffix(".logs")
    bench = Bench(args, plan, log_dir)
    started = time.time()
    error: str | None = None
    signals = cancel_on_signals("pipeline")  # the clean-up below stops processes, deletes queues
    try:
        await bench.start()
        await bench.run()
    except asyncio.CancelledError:
        if not signals:
            raise
        error = f"interrupted by {signals[0]}"
        print(f"pipeline: {error}; stopping processes and deleting queues", file=sys.stderr)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"pipeline: stopped early: {error}", file=sys.stderr)
    finally:
        await bench.close()
        result = build_result(bench, args, started, error)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        if bench.runs:
            print(report.render(result))
        print(f"\nresults: {out}\nlogs:    {log_dir}  ({result['meta']['duration_s']} s)")
    return 130 if signals else 1 if error else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Bare pipeline vs real worker vs per-call-queue model, side by side (issue 5)."
    )
    parser.add_argument("--quick", action="store_true", help="1 repetition, small N, short windows (< 60 s)")
    parser.add_argument(
        "--json", help="where to write results (default bench/results/pipeline-<timestamp>.json)"
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/", help="loopback broker")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS)
    )
    parser.add_argument(
        "--no-collector",
        action="store_true",
        help="run the real worker with --no-collector (default: with its embedded debug collector)",
    )
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of kazoo,twiml")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="PIVOT_NAME=VALUE",
        help="a setting for the real worker, e.g. PIVOT_TRANSLATION_MEMO=0 (repeatable)",
    )
    args = parser.parse_args(argv)
    worker_env: dict[str, str] = {}
    for item in args.worker_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("PIVOT_"):
            parser.error(f"--worker-env {item!r}: expected PIVOT_NAME=VALUE")
        worker_env[name] = value
    args.worker_env = worker_env
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for name, given, known in (("--variants", args.variants, VARIANTS), ("--formats", args.formats, FORMATS)):
        unknown = [g for g in given if g not in known]
        if unknown or not given:
            parser.error(f"{name}: {', '.join(unknown) or 'nothing'} not among {', '.join(known)}")
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
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
