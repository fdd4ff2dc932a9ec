"""Debug records through the real worker: `pivot-worker run` with its embedded collector and API."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.conftest import worker_env
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import KazooCallflow, pivot_req
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit

ACCOUNT = "3a1b2c4d5e6f708192a3b4c5d6e7f809"
TOKEN = "test-token-" + uuid.uuid4().hex


@pytest.fixture
async def embedded(
    broker: str, tmp_path: Path, unused_tcp_port: int
) -> AsyncIterator[tuple[WorkerProcess, str]]:
    suffix = uuid.uuid4().hex[:8]
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(orjson.dumps({TOKEN: [ACCOUNT]}))
    env = worker_env(
        broker,
        f"pivot_debug_e2e_{suffix}",
        PIVOT_DEBUG_EXCHANGE=f"pivot_debug_{suffix}",
        PIVOT_DATABASE_URL=f"sqlite:///{tmp_path / 'debug.sqlite3'}",
        PIVOT_API_TOKENS_FILE=str(tokens),
        PIVOT_API_LISTEN=f"127.0.0.1:{unused_tcp_port}",
        PIVOT_REDACT_PARAMS="Caller-ID-Name",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", "embedded", args=()).start()
    yield worker, f"http://127.0.0.1:{unused_tcp_port}"
    worker.stop()


async def poll_records(
    api: str, call_id: str, want: int, timeout: float = 1.0
) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    url = f"{api}/v2/accounts/{ACCOUNT}/pivot/debug/{call_id}"
    async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as http:
        while True:
            async with http.get(url) as response:
                if response.status == 200:
                    data = (await response.json())["data"]
                    if len(data) >= want:
                        return data, time.monotonic() - started
            if time.monotonic() - started > timeout + 2:
                raise AssertionError(f"no {want} debug records for {call_id} in time")
            await asyncio.sleep(0.02)


async def test_debug_call_is_visible_in_the_api_within_a_second(
    embedded: tuple[WorkerProcess, str], kazoo: KazooCallflow, dev: DevServer
) -> None:
    _worker, api = embedded
    url = dev.answer("/dbg", '{"module": "tts", "data": {"text": "Hi"}}')
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, url, Debug=True))
    await side.wait_for(2)
    records, elapsed = await poll_records(api, side.call_id, want=3)
    assert elapsed < 1.0, f"records took {elapsed:.3f}s"
    kinds = [r["event_type"] for r in records]
    assert kinds == ["request", "response", "result"], kinds
    request, response, result = records
    assert "Caller-ID-Name=***" in request["uri"] or "Caller-ID-Name=%2A%2A%2A" in request["uri"]
    assert "Alice" not in request["uri"]
    assert response["resp_status_code"] == "200"
    assert response["resp_body"] == '{"module": "tts", "data": {"text": "Hi"}}'
    assert result["callflow"]["data"]["voice"] == "female"


async def test_failure_is_recorded_even_with_debug_off_without_bodies(
    embedded: tuple[WorkerProcess, str], kazoo: KazooCallflow, dev: DevServer
) -> None:
    _worker, api = embedded
    url = dev.answer("/bad", '{"module": "tts", "data": {}}')
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, url, Debug=False))
    await side.wait_for(1)
    records, _ = await poll_records(api, side.call_id, want=3)
    result = records[-1]
    assert result["reason"] == "schema_error"
    assert result["schema_errors"]["errors"][0]["pointer"] == "/data/text"
    assert not any(r.get("resp_body") for r in records)


async def test_invalid_request_is_recorded_for_its_call(
    embedded: tuple[WorkerProcess, str], kazoo: KazooCallflow
) -> None:
    _worker, api = embedded
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, "http://127.0.0.1/x", **{"HTTP-Method": "put"}))
    await side.wait_for(1)
    records, _ = await poll_records(api, side.call_id, want=1)
    assert records[-1]["reason"] == "invalid_request"
    assert "HTTP-Method" in records[-1]["message"]


async def test_a_second_worker_on_the_same_host_starts_without_its_own_collector(
    embedded: tuple[WorkerProcess, str], kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    first, api = embedded
    second = WorkerProcess(first.env, tmp_path / "second.log", "second", args=()).start()
    try:
        assert "running without the embedded collector" in second.log()
        url = dev.answer("/two", '{"module": "tts", "data": {"text": "Hi"}}')
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, url, Debug=True))
        await side.wait_for(2)
        records, _ = await poll_records(api, side.call_id, want=3)  # stored by the first one's collector
        assert records[-1]["event_type"] == "result"
    finally:
        second.stop()
