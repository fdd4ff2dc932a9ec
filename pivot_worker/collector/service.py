"""Running the collector: consumer, HTTP API and retention under one start/stop.

``pivot-collector run`` and ``pivot-worker run`` (without ``--no-collector``) both start a
:class:`Collector`, which opens its own broker connection.
Start-up fails fast, naming the variable at fault; shutdown stops taking messages, stores and acks
what is held, then closes the API, the database and (when it opened it) the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aio_pika
import aio_pika.abc
from aiohttp import web

from ..queues import bounds
from ..settings import Settings, SettingsError
from .api import make_app
from .auth import KazooKeys, TokenBook
from .consumer import MAX_BATCH, MAX_WAIT_S, EventConsumer
from .store import Store

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 3600.0


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ``SettingsError`` naming PIVOT_API_LISTEN."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise SettingsError(
            f"PIVOT_API_LISTEN={text!r} is not valid: expected host:port, e.g. 127.0.0.1:8000"
        )
    return host, int(port_text)


class Collector:
    """Consumer + API + retention; ``start()`` then ``stop()``, once each."""

    def __init__(
        self,
        settings: Settings,
        *,
        api: bool = True,
        queue: str | None = None,
        db_schema: str | None = None,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self.settings = settings
        self._api = api
        self._queue = queue
        self._db_schema = db_schema
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._listen = parse_listen(settings.api_listen) if api else None
        self._tokens = (
            TokenBook(settings.api_tokens_file, kazoo=KazooKeys.from_setting(settings.kazoo_auth_keys))
            if api
            else None
        )
        self._own_connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.store: Store | None = None
        self.consumer: EventConsumer | None = None
        self._runner: web.AppRunner | None = None
        self._retention: asyncio.Task[None] | None = None

    @property
    def api_address(self) -> tuple[str, int] | None:
        """Where the API listens (the real port when PIVOT_API_LISTEN asked for port 0)."""
        if self._runner is None or not self._runner.addresses:
            return None
        host, port = self._runner.addresses[0][:2]
        return str(host), int(port)

    async def start(self, connection: aio_pika.abc.AbstractRobustConnection | None = None) -> None:
        if self._tokens is not None and not self._tokens.configured:
            logger.warning(
                "neither PIVOT_API_TOKENS_FILE nor PIVOT_KAZOO_AUTH_KEYS is set: "
                "every API request will be refused (401)"
            )
        self.store = await Store.open(self.settings.database_url, schema=self._db_schema)
        try:
            await self.purge()
            if connection is None:
                connection = self._own_connection = await aio_pika.connect_robust(
                    self.settings.amqp_urls[0], client_properties={"connection_name": "pivot-collector"}
                )
            self.consumer = EventConsumer(
                self.store,
                connection,
                exchange=self.settings.debug_exchange,
                queue=self._queue,
                max_batch=self._max_batch,
                max_wait_s=self._max_wait_s,
                queue_arguments=bounds(self.settings.debug_queue_max_length, self.settings.debug_queue_ttl_s),
            )
            await self.consumer.start()
            if self._listen is not None and self._tokens is not None:
                consumer = self.consumer
                app = make_app(
                    self.store,
                    self._tokens,
                    node=self.settings.node,
                    broker_connected=lambda: consumer.connected,
                )
                self._runner = web.AppRunner(app)
                await self._runner.setup()
                await web.TCPSite(self._runner, self._listen[0], self._listen[1]).start()
                logger.info("pivot debug API listening on %s:%d", *(self.api_address or self._listen))
            self._retention = asyncio.create_task(self._retention_loop(), name="pivot-collector-retention")
        except BaseException:
            await self.stop()
            raise
        logger.info(
            "collector consuming %s on exchange %s", self.consumer.queue_name, self.settings.debug_exchange
        )

    async def stop(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
            self._retention = None
        if self.consumer is not None:
            await self.consumer.stop()
            stats = self.consumer.stats
            logger.info(
                "collector stopped: %d received, %d stored, %d rejected, %d batches",
                stats.received,
                stats.stored,
                stats.rejected,
                stats.batches,
            )
            self.consumer = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self._own_connection is not None:
            with contextlib.suppress(Exception):
                await self._own_connection.close()
            self._own_connection = None

    async def purge(self) -> None:
        """Apply ``PIVOT_DEBUG_RETENTION_DAYS`` once."""
        if self.store is None:
            return
        cutoff_us = int((time.time() - self.settings.debug_retention_days * 86400) * 1_000_000)
        events, calls = await self.store.purge(cutoff_us)
        if events or calls:
            logger.info("retention: removed %d debug events and %d calls", events, calls)

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(RETENTION_INTERVAL_S)
            try:
                await self.purge()
            except Exception:
                logger.exception("retention purge failed; will try again in %.0fs", RETENTION_INTERVAL_S)
