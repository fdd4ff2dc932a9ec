"""The params sent to the developer's server, per ``Request-Format`` (Kazoo's ``kzt_kazoo`` and
``kzt_twiml`` ``req_params/1``).

Names and sources follow Kazoo exactly; values that are absent on the call are omitted. Two
deliberate differences: ``User-ID`` comes from the call's ``Owner-ID`` (Kazoo looks the owner up in
its database, which a worker does not have), and ``Direction`` reports the call's real
``Call-Direction`` (Kazoo always sends ``inbound``, which is also what the call says unless it is
outbound).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KAZOO_API_VERSION = "4.x"
TWIML_API_VERSION = "2010-04-01"


def _kvs(call: Mapping[str, Any]) -> Mapping[str, Any]:
    kvs = call.get("Key-Value-Store")
    return kvs if isinstance(kvs, Mapping) else {}


def digits(call: Mapping[str, Any]) -> Any:
    """``digit_pressed`` if set, else the ``dtmf_collections`` object ``{name: digits}``."""
    kvs = _kvs(call)
    pressed = kvs.get("digit_pressed")
    if pressed not in (None, ""):
        return pressed
    collections = kvs.get("dtmf_collections")
    return collections if isinstance(collections, Mapping) and collections else None


def _owner(call: Mapping[str, Any]) -> Any:
    owner = call.get("Owner-ID")
    if owner:
        return owner
    ccvs = call.get("Custom-Channel-Vars")
    return ccvs.get("Owner-ID") if isinstance(ccvs, Mapping) else None


def _drop_empty(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v != ""}


def kazoo_params(call: Mapping[str, Any]) -> dict[str, Any]:
    kvs = _kvs(call)
    return _drop_empty(
        {
            "Account-ID": call.get("Account-ID"),
            "Api-Version": KAZOO_API_VERSION,
            "Call-ID": call.get("Call-ID"),
            "Call-Status": kvs.get("call_status"),
            "Caller-ID-Name": call.get("Caller-ID-Name"),
            "Caller-ID-Number": call.get("Caller-ID-Number"),
            "Custom-Application-Vars": call.get("Custom-Application-Vars") or {},
            "Custom-SIP-Headers": call.get("Custom-SIP-Headers") or {},
            "Digits": digits(call),
            "Direction": call.get("Call-Direction") or "inbound",
            "From": call.get("From-User"),
            "From-Realm": call.get("From-Realm"),
            "Language": call.get("Language"),
            "Recording-Duration": kvs.get("recording_duration"),
            "Recording-ID": kvs.get("recording_sid"),
            "Recording-Url": kvs.get("recording_url"),
            "Request": call.get("Request-User"),
            "Request-Realm": call.get("Request-Realm"),
            "To": call.get("To-User"),
            "To-Realm": call.get("To-Realm"),
            "User-ID": _owner(call),
        }
    )


def twiml_params(call: Mapping[str, Any]) -> dict[str, Any]:
    """Kazoo's TwiML param set plus Twilio's ``Caller``/``Called`` aliases of ``From``/``To``."""
    kvs = _kvs(call)
    from_user = call.get("From-User")
    to_user = call.get("To-User")
    return _drop_empty(
        {
            "AccountSid": call.get("Account-ID"),
            "ApiVersion": TWIML_API_VERSION,
            "CallSid": call.get("Call-ID"),
            "CallStatus": kvs.get("call_status") or first_call_status(call),
            "Called": to_user,
            "Caller": from_user,
            "CallerName": call.get("Caller-ID-Name"),
            "CallerNumber": call.get("Caller-ID-Number"),
            "Digits": digits(call),
            "Direction": call.get("Call-Direction") or "inbound",
            "From": from_user,
            "FromRealm": call.get("From-Realm"),
            "RecordingDuration": kvs.get("recording_duration"),
            "RecordingSid": kvs.get("recording_sid"),
            "RecordingUrl": kvs.get("recording_url"),
            "To": to_user,
            "ToRealm": call.get("To-Realm"),
        }
    )


def first_call_status(call: Mapping[str, Any]) -> str:
    """Twilio's ``CallStatus`` for a call's first request, which Kazoo leaves out.

    A callflow reaches its pivot node on an inbound call before anything answered it (``pivot``
    does not answer), which Twilio calls ``ringing``; an outbound call (originated through Kazoo's
    API) runs its callflow once the called party answered: ``in-progress``. Follow-up requests
    send ``in-progress`` (``twiml.plan_followup``).
    """
    return "in-progress" if call.get("Call-Direction") == "outbound" else "ringing"


def request_params(call: Mapping[str, Any], request_format: str) -> dict[str, Any]:
    return kazoo_params(call) if request_format == "kazoo" else twiml_params(call)
