"""Pipeline.handle without a bus or network: a scripted fetcher, an injected wall clock."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from pivot_worker.errors import FetchError, Reason
from pivot_worker.fetch import FetchResult, HttpRequestSpec
from pivot_worker.netguard import AddressPolicy
from pivot_worker.pipeline import Decision, Pipeline
from pivot_worker.settings import Settings, parse_networks
from pivot_worker.trace import Outcome, PivotTrace
from tests.e2e.kazoo_side import base_call, pivot_req

NOW = 1_795_000_000.0
QUEUE = "pid://<0.2345.0>/callflow_route_1"
TTS = {"module": "tts", "data": {"text": "Hello"}}


@dataclass
class ScriptedFetcher:
    """Answers every fetch with ``answer`` (or raises it) and records what was asked."""

    answer: FetchResult | Exception
    policy: AddressPolicy = field(default_factory=lambda: AddressPolicy(parse_networks("127.0.0.0/8")))
    urls: list[str] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)

    async def fetch(self, spec: HttpRequestSpec, *, deadline: float, trace: PivotTrace) -> FetchResult:
        self.urls.append(spec.url)
        self.budgets.append(deadline - asyncio.get_running_loop().time())
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def json_answer(doc: object, content_type: str = "application/json") -> FetchResult:
    return FetchResult(200, "http://127.0.0.1:8080/start", content_type, orjson.dumps(doc))


def xml_answer(body: bytes, content_type: str | None = "text/xml") -> FetchResult:
    return FetchResult(200, "http://127.0.0.1:8080/start", content_type, body)


def pipeline(fetcher: ScriptedFetcher, **settings: Any) -> Pipeline:
    return Pipeline(
        Settings(continuation_key="k", **settings),
        fetcher,  # type: ignore[arg-type]  # duck-typed: policy + fetch
        wall_clock=lambda: NOW,
    )


def request(call_id: str = "c1@10.0.0.5", queue: str = QUEUE, **fields: Any) -> bytes:
    return orjson.dumps(pivot_req(base_call(call_id, queue), "http://127.0.0.1:8080/start", **fields))


def kazoo_stamp(unix_s: float) -> datetime.datetime:
    """What the worker's AMQP decoder makes of Kazoo's Gregorian-microsecond stamp for ``unix_s``."""
    from pivot_worker.amqp_compat import seconds_from_amqp

    seconds = seconds_from_amqp(int(unix_s * 1_000_000) + 62_167_219_200 * 1_000_000)
    assert seconds is not None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


async def handle(p: Pipeline, body: bytes, stamp: datetime.datetime | None = None) -> Decision:
    return await p.handle(body, stamp)


# -- Call-ID and reply queue that cannot be routed ------------------------------------------------


async def test_call_id_too_long_for_the_channel_pivot_key_fails_before_fetching() -> None:
    fetcher = ScriptedFetcher(json_answer(TTS))
    call_id = "a." * 55 + "b@10.0.0.5"  # 120 characters, 58 dots and an @: 238 bytes once encoded
    assert len(call_id) == 120
    decision = await handle(pipeline(fetcher), request(call_id))
    assert decision.outcome is Outcome.FAILED
    assert decision.reason is Reason.UNROUTABLE_CALL_ID
    assert (decision.call_id, decision.controller_queue) == (call_id, QUEUE)  # answered to the call
    assert not decision.dead_letter
    assert decision.flow is None
    assert fetcher.urls == []
    assert "120 characters" in decision.message
    assert "255" in decision.message
    assert decision.trace is not None and decision.trace.reason is Reason.UNROUTABLE_CALL_ID


@pytest.mark.parametrize(("extra", "fits"), [(0, True), (1, False)])
async def test_call_id_limit_is_exactly_the_routing_key_limit(extra: int, fits: bool) -> None:
    # "call.CHANNEL_PIVOT." is 19 bytes; each "." encodes to 3; the rest of the id is kept as is.
    call_id = "." * 78 + "a" * (255 - 19 - 78 * 3 + extra)
    fetcher = ScriptedFetcher(json_answer(TTS))
    decision = await handle(pipeline(fetcher), request(call_id))
    if fits:
        assert decision.outcome is Outcome.SUCCESS, decision.message
    else:
        assert decision.reason is Reason.UNROUTABLE_CALL_ID
        assert fetcher.urls == []


@pytest.mark.parametrize(
    "queue",
    [
        "pid://<0.2345.0>/" + "q" * 256,  # the routing key after the pid:// split is over 255 bytes
        "q" * 200 + "é" * 28,  # 228 characters, 256 bytes
        "pid:///callflow_route_1",  # no Deliver-To-PID value
        "pid://<0.2345.0>/",  # no queue
    ],
)
async def test_unroutable_reply_queue_is_dead_lettered_without_an_answer(queue: str) -> None:
    fetcher = ScriptedFetcher(json_answer(TTS))
    decision = await handle(pipeline(fetcher), request(queue=queue))
    assert decision.outcome is Outcome.DEAD_LETTERED
    assert decision.dead_letter
    assert (decision.call_id, decision.controller_queue) == (None, None)  # nothing is published
    assert decision.reason is Reason.INVALID_REQUEST
    assert "Controller-Queue" in decision.message
    assert fetcher.urls == []


async def test_reply_queue_of_exactly_255_bytes_is_answered() -> None:
    fetcher = ScriptedFetcher(json_answer(TTS))
    decision = await handle(pipeline(fetcher), request(queue="pid://<0.1.0>/" + "q" * 255))
    assert decision.outcome is Outcome.SUCCESS


async def test_invalid_request_with_unroutable_reply_queue_is_only_dead_lettered() -> None:
    fetcher = ScriptedFetcher(json_answer(TTS))
    decision = await handle(pipeline(fetcher), request(queue="q" * 300, **{"HTTP-Method": "put"}))
    assert decision.outcome is Outcome.DEAD_LETTERED and decision.dead_letter
    assert (decision.call_id, decision.controller_queue) == (None, None)
    assert "HTTP-Method" in decision.message and "300 bytes" in decision.message


# -- stale point from Kazoo's timestamp ------------------------------------------------------------


async def test_request_stamped_older_than_the_stale_point_is_never_fetched() -> None:
    fetcher = ScriptedFetcher(json_answer(TTS))
    decision = await handle(pipeline(fetcher), request(), kazoo_stamp(NOW - 10))
    assert decision.reason is Reason.STALE
    assert decision.flow is None
    assert fetcher.urls == []


async def test_deadline_is_capped_by_the_stale_point_of_kazoos_stamp() -> None:
    fetcher = ScriptedFetcher(json_answer(TTS))
    decision = await handle(pipeline(fetcher), request(), kazoo_stamp(NOW - 8))
    assert decision.outcome is Outcome.SUCCESS
    (budget,) = fetcher.budgets
    assert budget <= 1.0  # 9 s stale point, 8 s already gone (the request's own timeout is 5 s)


async def test_timeout_at_the_stale_point_is_stale_not_timeout() -> None:
    fetcher = ScriptedFetcher(FetchError("no complete answer", reason=Reason.TIMEOUT))
    decision = await handle(pipeline(fetcher), request(), kazoo_stamp(NOW - 8))
    assert decision.reason is Reason.STALE
    assert "stale point" in decision.message


async def test_timeout_of_the_requests_own_deadline_stays_a_timeout() -> None:
    fetcher = ScriptedFetcher(FetchError("no complete answer", reason=Reason.TIMEOUT))
    decision = await handle(pipeline(fetcher), request(), kazoo_stamp(NOW - 1))
    assert decision.reason is Reason.TIMEOUT


async def test_answer_ready_after_the_stale_point_is_not_published() -> None:
    clock = iter([NOW, NOW, NOW + 2.0, NOW + 2.0, NOW + 2.0])
    fetcher = ScriptedFetcher(json_answer(TTS))
    p = Pipeline(
        Settings(continuation_key="k"),
        fetcher,  # type: ignore[arg-type]
        wall_clock=lambda: next(clock, NOW + 2.0),
    )
    decision = await p.handle(request(), kazoo_stamp(NOW - 8))
    assert decision.outcome is Outcome.FAILED  # the worker publishes a flow only on success
    assert decision.reason is Reason.STALE
    assert "after the stale point" in decision.message
    assert fetcher.urls != []


# -- nested pivot nodes in Kazoo JSON --------------------------------------------------------------


def nested_pivot(url: str) -> dict[str, Any]:
    return {
        "module": "tts",
        "data": {"text": "one moment"},
        "children": {"_": {"module": "pivot", "data": {"voice_url": url}}},
    }


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", Reason.BLOCKED_ADDRESS),
        ("http://10.1.2.3/next", Reason.BLOCKED_ADDRESS),
        ("https://[::ffff:10.1.2.3]/next", Reason.BLOCKED_ADDRESS),
        ("http://", Reason.INVALID_URL),
    ],
)
async def test_nested_pivot_to_a_refused_url_fails_at_once(url: str, reason: Reason) -> None:
    fetcher = ScriptedFetcher(json_answer(nested_pivot(url)))
    decision = await handle(pipeline(fetcher), request())
    assert decision.outcome is Outcome.FAILED
    assert decision.reason is reason, decision.message
    assert decision.flow is None
    assert "/children/_/data/voice_url" in decision.message
    assert fetcher.urls == ["http://127.0.0.1:8080/start"]  # the developer's server only
    assert decision.trace is not None
    assert [f.pointer for f in decision.trace.errors] == ["/children/_/data/voice_url"]


async def test_every_refused_nested_pivot_is_located() -> None:
    flow = {
        "module": "menu",
        "data": {},
        "children": {
            "1": {"module": "pivot", "data": {"voice_url": "http://10.0.0.1/a"}},
            "2": nested_pivot("http://192.168.1.1/b"),
            "3": {"module": "pivot", "data": {"voice_url": "https://ivr.example.com/c"}},
        },
    }
    fetcher = ScriptedFetcher(json_answer(flow))
    decision = await handle(pipeline(fetcher), request())
    assert decision.reason is Reason.BLOCKED_ADDRESS
    assert decision.trace is not None
    assert [f.pointer for f in decision.trace.errors] == [
        "/children/1/data/voice_url",
        "/children/2/children/_/data/voice_url",
    ]


async def test_nested_pivot_to_an_allowed_address_is_accepted() -> None:
    fetcher = ScriptedFetcher(json_answer(nested_pivot("http://127.0.0.1:8080/next")))
    decision = await handle(pipeline(fetcher), request())
    assert decision.outcome is Outcome.SUCCESS, decision.message
    assert decision.flow is not None
    assert decision.flow["children"]["_"]["data"]["voice_url"] == "http://127.0.0.1:8080/next"


# -- encodings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "offset"),
    [
        (b"<Response><Say>caf\xe9</Say></Response>", "text/xml", 18),  # UTF-8 by default
        (b"<Response><Say>caf\xe9</Say></Response>", "text/xml; charset=utf-8", 18),
        (b"<Response><Say>caf\xe9</Say></Response>", None, 18),  # sniffed
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Say>\xc3</Say></Response>', "text/xml", 54),
        (b'<?xml version="1.0" encoding="shift_jis"?><Response><Say>\x82</Say></Response>', "text/xml", 57),
    ],
)
async def test_twiml_not_valid_in_its_charset_is_invalid_encoding(
    body: bytes, content_type: str | None, offset: int
) -> None:
    fetcher = ScriptedFetcher(xml_answer(body, content_type))
    decision = await handle(pipeline(fetcher), request(**{"Request-Format": "twiml"}))
    assert decision.reason is Reason.INVALID_ENCODING, decision.message
    assert f"at offset {offset}" in decision.message


async def test_twiml_in_a_content_type_charset_is_read_in_it() -> None:
    body = "<Response><Say>café</Say></Response>".encode("latin-1")
    fetcher = ScriptedFetcher(xml_answer(body, "text/xml; charset=ISO-8859-1"))
    decision = await handle(pipeline(fetcher), request(**{"Request-Format": "twiml"}))
    assert decision.outcome is Outcome.SUCCESS, decision.message
    assert decision.flow is not None and decision.flow["data"]["text"] == "café"


async def test_twiml_content_type_charset_that_does_not_fit_the_body_is_invalid_encoding() -> None:
    fetcher = ScriptedFetcher(xml_answer(b"<Response><Say>\x81</Say></Response>", "text/xml; charset=cp1252"))
    decision = await handle(pipeline(fetcher), request(**{"Request-Format": "twiml"}))
    assert decision.reason is Reason.INVALID_ENCODING
    assert "offset 15" in decision.message


async def test_kazoo_json_not_valid_utf8_is_invalid_encoding_too() -> None:
    body = b'{"module": "tts", "data": {"text": "caf\xe9"}}'
    fetcher = ScriptedFetcher(FetchResult(200, "http://127.0.0.1:8080/start", "application/json", body))
    decision = await handle(pipeline(fetcher), request())
    assert decision.reason is Reason.INVALID_ENCODING
    assert "offset 39" in decision.message
