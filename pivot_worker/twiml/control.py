"""Verbs that move the call on: ``<Redirect>``, ``<Hangup>``, ``<Reject>``, ``<Enqueue>``, and
Kazoo's ``<Set>``/``<Variable>`` (user variables sent with every later request)."""

from __future__ import annotations

import re

from lxml import etree

from ..errors import Reason
from . import attrs, continuation
from .limits import MAX_VARIABLE_KEY_CHARS, MAX_VARIABLE_VALUE_CHARS, MAX_VARIABLES
from .state import HANGUP, State, Step

_QUEUE_ID = re.compile(r"^[0-9a-f]{32}$")
REJECT_CODES = {"rejected": (503, "Service Unavailable"), "busy": (486, "Busy Here")}
"""Kazoo's mapping of ``<Reject reason>`` to a SIP response."""


def variables(parent: etree._Element, st: State) -> None:
    """Apply every ``<Variable key value/>`` child of ``parent`` to the user variables."""
    for child in parent:
        if not isinstance(child.tag, str):
            continue
        if child.tag != "Variable":
            st.error(
                child,
                attrs.SCHEMA_WARNING,
                f"<{child.tag}> cannot be nested in <{parent.tag}>",
                Reason.SCHEMA_ERROR,
            )
            continue
        values = attrs.read(child, st)
        key, value = values.get("key"), values.get("value", "")
        if not key or len(key) > MAX_VARIABLE_KEY_CHARS:
            st.error(
                child,
                "variable-key",
                f"<Variable> needs a key of 1 to {MAX_VARIABLE_KEY_CHARS} characters",
                Reason.SCHEMA_ERROR,
            )
            continue
        if len(value) > MAX_VARIABLE_VALUE_CHARS:
            raise st.fatal(
                child,
                "variable-size",
                f"<Variable> value is longer than {MAX_VARIABLE_VALUE_CHARS} characters",
                Reason.LIMIT_EXCEEDED,
            )
        st.variables[key] = value
        if len(st.variables) > MAX_VARIABLES:
            raise st.fatal(
                child, "variable-count", f"more than {MAX_VARIABLES} user variables", Reason.LIMIT_EXCEEDED
            )


def set_variables(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    attrs.read(element, st)
    variables(element, st)
    return Step([])


def redirect(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    a = attrs.read(element, st)
    method = attrs.method(element, a, st, "redirect-method")
    variables(element, st)
    target = attrs.own_text(element)
    if not target:
        st.error(element, attrs.SCHEMA_WARNING, "<Redirect> needs a URL", Reason.SCHEMA_ERROR)
        return Step([], terminal=True)
    url = st.url(element, target, "<Redirect> URL")
    return Step([st.callback(element, url, method, continuation.REDIRECT)], terminal=True)


def hangup(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    attrs.read(element, st)
    return Step([st.fixed_node(element, HANGUP)], terminal=True)


def reject(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    a = attrs.read(element, st)
    reason = attrs.choice(element, a, st, "reason", tuple(REJECT_CODES), "rejected", "reject-reason")
    code, message = REJECT_CODES[reason]
    data: dict[str, object] = {"code": code, "message": message}
    prompt = a.get("prompt")
    if prompt:
        data["media"] = st.url(element, prompt, "<Reject> prompt")
    return Step([st.node(element, "response", data)], terminal=True)


def enqueue(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    """``<Enqueue>`` into a Kazoo ACDc queue, named by its id (Kazoo has no queues by name)."""
    a = attrs.read(element, st)
    method = attrs.method(element, a, st, "enqueue-method")
    attrs.unsupported(element, a, st, "waitUrl", "the ACDc queue plays its own music on hold")
    attrs.unsupported(element, a, st, "maxQueueSize", "queue size is part of the ACDc queue's settings")
    attrs.unsupported(element, a, st, "workflowSid", "TaskRouter does not exist on Kazoo")
    queue = (element.text or "").strip()
    if not _QUEUE_ID.match(queue):
        st.error(
            element,
            "enqueue-queue",
            f"{queue!r} is not a Kazoo ACDc queue id (32 lower-case hex digits); names are not supported",
            Reason.UNSUPPORTED_VERB,
        )
        return Step([], terminal=True)
    node = st.node(element, "acdc_member", {"id": queue})
    action = a.get("action")
    if action:
        node["children"] = {
            "_": st.callback(
                element, st.url(element, action, "<Enqueue> action"), method, continuation.ENQUEUE
            )
        }
    elif rest:
        node["children"] = {"_": st.walk(rest, st)}
    return Step([node], terminal=True, consumed=True)
