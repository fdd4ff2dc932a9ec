"""What every benchmark orchestrator does the same way: start the load driver, stop a run
cleanly, and turn SIGINT/SIGTERM into a cancellation that still cleans up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from bench.broker import BrokerControl
from bench.procs import Child, Children

BENCH_DIR = Path(__file__).resolve().parent


class DriverClient:
    """JSON lines to and from the load driver process."""

    def __init__(self, child: Child) -> None:
        self.child = child

    async def read(self, timeout_s: float) -> dict[str, Any]:
        stdout = self.child.process.stdout
        assert stdout is not None
        line = await asyncio.wait_for(stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError(f"load driver exited:\n{self.child.log_tail()}")
        result: dict[str, Any] = orjson.loads(line)
        return result

    async def request(
        self,
        cmd: dict[str, Any],
        timeout_s: float,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        stdin = self.child.process.stdin
        assert stdin is not None
        stdin.write(orjson.dumps(cmd) + b"\n")
        await stdin.drain()
        deadline = time.monotonic() + timeout_s
        while True:
            answer = await self.read(max(0.1, deadline - time.monotonic()))
            if "event" in answer:
                if on_event is not None:
                    on_event(answer)
                continue
            if not answer.get("ok"):
                raise RuntimeError(f"load driver: {answer.get('error')}")
            return answer


def clean_env() -> dict[str, str]:
    """The parent's environment without any ``PIVOT_*`` variable, so only ours reach a worker."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PIVOT_")}


async def start_load_driver(children: Children, amqp_url: str) -> DriverClient:
    """``loadgen.py`` as a child speaking JSON lines; returns once it says it is ready."""
    child = await children.spawn(
        "loadgen",
        [sys.executable, str(BENCH_DIR / "loadgen.py"), amqp_url],
        stdin_pipe=True,
        stdout_pipe=True,
    )
    driver = DriverClient(child)
    ready = await driver.read(30)
    if ready.get("event") != "ready":
        raise RuntimeError(f"load driver did not start: {ready}")
    return driver


def worker_queues(queue: str) -> list[str]:
    """Every queue ``pivot-worker run`` declares for ``PIVOT_QUEUE=queue``: the work queue, its
    dead-letter queue and the CDR queue (bound to ``callevt``: one left behind would collect every
    later call's ``CHANNEL_DESTROY``)."""
    return [queue, f"{queue}.dead", f"{queue}.cdr"]


async def stop_run(
    driver: DriverClient | None,
    children: Children,
    control: BrokerControl,
    queues: Iterable[str],
    debug_exchange: str,
) -> None:
    """Ask the driver to quit, stop every child, delete the run's queues and debug exchange."""
    if driver is not None and driver.child.alive() and driver.child.process.stdin is not None:
        with contextlib.suppress(Exception):
            driver.child.process.stdin.write(b'{"cmd": "quit"}\n')
    await children.stop_all()
    with contextlib.suppress(Exception):
        await control.delete(*queues, f"{debug_exchange}.debug")
    with contextlib.suppress(Exception):
        await control.delete_exchange(debug_exchange)
    with contextlib.suppress(Exception):
        await control.close()


def cancel_on_signals(prog: str) -> list[str]:
    """SIGINT and SIGTERM cancel the calling task (even where a shell left SIGINT ignored), so its
    clean-up runs; a second signal only says that it is under way. Returns the signals seen."""
    main_task = asyncio.current_task()
    assert main_task is not None
    signals: list[str] = []

    def interrupt(sig: signal.Signals) -> None:
        if signals:
            print(f"{prog}: {sig.name} again: still stopping processes and deleting queues", file=sys.stderr)
            return
        signals.append(sig.name)
        main_task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    return signals
