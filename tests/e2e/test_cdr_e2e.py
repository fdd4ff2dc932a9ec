"""CDR-URI end to end: the flow stores the CDR URL on the channel, and whichever worker is alive when
Kazoo publishes ``CHANNEL_DESTROY`` posts the record, even after the worker that answered was killed.

Every test starts its own workers on one queue name: a second ``<queue>.cdr`` bound to ``callevt``
would get its own copy of every ``CHANNEL_DESTROY`` and could post a record the killed worker lost.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from aiohttp import web

from tests.e2e.conftest import delete_queues, worker_env
from tests.e2e.devserver import DevServer, Seen
from tests.e2e.kazoo_side import (
    ACCOUNT_ID,
    CallSide,
    KazooCallflow,
    channel_destroy,
    pivot_req,
    publish_channel_destroy,
)
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit

CDR_READY = "posting call records from"
TTS = {"module": "tts", "data": {"text": "Hello"}}
TWIML = "<Response><Say>Hello</Say><Hangup/></Response>"


@pytest.fixture
def queue() -> str:
    return f"pivot_cdr_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def start_worker(broker: str, queue: str, tmp_path: Path) -> Iterator[Any]:
    """Start ``pivot-worker run`` processes on ``queue`` (CDR poster on, by default); stop them and
    delete every durable queue they declared at the end."""
    started: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        proc = WorkerProcess(worker_env(broker, queue), tmp_path / f"{name}.log", name).start()
        started.append(proc)
        deadline = time.monotonic() + 10
        while CDR_READY not in proc.log():
            assert time.monotonic() < deadline, f"CDR poster of {name} did not start:\n{proc.log()}"
            time.sleep(0.05)
        return proc

    yield start
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
        elif not proc._log.closed:
            proc._log.close()
    asyncio.run(delete_queues(broker, queue, f"{queue}.dead", f"{queue}.cdr"))


@pytest.fixture
async def kazoo(broker: str) -> AsyncIterator[KazooCallflow]:
    async with KazooCallflow(broker) as side:
        yield side


def cdr_endpoint(dev: DevServer, path: str, statuses: list[int]) -> str:
    """A CDR receiver answering ``statuses`` in turn (the last one from then on)."""

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=statuses.pop(0) if len(statuses) > 1 else statuses[0])

    return dev.route(path, handler)


async def pivot(
    kazoo: KazooCallflow, dev: DevServer, request_format: str, cdr_url: str, **fields: Any
) -> tuple[CallSide, dict[str, Any]]:
    """One call through a pivot node with ``CDR-URI``; returns the call and its CHANNEL_PIVOT flow."""
    if request_format == "kazoo":
        voice = dev.answer("/kazoo", orjson.dumps(TTS))
    else:
        voice = dev.answer("/twiml", TWIML, content_type="text/xml")
    side, call = kazoo.new_call()
    msg = pivot_req(call, voice, **{"Request-Format": request_format, "CDR-URI": cdr_url, **fields})
    await kazoo.publish(side, msg)
    events = await side.wait_for(2, timeout=10)
    # two queues (targeted, callevt): the two replies may arrive in either order
    assert sorted(side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"]
    (channel_pivot,) = [e for e in events if e.body.get("Event-Name") == "CHANNEL_PIVOT"]
    flow: dict[str, Any] = orjson.loads(channel_pivot.body["Application-Data"])
    return side, flow


def assert_wrapped(
    flow: dict[str, Any], cdr_url: str, request_format: str, body_format: str
) -> dict[str, str]:
    assert flow["module"] == "set_variables"
    cavs: dict[str, str] = flow["data"]["custom_application_vars"]
    assert cavs == {
        "pivot_cdr_url": cdr_url,
        "pivot_cdr_account_id": ACCOUNT_ID,
        "pivot_cdr_request_format": request_format,
        "pivot_cdr_body_format": body_format,
    }
    assert flow["children"]["_"]["module"] == "tts"
    return cavs


def record(seen: Seen) -> dict[str, Any]:
    if seen.headers.get("Content-Type", "").startswith("application/json"):
        doc: dict[str, Any] = json.loads(seen.body)
        return doc
    return dict(parse_qsl(seen.body.decode(), keep_blank_values=True))


async def test_cdr_is_posted_for_kazoo_json_and_twiml_calls(
    start_worker: Any, kazoo: KazooCallflow, dev: DevServer
) -> None:
    start_worker("w1")
    cdr_url = cdr_endpoint(dev, "/cdr", [200])
    kazoo_call, kazoo_flow = await pivot(kazoo, dev, "kazoo", cdr_url)
    kazoo_cavs = assert_wrapped(kazoo_flow, cdr_url, "kazoo", "form")
    twiml_call, twiml_flow = await pivot(
        kazoo, dev, "twiml", cdr_url, **{"HTTP-Method": "post", "Request-Body-Format": "json"}
    )
    twiml_cavs = assert_wrapped(twiml_flow, cdr_url, "twiml", "json")

    # every CHANNEL_DESTROY of the platform reaches the poster: one of a call without CDR-URI first
    await publish_channel_destroy(kazoo.callevt, channel_destroy(f"{uuid.uuid4()}@10.0.0.9", {"x": "1"}))
    await publish_channel_destroy(
        kazoo.callevt, channel_destroy(kazoo_call.call_id, {"mine": "1", **kazoo_cavs})
    )
    await publish_channel_destroy(kazoo.callevt, channel_destroy(twiml_call.call_id, twiml_cavs))

    seen = await dev.wait_seen("/cdr", 2, timeout=10)
    by_call = {record(s)["Call-ID"]: (s, record(s)) for s in seen}
    assert set(by_call) == {kazoo_call.call_id, twiml_call.call_id}

    form_seen, form = by_call[kazoo_call.call_id]
    assert form_seen.method == "POST"
    assert form_seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form["Account-ID"] == ACCOUNT_ID
    assert form["Hangup-Cause"] == "NORMAL_CLEARING"
    assert form["Custom-Application-Vars[mine]"] == "1"
    assert not [k for k in form if k.startswith("Custom-Channel-Vars") or "pivot_cdr" in k]

    json_seen, doc = by_call[twiml_call.call_id]
    assert json_seen.headers["Content-Type"] == "application/json"
    assert (doc["Account-ID"], doc["CallSid"], doc["CallStatus"]) == (
        ACCOUNT_ID,
        twiml_call.call_id,
        "completed",
    )
    assert "Custom-Channel-Vars" not in doc

    await asyncio.sleep(0.5)
    assert len(dev.seen_at("/cdr")) == 2  # nothing for the call without CDR-URI, nothing twice


async def test_cdr_survives_the_sigkill_of_the_worker_that_answered_the_pivot(
    start_worker: Any, kazoo: KazooCallflow, dev: DevServer
) -> None:
    first = start_worker("w1")
    cdr_url = cdr_endpoint(dev, "/cdr", [503, 200])  # the first attempt fails: w1 is then mid-retry
    retried_call, retried_flow = await pivot(kazoo, dev, "twiml", cdr_url)
    waiting_call, waiting_flow = await pivot(kazoo, dev, "kazoo", cdr_url)
    retried_cavs = assert_wrapped(retried_flow, cdr_url, "twiml", "form")
    waiting_cavs = assert_wrapped(waiting_flow, cdr_url, "kazoo", "form")

    await publish_channel_destroy(kazoo.callevt, channel_destroy(retried_call.call_id, retried_cavs))
    await dev.wait_seen("/cdr", 1, timeout=10)  # answered 503: w1 waits ~4 s before its next attempt
    first.kill()
    # the other call ends while no worker runs at all: its event waits in the durable queue
    await publish_channel_destroy(kazoo.callevt, channel_destroy(waiting_call.call_id, waiting_cavs))
    await asyncio.sleep(0.3)
    assert len(dev.seen_at("/cdr")) == 1

    await asyncio.to_thread(start_worker, "w2")
    seen = await dev.wait_seen("/cdr", 3, timeout=15)
    delivered = [record(s) for s in seen[1:]]
    assert sorted(r["Call-ID"] for r in delivered) == sorted([retried_call.call_id, waiting_call.call_id])
    assert all(r["Account-ID"] == ACCOUNT_ID for r in delivered)
    assert record(seen[0])["Call-ID"] == retried_call.call_id  # the attempt w1 made before it died
