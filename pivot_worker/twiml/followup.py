"""Plan the request that a nested pivot node triggers: the parameters it adds, or a local document.

The worker calls :func:`plan_followup` with the continuation it found in ``Voice-URI`` and the
``Call`` object of the new ``pivot_req``. Everything needed is in those two: the token says what
kind of callback this is and which DTMF collection holds the digits; Kazoo's KVS (sent back in
every pivot_req) holds the digits themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PivotError, Reason
from . import continuation
from .continuation import Continuation
from .gather import KAZOO_DEFAULT_COLLECTION, settle_prompts

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
    if cont.kind == continuation.PROMPTS:
        cont = settle_prompts(cont, collected_digits(call, KAZOO_DEFAULT_COLLECTION))
    if _runs_locally(cont, call):
        document = cont.remaining.encode() if cont.remaining else EMPTY_DOCUMENT
        return Followup({}, document, cont.iteration, cont.base_url or None)
    request = _request_params(cont, call)
    params: dict[str, Any] = dict(cont.variables)  # user variables: lowest precedence
    if request_format == "twiml":
        params.update(call_aliases(call))
    else:
        params["Call-Status"] = request["CallStatus"]
        if "RecordingUrl" in request:
            params["Recording-Url"] = request["RecordingUrl"]
            params["Recording-ID"] = request["RecordingSid"]
    params.update(request)
    return Followup(params, None, cont.iteration)


def _runs_locally(cont: Continuation, call: Mapping[str, Any]) -> bool:
    """No fetch: carried verbs, a Gather that got no input (and has no empty-result action), or
    an answered Dial without an action."""
    if cont.kind == continuation.RESUME:
        return True
    if cont.kind == continuation.AFTER_DIAL:
        return not cont.url
    if cont.kind == continuation.GATHER:
        return not cont.action_on_empty and not collected_digits(call, cont.collection)
    return False


def _request_params(cont: Continuation, call: Mapping[str, Any]) -> dict[str, Any]:
    """Twilio's parameters for this kind of callback (Twilio's names, in both request formats)."""
    request: dict[str, Any] = {"CallStatus": "in-progress"}
    if cont.kind == continuation.GATHER:
        request["Digits"] = collected_digits(call, cont.collection)
    elif cont.kind == continuation.RECORD and cont.recording_url:
        request["RecordingUrl"] = cont.recording_url
        request["RecordingSid"] = recording_sid(cont.recording_url)
    elif cont.kind == continuation.DIAL and cont.dial_status:
        request["DialCallStatus"] = cont.dial_status
        request["DialBridged"] = "false"
    elif cont.kind == continuation.AFTER_DIAL:
        request["DialCallStatus"] = cont.dial_status or "completed"
        request["DialBridged"] = "true"
        other_leg = call.get("Other-Leg-Call-ID")
        if isinstance(other_leg, str) and other_leg:
            request["DialCallSid"] = other_leg
    return request


def recording_sid(recording_url: str) -> str:
    """A stable id for a recording: ``RE`` and 32 hex digits, as Twilio's ``RecordingSid`` looks.

    Kazoo gives recordings no id of their own; this one is derived from the recording's URL (which
    names the call), so the same recording always gets the same id. It names no API resource.
    """
    return "RE" + hashlib.md5(recording_url.encode(), usedforsecurity=False).hexdigest()
