"""The store on a real SQLite file and a real PostgreSQL schema: idempotence, merging, retention."""

from __future__ import annotations

import random
import time

import pytest
import sqlalchemy as sa

from pivot_worker.collector.dburl import async_database_url
from pivot_worker.collector.migrate import SCHEMA_VERSION, SchemaTooNewError
from pivot_worker.collector.store import Store
from pivot_worker.collector.tables import schema_version
from pivot_worker.errors import Reason
from pivot_worker.settings import SettingsError
from pivot_worker.trace import Outcome

from .support import ACCOUNT_A, ACCOUNT_B, events_of, make_trace

EVERYTHING = {"from_key": 0, "to_key": 2**62}


async def test_writing_the_same_batch_twice_stores_it_once(store: Store) -> None:
    batch = events_of(make_trace()) + events_of(make_trace(status=500, outcome=Outcome.FAILED))
    await store.write(batch)
    first = await store.list_calls(ACCOUNT_A, **EVERYTHING)
    await store.write(batch)
    await store.write(list(reversed(batch[:3])))
    assert await store.count_events() == len(batch)
    assert await store.list_calls(ACCOUNT_A, **EVERYTHING) == first


async def test_summary_is_the_same_whatever_the_delivery_order(store: Store) -> None:
    call = "order-test-call"
    t0 = time.time() - 60
    events = (
        events_of(
            make_trace(
                call=call, status=404, outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS, received_at=t0
            )
        )
        + events_of(make_trace(call=call, iteration=2, status=200, received_at=t0 + 5))
        + events_of(
            make_trace(
                call=call,
                iteration=3,
                status=None,
                outcome=Outcome.FAILED,
                reason=Reason.TIMEOUT,
                received_at=t0 + 9,
            )
        )
    )
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    for i in range(0, len(shuffled), 2):  # small batches, out of order, with a repeat
        await store.write(shuffled[i : i + 2])
    await store.write(shuffled[:3])
    [row] = await store.list_calls(ACCOUNT_A, **EVERYTHING)
    assert row.call_id == call
    assert row.iteration == 1
    assert row.status_code == "404"  # the first response, not the latest
    assert row.uri == "https://ivr.example.com/pivot/start?tenant=7"
    assert row.failed is True
    assert row.reason == "timeout"  # the latest failure
    stored = await store.call_events(ACCOUNT_A, call)
    assert [e["event_id"] for e in stored] == [e["event_id"] for e in events]  # oldest first


async def test_accounts_are_kept_apart(store: Store) -> None:
    await store.write(events_of(make_trace(account=ACCOUNT_A, call="shared-call-id")))
    await store.write(
        events_of(make_trace(account=ACCOUNT_B, call="shared-call-id", status=503, outcome=Outcome.FAILED))
    )
    [a] = await store.list_calls(ACCOUNT_A, **EVERYTHING)
    [b] = await store.list_calls(ACCOUNT_B, **EVERYTHING)
    assert (a.status_code, b.status_code) == ("200", "503")
    assert all(e["account_id"] == ACCOUNT_A for e in await store.call_events(ACCOUNT_A, "shared-call-id"))


async def test_pagination_cursor_walks_every_call_once(store: Store) -> None:
    t0 = time.time() - 1000
    same_time = t0 + 500
    traces = [make_trace(call=f"call-{i:02d}", received_at=t0 + i) for i in range(13)]
    traces += [make_trace(call=f"tie-{i}", received_at=same_time) for i in range(4)]  # identical timestamps
    await store.write([e for t in traces for e in events_of(t)])
    for descending in (True, False):
        seen: list[str] = []
        start = None
        while True:
            page = await store.list_calls(
                ACCOUNT_A, **EVERYTHING, limit=5, descending=descending, start=start
            )
            seen += [r.call_id for r in page[:4]]
            if len(page) < 5:
                break
            start = (page[4].first_key, page[4].call_id)
        assert sorted(seen) == sorted(t.call_id for t in traces)
        keys = [
            (r.first_key, r.call_id)
            for r in await store.list_calls(ACCOUNT_A, **EVERYTHING, limit=100, descending=descending)
        ]
        assert keys == sorted(keys, reverse=descending)


async def test_failed_only_filter(store: Store) -> None:
    await store.write(events_of(make_trace(call="ok")))
    await store.write(
        events_of(make_trace(call="bad", status=500, outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS))
    )
    rows = await store.list_calls(ACCOUNT_A, **EVERYTHING, failed_only=True)
    assert [r.call_id for r in rows] == ["bad"]


async def test_retention_removes_old_calls_and_keeps_recent_ones(store: Store) -> None:
    now = time.time()
    old = make_trace(call="old-call", received_at=now - 40 * 86400)
    recent = make_trace(call="recent-call", received_at=now - 2 * 86400)
    await store.write(events_of(old) + events_of(recent))
    removed = await store.purge(int((now - 31 * 86400) * 1_000_000))
    assert removed == (3, 1)
    assert [r.call_id for r in await store.list_calls(ACCOUNT_A, **EVERYTHING)] == ["recent-call"]
    assert await store.call_events(ACCOUNT_A, "old-call") == []
    assert len(await store.call_events(ACCOUNT_A, "recent-call")) == 3


async def test_open_twice_is_a_no_op_and_a_newer_schema_is_refused(store: Store) -> None:
    async with store.engine.begin() as conn:
        version = (await conn.execute(sa.select(schema_version.c.version))).scalar_one()
        assert version == SCHEMA_VERSION
        await conn.execute(sa.update(schema_version).values(version=SCHEMA_VERSION + 1))
    from pivot_worker.collector.migrate import migrate

    with pytest.raises(SchemaTooNewError, match="newer than this collector"):
        async with store.engine.begin() as conn:
            await migrate(conn)


async def test_nul_characters_in_identifiers_are_stored(store: Store) -> None:
    await store.write(events_of(make_trace(call="nul\x00call")))
    [row] = await store.list_calls(ACCOUNT_A, **EVERYTHING)
    assert row.call_id == "nul\ufffdcall"


@pytest.mark.parametrize(
    ("given", "driver", "database"),
    [
        ("sqlite:///pivot_debug.sqlite3", "sqlite+aiosqlite", "pivot_debug.sqlite3"),
        ("sqlite:////var/lib/pivot/debug.sqlite3", "sqlite+aiosqlite", "/var/lib/pivot/debug.sqlite3"),
        ("postgresql://u:p@db.example:5432/pivot", "postgresql+asyncpg", "pivot"),
        ("postgres://u@db/pivot", "postgresql+asyncpg", "pivot"),
        ("postgresql+asyncpg://u@db/pivot", "postgresql+asyncpg", "pivot"),
    ],
)
def test_database_urls_map_to_async_drivers(given: str, driver: str, database: str) -> None:
    url = async_database_url(given)
    assert (url.drivername, url.database) == (driver, database)


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("mysql://u:secret@h/db", "not supported"),
        ("sqlite://", "names no SQLite file"),
        ("postgresql://u:secret@h:5432", "names no PostgreSQL database"),
        ("not a url", "is not a database URL"),
    ],
)
def test_bad_database_urls_are_named_without_leaking_passwords(given: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words) as info:
        async_database_url(given)
    assert "PIVOT_DATABASE_URL" in str(info.value)
    assert "secret" not in str(info.value)


def test_postgres_schema_can_come_from_the_url() -> None:
    from pivot_worker.collector.dburl import split_schema

    url, schema = split_schema(async_database_url("postgresql://u@h/db?schema=pivot_debug"))
    assert (url.render_as_string(), schema) == ("postgresql+asyncpg://u@h/db", "pivot_debug")
    with pytest.raises(SettingsError, match="PostgreSQL only"):
        split_schema(async_database_url("sqlite:///x.sqlite3?schema=s"))
