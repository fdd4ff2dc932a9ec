"""CDR-URI: the flow is wrapped in set_variables, and a CHANNEL_DESTROY becomes the posted record."""

from __future__ import annotations

import copy
import json
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
from aiohttp import web

from pivot_worker import cdr
from pivot_worker.callflow import validate_flow
from pivot_worker.errors import Reason
from pivot_worker.settings import Settings, parse_networks
from pivot_worker.signing import PIVOT_HEADER, SigningKeys, verify_pivot_signature
from pivot_worker.trace import Outcome
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import ACCOUNT_ID, base_call, pivot_req
from tests.e2e.kazoo_side import channel_destroy as kazoo_channel_destroy
from tests.unit.test_pipeline import QUEUE, TTS, ScriptedFetcher, handle, json_answer, pipeline, xml_answer

CDR_URL = "http://127.0.0.1:8080/cdr?tenant=7"
CALL_ID = "c1@10.0.0.5"


def request(call: dict[str, Any] | None = None, **fields: Any) -> bytes:
    call = call if call is not None else base_call(CALL_ID, QUEUE)
    return orjson.dumps(pivot_req(call, "http://127.0.0.1:8080/start", **fields))


# -- the wrapped flow ----------------------------------------------------------------------------


async def test_kazoo_json_flow_is_wrapped_with_the_cdr_variables() -> None:
    decision = await handle(pipeline(ScriptedFetcher(json_answer(TTS))), request(**{"CDR-URI": CDR_URL}))
    assert decision.outcome is Outcome.SUCCESS, decision.message
    flow = decision.flow
    assert flow is not None
    assert flow["module"] == "set_variables"
    assert flow["data"] == {
        "custom_application_vars": {
            "pivot_cdr_url": CDR_URL,
            "pivot_cdr_account_id": ACCOUNT_ID,
            "pivot_cdr_request_format": "kazoo",
            "pivot_cdr_body_format": "form",
        }
    }
    assert flow["children"] == {"_": validate_flow(copy.deepcopy(TTS))}
    # still exactly what validation gives: the wrapper node carries its own defaults
    assert validate_flow(copy.deepcopy(flow)) == flow


async def test_twiml_flow_is_wrapped_with_its_format_and_body_format() -> None:
    answer = xml_answer(b"<Response><Say>Hello</Say><Hangup/></Response>")
    body = request(**{"CDR-URI": CDR_URL, "Request-Format": "twiml", "Request-Body-Format": "json"})
    decision = await handle(pipeline(ScriptedFetcher(answer)), body)
    assert decision.outcome is Outcome.SUCCESS, decision.message
    flow = decision.flow
    assert flow is not None and flow["module"] == "set_variables"
    cavs = flow["data"]["custom_application_vars"]
    assert (cavs["pivot_cdr_request_format"], cavs["pivot_cdr_body_format"]) == ("twiml", "json")
    child = flow["children"]["_"]
    assert child["module"] == "tts" and child["data"]["text"] == "Hello"
    assert validate_flow(copy.deepcopy(flow)) == flow


async def test_without_cdr_uri_the_flow_is_not_wrapped() -> None:
    decision = await handle(pipeline(ScriptedFetcher(json_answer(TTS))), request())
    assert decision.flow is not None and decision.flow["module"] == "tts"


async def test_nested_request_of_a_call_that_carries_the_variables_is_not_wrapped_again() -> None:
    first = await handle(pipeline(ScriptedFetcher(json_answer(TTS))), request(**{"CDR-URI": CDR_URL}))
    assert first.flow is not None
    call = base_call(CALL_ID, QUEUE)
    # what Kazoo's set_variables left on the channel, as the next pivot_req's Call shows it
    call["Custom-Application-Vars"] = {"mine": "1", **first.flow["data"]["custom_application_vars"]}
    nested = await handle(pipeline(ScriptedFetcher(json_answer(TTS))), request(call, **{"CDR-URI": CDR_URL}))
    assert nested.outcome is Outcome.SUCCESS
    assert nested.flow is not None and nested.flow["module"] == "tts"


async def test_nested_request_with_another_cdr_url_is_wrapped_with_the_new_one() -> None:
    call = base_call(CALL_ID, QUEUE)
    call["Custom-Application-Vars"] = {"pivot_cdr_url": "http://127.0.0.1:8080/old"}
    decision = await handle(
        pipeline(ScriptedFetcher(json_answer(TTS))), request(call, **{"CDR-URI": CDR_URL})
    )
    assert decision.flow is not None and decision.flow["module"] == "set_variables"
    assert decision.flow["data"]["custom_application_vars"]["pivot_cdr_url"] == CDR_URL


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data", Reason.BLOCKED_ADDRESS),
        ("http://10.1.2.3/cdr", Reason.BLOCKED_ADDRESS),
        ("ftp://cdr.example.com/cdr", Reason.INVALID_URL),
        ("http:///cdr", Reason.INVALID_URL),
    ],
)
async def test_a_cdr_url_the_worker_would_not_fetch_fails_the_request(url: str, reason: Reason) -> None:
    decision = await handle(pipeline(ScriptedFetcher(json_answer(TTS))), request(**{"CDR-URI": url}))
    assert decision.outcome is Outcome.FAILED
    assert decision.reason is reason
    assert decision.flow is None
    assert "CDR-URI" in decision.message
    assert decision.trace is not None
    assert [(f.code, f.pointer) for f in decision.trace.errors] == [(reason.value, "/CDR-URI")]


# -- the record posted ---------------------------------------------------------------------------

CAVS = {
    "pivot_cdr_url": CDR_URL,
    "pivot_cdr_account_id": ACCOUNT_ID,
    "pivot_cdr_request_format": "kazoo",
    "pivot_cdr_body_format": "form",
    "tenant_ref": "A&B 7",
}


def channel_destroy(
    call_id: str = CALL_ID, cavs: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return kazoo_channel_destroy(call_id, dict(CAVS if cavs is None else cavs), **extra)


def test_record_keeps_call_and_account_id_and_drops_channel_vars_and_bus_headers() -> None:
    post = cdr.cdr_post(channel_destroy())
    assert post is not None
    assert (post.url, post.call_id, post.account_id, post.body_format) == (
        CDR_URL,
        CALL_ID,
        ACCOUNT_ID,
        "form",
    )
    body, content_type = post.encoded()
    assert content_type == "application/x-www-form-urlencoded"
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    assert fields["Call-ID"] == CALL_ID
    assert fields["Account-ID"] == ACCOUNT_ID  # from the stored variable: the event has none at the top
    assert fields["Hangup-Cause"] == "NORMAL_CLEARING"
    assert fields["Billing-Seconds"] == "42"
    assert fields["Custom-SIP-Headers[X-Tenant]"] == "acme & co"
    assert fields["Custom-Application-Vars[tenant_ref]"] == "A&B 7"
    assert not [k for k in fields if k.startswith("Custom-Channel-Vars")]
    assert not [k for k in fields if "pivot_cdr" in k]
    for header in ("App-Name", "App-Version", "Event-Category", "Event-Name", "Msg-ID", "Node"):
        assert header not in fields
    assert "CallSid" not in fields  # Kazoo format: Kazoo's names only


def test_account_id_of_the_event_wins_and_json_body_format_posts_json() -> None:
    cavs = {**CAVS, "pivot_cdr_body_format": "json", "pivot_cdr_account_id": "stored"}
    post = cdr.cdr_post(channel_destroy(cavs=cavs, **{"Account-ID": ACCOUNT_ID}))
    assert post is not None
    body, content_type = post.encoded()
    assert content_type == "application/json"
    doc = json.loads(body)
    assert (doc["Call-ID"], doc["Account-ID"]) == (CALL_ID, ACCOUNT_ID)
    assert doc["Custom-SIP-Headers"] == {"X-Tenant": "acme & co"}
    assert doc["Custom-Application-Vars"] == {"tenant_ref": "A&B 7"}
    assert "Custom-Channel-Vars" not in doc and "Msg-ID" not in doc


@pytest.mark.parametrize(("cause", "status"), [("NORMAL_CLEARING", "completed"), ("USER_BUSY", "busy")])
def test_twiml_record_adds_twilio_status_callback_names(cause: str, status: str) -> None:
    cavs = {**CAVS, "pivot_cdr_request_format": "twiml"}
    post = cdr.cdr_post(channel_destroy(cavs=cavs, **{"Hangup-Cause": cause}))
    assert post is not None
    fields = dict(parse_qsl(post.encoded()[0].decode()))
    assert (fields["CallSid"], fields["AccountSid"]) == (CALL_ID, ACCOUNT_ID)
    assert (fields["CallStatus"], fields["CallDuration"], fields["ApiVersion"]) == (
        status,
        "42",
        "2010-04-01",
    )
    assert fields["Call-ID"] == CALL_ID


@pytest.mark.parametrize(
    "event",
    [
        channel_destroy(cavs={}),
        channel_destroy(cavs={"pivot_cdr_url": ""}),
        {**channel_destroy(), "Custom-Application-Vars": None},
        [channel_destroy()],
        None,
    ],
)
def test_events_of_calls_without_a_cdr_url_post_nothing(event: object) -> None:
    assert cdr.cdr_post(event) is None


# -- posting -------------------------------------------------------------------------------------


class FakeMessage:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.acks = 0

    async def ack(self) -> None:
        self.acks += 1


def poster(**kwargs: Any) -> cdr.CdrPoster:
    settings = Settings(allow_networks=parse_networks("127.0.0.0/8"))
    p = cdr.CdrPoster(settings, attempts=3, backoff_s=0.01, timeout_s=2.0, **kwargs)
    p.open_http()
    return p


def scripted(statuses: list[int]) -> Any:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=statuses.pop(0) if len(statuses) > 1 else statuses[0])

    return handler


async def test_post_is_retried_on_503_and_429_then_delivered_and_acked(dev: DevServer) -> None:
    url = dev.route("/cdr", scripted([503, 429, 200]))
    p = poster()
    try:
        message = FakeMessage(orjson.dumps(channel_destroy(cavs={**CAVS, "pivot_cdr_url": url})))
        await p.handle(message)  # type: ignore[arg-type]
    finally:
        await p.stop()
    seen = dev.seen_at("/cdr")
    assert len(seen) == 3 and message.acks == 1
    assert seen[-1].method == "POST"
    assert seen[-1].headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = dict(parse_qsl(seen[-1].body.decode()))
    assert (fields["Call-ID"], fields["Account-ID"]) == (CALL_ID, ACCOUNT_ID)


@pytest.mark.parametrize(("statuses", "attempts"), [([500], 3), ([404], 1), ([302], 1)])
async def test_gives_up_after_the_attempts_or_at_once_on_a_final_status(
    dev: DevServer, statuses: list[int], attempts: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = dev.route("/cdr", scripted(statuses))
    p = poster()
    try:
        message = FakeMessage(orjson.dumps(channel_destroy(cavs={**CAVS, "pivot_cdr_url": url})))
        await p.handle(message)  # type: ignore[arg-type]
    finally:
        await p.stop()
    assert len(dev.seen_at("/cdr")) == attempts
    assert message.acks == 1  # acked after giving up: never requeued in a loop
    assert f"cdr not delivered after {attempts} attempt" in caplog.text
    assert f"HTTP {statuses[0]}" in caplog.text


async def test_connection_refused_is_retried_then_given_up(caplog: pytest.LogCaptureFixture) -> None:
    p = poster()
    try:
        post = cdr.cdr_post(channel_destroy(cavs={**CAVS, "pivot_cdr_url": "http://127.0.0.1:9/cdr"}))
        assert post is not None
        assert await p.deliver(post) is False
    finally:
        await p.stop()
    assert "cdr not delivered after 3 attempts" in caplog.text


async def test_blocked_address_is_never_contacted(caplog: pytest.LogCaptureFixture) -> None:
    p = cdr.CdrPoster(Settings(), attempts=3, backoff_s=0.01)  # no PIVOT_ALLOW_NETWORKS
    p.open_http()
    try:
        post = cdr.cdr_post(channel_destroy(cavs={**CAVS, "pivot_cdr_url": "http://127.0.0.1:9/cdr"}))
        assert post is not None
        assert await p.deliver(post) is False
    finally:
        await p.stop()
    assert "cdr not delivered after 1 attempt" in caplog.text and "blocked network" in caplog.text


async def test_post_is_signed_with_the_accounts_key(dev: DevServer) -> None:
    url = dev.route("/cdr", scripted([200]))
    p = poster(signing=SigningKeys(keys={ACCOUNT_ID: ["k-new", "k-old"]}))
    try:
        post = cdr.cdr_post(channel_destroy(cavs={**CAVS, "pivot_cdr_url": url}))
        assert post is not None
        assert await p.deliver(post) is True
    finally:
        await p.stop()
    (seen,) = dev.seen_at("/cdr")
    received = url + (f"?{seen.query_string}" if seen.query_string else "")
    assert verify_pivot_signature(
        seen.headers[PIVOT_HEADER], "POST", received, seen.body, ["k-new"], now=time.time()
    )


async def test_events_that_are_not_ours_are_acked_without_posting(dev: DevServer) -> None:
    dev.route("/cdr", scripted([200]))
    p = poster()
    try:
        message = FakeMessage(orjson.dumps(channel_destroy(cavs={"other": "x"})))
        await p._deliver(message)  # type: ignore[arg-type]
        junk = FakeMessage(b"not json pivot_cdr_url")
        await p._deliver(junk)  # type: ignore[arg-type]
        await p.stop()
    finally:
        await p.stop()
    assert (message.acks, junk.acks) == (1, 1)
    assert dev.seen_at("/cdr") == []


@pytest.mark.parametrize(("value", "on"), [("on", True), ("off", False), ("0", False), ("true", True)])
def test_pivot_cdr_setting(value: str, on: bool) -> None:
    assert Settings().cdr is True
    assert Settings.from_env({"PIVOT_CDR": value}).cdr is on
