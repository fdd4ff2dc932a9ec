"""The fallback URL through a real `pivot-worker run`: PIVOT_FALLBACK_URLS_FILE, a failing primary, TwiML."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import orjson
import pytest

from pivot_worker.contracts import validate_outgoing
from tests.e2e.conftest import worker_env
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import ACCOUNT_ID, KazooCallflow, pivot_req
from tests.e2e.workers import WorkerProcess
from tests.kazoo_conformance import assert_flow_conforms

pytestmark = pytest.mark.rabbit

SORRY = (
    "<Response><Say>We are sorry, please hold.</Say>"
    '<Gather numDigits="1" action="menu"><Say>Press 1</Say></Gather></Response>'
)


@pytest.fixture
async def backup() -> AsyncIterator[DevServer]:
    server = DevServer()
    await server.start()
    yield server
    await server.stop()


async def test_a_failing_primary_is_answered_by_the_accounts_twiml_fallback(
    broker: str, kazoo: KazooCallflow, dev: DevServer, backup: DevServer, tmp_path: Path
) -> None:
    fallback = backup.answer("/pivot/sorry.xml", SORRY, content_type="text/xml")
    table = tmp_path / "fallback-urls.json"
    table.write_bytes(orjson.dumps({ACCOUNT_ID: fallback}))
    env = worker_env(
        broker,
        f"pivot_fallback_e2e_{uuid.uuid4().hex[:8]}",
        PIVOT_FALLBACK_URLS_FILE=str(table),
        PIVOT_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger'}",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", "fallback")
    await asyncio.to_thread(worker.start)
    try:
        primary = dev.answer("/voice", "internal error", status=500, content_type="text/plain")
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, primary + "?tenant=7", **{"Request-Format": "twiml"}))
        await side.wait_for(2, timeout=5)
        await asyncio.sleep(0.2)  # nothing else may follow
        assert sorted(side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"], side.names()
        event = next(r for r in side.events if r.body.get("Event-Name") == "CHANNEL_PIVOT")
        validate_outgoing("channel_pivot", event.body)
        flow = orjson.loads(event.body["Application-Data"])
        assert_flow_conforms(flow)
        assert flow["module"] == "tts"
        assert flow["data"]["text"] == "We are sorry, please hold."
        # The Gather's relative action resolves against the fallback's URL.
        assert backup.url("/pivot/menu") in orjson.dumps(flow).decode()

        assert len(dev.seen_at("/voice")) == 1
        (seen,) = backup.seen_at("/pivot/sorry.xml")
        sent = {k: v[0] for k, v in parse_qs(seen.query_string).items()}
        assert sent["ErrorCode"] == "11200"
        assert sent["ErrorUrl"] == primary + "?tenant=7"
        assert sent["CallSid"] == side.call_id
    finally:
        assert await asyncio.to_thread(worker.stop) == 0
    assert "outcome=success" in worker.log()
