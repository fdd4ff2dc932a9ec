"""Shared builders for the TwiML tests: a context like the worker's, and a readable flow view."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from pivot_worker.errors import PivotError, Reason
from pivot_worker.twiml import Continuation, TwimlContext, open_continuation
from pivot_worker.twiml.after_dial import CALL_VAR as AFTER_DIAL_VAR
from pivot_worker.twiml.after_dial import NOTHING_FOLLOWS as AFTER_DIAL_NOTHING
from pivot_worker.twiml.continuation import open_token

KEY = b"unit-test continuation key, 32b!"
DOC_URL = "https://ivr.example.com/app/start?tenant=7"
CALL_ID = "4f6c1e2a-93b1-123d-77aa-00163e0a0b0c"
RECORDING_URL = "https://store.example.com/recordings/"


def allow_all(url: str) -> None:
    return None


def refuse_host(host: str) -> Callable[[str], None]:
    """A check_url that blocks one host, like the worker's address policy would."""

    def check(url: str) -> None:
        if f"//{host}" in url:
            raise PivotError(f"URL host {host} is blocked", reason=Reason.BLOCKED_ADDRESS)

    return check


def make_ctx(**overrides: Any) -> TwimlContext:
    values: dict[str, Any] = {
        "document_url": DOC_URL,
        "request_format": "twiml",
        "request_body_format": "form",
        "call_id": CALL_ID,
        "continuation": None,
        "continuation_key": KEY,
        "max_iterations": 50,
        "recording_url": RECORDING_URL,
        "check_url": allow_all,
        "account_id": "3a1b2c4d5e6f708192a3b4c5d6e7f809",
    }
    values.update(overrides)
    return TwimlContext(**values)


def continuation_dict(cont: Continuation) -> dict[str, Any]:
    """The fields of ``cont`` that differ from their defaults (what a golden file shows)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cont):
        value = getattr(cont, field.name)
        default = (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        )
        if value != default:
            out[field.name] = value
    return out


def readable(flow: dict[str, Any], key: bytes = KEY) -> dict[str, Any]:
    """A copy of ``flow`` where every pivot node's token is opened and shown as ``continuation``.

    An after-dial token kept in a ``set_variables`` node is opened in place the same way.
    """
    out = copy.deepcopy(flow)
    stack = [out]
    while stack:
        node = stack.pop()
        if node.get("module") == "pivot":
            url, cont = open_continuation(node["data"]["voice_url"], key=key)
            if cont is not None:
                node["data"]["voice_url"] = url
                node["data"]["continuation"] = continuation_dict(cont)
        elif node.get("module") == "set_variables":
            _open_after_dial_token(node["data"].get("custom_application_vars", {}), key)
        stack.extend(node.get("children", {}).values())
    return out


def _open_after_dial_token(variables: dict[str, Any], key: bytes) -> None:
    value = variables.get(AFTER_DIAL_VAR)
    if isinstance(value, str) and value != AFTER_DIAL_NOTHING:
        variables[AFTER_DIAL_VAR] = {"continuation": continuation_dict(open_token(value, key=key))}


def pivot_nodes(flow: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    stack = [flow]
    while stack:
        node = stack.pop()
        if node.get("module") == "pivot":
            found.append(node)
        stack.extend(node.get("children", {}).values())
    return found


def modules_along(flow: dict[str, Any], key: str = "_") -> list[str]:
    """Module names following ``key`` children from the root."""
    names = []
    node: dict[str, Any] | None = flow
    while node is not None:
        names.append(node["module"])
        node = node.get("children", {}).get(key)
    return names
