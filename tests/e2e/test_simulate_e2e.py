"""``pivot-worker simulate`` end to end: real RabbitMQ (a vhost of its own), the example IVR server on
127.0.0.1, the real worker; and the isolation between the simulator and production workers."""

from __future__ import annotations

import asyncio
import importlib.util
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aio_pika
import orjson
import pytest
from aiohttp import web

from pivot_worker import simulate
from pivot_worker.settings import Settings
from pivot_worker.trace import NullDebugSink
from pivot_worker.worker import Worker
from tests.e2e.kazoo_side import KazooCallflow, pivot_req

pytestmark = [pytest.mark.rabbit, pytest.mark.timeout(30)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ivr_server.py"


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("ivr_server_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def ivr() -> AsyncIterator[str]:
    runner = web.AppRunner(_load_example().make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, broker: str) -> str:
    """The simulator reads PIVOT_* like a worker: a queue name of this test, the default policy."""
    for name in ("PIVOT_ALLOW_NETWORKS", "PIVOT_CONTINUATION_KEY", "PIVOT_METRICS_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIVOT_AMQP_URL", broker)
    monkeypatch.setenv("PIVOT_QUEUE", "pivot_worker_sim_test")
    return broker


async def _simulate(url: str, fmt: str = "twiml", digits: str = "1", **extra: Any) -> tuple[int, list[dict]]:
    out = io.StringIO()
    options = simulate.Options(
        voice_url=url, format=fmt, digits=simulate.parse_digits(digits), json=True, **extra
    )
    code = await simulate.simulate(options, out)
    return code, [orjson.loads(line) for line in out.getvalue().splitlines()]


def _steps(lines: list[dict]) -> list[tuple[str, str]]:
    return [(line["module"], line["text"]) for line in lines if "module" in line]


async def test_twiml_ivr_press_1(env: str, ivr: str) -> None:
    code, lines = await _simulate(f"{ivr}/twiml")
    assert code == 0
    steps = _steps(lines)
    assert [module for module, _ in steps] == [
        "pivot", "tts", "collect_dtmf", "tts", "collect_dtmf", "pivot", "tts", "hangup"
    ]  # fmt: skip
    assert steps[1][1] == "say: Welcome to the pivot-worker demo."
    assert steps[4][1] == "collect_dtmf: using 1 (pivot_g1)"
    assert steps[5][1] == f"pivot -> POST {ivr}/twiml/menu (twiml)"
    assert steps[6][1].startswith("say: Here is the news")
    assert lines[-1] == {"step": 8, "end": "hangup", "detail": ""}


async def test_kazoo_ivr_press_2_then_1(env: str, ivr: str) -> None:
    code, lines = await _simulate(f"{ivr}/kazoo", fmt="kazoo", digits="2,1")
    assert code == 0
    texts = [text for _, text in _steps(lines)]
    assert texts == [
        f"pivot -> GET {ivr}/kazoo (kazoo)",
        "say: Welcome to the pivot-worker demo.",
        "say: Press 1 for the news, or any other key to start again.",
        "collect_dtmf: using 2 (default)",
        f"pivot -> POST {ivr}/kazoo/menu (kazoo)",
        f"pivot -> POST {ivr}/kazoo (kazoo)",  # not 1: back to the start
        "say: Welcome to the pivot-worker demo.",
        "say: Press 1 for the news, or any other key to start again.",
        "collect_dtmf: using 1 (default)",
        f"pivot -> POST {ivr}/kazoo/menu (kazoo)",
        "say: Here is the news: your first pivot call works. Goodbye.",
        "hangup",
    ]
    assert lines[-1]["end"] == "hangup"


async def test_failure_reports_reason_and_fallback(env: str, ivr: str) -> None:
    code, lines = await _simulate(f"{ivr}/missing")
    assert code == 1
    assert lines[-1]["end"] == "failed"
    assert lines[-1]["reason"] == "http_status"
    assert "404" in lines[-1]["message"]
    assert "fall back" in lines[-1]["fallback"]


async def test_running_mode_without_workers_refuses(env: str, ivr: str) -> None:
    code, lines = await _simulate(f"{ivr}/twiml", worker="running")
    assert code == 2
    assert lines == []


def _production_settings(broker: str, **extra: Any) -> Settings:
    return Settings.from_env(
        {},
        amqp_url=broker,
        queue="pivot_worker_sim_test",
        ledger_url="off",
        continuation_key="production-key",
        shutdown_grace_s=1.0,
        **extra,
    )


@pytest.fixture
async def production(env: str) -> AsyncIterator[Worker]:
    """A production worker (default address policy: refuses 127.0.0.1) consuming PIVOT_QUEUE."""
    worker = Worker(_production_settings(env), sink=NullDebugSink())
    await worker.start()
    yield worker
    await worker.stop("test over")


async def test_production_worker_does_not_answer_simulator_requests(
    env: str, ivr: str, production: Worker
) -> None:
    # auto: PIVOT_QUEUE has a consumer, but it would refuse 127.0.0.1, so the embedded worker answers.
    code, lines = await _simulate(f"{ivr}/twiml")
    assert code == 0, lines
    assert lines[-1]["end"] == "hangup"
    await asyncio.sleep(0.3)
    assert sum(production.counts.values()) == 0, production.counts


async def test_running_mode_goes_through_the_running_worker(
    env: str, ivr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The running workers' policy opens 127.0.0.0/8 (seen by the simulator in PIVOT_ALLOW_NETWORKS).
    monkeypatch.setenv("PIVOT_ALLOW_NETWORKS", "127.0.0.0/8")
    settings = _production_settings(env, allow_networks=Settings.from_env().allow_networks)
    worker = Worker(settings, sink=NullDebugSink())
    await worker.start()
    try:
        code, lines = await _simulate(f"{ivr}/twiml")
        assert code == 0, lines
        assert lines[-1]["end"] == "hangup"
        assert worker.counts["success"] == 2  # the first document and the menu
    finally:
        await worker.stop("test over")


async def test_embedded_worker_sees_only_the_simulator_key(env: str) -> None:
    """Bound to ``pivot.req.simulate.<id>`` only: a production request is not its business."""
    dev_server = web.Application()

    async def answer(_: web.Request) -> web.Response:
        return web.json_response({"module": "hangup", "data": {}, "children": {}})

    dev_server.router.add_get("/x", answer)
    runner = web.AppRunner(dev_server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/x"
    key = "pivot.req.simulate.testkey"
    settings = simulate.embedded_settings(
        simulate.Options(voice_url=url, amqp_url=env), "pivot_simulate.testkey"
    )
    try:
        async with KazooCallflow(env) as kazoo, simulate.embedded_worker(settings, key, simulate.TraceSink()):
            prod_side, prod_call = kazoo.new_call()
            await kazoo.publish(prod_side, pivot_req(prod_call, url))  # pivot.req.sip%2Eexample%2Ecom
            await asyncio.sleep(1.0)
            assert prod_side.names() == []
            sim_side, sim_call = kazoo.new_call()
            await kazoo.subscribe(sim_side)
            await kazoo.callmgr.publish(
                aio_pika.Message(orjson.dumps(pivot_req(sim_call, url))), routing_key=key
            )
            await sim_side.wait_for(2)
            # two queues (targeted, callevt): their arrival order is not defined
            assert sorted(sim_side.names()) == ["call_event.CHANNEL_PIVOT", "pivot.processing"]
    finally:
        await runner.cleanup()


async def test_an_answered_dial_requests_its_action_after_the_transfer(
    env: str, dev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dial, the called party answers and hangs up, Kazoo's after_bridge transfer reaches the
    operator's after-dial callflow, and the worker requests the Dial action: the survey pattern."""
    monkeypatch.setenv("PIVOT_AFTER_DIAL_EXTENSION", "*7799")
    xml = "text/xml"
    start = dev.answer(
        "/call", '<Response><Dial action="/after">+14155550123</Dial></Response>', content_type=xml
    )
    dev.answer("/after", "<Response><Say>Rate the call, please.</Say></Response>", content_type=xml)
    code, lines = await _simulate(start, digits="", answer_dials=True)
    assert code == 0, lines
    modules = [module for module, _ in _steps(lines)]
    assert modules == [
        "pivot",
        "set_variables",
        "after_bridge",
        "answer",
        "resources",
        "pivot",
        "set_variables",
        "tts",
        "hangup",
    ]
    texts = [text for _, text in _steps(lines)]
    assert "answered" in texts[4] and "*7799" in texts[4]
    assert texts[7] == "say: Rate the call, please."
    (after,) = dev.seen_at("/after")
    assert after.method == "POST"
    form = {key: values[0] for key, values in parse_qs(after.body.decode()).items()}
    assert (form["DialCallStatus"], form["DialBridged"]) == ("completed", "true")


async def test_the_example_support_line_runs_its_survey_after_the_call(
    env: str, ivr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIVOT_AFTER_DIAL_EXTENSION", "*7799")
    code, lines = await _simulate(f"{ivr}/twiml/support", digits="1", answer_dials=True)
    assert code == 0, lines
    texts = [text for _, text in _steps(lines)]
    assert any(text.startswith("say: Thanks for calling support.") for text in texts)
    assert texts[-2].startswith("say: Here is the news")  # pressed 1 in the survey's Gather
    assert lines[-1]["end"] == "hangup"


async def test_the_example_support_line_without_an_answer_reports_the_status(env: str, ivr: str) -> None:
    code, lines = await _simulate(f"{ivr}/twiml/support", digits="")
    assert code == 0, lines
    texts = [text for _, text in _steps(lines)]
    assert "say: Support could not take your call (no-answer). Goodbye." in texts
