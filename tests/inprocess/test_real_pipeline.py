"""The real Worker with its real Pipeline and HTTP client, against a developer server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from aiohttp import web

from pivot_worker.ledger import request_key
from pivot_worker.settings import parse_networks
from tests.e2e.devserver import DevServer

from .support import (
    CHANNEL_PIVOT,
    FAILED,
    FLOW,
    PROCESSING,
    FakeMessage,
    Rig,
    broker_down,
    make_rig,
    request_body,
    stamp,
)

CALL_ID = "c1@10.0.0.5"


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    """Rigs made in a test get their HTTP client started; every client is closed afterwards."""
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.worker.fetcher.close()


async def real_rig(rigs: list[Rig], **settings: Any) -> Rig:
    rig = make_rig(allow_networks=parse_networks("127.0.0.0/8"), **settings)
    await rig.worker.fetcher.start()
    rigs.append(rig)
    return rig


async def test_kazoo_json_answer_is_published_as_the_flow(dev: DevServer, rigs: list[Rig]) -> None:
    url = dev.answer("/flow", orjson.dumps(FLOW))
    rig = await real_rig(rigs)
    message = FakeMessage(request_body(CALL_ID, url), timestamp=stamp(time.time()))
    await asyncio.wait_for(rig.deliver(message), 5)

    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
    pivot = rig.broker.published[1]
    flow = orjson.loads(pivot.body["Application-Data"])
    assert (flow["module"], flow["data"]["text"]) == ("tts", "Hello")  # validated: defaults filled in
    assert pivot.body["Call-ID"] == CALL_ID
    (seen,) = dev.seen_at("/flow")
    assert parse_qs(seen.query_string)["Call-ID"] == [CALL_ID]
    assert message.acked == 1
    assert message.ack_commit().events == [PROCESSING, CHANNEL_PIVOT]  # replies and ack: one commit
    assert await rig.ledger.lookup(request_key(message.body)) is None  # a clean commit needs no claim
    assert rig.worker.counts["success"] == 1


async def test_twiml_answer_is_translated_and_published(dev: DevServer, rigs: list[Rig]) -> None:
    url = dev.answer("/twiml", "<Response><Say>Hello there</Say></Response>", content_type="text/xml")
    rig = await real_rig(rigs)
    message = FakeMessage(request_body(CALL_ID, url, **{"Request-Format": "twiml"}))
    await asyncio.wait_for(rig.deliver(message), 5)

    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
    flow = orjson.loads(rig.broker.published[1].body["Application-Data"])
    assert b"Hello there" in orjson.dumps(flow)
    assert message.acked == 1


async def test_an_answer_later_than_the_stale_point_is_failed_stale(dev: DevServer, rigs: list[Rig]) -> None:
    async def late(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return web.Response(body=orjson.dumps(FLOW), content_type="application/json")

    url = dev.route("/late", late)
    rig = await real_rig(rigs, stale_after_ms=250)
    message = FakeMessage(request_body(CALL_ID, url), timestamp=stamp(time.time()))
    started = time.monotonic()
    await asyncio.wait_for(rig.deliver(message), 5)

    assert time.monotonic() - started < 0.45  # it gave up at the stale point, not at the answer
    assert rig.broker.events() == [FAILED]
    assert rig.broker.published[0].body["Failure-Reason"] == "stale"
    assert message.acked == 1


async def test_a_request_already_stale_on_arrival_is_failed_without_fetching(
    dev: DevServer, rigs: list[Rig]
) -> None:
    url = dev.answer("/flow", orjson.dumps(FLOW))
    rig = await real_rig(rigs, stale_after_ms=1000)
    message = FakeMessage(request_body(CALL_ID, url), timestamp=stamp(time.time() - 2.0))
    await asyncio.wait_for(rig.deliver(message), 5)

    assert dev.seen_at("/flow") == []
    assert rig.broker.events() == [FAILED]
    assert rig.broker.published[0].body["Failure-Reason"] == "stale"
    assert message.acked == 1


async def test_a_real_answer_survives_a_reconnect_and_its_redelivery_is_not_served_again(
    dev: DevServer, rigs: list[Rig]
) -> None:
    url = dev.answer("/flow", orjson.dumps(FLOW))
    rig = await real_rig(rigs)
    rig.epoch.bus.script(CHANNEL_PIVOT, broker_down())
    message = FakeMessage(request_body(CALL_ID, url), timestamp=stamp(time.time()))
    task = rig.spawn(message)
    await asyncio.wait_for(rig.link.waiting.wait(), 5)
    rig.reconnect()
    await asyncio.wait_for(task, 5)
    again = message.again()
    await asyncio.wait_for(rig.deliver(again), 5)

    # the cut commit took processing with it; CHANNEL_PIVOT alone on the next connection
    assert [(p.epoch, p.event) for p in rig.broker.published] == [(2, CHANNEL_PIVOT)]
    assert len(dev.seen_at("/flow")) == 1
    assert (message.acked, again.acked) == (0, 1)


async def test_an_invalid_request_naming_a_call_is_failed_and_dead_lettered(rigs: list[Rig]) -> None:
    body = orjson.loads(request_body(CALL_ID))
    del body["Voice-URI"]
    rig = await real_rig(rigs)
    message = FakeMessage(orjson.dumps(body))
    await rig.deliver(message)

    assert rig.broker.events() == [FAILED]
    assert rig.broker.published[0].body["Failure-Reason"] == "invalid_request"
    assert [d.reason.value for d in rig.broker.dead_letters] == ["invalid_request"]
    assert message.acked == 1
    assert message.ack_commit().events == [FAILED]  # failed, the copy and the ack: one commit
    assert message.ack_commit().dead_letter is not None
