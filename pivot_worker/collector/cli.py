"""``pivot-collector``: ``run`` stores debug events and serves the debug API until SIGTERM/SIGINT.

Other commands: ``migrate`` (create or upgrade the schema, then exit), ``purge`` (apply retention
once), ``openapi`` (print the API's OpenAPI document). Settings come from ``PIVOT_*`` variables;
flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import orjson

from .. import __version__, logs
from ..runtime import run_loop, settle_heap, stop_on_signals
from ..settings import Settings, SettingsError
from .auth import TokenFileError
from .migrate import SchemaTooNewError
from .openapi import openapi_document
from .service import Collector
from .store import Store


async def _run(settings: Settings, api: bool) -> int:
    collector = Collector(settings, api=api)
    stop = asyncio.Event()
    stop_on_signals(stop)
    await collector.start()
    settle_heap()
    await stop.wait()
    await collector.stop()
    return 0


async def _migrate(settings: Settings) -> int:
    store = await Store.open(settings.database_url)
    await store.close()
    return 0


async def _purge(settings: Settings) -> int:
    collector = Collector(settings, api=False)
    collector.store = await Store.open(settings.database_url)
    try:
        await collector.purge()
    finally:
        await collector.store.close()
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        amqp_url=getattr(args, "amqp_url", None),
        database_url=getattr(args, "database_url", None),
        api_listen=getattr(args, "listen", None),
        log_level=getattr(args, "log_level", None),
    )


def _execute(args: argparse.Namespace) -> int:
    if args.command == "openapi":
        sys.stdout.write(orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    try:
        settings = _settings(args)
        logs.configure(settings.log_level, settings.log_format)
        if args.command == "run":
            return run_loop(_run(settings, api=not args.no_api))
        if args.command == "migrate":
            return run_loop(_migrate(settings))
        return run_loop(_purge(settings))
    except (SettingsError, TokenFileError, SchemaTooNewError) as exc:
        print(f"pivot-collector: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pivot-collector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pivot-collector {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="store debug events and serve the debug API")
    run.add_argument("--amqp-url", help="PIVOT_AMQP_URL")
    run.add_argument("--database-url", help="PIVOT_DATABASE_URL")
    run.add_argument("--listen", help="PIVOT_API_LISTEN (host:port)")
    run.add_argument("--no-api", action="store_true", help="consume and store only; serve no HTTP API")
    run.add_argument("--log-level", help="PIVOT_LOG_LEVEL")
    for name, text in (
        ("migrate", "create or upgrade the database schema"),
        ("purge", "apply retention once"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--database-url", help="PIVOT_DATABASE_URL")
        cmd.add_argument("--log-level", help="PIVOT_LOG_LEVEL")
    sub.add_parser("openapi", help="print the debug API's OpenAPI document")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _execute(args)
