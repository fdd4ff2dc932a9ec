"""``<Gather>``: prompts, then DTMF collection, then the action as a nested pivot request.

Kazoo's ``collect_dtmf`` always continues with its ``_`` child, digits or not, so the callflow
cannot choose between "request the action" and Twilio's "no input: go on with the next verb".
The flow therefore always makes the nested pivot request; the verbs after the Gather travel in
its continuation token, and the worker that serves the follow-up decides (``plan_followup``):
digits (or ``actionOnEmptyResult``) -> fetch the action; no digits -> translate the carried
verbs without any HTTP request.

Each Gather collects into its own collection, ``pivot_g<iteration>``, so digits from an earlier
Gather never leak into a later request. A first ``collect_dtmf`` into ``pivot_discard`` empties
the call's ``default`` collection, where Kazoo keeps keys pressed during earlier prompts; Twilio
discards keys pressed outside a Gather.
"""

from __future__ import annotations

from lxml import etree

from ..errors import Reason
from . import attrs, continuation
from .speech import pause, play, say
from .state import Node, State, Step, Template

DISCARD_COLLECTION = "pivot_discard"
UNLIMITED_DIGITS = 128
MAX_TIMEOUT_S = 3600
_PROMPTS = {"Say": say, "Play": play, "Pause": pause}
_DISCARD = Template(
    "collect_dtmf",
    {"collection_name": DISCARD_COLLECTION, "max_digits": 1, "timeout": 1, "interdigit_timeout": 1},
)


def collection_name(iteration: int) -> str:
    return f"pivot_g{iteration}"


def remaining_twiml(rest: list[etree._Element]) -> str:
    """The verbs after a callback verb, as a TwiML document (empty string when there are none)."""
    if not rest:
        return ""
    return (
        "<Response>"
        + "".join(etree.tostring(e, encoding="unicode", with_tail=False) for e in rest)
        + "</Response>"
    )


def gather(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    a = attrs.read(element, st)
    method = attrs.method(element, a, st, "13312")
    timeout = attrs.integer(element, a, st, "timeout", 5, "13313", minimum=1, maximum=MAX_TIMEOUT_S)
    key = attrs.finish_key(element, a, st, "#", "13310")
    digits = attrs.integer(
        element, a, st, "numDigits", UNLIMITED_DIGITS, "13314", minimum=1, maximum=UNLIMITED_DIGITS
    )
    on_empty = attrs.boolean(element, a, st, "actionOnEmptyResult", False, "13338")
    barge_in = attrs.boolean(element, a, st, "bargeIn", True, "gather-bargein")
    if "speech" in (a.get("input") or "dtmf").lower():
        st.warn(
            element,
            "kazoo-unsupported",
            "speech input needs ASR, which Kazoo's callflow engine lacks: DTMF only",
        )
    if key == "":
        st.warn(
            element,
            "kazoo-unsupported",
            "finishOnKey=\"\" cannot be expressed: Kazoo's collect_dtmf needs a finishing key; '#' is used",
        )
        key = "#"

    nodes: list[Node] = [st.fixed_node(element, _DISCARD)]
    for child in element:
        if not isinstance(child.tag, str):
            continue
        prompt = _PROMPTS.get(child.tag)
        if prompt is None:
            st.error(
                child,
                "13320",
                f"<{child.tag}> cannot be nested in <Gather> (only Say, Play, Pause)",
                Reason.SCHEMA_ERROR,
            )
            continue
        nodes.extend(prompt(child, st, in_gather=True, barge_in=barge_in))

    name = collection_name(st.ctx.iteration)
    nodes.append(
        st.node(
            element,
            "collect_dtmf",
            {
                "collection_name": name,
                "max_digits": digits,
                "timeout": timeout * 1000,
                "interdigit_timeout": timeout * 1000,
                "terminator": key,
            },
        )
    )
    action = st.url(element, a.get("action") or st.ctx.document_url, "<Gather> action")
    remaining = remaining_twiml(rest)
    nodes.append(
        st.callback(
            element,
            action,
            method,
            continuation.GATHER,
            collection=name,
            action_on_empty=on_empty,
            remaining=remaining,
            base_url=st.ctx.document_url if remaining and st.ctx.document_url != action else "",
        )
    )
    return Step(nodes, terminal=True, consumed=True)
