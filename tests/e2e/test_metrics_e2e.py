"""Prometheus metrics of a real `pivot-worker run`, scraped over HTTP after known traffic."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import worker_env
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import KazooCallflow, kazoo_now_us, pivot_req
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit

MENU = (
    '<Response><Gather action="/menu/choice" numDigits="1"><Say>Press 1 for sales.</Say></Gather>'
    "<Redirect>/menu</Redirect></Response>"
)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def metrics_worker(
    broker: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerProcess, str]]:
    listen = f"127.0.0.1:{_free_port()}"
    env = worker_env(
        broker,
        f"pivot_metrics_test_{uuid.uuid4().hex[:8]}",
        PIVOT_METRICS_LISTEN=listen,
        PIVOT_FETCH_ATTEMPTS="3",
    )
    proc = WorkerProcess(env, Path(tmp_path_factory.mktemp("metrics")) / "w.log", "metrics").start()
    yield proc, f"http://{listen}/metrics"
    proc.stop()


async def _scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_outcomes_reasons_retries_stale_and_the_translation_memo(
    metrics_worker: tuple[WorkerProcess, str], broker: str, dev: DevServer
) -> None:
    _worker, url = metrics_worker
    before = await _scrape(url)
    menu = dev.answer("/menu", MENU, content_type="text/xml")

    async def unavailable(_r: web.Request) -> web.StreamResponse:
        return web.Response(status=503, headers={"Retry-After": "0"})

    down = dev.route("/down", unavailable)
    async with KazooCallflow(broker) as kazoo:
        for _ in range(2):  # the same menu for two calls: translated once, then from the memo
            side, call = kazoo.new_call()
            await kazoo.publish(side, pivot_req(call, menu))
            await side.wait_for(2)
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, down))
        await side.wait_for(1)
        assert side.events[0].body["Failure-Reason"] == "http_status"
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, menu), timestamp_us=kazoo_now_us(-10))
        await side.wait_for(1)
        assert side.events[0].body["Failure-Reason"] == "stale"
    await asyncio.sleep(0.2)  # the reply is published before the counters move

    after = await _scrape(url)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("pivot_requests_total", outcome="success", reason="") == 2
    assert grew("pivot_requests_total", outcome="failed", reason="http_status") == 1
    assert grew("pivot_requests_total", outcome="failed", reason="stale") == 1
    assert grew("pivot_stale_requests_total") == 1
    assert grew("pivot_fetch_retries_total") == 2  # three attempts at the 503
    assert grew("pivot_translations_total", memo="miss") == 1
    assert grew("pivot_translations_total", memo="hit") == 1
    assert grew("pivot_request_duration_seconds_count") == 4
    assert grew("pivot_publish_duration_seconds_count") == 4
    assert grew("pivot_fetch_duration_seconds_count") == 5  # 2 menus + 3 attempts; none for the stale one
    assert _value(after, "pivot_in_flight_requests") == 0
    assert len(dev.seen_at("/down")) == 3
