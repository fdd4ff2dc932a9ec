"""Fixtures for the collector: SQLite files, a PostgreSQL schema per test, a running API."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aio_pika.abc
import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web

from pivot_worker.collector.api import make_app
from pivot_worker.collector.auth import TokenBook
from pivot_worker.collector.consumer import queue_name_for
from pivot_worker.collector.store import Store

from .support import TOKENS

PG_URL = os.environ.get("PIVOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _pg_admin() -> asyncpg.Connection:
    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    try:
        return await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL not reachable at {PG_URL} (set PIVOT_TEST_DATABASE_URL): {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def pg_schema() -> AsyncIterator[tuple[str, str]]:
    """(database URL, a fresh schema name) on the test PostgreSQL; the schema is dropped afterwards."""
    admin = await _pg_admin()
    schema = f"pivot_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield PG_URL, schema
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store on a fresh SQLite file, or on a fresh PostgreSQL schema (dropped afterwards)."""
    if request.param == "sqlite":
        opened = await Store.open(f"sqlite:///{tmp_path / 'debug.sqlite3'}")
        try:
            yield opened
        finally:
            await opened.close()
        return
    admin = await _pg_admin()
    schema = f"pivot_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        opened = await Store.open(PG_URL, schema=schema)
        try:
            yield opened
        finally:
            await opened.close()
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    path.write_bytes(orjson.dumps(TOKENS))
    return path


@pytest.fixture
async def api(store: Store, tokens_file: Path) -> AsyncIterator[str]:
    """Base URL of the debug API served on a free loopback port over ``store``."""
    runner = web.AppRunner(make_app(store, TokenBook(str(tokens_file)), node="collector@test"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """(PIVOT_DATABASE_URL, PostgreSQL schema or None) for a collector that opens the store itself."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collector.sqlite3'}", None
        return
    admin = await _pg_admin()
    schema = f"pivot_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield PG_URL, schema
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[tuple[aio_pika.abc.AbstractRobustConnection, str]]:
    """A connection and a unique debug exchange name; the exchange and its queue are deleted afterwards."""
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": "collector-tests"}
    )
    exchange = f"pivot_test_{uuid.uuid4().hex[:10]}"
    try:
        yield connection, exchange
    finally:
        channel = await connection.channel()
        await channel.queue_delete(queue_name_for(exchange))
        await channel.exchange_delete(exchange)
        await connection.close()
