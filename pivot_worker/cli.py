"""``pivot-worker``: ``run`` serves pivot requests; ``translate`` shows what a document becomes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from . import __version__, logs
from .runtime import run_loop, settle_heap, stop_on_signals
from .settings import Settings, SettingsError, parse_networks
from .translate_cmd import register as register_translate


async def _serve(settings: Settings, *, with_collector: bool) -> int:
    from .collector import Collector
    from .worker import Worker

    stop = asyncio.Event()
    why = stop_on_signals(stop)
    # The embedded collector starts first: a taken API port or a bad tokens file fails start-up
    # before any request is taken.
    collector = Collector(settings) if with_collector else None
    if collector is not None:
        await collector.start()
    worker = Worker(settings)
    try:
        await worker.start()
        settle_heap()
        await stop.wait()
    finally:
        await worker.stop(why[0] if why else "stop")
        if collector is not None:
            await collector.stop()
    return 0


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
    logs.configure(settings.log_level)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
