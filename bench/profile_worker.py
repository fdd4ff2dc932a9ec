"""Where a saturated worker spends its CPU: py-spy samples, top self-time functions and packages.

``python bench/profile_worker.py [--variant worker|bare] [--format kazoo|twiml] [--seconds 20]``
starts the developer server, the load driver and one worker process exactly as
``bench/pipeline.py`` does, warms it up, attaches ``py-spy record`` and keeps the worker saturated
with back-to-back throughput batches until ``--seconds`` of batches have run. py-spy writes raw
collapsed stacks without line numbers and keeps only samples that hold the GIL: gaps between
batches and background threads waiting in C (aiosqlite's, libuv's) would otherwise count as busy.

It prints the top 15 functions by self time (the innermost Python frame of a sample; time in C
code such as uvloop or orjson is charged to the Python frame that called it, so ``Runner.run``
stands for uvloop's own loop), the share of samples per package and the project's own functions
by inclusive time, and keeps the raw stacks for a
flamegraph (``bench/results/profile-<variant>-<format>-<timestamp>.txt``).

py-spy (``pip install py-spy``) attaches with ptrace, which needs root or
``kernel.yama.ptrace_scope=0``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import uvloop

from bench.pipeline import FORMATS, RESULTS_DIR, VARIANTS, Bench, Plan

BATCH = 4_000  # requests per batch: done well inside the worker's 9 s staleness limit
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")


def _package(path: str) -> str:
    """A frame's package from py-spy's shortened file name (``aiormq/channel.py`` -> ``aiormq``)."""
    if path.startswith("<"):
        return path
    parts = path.split("/")
    return parts[0].removesuffix(".py") if len(parts) > 1 else f"stdlib:{parts[0].removesuffix('.py')}"


def profile_plan() -> Plan:
    """Batches of ``BATCH`` requests, a normal warm-up, no latency runs, never waiting for quiet."""
    return Plan(reps=1, n=BATCH, n_per_call=BATCH // 7, latency=(), warmup=1_000, patience_s=0)


@dataclass
class Profile:
    """Sample counts from py-spy's raw output: per leaf function, per package, and inclusive."""

    total: int = 0
    leaves: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def analyse(raw: str, own_package: str = "pivot_worker") -> Profile:
    """Count samples by leaf function and its package, and inclusively for ``own_package``'s functions.

    Inclusive counts give each of the project's functions every sample where it is on the stack
    (once per sample, however deep the recursion), so the callees it pays for are visible.
    """
    profile = Profile()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        match = FRAME.match(frames[-1])
        profile.leaves[frames[-1]] += count
        profile.packages[_package(match.group("file")) if match else "?"] += count
        profile.total += count
        own = {f for f in frames if (m := FRAME.match(f)) and m.group("file").startswith(own_package + "/")}
        for frame in own:
            profile.inclusive[frame] += count
    return profile


def render(profile: Profile, top: int = 15) -> str:
    total = profile.total
    lines = [f"{total} samples (holding the GIL)", "", f"top {top} by self time:", "    % | function (file)"]
    lines += [f"{100 * n / total:5.1f} | {name}" for name, n in profile.leaves.most_common(top)]
    lines += ["", "self time by package (>= 0.5%):"]
    lines += [
        f"{100 * n / total:5.1f} | {name}" for name, n in profile.packages.most_common() if n / total >= 0.005
    ]
    lines += ["", f"top {2 * top} of the project's functions by inclusive time (self + callees):"]
    below_entry = [(name, n) for name, n in profile.inclusive.most_common() if n < 0.99 * total]  # not main()
    lines += [f"{100 * n / total:5.1f} | {name}" for name, n in below_entry[: 2 * top]]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("profile_worker: py-spy not found; install it with `pip install py-spy`", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw_path = RESULTS_DIR / f"profile-{args.variant}-{args.format}-{stamp}.txt"
    options = argparse.Namespace(
        amqp_url=args.amqp_url,
        variants=[args.variant],
        formats=[args.format],
        quick=False,
        no_collector=False,
        worker_env={},
    )
    plan = profile_plan()
    bench = Bench(options, plan, raw_path.with_suffix(".logs"))
    spy: asyncio.subprocess.Process | None = None
    try:
        await bench.start()
        queue = f"pivot-bench-{bench.run_id}-{args.variant}-profile"
        bench.queues += [queue, f"{queue}.dead"]
        worker = await bench._spawn_worker(args.variant, queue, 1, 0)
        await bench._wait_consumers(queue, [worker])
        await bench.warm_up(args.variant, queue, [worker])
        spy = await asyncio.create_subprocess_exec(
            py_spy, "record", "--pid", str(worker.pid), "--format", "raw", "--nolineno", "--gil",
            "--rate", str(args.rate), "--output", str(raw_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(1.0)  # py-spy attaches
        busy = 0.0
        while busy < args.seconds:
            run = await bench.throughput(args.variant, args.format, queue, [worker], 1, record=False)
            busy += run["seconds"]
            print(f"batch: {run['req_per_s']:.0f} req/s", file=sys.stderr, flush=True)
    finally:
        if spy is not None and spy.returncode is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                await asyncio.wait_for(spy.wait(), 30)
            except TimeoutError:
                spy.kill()
        await bench.close()
    if not raw_path.exists():
        stderr = (await spy.stderr.read()).decode(errors="replace") if spy and spy.stderr else ""
        print(f"profile_worker: py-spy wrote nothing:\n{stderr}", file=sys.stderr)
        return 1
    profile = analyse(raw_path.read_text())
    if profile.total == 0:
        print("profile_worker: no busy samples were recorded", file=sys.stderr)
        return 1
    print(render(profile))
    print(f"\nraw stacks: {raw_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, default="worker")
    parser.add_argument("--format", choices=FORMATS, default="kazoo")
    parser.add_argument("--seconds", type=float, default=20.0, help="busy seconds to sample (default 20)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second (default 200)")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be between 1 and 300")
    if os.geteuid() != 0:
        print("profile_worker: not root; py-spy needs ptrace permission (ptrace_scope=0)", file=sys.stderr)
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
