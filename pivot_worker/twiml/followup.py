"""Plan the request that a nested pivot node triggers: the parameters it adds, or a local document.

The worker calls :func:`plan_followup` with the continuation it found in ``Voice-URI`` and the
``Call`` object of the new ``pivot_req``. Everything needed is in those two: the token says what
kind of callback this is and which DTMF collection holds the digits; Kazoo's KVS (sent back in
every pivot_req) holds the digits themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PivotError, Reason
from . import continuation
from .continuation import Continuation

EMPTY_DOCUMENT = b"<Response/>"
"""Twilio hangs up when a document runs out of verbs; an empty Response translates to a hangup."""


@dataclass(frozen=True, slots=True)
class Followup:
    """What to do for a follow-up request.

    ``params`` are merged *under* the worker's base params, except ``Digits``, which replaces the
    base value. When ``local_document`` is set no HTTP request is made: the worker translates it
    with the same context, using ``document_url`` (when not ``None``) as
    ``TwimlContext.document_url`` so relative URLs resolve against the original document.
    """

    params: dict[str, Any]
    local_document: bytes | None
    iteration: int
    document_url: str | None = None


def call_aliases(call: Mapping[str, Any]) -> dict[str, str]:
    """Twilio's legacy ``Caller``/``Called`` aliases of ``From``/``To`` (the SIP users)."""
    out: dict[str, str] = {}
    for alias, user_key, full_key in (("Caller", "From-User", "From"), ("Called", "To-User", "To")):
        value = call.get(user_key)
        if not isinstance(value, str) or not value:
            full = call.get(full_key)
            value = full.split("@", 1)[0] if isinstance(full, str) else ""
        if value:
            out[alias] = value
    return out


def collected_digits(call: Mapping[str, Any], collection: str) -> str:
    """The digits Kazoo's collect_dtmf stored under ``collection`` (``""`` when none)."""
    kvs = call.get("Key-Value-Store")
    collections = kvs.get("dtmf_collections") if isinstance(kvs, Mapping) else None
    value = collections.get(collection) if isinstance(collections, Mapping) else None
    return value if isinstance(value, str) else ""


def plan_followup(cont: Continuation, call: Mapping[str, Any], request_format: str) -> Followup:
    """Params for the follow-up request described by ``cont``, or the document to run instead.

    Raises ``PivotError(invalid_continuation)`` when the token belongs to another call.
    """
    call_id = call.get("Call-ID")
    if call_id != cont.call_id:
        raise PivotError(
            "continuation token rejected: it was issued for another call",
            reason=Reason.INVALID_CONTINUATION,
            detail={"token_call_id": cont.call_id},
        )
    base_url = cont.base_url or None
    if cont.kind == continuation.RESUME:
        return Followup({}, (cont.remaining or "").encode() or EMPTY_DOCUMENT, cont.iteration, base_url)

    request: dict[str, Any] = {"CallStatus": "in-progress"}
    if cont.kind == continuation.GATHER:
        digits = collected_digits(call, cont.collection)
        if not digits and not cont.action_on_empty:
            return Followup(
                {}, cont.remaining.encode() if cont.remaining else EMPTY_DOCUMENT, cont.iteration, base_url
            )
        request["Digits"] = digits
    elif cont.kind == continuation.RECORD and cont.recording_url:
        request["RecordingUrl"] = cont.recording_url
    elif cont.kind == continuation.DIAL and cont.dial_status:
        request["DialCallStatus"] = cont.dial_status

    params: dict[str, Any] = dict(cont.variables)  # user variables: lowest precedence
    if request_format == "twiml":
        params.update(call_aliases(call))
    else:
        params["Call-Status"] = request["CallStatus"]
        if "RecordingUrl" in request:
            params["Recording-Url"] = request["RecordingUrl"]
    params.update(request)
    return Followup(params, None, cont.iteration)
