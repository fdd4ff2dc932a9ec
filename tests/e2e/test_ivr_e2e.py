"""A multi-step TwiML IVR through RabbitMQ, each step served by a different worker process.

menu (Gather) -> action with the digit -> Record -> action with the recording URL -> hangup.
Between steps the worker that served the previous step is stopped and another one started, so
nothing can survive in a worker's memory: whatever the next step needs must travel with the call.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qs

import orjson
import pytest

from tests.e2e.conftest import worker_env
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import CallSide, KazooCallflow, next_pivot_req, pivot_req, run_flow
from tests.e2e.workers import WorkerProcess
from tests.kazoo_conformance import assert_flow_conforms

pytestmark = pytest.mark.rabbit

MENU = (
    '<Response><Gather action="choice?step=2" numDigits="1" timeout="4">'
    "<Say>Press 1 to leave a message.</Say></Gather>"
    "<Say>We did not get that.</Say><Redirect>menu</Redirect></Response>"
)
CHOICE = (
    '<Response><Say voice="woman" language="en-US">Leave a message after the beep.</Say>'
    '<Record action="/ivr/recorded" maxLength="30"/></Response>'
)
RECORDED = "<Response><Say>Thank you. Goodbye.</Say><Hangup/></Response>"


async def flow_of(side: CallSide, step: int) -> dict[str, object]:
    events = await side.wait_for(2 * step, timeout=8)
    pivots = [e for e in events if e.body["Event-Name"] == "CHANNEL_PIVOT"]
    assert len(pivots) == step, side.names()
    flow = orjson.loads(pivots[-1].body["Application-Data"])
    assert_flow_conforms(flow)
    return flow  # type: ignore[no-any-return]


def form(seen_body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(seen_body.decode()).items()}


async def test_ivr_steps_served_by_different_workers(
    broker: str, kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    dev.answer("/ivr/menu", MENU, content_type="text/xml")
    dev.answer("/ivr/choice", CHOICE, content_type="text/xml")
    dev.answer("/ivr/recorded", RECORDED, content_type="application/xml; charset=utf-8")
    queue = f"pivot_ivr_{uuid.uuid4().hex[:8]}"
    env = worker_env(broker, queue, PIVOT_RECORDING_URL=dev.url("/recordings"))

    def worker(name: str) -> WorkerProcess:
        return WorkerProcess(env, tmp_path / f"{name}.log", name).start()

    side, call = kazoo.new_call()
    call["Key-Value-Store"]["dtmf_collections"] = {"default": "9"}  # stale digits from before the pivot

    # Step 1 on worker A: the menu.
    a = worker("a")
    await kazoo.publish(
        side, pivot_req(call, dev.url("/ivr/menu"), **{"Request-Format": "twiml", "HTTP-Method": "post"})
    )
    run = run_flow(await flow_of(side, 1), call, gather_digits=["1"])
    assert "tts" in run.modules and "collect_dtmf" in run.modules
    assert run.pivot is not None
    a.stop()

    # Step 2 on worker B: the Gather's action, with the digit the caller pressed.
    b = worker("b")
    await kazoo.publish(side, next_pivot_req(run.pivot, call))
    flow = await flow_of(side, 2)
    (choice,) = dev.seen_at("/ivr/choice")
    assert choice.method == "POST"
    assert parse_qs(choice.query_string) == {"step": ["2"]}  # the developer's own query survives
    sent = form(choice.body)
    assert sent["Digits"] == "1"  # flat, from this Gather's collection; not the stale "9"
    assert sent["CallSid"] == side.call_id
    assert sent["Caller"] == "1001"
    assert "_pivot_k" not in choice.query_string and "_pivot_k" not in sent
    run = run_flow(flow, call, gather_digits=[])
    assert "record_caller" in run.modules
    assert run.pivot is not None
    b.stop()

    # Step 3 on worker A again (a fresh process): the Record's action, with the recording's URL.
    a2 = worker("a2")
    await kazoo.publish(side, next_pivot_req(run.pivot, call))
    flow = await flow_of(side, 3)
    (recorded,) = dev.seen_at("/ivr/recorded")
    sent = form(recorded.body)
    assert sent["RecordingUrl"].startswith(dev.url("/recordings"))
    assert "Digits" not in sent
    run = run_flow(flow, call, gather_digits=[])
    assert run.modules[-2:] == ["tts", "hangup"]
    assert run.pivot is None
    a2.stop()

    served = {w.name: w.log().count(side.call_id) for w in (a, b, a2)}
    assert served == {"a": 1, "b": 1, "a2": 1}, served


async def test_gather_without_input_continues_with_the_next_verbs_without_a_fetch(
    broker: str, kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    dev.answer("/ivr/menu", MENU, content_type="text/xml")
    queue = f"pivot_ivr_{uuid.uuid4().hex[:8]}"
    env = worker_env(broker, queue)
    workers = [WorkerProcess(env, tmp_path / f"w{i}.log", f"w{i}").start() for i in (1, 2)]
    try:
        side, call = kazoo.new_call()
        await kazoo.publish(side, pivot_req(call, dev.url("/ivr/menu"), **{"Request-Format": "twiml"}))
        run = run_flow(await flow_of(side, 1), call, gather_digits=[])  # the caller presses nothing
        assert run.pivot is not None
        await kazoo.publish(side, next_pivot_req(run.pivot, call))
        run = run_flow(await flow_of(side, 2), call, gather_digits=[])
        assert dev.seen_at("/ivr/choice") == []  # Twilio: no input, no action request
        assert run.modules[0] == "tts"  # "We did not get that."
        assert run.pivot is not None  # then <Redirect>menu</Redirect>
        await kazoo.publish(side, next_pivot_req(run.pivot, call))
        await flow_of(side, 3)
        assert len(dev.seen_at("/ivr/menu")) == 2
    finally:
        for w in workers:
            w.stop()
