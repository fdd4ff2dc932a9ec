"""The JSON bodies the worker publishes, with Kazoo's default headers.

Sources: ``kz_api.erl`` (default headers), ``kapi_pivot.erl``, ``kapi_call.erl``."""

from __future__ import annotations

import os
from typing import Any

import orjson

from . import names
from .errors import Reason


def new_msg_id() -> str:
    """16 random bytes as 32 lower-case hex characters, like Kazoo's ``Msg-ID``."""
    return os.urandom(16).hex()


def processing(call_id: str, node: str) -> dict[str, Any]:
    return {
        "App-Name": names.APP_NAME_TRANSLATOR,
        "App-Version": names.APP_VERSION,
        "Call-ID": call_id,
        "Event-Category": names.EVENT_CATEGORY_PIVOT,
        "Event-Name": names.EVENT_NAME_PROCESSING,
        "Msg-ID": new_msg_id(),
        "Node": node,
    }


def failed(call_id: str, node: str, reason: Reason) -> dict[str, Any]:
    """``pivot.failed`` plus our optional ``Failure-Reason`` (Kazoo ignores keys it does not know)."""
    return {
        "App-Name": names.APP_NAME_PIVOT,
        "App-Version": names.APP_VERSION,
        "Call-ID": call_id,
        "Event-Category": names.EVENT_CATEGORY_PIVOT,
        "Event-Name": names.EVENT_NAME_FAILED,
        "Failure-Reason": reason.value,
        "Msg-ID": new_msg_id(),
        "Node": node,
    }


def channel_pivot(call_id: str, node: str, flow: dict[str, Any]) -> dict[str, Any]:
    """``CHANNEL_PIVOT`` with the flow as a JSON *string* in ``Application-Data``, as Kazoo sends it."""
    return channel_pivot_json(call_id, node, orjson.dumps(flow).decode())


def channel_pivot_json(call_id: str, node: str, flow_json: str) -> dict[str, Any]:
    """:func:`channel_pivot` for a flow already serialised."""
    return {
        "App-Name": names.APP_NAME_TRANSLATOR,
        "App-Version": names.APP_VERSION,
        "Application-Data": flow_json,
        "Call-ID": call_id,
        "Event-Category": names.EVENT_CATEGORY_CALL_EVENT,
        "Event-Name": names.EVENT_NAME_CHANNEL_PIVOT,
        "Msg-ID": new_msg_id(),
        "Node": node,
    }
