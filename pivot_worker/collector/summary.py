"""Per-call summary rows (the list endpoint's rows), merged so that redelivery cannot skew them.

Every field is a merge that is associative, commutative and idempotent: the earliest value by
event order (``uri``, ``status_code``, ``node``), the latest (``reason``), a minimum, a maximum
or an OR. So a batch can be summarised on its own and merged into the stored row in SQL, by any
number of collectors, in any order, any number of times, and the row ends the same.

An event's order key is ``unix_time_us * 1000 + seq``: time first, then position in its trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..debug.gregorian import unix_to_gregorian

SEQ_SLOTS = 1000
UNKNOWN_ACCOUNT = "unknown"


def order_key(event: dict[str, Any]) -> int:
    return int(event["unix_time_us"]) * SEQ_SLOTS + min(int(event["seq"]), SEQ_SLOTS - 1)


def key_to_unix_us(key: int) -> int:
    return key // SEQ_SLOTS


def key_to_created(key: int) -> int:
    """Gregorian seconds of an order key."""
    return unix_to_gregorian(key_to_unix_us(key) / 1_000_000)


def account_of(event: dict[str, Any]) -> str:
    return event.get("account_id") or UNKNOWN_ACCOUNT


def event_failed(event: dict[str, Any]) -> bool:
    """A call failed when one of its results is not a success (a retried error is not a failure)."""
    return event.get("event_type") == "result" and event.get("outcome") != "success"


@dataclass
class CallSummary:
    account_id: str
    call_id: str
    first_key: int
    last_key: int
    node: str
    iteration: int
    uri_key: int | None = None
    uri: str | None = None
    status_key: int | None = None
    status_code: str | None = None
    reason_key: int | None = None
    reason: str | None = None
    has_json_errors: bool = False
    has_schema_errors: bool = False
    failed: bool = False

    @property
    def created(self) -> int:
        return key_to_created(self.first_key)

    def row(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "call_id": self.call_id,
            "first_key": self.first_key,
            "last_key": self.last_key,
            "node": self.node,
            "iteration": self.iteration,
            "uri_key": self.uri_key,
            "uri": self.uri,
            "status_key": self.status_key,
            "status_code": self.status_code,
            "reason_key": self.reason_key,
            "reason": self.reason,
            "has_json_errors": self.has_json_errors,
            "has_schema_errors": self.has_schema_errors,
            "failed": self.failed,
        }

    def absorb(self, event: dict[str, Any]) -> None:
        key = order_key(event)
        if key < self.first_key:
            self.first_key, self.node = key, str(event["node"])
        self.last_key = max(self.last_key, key)
        self.iteration = min(self.iteration, int(event["iteration"]))
        uri = event.get("uri")
        if uri is not None and (self.uri_key is None or key < self.uri_key):
            self.uri_key, self.uri = key, str(uri)
        status = event.get("resp_status_code")
        if status is not None and (self.status_key is None or key < self.status_key):
            self.status_key, self.status_code = key, str(status)
        failed = event_failed(event)
        if failed and (self.reason_key is None or key > self.reason_key):
            self.reason_key, self.reason = key, event.get("reason")
        self.failed = self.failed or failed
        self.has_json_errors = self.has_json_errors or "json_errors" in event
        self.has_schema_errors = self.has_schema_errors or "schema_errors" in event


def summarise(events: list[dict[str, Any]]) -> list[CallSummary]:
    """One partial summary per (account, call) found in ``events``."""
    out: dict[tuple[str, str], CallSummary] = {}
    for event in events:
        ident = (account_of(event), str(event["call_id"]))
        summary = out.get(ident)
        if summary is None:
            key = order_key(event)
            summary = out[ident] = CallSummary(
                account_id=ident[0],
                call_id=ident[1],
                first_key=key,
                last_key=key,
                node=str(event["node"]),
                iteration=int(event["iteration"]),
            )
        summary.absorb(event)
    return list(out.values())
