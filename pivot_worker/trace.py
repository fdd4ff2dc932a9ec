"""What happened while serving one pivot_req: the record that feeds logs, metrics and debug events.

The pipeline fills one :class:`PivotTrace` per pivot_req and hands it, finished, to a
:class:`DebugSink`. Nothing here is copied on the hot path: byte bodies are the objects the HTTP
client already holds. Sinks must not block and must not raise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .errors import Finding, Reason

ExchangeRole = Literal["primary", "fallback"]


class Outcome(enum.StrEnum):
    SUCCESS = "success"  # processing + CHANNEL_PIVOT published
    FAILED = "failed"  # pivot.failed published
    DEAD_LETTERED = "dead_lettered"  # unusable message, no reply possible


@dataclass(slots=True)
class Timings:
    """Milliseconds; ``None`` when the phase did not happen or was not measured."""

    dns_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None


@dataclass(slots=True)
class HttpExchange:
    """One HTTP request to the developer's server (one attempt, one redirect hop)."""

    method: str  # upper case, as sent
    url: str  # as sent, query included
    request_headers: dict[str, str]
    request_body: bytes
    attempt: int = 1
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    error_reason: Reason | None = None
    error: str | None = None
    timings: Timings = field(default_factory=Timings)
    role: ExchangeRole = "primary"  # "fallback": a request to the fallback URL after the primary failed


@dataclass(slots=True)
class FallbackNote:
    """Why the fallback URL was requested, and what became of it (``outcome``)."""

    url: str  # shown form: no credentials, no query
    source: str  # where the URL came from
    trigger: Reason  # the primary's failure
    trigger_message: str
    outcome: Literal["used", "failed", "not_tried"] = "not_tried"
    detail: str = ""  # the fallback's own failure, or why it was not requested

    def describe(self, message: str) -> str:
        """``message`` (the outcome's own message, possibly empty) with the fallback's story added."""
        primary = f"the primary failed ({self.trigger.value}: {self.trigger_message})"
        if self.outcome == "used":
            story = f"answered by the fallback URL {self.url} ({self.source}) because {primary}"
        elif self.outcome == "failed":
            story = f"the fallback URL {self.url} ({self.source}) failed too: {self.detail}"
        else:
            story = f"the fallback URL {self.url} ({self.source}) was not requested: {self.detail}"
        return f"{message}; {story}" if message else story


@dataclass(slots=True)
class PivotTrace:
    """The whole story of one pivot_req, from receipt to the reply on the bus."""

    call_id: str
    account_id: str | None
    debug: bool
    node: str
    voice_uri: str
    method: str  # "get" | "post"
    request_format: str  # "kazoo" | "twiml"
    iteration: int = 1
    received_at: float = 0.0  # time.time() at receipt
    exchanges: list[HttpExchange] = field(default_factory=list)
    content_type: str | None = None
    response_format: str | None = None  # "kazoo" | "twiml"
    sniffed: bool = False
    outcome: Outcome | None = None
    reason: Reason | None = None
    message: str = ""
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    flow: dict[str, Any] | None = None
    total_ms: float = 0.0
    fallback: FallbackNote | None = None

    @property
    def attempts(self) -> int:
        return max((e.attempt for e in self.exchanges), default=0)


class DebugSink(Protocol):
    """Receives every finished trace; decides itself what to keep (debug on, or a failure)."""

    def record(self, trace: PivotTrace) -> None: ...


class NullDebugSink:
    """Keeps nothing: used when no debug publisher is configured."""

    def record(self, trace: PivotTrace) -> None:
        return None
