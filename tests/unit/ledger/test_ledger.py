"""The reply ledger's contract, run against every backend: memory, SQLite files and a real Redis."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pivot_worker.ledger import Answer, Ledger, LedgerError, MemoryLedger, open_ledger, request_key
from pivot_worker.ledger.base import ResilientLedger
from pivot_worker.ledger.sqlite import SqliteLedger
from tests.conftest import IN_CI, _reachable

REDIS_URL = os.environ.get("PIVOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
FLOW = Answer("call-1", "pid://<0.1.0>/callflow_route_1", stale_at=time.time() + 9, flow=b'{"module":"tts"}')


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    if request.param == "memory":
        store: Ledger = MemoryLedger()
    elif request.param == "sqlite":
        store = SqliteLedger(str(tmp_path / "ledger"))
    else:
        if not _reachable(REDIS_URL):
            if IN_CI:
                pytest.fail(f"Redis not reachable at {REDIS_URL}")
            pytest.skip(f"Redis not reachable at {REDIS_URL}")
        store = open_ledger(REDIS_URL)
    await store.open()
    yield store
    await store.close()


def key() -> bytes:
    return request_key(uuid.uuid4().bytes)


def later(seconds: float = 60.0) -> float:
    return time.time() + seconds


async def test_the_first_claim_wins_and_later_claims_see_it(ledger: Ledger) -> None:
    k = key()
    assert await ledger.claim(k, "w1", FLOW, later(2), later()) is None
    other = await ledger.claim(k, "w2", FLOW, later(2), later())
    assert other is not None and other.owner == "w1" and not other.done
    assert other.answer == FLOW


async def test_finish_marks_done_and_blocks_take_over(ledger: Ledger) -> None:
    k = key()
    await ledger.claim(k, "w1", FLOW, later(2), later())
    assert (await ledger.lookup(k)).done is False  # type: ignore[union-attr]
    await ledger.finish(k)
    entry = await ledger.lookup(k)
    assert entry is not None and entry.done
    assert not await ledger.take_over(k, "w2", "w1", later(2))


async def test_take_over_needs_the_expected_owner(ledger: Ledger) -> None:
    k = key()
    await ledger.claim(k, "w1", FLOW, later(2), later())
    assert await ledger.lookup(k) is not None  # a resumer looks up before taking over
    assert not await ledger.take_over(k, "w3", "w2", later(2))
    assert await ledger.take_over(k, "w2", "w1", later(5))
    entry = await ledger.lookup(k)
    assert entry is not None and entry.owner == "w2"
    assert not await ledger.take_over(k, "w3", "w1", later(2))  # w1 lost it


async def test_unknown_keys_are_unknown(ledger: Ledger) -> None:
    assert await ledger.lookup(key()) is None


async def test_deliveries_are_counted_before_and_after_a_claim(ledger: Ledger) -> None:
    k = key()
    assert await ledger.count_delivery(k, later()) == 1
    assert await ledger.count_delivery(k, later()) == 2
    bare = await ledger.lookup(k)
    assert bare is not None and bare.owner is None and bare.deliveries == 2
    assert await ledger.claim(k, "w1", FLOW, later(2), later()) is None  # counting is not claiming
    assert await ledger.count_delivery(k, later()) == 3


async def test_a_failure_answer_round_trips(ledger: Ledger) -> None:
    k = key()
    failed = Answer("call-2", "q", stale_at=123.5, reason="timeout")
    await ledger.claim(k, "w1", failed, later(2), later())
    entry = await ledger.lookup(k)
    assert entry is not None and entry.answer == failed


async def test_sqlite_is_shared_between_two_handles_on_one_directory(tmp_path: Path) -> None:
    first, second = SqliteLedger(str(tmp_path / "l")), SqliteLedger(str(tmp_path / "l"))
    await first.open()
    await second.open()
    k = key()
    assert await first.claim(k, "w1", FLOW, later(2), later()) is None
    seen = await second.claim(k, "w2", FLOW, later(2), later())
    assert seen is not None and seen.owner == "w1"
    await first.finish(k)
    entry = await second.lookup(k)
    assert entry is not None and entry.done
    await first.close()
    await second.close()


async def test_sqlite_forgets_by_whole_periods(tmp_path: Path) -> None:
    store = SqliteLedger(str(tmp_path / "l"), period_s=3600)
    await store.open()
    k = key()
    await store.claim(k, "w1", FLOW, later(2), later())
    assert await store.prune(time.time()) == 0  # the current period is kept
    assert await store.prune(time.time() + 3600) == 0  # ... and so is the previous one
    assert await store.prune(time.time() + 2 * 3600) >= 1  # two periods on, its file is gone
    assert not list((tmp_path / "l").glob("ledger-*.sqlite3"))
    await store.close()


def test_ledger_urls() -> None:
    assert isinstance(open_ledger("memory://"), MemoryLedger)
    assert isinstance(open_ledger("sqlite:///some/dir"), SqliteLedger)
    with pytest.raises(LedgerError, match="PIVOT_LEDGER_URL"):
        open_ledger("mysql://nope")


class _Broken(MemoryLedger):
    async def claim(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise ConnectionError("store down")

    async def lookup(self, key: bytes) -> None:
        raise ConnectionError("store down")


async def test_a_failing_store_degrades_to_at_least_once(caplog: pytest.LogCaptureFixture) -> None:
    ledger = ResilientLedger(_Broken())
    k = key()
    assert await ledger.claim(k, "w1", FLOW, later(2), later()) is None  # answer anyway
    assert await ledger.lookup(k) is None
    assert ledger.errors == 2
    assert sum("answering without it" in r.getMessage() for r in caplog.records) == 1  # warned once
