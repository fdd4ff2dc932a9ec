"""Turning one finished :class:`~pivot_worker.trace.PivotTrace` into debug events.

One trace becomes, in order: for every HTTP exchange a ``request`` event and then either a
``response`` event (a status line arrived) or an ``error`` event (it never did), and finally one
``result`` event (outcome, reason, translated callflow, warnings, located errors). Each event is a
flat JSON object carrying the fields of Kazoo's ``pivot_debug`` documents (``pivot_call.erl``) plus
ours; ``amqp_schemas/debug_event.json`` is its contract. An exchange's ``role`` says whether it
went to the primary URL or to the fallback URL after the primary failed (the result's message
says why).

Differences from Kazoo, on purpose: ``resp_status_code`` is the real status (Kazoo writes ``"200"``
for every streamed response), header values keep their case, and when debug is off (a failure
recorded anyway) the bodies are left out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import Finding, Reason
from ..trace import HttpExchange, Outcome, PivotTrace, Timings
from .gregorian import unix_to_gregorian
from .redact import Redactor

EVENT_VERSION = 1

Event = dict[str, Any]

# Reasons whose findings describe a document that could not be read at all (Kazoo's json_errors)
# versus one that was read but is not acceptable (Kazoo's schema_errors).
PARSE_REASONS = frozenset({Reason.PARSE_ERROR, Reason.INVALID_ENCODING})
DOCUMENT_REASONS = frozenset(
    {Reason.SCHEMA_ERROR, Reason.UNSUPPORTED_VERB, Reason.UNSUPPORTED_FORMAT, Reason.INVALID_CONTINUATION}
)


def should_keep(trace: PivotTrace) -> bool:
    """Kazoo keeps debug docs only with ``Debug`` on; we also keep every failure, bodies omitted."""
    return trace.debug or trace.outcome is not Outcome.SUCCESS


def decode_body(body: bytes) -> str:
    """Bodies are shown as text; bytes that are not UTF-8 become U+FFFD rather than failing."""
    return body.decode("utf-8", errors="replace")


def _timings(t: Timings) -> dict[str, float | None]:
    return {"dns_ms": t.dns_ms, "connect_ms": t.connect_ms, "ttfb_ms": t.ttfb_ms, "total_ms": t.total_ms}


def _content_type(headers: Any) -> str | None:
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        if name.lower() == "content-type":
            return str(value)
    return None


def _findings(findings: list[Finding], redactor: Redactor) -> list[dict[str, object]]:
    out = []
    for f in findings:
        item = f.as_dict()
        item["message"] = redactor.text(f.message)
        out.append(item)
    return out


class EventBuilder:
    """Builds the events of one trace; ``clock`` and ``new_id`` are injectable for tests."""

    def __init__(
        self,
        redactor: Redactor,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._redactor = redactor
        self._clock = clock
        self._new_id = new_id

    def build(self, trace: PivotTrace) -> list[Event]:
        r = self._redactor
        with_bodies = trace.debug
        start = trace.received_at or self._clock()
        events: list[Event] = []
        elapsed_ms = 0.0

        def common(kind: str, at_ms: float) -> Event:
            unix = start + at_ms / 1000.0
            return {
                "event_version": EVENT_VERSION,
                "event_id": self._new_id(),
                "event_type": kind,
                "seq": len(events),
                "account_id": trace.account_id,
                "call_id": trace.call_id,
                "iteration": trace.iteration,
                "node": trace.node,
                "created": unix_to_gregorian(unix),
                "unix_time_us": round(unix * 1_000_000),
                "debug": trace.debug,
            }

        for ex in trace.exchanges:
            events.append(self._request(common("request", elapsed_ms), ex, with_bodies))
            elapsed_ms += ex.timings.total_ms or 0.0
            if ex.status is not None:
                events.append(self._response(common("response", elapsed_ms), ex, with_bodies))
            else:
                events.append(self._error(common("error", elapsed_ms), ex))

        result = common("result", max(trace.total_ms, elapsed_ms))
        result.update(
            {
                "uri": r.url(trace.voice_uri),
                "method": trace.method.lower(),
                "outcome": trace.outcome.value if trace.outcome is not None else None,
                "reason": trace.reason.value if trace.reason is not None else None,
                "message": r.text(trace.message),
                "attempts": trace.attempts,
                "timings": {"total_ms": trace.total_ms},
                "request_format": trace.request_format,
                "response_format": trace.response_format,
                "content_type": trace.content_type,
                "sniffed": trace.sniffed,
                "callflow": r.json_value(trace.flow) if trace.flow is not None else None,
                "warnings": _findings(trace.warnings, r),
            }
        )
        if trace.reason in PARSE_REASONS:
            result["json_errors"] = {"message": r.text(trace.message), "errors": _findings(trace.errors, r)}
        elif trace.errors or trace.reason in DOCUMENT_REASONS:
            result["schema_errors"] = {"message": r.text(trace.message), "errors": _findings(trace.errors, r)}
        events.append(result)
        return events

    def _request(self, event: Event, ex: HttpExchange, with_bodies: bool) -> Event:
        r = self._redactor
        event.update(
            {
                "uri": r.url(ex.url),
                "method": ex.method.lower(),
                "attempt": ex.attempt,
                "role": ex.role,
                "req_headers": r.headers(ex.request_headers),
            }
        )
        if with_bodies:
            event["req_body"] = r.body(decode_body(ex.request_body), _content_type(ex.request_headers))
        return event

    def _response(self, event: Event, ex: HttpExchange, with_bodies: bool) -> Event:
        r = self._redactor
        event.update(
            {
                "uri": r.url(ex.url),
                "method": ex.method.lower(),
                "attempt": ex.attempt,
                "role": ex.role,
                "resp_status_code": str(ex.status),
                "resp_headers": r.headers(ex.response_headers),
                "timings": _timings(ex.timings),
            }
        )
        if ex.error_reason is not None:
            event["reason"] = ex.error_reason.value
            event["message"] = r.text(ex.error or "")
        if with_bodies:
            event["resp_body"] = r.body(decode_body(ex.response_body), _content_type(ex.response_headers))
        return event

    def _error(self, event: Event, ex: HttpExchange) -> Event:
        r = self._redactor
        event.update(
            {
                "uri": r.url(ex.url),
                "method": ex.method.lower(),
                "attempt": ex.attempt,
                "role": ex.role,
                "reason": (ex.error_reason or Reason.INTERNAL_ERROR).value,
                "message": r.text(ex.error or ""),
                "timings": _timings(ex.timings),
            }
        )
        return event
