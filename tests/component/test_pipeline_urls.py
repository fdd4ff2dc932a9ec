"""Pipeline + real Fetcher + a developer server on 127.0.0.1: what a flow names is never contacted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from pivot_worker.errors import Reason
from pivot_worker.fetch import Fetcher
from pivot_worker.pipeline import Pipeline
from pivot_worker.settings import Settings, parse_networks
from pivot_worker.trace import Outcome
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import base_call, pivot_req


@pytest.fixture
async def pipeline() -> AsyncIterator[Pipeline]:
    settings = Settings(allow_networks=parse_networks("127.0.0.0/8"), continuation_key="k")
    fetcher = Fetcher(settings)
    await fetcher.start()
    yield Pipeline(settings, fetcher)
    await fetcher.close()


@pytest.mark.parametrize("blocked", ["169.254.169.254", "10.1.2.3"])
async def test_nested_pivot_to_a_blocked_address_is_refused_without_contacting_it(
    pipeline: Pipeline, dev: DevServer, connects: list[Any], blocked: str
) -> None:
    flow = {
        "module": "tts",
        "data": {"text": "one moment"},
        "children": {"_": {"module": "pivot", "data": {"voice_url": f"http://{blocked}/next"}}},
    }
    url = dev.answer("/flow", orjson.dumps(flow))
    call = base_call("c1@10.0.0.5", "pid://<0.1.0>/callflow_route_1")
    decision = await pipeline.handle(orjson.dumps(pivot_req(call, url)))
    assert decision.outcome is Outcome.FAILED
    assert decision.reason is Reason.BLOCKED_ADDRESS
    assert "/children/_/data/voice_url" in decision.message
    assert [s.path for s in dev.seen] == ["/flow"]
    assert connects, "the spy saw no connection at all"
    assert {address[0] for address in connects} == {"127.0.0.1"}
