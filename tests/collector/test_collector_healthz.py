"""The collector's /healthz: database and broker connection, 503 naming the check that failed."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pivot_worker.collector.api import make_app
from pivot_worker.collector.auth import TokenBook
from pivot_worker.collector.store import Store


async def _get(store: Store, tokens_file: Path, broker_up: bool) -> tuple[int, dict[str, str]]:
    app = make_app(store, TokenBook(str(tokens_file)), node="n@test", broker_connected=lambda: broker_up)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/healthz")
        return resp.status, orjson.loads(await resp.read())


async def test_healthz_ok_when_database_and_broker_are(store: Store, tokens_file: Path) -> None:
    assert await _get(store, tokens_file, True) == (200, {"status": "ok"})


async def test_healthz_names_the_broker(store: Store, tokens_file: Path) -> None:
    status, body = await _get(store, tokens_file, False)
    assert status == 503
    assert body["failed"] == "broker"


async def test_healthz_names_the_database(
    store: Store, tokens_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database stops answering. (Simulated at the store's edge: breaking a real SQLite file under
    # an open engine leaves aiosqlite threads calling back into the test's closed event loop.)
    async def unreachable() -> None:
        raise OSError("database unreachable")

    monkeypatch.setattr(store, "ping", unreachable)
    status, body = await _get(store, tokens_file, True)
    assert status == 503
    assert body["failed"] == "database"
