"""Errors raised while serving a pivot request, and the stable reason codes they carry.

Every failure that reaches the bus as ``pivot.failed`` carries one ``Failure-Reason`` code from
:class:`Reason`. The codes are a public contract (operators alert on them, developers read them in
the debug API): add new ones, never rename or reuse one.

Tree::

    PivotError                       (has .reason, .detail; str() says what, where, why)
    ├── RequestRejected              the pivot_req itself is unusable (invalid_request)
    ├── FetchError                   talking to the developer's server failed
    │   └── TransientFetchError      safe to retry within the request's deadline
    ├── ResponseError                the answer cannot become a callflow
    │   └── TranslationError         TwiML/Kazoo document errors, with located findings
    └── StaleRequest                 the requester has given up; publishing now would hijack the call
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Stable failure reason codes sent as ``Failure-Reason`` in ``pivot.failed``."""

    INVALID_REQUEST = "invalid_request"
    INVALID_URL = "invalid_url"
    BLOCKED_ADDRESS = "blocked_address"
    DNS_ERROR = "dns_error"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"
    TIMEOUT = "timeout"
    READ_ERROR = "read_error"
    HTTP_STATUS = "http_status"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    RESPONSE_TOO_LARGE = "response_too_large"
    EMPTY_RESPONSE = "empty_response"
    INVALID_ENCODING = "invalid_encoding"
    UNSUPPORTED_FORMAT = "unsupported_format"
    PARSE_ERROR = "parse_error"
    SCHEMA_ERROR = "schema_error"
    UNSUPPORTED_VERB = "unsupported_verb"
    REDIRECT_LOOP = "redirect_loop"
    LIMIT_EXCEEDED = "limit_exceeded"
    INVALID_CONTINUATION = "invalid_continuation"
    STALE = "stale"
    INTERNAL_ERROR = "internal_error"
    UNROUTABLE_CALL_ID = "unroutable_call_id"
    CIRCUIT_OPEN = "circuit_open"
    HOST_BUSY = "host_busy"
    REDELIVERY_LIMIT = "redelivery_limit"


@dataclass(frozen=True, slots=True)
class Finding:
    """One located problem in a developer's document.

    ``pointer`` is a JSON pointer for Kazoo JSON (``/children/_/data/text``); for XML it is the
    element path (``/Response/Gather[1]/Say[1]``) and ``line``/``column`` are set. ``code`` is a
    stable string: Twilio's error number where one exists (``12100``), else a short slug.
    """

    code: str
    message: str
    pointer: str = ""
    line: int | None = None
    column: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message, "pointer": self.pointer}
        if self.line is not None:
            out["line"] = self.line
        if self.column is not None:
            out["column"] = self.column
        return out

    def __str__(self) -> str:
        where = self.pointer or "document"
        if self.line is not None:
            where += f" (line {self.line}" + (f", column {self.column})" if self.column is not None else ")")
        return f"{where}: {self.message} [{self.code}]"


class PivotError(Exception):
    """Base of every expected failure; ``reason`` is what ``pivot.failed`` reports."""

    reason: Reason = Reason.INTERNAL_ERROR

    def __init__(
        self, message: str, *, reason: Reason | None = None, detail: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.detail: dict[str, object] = detail or {}


class RequestRejected(PivotError):
    """The pivot_req is malformed: nothing we fetch could fix it."""

    reason = Reason.INVALID_REQUEST


class FetchError(PivotError):
    """The HTTP exchange with the developer's server failed."""


class TransientFetchError(FetchError):
    """A fetch failure that is safe to retry (connect error, 502/503/504/429, GET read error)."""

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        detail: dict[str, object] | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message, reason=reason, detail=detail)
        self.retry_after_s = retry_after_s


class ResponseError(PivotError):
    """The developer's answer arrived but cannot be used."""


class TranslationError(ResponseError):
    """A document failed to parse, validate or translate; ``findings`` locate every problem."""

    def __init__(
        self,
        message: str,
        *,
        reason: Reason,
        findings: list[Finding] | None = None,
        warnings: list[Finding] | None = None,
    ):
        super().__init__(message, reason=reason)
        self.findings: list[Finding] = findings or []
        self.warnings: list[Finding] = warnings or []

    def __str__(self) -> str:
        base = super().__str__()
        if not self.findings:
            return base
        shown = "; ".join(str(f) for f in self.findings[:5])
        more = f" (+{len(self.findings) - 5} more)" if len(self.findings) > 5 else ""
        return f"{base}: {shown}{more}"


class StaleRequest(PivotError):
    """The request outlived ``PIVOT_STALE_AFTER_MS``; the callflow has already failed over."""

    reason = Reason.STALE
