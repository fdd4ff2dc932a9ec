"""Builders shared by the collector tests: traces, events, a running API, HTTP calls."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import aiohttp
import orjson

from pivot_worker.debug import EventBuilder, Redactor
from pivot_worker.errors import Finding, Reason
from pivot_worker.trace import HttpExchange, Outcome, PivotTrace, Timings

ACCOUNT_A = "3a1b2c4d5e6f708192a3b4c5d6e7f809"
ACCOUNT_B = "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
TOKEN_A = "token-for-account-a"
TOKEN_B = "token-for-account-b"
TOKEN_ALL = "token-for-every-account"
TOKENS = {TOKEN_A: [ACCOUNT_A], TOKEN_B: [ACCOUNT_B], TOKEN_ALL: "*"}

FLOW = {"module": "tts", "data": {"text": "Hello"}, "children": {}}
_counter = itertools.count(1)


def call_id() -> str:
    return f"{uuid.uuid4()}@10.0.0.{next(_counter) % 250}"


def make_trace(
    *,
    call: str | None = None,
    account: str | None = ACCOUNT_A,
    debug: bool = True,
    status: int | None = 200,
    outcome: Outcome = Outcome.SUCCESS,
    reason: Reason | None = None,
    iteration: int = 1,
    received_at: float | None = None,
    url: str = "https://ivr.example.com/pivot/start?tenant=7",
    errors: list[Finding] | None = None,
) -> PivotTrace:
    """A finished trace with one HTTP exchange; ``status=None`` means the exchange failed."""
    trace = PivotTrace(
        call_id=call or call_id(),
        account_id=account,
        debug=debug,
        node="pivot_worker@apps1.example.com",
        voice_uri=url,
        method="get",
        request_format="twiml",
        iteration=iteration,
        received_at=time.time() if received_at is None else received_at,
    )
    exchange = HttpExchange(
        method="GET",
        url=url,
        request_headers={"User-Agent": "pivot-worker/0.1.0", "Authorization": "Bearer s3cr3t"},
        request_body=b"",
        timings=Timings(dns_ms=0.2, connect_ms=0.5, ttfb_ms=2.0, total_ms=3.0),
    )
    if status is None:
        exchange.error_reason = reason or Reason.CONNECT_ERROR
        exchange.error = "connection refused"
    else:
        exchange.status = status
        exchange.response_headers = [("Content-Type", "text/xml; charset=UTF-8"), ("X-Trace", "MixedCase")]
        exchange.response_body = b"<Response><Say>Hello</Say></Response>"
    trace.exchanges.append(exchange)
    trace.outcome = outcome
    trace.reason = reason
    trace.content_type = "text/xml; charset=UTF-8" if status is not None else None
    trace.response_format = "twiml" if status == 200 else None
    trace.flow = dict(FLOW) if outcome is Outcome.SUCCESS else None
    trace.message = "" if outcome is Outcome.SUCCESS else f"failed: {reason}"
    trace.errors = errors or []
    trace.total_ms = 4.0
    return trace


def events_of(trace: PivotTrace, redact: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return EventBuilder(Redactor(redact)).build(trace)


async def get_json(
    client: aiohttp.ClientSession, url: str, token: str | None, **params: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"X-Auth-Token": token} if token is not None else {}
    query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    async with client.get(url, headers=headers, params=query) as resp:
        return resp.status, orjson.loads(await resp.read())
