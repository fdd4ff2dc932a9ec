"""A validated ``pivot_req`` as the fields the worker acts on, with Kazoo's runtime defaults applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Method = Literal["get", "post"]
RequestFormat = Literal["kazoo", "twiml"]
BodyFormat = Literal["form", "json"]


@dataclass(frozen=True, slots=True)
class PivotRequest:
    """What one pivot_req asks for, with pivot's runtime defaults (docs/kazoo-contract.md §2.2)."""

    call: dict[str, Any]
    call_id: str
    controller_queue: str
    account_id: str | None
    voice_uri: str
    method: Method
    request_format: RequestFormat
    body_format: BodyFormat
    timeout_ms: int | None
    debug: bool
    cdr_uri: str | None

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> PivotRequest:
        """Read a message that already passed the ``pivot_req`` schema.

        Defaults are pivot's own runtime defaults, not the callflow schema's: an absent
        ``Request-Format`` means ``twiml`` (docs/kazoo-contract.md §2.2), an absent method ``get``.
        """
        call: dict[str, Any] = msg["Call"]
        method = str(msg.get("HTTP-Method") or "get").lower()
        debug = msg.get("Debug", False)
        if isinstance(debug, str):
            debug = debug.lower() == "true"
        timeout = msg.get("Request-Timeout")
        return cls(
            call=call,
            call_id=call["Call-ID"],
            controller_queue=call["Controller-Queue"],
            account_id=call.get("Account-ID"),
            voice_uri=msg["Voice-URI"],
            method="post" if method == "post" else "get",
            request_format="kazoo" if msg.get("Request-Format") == "kazoo" else "twiml",
            body_format="json" if msg.get("Request-Body-Format") == "json" else "form",
            timeout_ms=timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else None,
            debug=bool(debug),
            cdr_uri=msg.get("CDR-URI") or None,
        )


def reply_identity(msg: object) -> tuple[str, str] | None:
    """``(Call-ID, Controller-Queue)`` of a message that failed validation, if both are usable strings.

    Lets the worker answer ``pivot.failed`` at once for a malformed request instead of leaving the
    caller to Kazoo's 10 s timeout.
    """
    if not isinstance(msg, dict):
        return None
    call = msg.get("Call")
    if not isinstance(call, dict):
        return None
    call_id = call.get("Call-ID")
    queue = call.get("Controller-Queue")
    if isinstance(call_id, str) and call_id and isinstance(queue, str) and queue:
        return call_id, queue
    return None
