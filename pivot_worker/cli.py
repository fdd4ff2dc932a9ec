"""``pivot-worker``: ``run`` serves pivot requests; ``translate`` shows what a document becomes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from . import __version__, logs
from .cdr import CdrPoster
from .collector import Collector
from .runtime import HARD_EXIT_MARGIN_S, exit_after, run_loop, sd_notify, settle_heap, stop_on_signals
from .settings import Settings, SettingsError, parse_networks
from .signing import reload_on_sighup
from .simulate import register as register_simulate
from .translate_cmd import register as register_translate

logger = logging.getLogger(__name__)


async def _serve(settings: Settings, *, with_collector: bool) -> int:
    from .worker import Worker

    stop = asyncio.Event()
    why = stop_on_signals(stop)
    watchdog = asyncio.create_task(_exit_in_bounded_time(stop, settings.shutdown_grace_s))
    worker = Worker(settings)  # first: a bad PIVOT_SIGNING_KEYS_FILE fails start-up before anything runs
    reload_on_sighup(worker.fetcher.signing, worker.pipeline.fallbacks)
    collector = await _start_embedded_collector(settings) if with_collector else None
    exit_code = 0
    cdr: CdrPoster | None = None
    try:
        if await _first(worker.start(), stop.wait()) == 1:
            return 0  # stopped while still connecting
        if settings.cdr:  # CDR-URI: a consumer of CHANNEL_DESTROY with its own connection
            cdr = CdrPoster(settings, worker.fetcher.policy, worker.fetcher.signing)
            if await _first(cdr.start(), stop.wait()) == 1:
                return 0
        settle_heap()
        sd_notify("READY=1")  # systemd Type=notify (deploy/pivot-worker.service)
        if await _first(stop.wait(), worker.link.fatal.wait()) == 1:
            logger.error("exiting: the broker link cannot be restored (%s)", worker.link.fatal_reason)
            exit_code = 1
            stop.set()
    finally:
        stop.set()
        sd_notify("STOPPING=1")
        if cdr is not None:
            await cdr.stop()
        await worker.stop(why[0] if why else ("broker lost" if exit_code else "stop"))
        if collector is not None:
            await collector.stop()
        watchdog.cancel()
    return exit_code


async def _first(*waits: Coroutine[Any, Any, Any]) -> int:
    """Run the awaitables until the first finishes (re-raising its error); cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    first = next(i for i, task in enumerate(tasks) if task in done)
    tasks[first].result()
    return first


async def _exit_in_bounded_time(stop: asyncio.Event, grace_s: float) -> None:
    """Once a stop is asked for, end the process within the grace period plus 5 s, whatever hangs."""
    await stop.wait()
    exit_after(grace_s + HARD_EXIT_MARGIN_S, code=1)


async def _start_embedded_collector(settings: Settings) -> Collector | None:
    """Start the in-process collector and API before any request is taken.

    A bad tokens file or database URL fails start-up. A taken API address usually means another
    ``pivot-worker run`` on this host already serves the collector: this process then runs without
    one (saying so) rather than refusing to start, so a second worker needs no extra flag.
    """
    collector = Collector(settings)
    try:
        await collector.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        logger.warning(
            "debug API address %s is in use (another pivot-worker or pivot-collector?): "
            "running without the embedded collector",
            settings.api_listen,
        )
        return None
    return collector


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(
            amqp_url=args.amqp_url,
            queue=args.queue,
            prefetch=args.prefetch,
            allow_networks=parse_networks(args.allow_networks) if args.allow_networks is not None else None,
            log_level=args.log_level,
        )
    except (SettingsError, ValueError) as exc:
        print(f"pivot-worker: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return run_loop(_serve(settings, with_collector=not args.no_collector))
    except (OSError, ValueError) as exc:
        print(f"pivot-worker: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pivot-worker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pivot-worker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="consume pivot requests (settings from PIVOT_* variables; flags win)")
    run.add_argument("--amqp-url", help="PIVOT_AMQP_URL")
    run.add_argument("--queue", help="PIVOT_QUEUE")
    run.add_argument("--prefetch", type=int, help="PIVOT_PREFETCH")
    run.add_argument("--allow-networks", help="PIVOT_ALLOW_NETWORKS (comma-separated CIDRs)")
    run.add_argument("--log-level", help="PIVOT_LOG_LEVEL")
    run.add_argument(
        "--no-collector",
        action="store_true",
        help="do not run the debug collector and API in this process (run pivot-collector separately)",
    )
    run.set_defaults(func=_cmd_run)
    register_translate(sub)
    register_simulate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
