"""The real pipeline serving the operator's after-dial callflow: the request a Kazoo transfer makes
once an answered Dial ended, continued from the call's variables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from pivot_worker.settings import parse_networks
from pivot_worker.twiml.after_dial import AFTER_DIAL_URL, CALL_VAR, NOTHING_FOLLOWS
from pivot_worker.twiml.continuation import AFTER_DIAL, payload, seal_payload
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import base_call, pivot_req

from .support import CHANNEL_PIVOT, FAILED, PROCESSING, QUEUE, FakeMessage, Rig, make_rig

CALL_ID = "after-dial-1@10.0.0.5"
KEY = "after-dial-key"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = make_rig(allow_networks=parse_networks("127.0.0.0/8"), continuation_key=KEY)
    await made.worker.fetcher.start()
    yield made
    await made.worker.fetcher.close()


def after_dial_request(call_variables: dict[str, Any], call_id: str = CALL_ID) -> bytes:
    """What Kazoo sends from the operator's callflow: a pivot node to the after-dial URL (GET,
    TwiML format by default), with the call's variables as the Dial's flow left them."""
    call = base_call(call_id, QUEUE)
    call["Custom-Application-Vars"] = call_variables
    return orjson.dumps(pivot_req(call, AFTER_DIAL_URL))


def token(url: str, call_id: str = CALL_ID) -> str:
    data = payload(
        call_id,
        3,
        AFTER_DIAL,
        {"survey": "yes"},
        url=url,
        method="post",
        dial_status="completed",
        request_format="twiml",
        body_format="form",
    )
    return seal_payload(data, KEY.encode())


def published_flow(rig: Rig) -> dict[str, Any]:
    assert rig.broker.events() == [PROCESSING, CHANNEL_PIVOT]
    flow: dict[str, Any] = orjson.loads(rig.broker.published[1].body["Application-Data"])
    return flow


async def test_the_dial_action_is_requested_with_its_method_and_completed_status(
    dev: DevServer, rig: Rig
) -> None:
    url = dev.answer("/after", "<Response><Say>Thanks for calling</Say></Response>", content_type="text/xml")
    message = FakeMessage(after_dial_request({CALL_VAR: token(url)}))
    await asyncio.wait_for(rig.deliver(message), 5)

    (seen,) = dev.seen_at("/after")
    assert seen.method == "POST"  # the token's method, not the operator node's GET
    form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
    assert (form["DialCallStatus"], form["DialBridged"], form["CallStatus"]) == (
        "completed",
        "true",
        "in-progress",
    )
    assert form["survey"] == "yes"  # <Set> variables travel on
    assert form["CallSid"] == CALL_ID
    flow = published_flow(rig)
    # the continuation is used up: the flow first disarms it, then says what the action said
    assert (flow["module"], flow["data"]["custom_application_vars"]) == (
        "set_variables",
        {CALL_VAR: NOTHING_FOLLOWS},
    )
    assert flow["children"]["_"]["module"] == "tts"
    assert message.acked == 1


async def test_nothing_to_continue_hangs_up_without_any_request(dev: DevServer, rig: Rig) -> None:
    message = FakeMessage(after_dial_request({CALL_VAR: NOTHING_FOLLOWS}))
    await asyncio.wait_for(rig.deliver(message), 5)
    assert published_flow(rig)["module"] == "hangup"
    assert dev.seen == []


async def test_a_token_of_another_call_is_refused(dev: DevServer, rig: Rig) -> None:
    url = dev.answer("/after", "<Response/>", content_type="text/xml")
    message = FakeMessage(after_dial_request({CALL_VAR: token(url, call_id="someone-else")}))
    await asyncio.wait_for(rig.deliver(message), 5)
    assert rig.broker.events() == [FAILED]
    assert dev.seen_at("/after") == []
    assert rig.worker.counts["failed"] == 1
