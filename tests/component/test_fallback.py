"""The fallback URL: Pipeline + real Fetcher + two developer servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from aiohttp import web

from pivot_worker.contracts import compiled
from pivot_worker.debug import EventBuilder, Redactor
from pivot_worker.errors import Reason
from pivot_worker.fallback import CALL_VAR, FallbackUrls
from pivot_worker.fetch import Fetcher, FetchResult, HttpRequestSpec
from pivot_worker.pipeline import Decision, Pipeline
from pivot_worker.settings import Settings, parse_networks
from pivot_worker.trace import Outcome, PivotTrace
from tests.e2e.devserver import DevServer
from tests.e2e.kazoo_side import ACCOUNT_ID, base_call, pivot_req

QUEUE = "pid://<0.1.0>/callflow_route_1"
SORRY = b"<Response><Say>Sorry, we are having trouble.</Say><Redirect>next</Redirect></Response>"


@pytest.fixture
async def backup() -> AsyncIterator[DevServer]:
    """The fallback's server: another origin, so its circuit and bulkhead are its own."""
    server = DevServer()
    await server.start()
    yield server
    await server.stop()


class SpyFetcher(Fetcher):
    """The real fetcher, recording each fetch's URL and deadline (event-loop time)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.calls: list[tuple[str, float, float]] = []  # (url, deadline, loop time at the call)

    async def fetch(self, spec: HttpRequestSpec, *, deadline: float, trace: PivotTrace) -> FetchResult:
        self.calls.append((spec.url, deadline, asyncio.get_running_loop().time()))
        return await super().fetch(spec, deadline=deadline, trace=trace)


@pytest.fixture
async def fetcher() -> AsyncIterator[SpyFetcher]:
    f = SpyFetcher(Settings(allow_networks=parse_networks("127.0.0.0/8"), redact_params=("api_key",)))
    await f.start()
    yield f
    await f.close()


def make_pipeline(fetcher: Fetcher, table: dict[str, str] | None = None) -> Pipeline:
    settings = Settings(
        allow_networks=parse_networks("127.0.0.0/8"), continuation_key="k", redact_params=("api_key",)
    )
    return Pipeline(settings, fetcher, fallback_urls=FallbackUrls(table or {}))


def request(
    url: str, *, fallback: str | None = None, fmt: str = "twiml", method: str = "get", **fields: Any
) -> bytes:
    call = base_call("c1@10.0.0.5", QUEUE)
    if fallback is not None:
        call["Custom-Application-Vars"] = {CALL_VAR: fallback}
    msg = pivot_req(call, url, **{"Request-Format": fmt, "HTTP-Method": method, **fields})
    return orjson.dumps(msg)


def query(seen_query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(seen_query).items()}


def nested_voice_urls(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("module") == "pivot":
            found.append(node["data"]["voice_url"])
        for value in node.values():
            found.extend(nested_voice_urls(value))
    return found


def events(decision: Decision) -> list[dict[str, Any]]:
    """The debug events of the decision's trace, each checked against amqp_schemas/debug_event.json."""
    assert decision.trace is not None
    built = EventBuilder(Redactor(("api_key",))).build(decision.trace)
    for event in built:
        compiled("debug_event")(event)
    return built


async def test_primary_500_uses_the_fallbacks_twiml_within_the_same_deadline(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    primary = dev.answer("/start", "oops", status=500, content_type="text/plain")
    fallback = backup.answer("/fb/sorry.xml", SORRY, content_type="text/xml")
    pipeline = make_pipeline(fetcher, {ACCOUNT_ID: fallback})
    decision = await pipeline.handle(
        request(
            f"http://user:pw@127.0.0.1:{dev.port}/start?tenant=7&api_key=s3cret", **{"Request-Timeout": 2000}
        )
    )
    assert decision.outcome is Outcome.SUCCESS, decision.message
    assert decision.flow is not None and decision.flow["module"] == "tts"
    assert decision.flow["data"]["text"] == "Sorry, we are having trouble."
    # TwiML relative URLs resolve against the fallback's URL, not the primary's.
    (next_url,) = nested_voice_urls(decision.flow)
    assert next_url.startswith(backup.url("/fb/next"))

    (seen,) = backup.seen_at("/fb/sorry.xml")
    sent = query(seen.query_string)
    assert sent["ErrorCode"] == "11200"
    # The primary URL as written, without its credentials or the PIVOT_REDACT_PARAMS parameter.
    assert sent["ErrorUrl"] == f"http://127.0.0.1:{dev.port}/start?tenant=7"
    assert sent["CallSid"] == "c1@10.0.0.5"  # the primary's params too
    assert "tenant" in query(dev.seen_at("/start")[0].query_string)
    assert primary.endswith("/start")

    # One deadline: the primary's ends the 1 s reserve before it; the fallback gets the rest of it.
    (p_url, p_deadline, p_start), (f_url, f_deadline, f_start) = fetcher.calls
    assert p_url.endswith("/start?tenant=7&api_key=s3cret")
    assert f_url == fallback
    assert f_deadline == pytest.approx(p_deadline + 1.0, abs=1e-3)
    assert f_deadline == pytest.approx(p_start + 2.0, abs=0.05)
    assert f_deadline - f_start < 2.0

    trace = decision.trace
    assert trace is not None
    assert [(e.role, e.status) for e in trace.exchanges] == [("primary", 500), ("fallback", 200)]
    assert trace.response_format == "twiml"
    assert "answered by the fallback URL" in trace.message
    assert f"{backup.url('/fb/sorry.xml')} (PIVOT_FALLBACK_URLS_FILE)" in trace.message
    assert "http_status" in trace.message
    assert "s3cret" not in trace.message and "pw@" not in trace.message

    roles = [(e["event_type"], e.get("role")) for e in events(decision)]
    assert roles == [
        ("request", "primary"),
        ("response", "primary"),
        ("request", "fallback"),
        ("response", "fallback"),
        ("result", None),
    ]


async def test_a_primary_timeout_leaves_the_fallback_only_what_is_left_of_the_deadline(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    async def silent(_r: web.Request) -> web.StreamResponse:
        await dev.hold()
        return web.Response(text="late")

    async def slow_too(_r: web.Request) -> web.StreamResponse:
        await backup.hold()
        return web.Response(text="late")

    url = dev.route("/slow", silent)
    fallback = backup.route("/fb", slow_too)
    pipeline = make_pipeline(fetcher)
    started = time.monotonic()
    decision = await pipeline.handle(request(url, fallback=fallback, **{"Request-Timeout": 1000}))
    elapsed = time.monotonic() - started

    assert decision.outcome is Outcome.FAILED
    assert decision.reason is Reason.TIMEOUT  # the primary's reason
    # The primary had 0.5 s (half of a 1 s budget is the most the reserve takes), the fallback the
    # other 0.5 s: together one deadline, not two.
    assert 0.95 <= elapsed < 1.3, elapsed
    (_, p_deadline, p_start), (_, f_deadline, f_start) = fetcher.calls
    assert p_deadline - p_start == pytest.approx(0.5, abs=0.02)
    assert f_deadline - f_start <= 0.51
    assert f_deadline == pytest.approx(p_start + 1.0, abs=0.02)
    (seen,) = backup.seen_at("/fb")
    assert query(seen.query_string)["ErrorCode"] == "11205"

    trace = decision.trace
    assert trace is not None
    assert [(e.role, e.error_reason) for e in trace.exchanges] == [
        ("primary", Reason.TIMEOUT),
        ("fallback", Reason.TIMEOUT),
    ]
    assert "failed too: timeout" in decision.message


async def test_a_primary_timeout_with_a_fast_fallback_answers_after_the_primarys_share(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    async def silent(_r: web.Request) -> web.StreamResponse:
        await dev.hold()
        return web.Response(text="late")

    fallback = backup.answer("/fb", SORRY, content_type="text/xml")
    pipeline = make_pipeline(fetcher)
    started = time.monotonic()
    decision = await pipeline.handle(
        request(dev.route("/slow", silent), fallback=fallback, **{"Request-Timeout": 1000})
    )
    elapsed = time.monotonic() - started
    assert decision.outcome is Outcome.SUCCESS, decision.message
    assert 0.45 <= elapsed < 0.8, elapsed
    assert "because the primary failed (timeout" in decision.message


async def test_when_the_fallback_fails_too_the_primarys_reason_and_both_exchanges_are_recorded(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    url = dev.answer("/start", "<Response><Say>unclosed</Response>", content_type="text/xml")
    fallback = backup.answer("/gone", "not here", status=404, content_type="text/plain")
    pipeline = make_pipeline(fetcher)
    decision = await pipeline.handle(request(url, fallback=fallback, Debug=True))

    assert decision.outcome is Outcome.FAILED
    assert decision.reason is Reason.PARSE_ERROR
    assert query(backup.seen_at("/gone")[0].query_string)["ErrorCode"] == "12100"
    trace = decision.trace
    assert trace is not None
    assert [(e.role, e.status) for e in trace.exchanges] == [("primary", 200), ("fallback", 404)]
    assert trace.errors, "the primary's located parse errors are kept"
    assert trace.content_type == "text/xml"  # the primary's answer, not the fallback's
    assert "failed too: http_status" in decision.message
    assert backup.url("/gone") in decision.message

    built = events(decision)
    assert [(e["event_type"], e.get("role")) for e in built] == [
        ("request", "primary"),
        ("response", "primary"),
        ("request", "fallback"),
        ("response", "fallback"),
        ("result", None),
    ]
    result = built[-1]
    assert result["reason"] == "parse_error"
    assert "json_errors" in result
    assert "failed too" in result["message"]


async def test_a_stale_request_never_reaches_the_fallback(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    url = dev.answer("/start", "x", status=500, content_type="text/plain")
    fallback = backup.answer("/fb", SORRY, content_type="text/xml")
    pipeline = make_pipeline(fetcher, {ACCOUNT_ID: fallback})
    sent = datetime.datetime.fromtimestamp(time.time() - 30, tz=datetime.UTC)
    decision = await pipeline.handle(request(url), sent)
    assert decision.reason is Reason.STALE
    assert dev.seen == [] and backup.seen == []
    assert decision.trace is not None and decision.trace.fallback is None


async def test_an_invalid_request_never_reaches_the_fallback(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    fallback = backup.answer("/fb", SORRY, content_type="text/xml")
    pipeline = make_pipeline(fetcher, {ACCOUNT_ID: fallback})
    msg = orjson.loads(request(dev.url("/start"), fallback=fallback))
    msg["HTTP-Method"] = "teleport"
    decision = await pipeline.handle(orjson.dumps(msg))
    assert decision.outcome is Outcome.FAILED
    assert decision.reason is Reason.INVALID_REQUEST
    assert dev.seen == [] and backup.seen == []


@pytest.mark.parametrize("body_format", ["form", "json"])
async def test_kazoo_requests_get_kazoo_style_error_params(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer, body_format: str
) -> None:
    url = dev.answer("/start", "{not json", content_type="application/json")
    flow = {"module": "tts", "data": {"text": "fallback"}}
    fallback = backup.answer("/fb", orjson.dumps(flow))
    pipeline = make_pipeline(fetcher)
    decision = await pipeline.handle(
        request(url, fallback=fallback, fmt="kazoo", method="post", **{"Request-Body-Format": body_format})
    )
    assert decision.outcome is Outcome.SUCCESS, decision.message
    assert decision.flow is not None and decision.flow["data"]["text"] == "fallback"
    (seen,) = backup.seen_at("/fb")
    assert seen.method == "POST"
    sent = orjson.loads(seen.body) if body_format == "json" else query(seen.body.decode())
    assert sent["Error-Code"] == "parse_error"
    assert sent["Error-URL"] == url
    assert sent["Call-ID"] == "c1@10.0.0.5"
    assert "ErrorCode" not in sent and "ErrorUrl" not in sent


async def test_error_url_of_a_follow_up_has_no_continuation_token(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    start = dev.answer("/ivr", "<Response><Say>hi</Say><Redirect>/ivr/next?step=2</Redirect></Response>",
                       content_type="text/xml")  # fmt: skip
    dev.answer("/ivr/next", "down", status=503, content_type="text/plain")
    fallback = backup.answer("/fb", SORRY, content_type="text/xml")
    pipeline = make_pipeline(fetcher)
    first = await pipeline.handle(request(start, fallback=fallback))
    assert first.outcome is Outcome.SUCCESS, first.message
    (follow_up,) = nested_voice_urls(first.flow)
    assert "_pivot_k=" in follow_up
    second = await pipeline.handle(request(follow_up, fallback=fallback))
    assert second.outcome is Outcome.SUCCESS, second.message
    (seen,) = backup.seen_at("/fb")
    assert query(seen.query_string)["ErrorUrl"] == dev.url("/ivr/next?step=2")


async def test_a_blocked_fallback_url_is_never_connected_to(
    fetcher: SpyFetcher, dev: DevServer, connects: list[Any]
) -> None:
    url = dev.answer("/start", "oops", status=500, content_type="text/plain")
    pipeline = make_pipeline(fetcher)
    decision = await pipeline.handle(request(url, fallback="http://169.254.169.254/latest/meta-data"))
    assert decision.outcome is Outcome.FAILED
    assert decision.reason is Reason.HTTP_STATUS  # the primary's
    assert connects, "the spy saw no connection at all"
    assert {address[0] for address in connects} == {"127.0.0.1"}
    trace = decision.trace
    assert trace is not None
    assert [(e.role, e.error_reason) for e in trace.exchanges] == [
        ("primary", Reason.HTTP_STATUS),
        ("fallback", Reason.BLOCKED_ADDRESS),
    ]
    assert "failed too: blocked_address" in decision.message
    assert "169.254.169.254" in decision.message


async def test_too_little_time_left_fails_with_the_primarys_reason_without_the_fallback(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer
) -> None:
    async def silent(_r: web.Request) -> web.StreamResponse:
        await dev.hold()
        return web.Response(text="late")

    fallback = backup.answer("/fb", SORRY, content_type="text/xml")
    pipeline = make_pipeline(fetcher)
    decision = await pipeline.handle(
        request(dev.route("/slow", silent), fallback=fallback, **{"Request-Timeout": 150})
    )
    assert decision.reason is Reason.TIMEOUT
    assert backup.seen == []
    assert "was not requested: only" in decision.message
    assert decision.trace is not None
    assert [e.role for e in decision.trace.exchanges] == ["primary"]


@pytest.mark.parametrize("where", ["file", "call", "both"])
async def test_the_fallback_comes_from_the_file_or_the_call_and_the_call_wins(
    fetcher: SpyFetcher, dev: DevServer, backup: DevServer, where: str
) -> None:
    url = dev.answer("/start", "oops", status=500, content_type="text/plain")
    from_file = backup.answer("/file", SORRY, content_type="text/xml")
    from_call = backup.answer("/call", SORRY, content_type="text/xml")
    pipeline = make_pipeline(fetcher, {ACCOUNT_ID: from_file} if where != "call" else {"other": from_file})
    decision = await pipeline.handle(request(url, fallback=from_call if where != "file" else None))
    assert decision.outcome is Outcome.SUCCESS, decision.message
    expected = "/file" if where == "file" else "/call"
    assert [s.path for s in backup.seen] == [expected]
    source = "PIVOT_FALLBACK_URLS_FILE" if where == "file" else f"Custom-Application-Vars.{CALL_VAR}"
    assert f"({source})" in decision.message


async def test_without_a_fallback_a_failure_is_unchanged(fetcher: SpyFetcher, dev: DevServer) -> None:
    url = dev.answer("/start", "oops", status=500, content_type="text/plain")
    decision = await make_pipeline(fetcher, {"other-account": "http://127.0.0.1:9/fb"}).handle(request(url))
    assert decision.reason is Reason.HTTP_STATUS
    assert "fallback" not in decision.message
    assert len(fetcher.calls) == 1
