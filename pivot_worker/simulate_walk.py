"""Walk a Kazoo callflow the way Kazoo's callflow engine (``cf_exe``) would, without a call.

Pure and synchronous: :func:`walk` runs a flow node by node, reports each node as a :class:`Step`
and stops at the first node that needs the outside world (a nested ``pivot``: its ``pivot_req`` is
the caller's job) or that ends the call. ``pivot-worker simulate`` (:mod:`pivot_worker.simulate`)
drives it between pivot requests.

What the simulated caller does:

* ``collect_dtmf`` waits for input: it takes the next ``--digits`` group (an empty group is a
  timeout), drops a trailing terminator, keeps at most ``max_digits`` and stores the result in the
  call's ``Key-Value-Store.dtmf_collections[<collection_name>]``, where Kazoo's module stores it and
  where the next ``pivot_req`` carries it from (``Digits``). A ``collect_dtmf`` that waits less than
  100 ms is a flush (TwiML's Gather starts with one): nobody can press a key in time, so it takes
  no group;
* ``menu`` takes the next group too and follows the child named after it, else ``_``;
* every dial (``resources``, ``offnet``, ``user``, ``device``, ``ring_group``) is not answered: the
  child ``NO_ANSWER`` runs if there is one, else ``_`` for ``user``/``device``/``ring_group``, while
  ``resources``/``offnet`` without that child end the call, as in Kazoo (docs/twiml.md, Dial);
* unless dials are answered (``answer_dials``): the called party answers and later hangs up. With
  a transfer armed by ``after_bridge``, Kazoo would then route the caller to that extension, whose
  callflow (docs/twiml.md, "After an answered Dial") is a pivot to the after-dial URL: the walk stops
  at that pivot. Without one the call ends (``bridged``);
* ``set_variables`` stores its variables in the call's ``Custom-Application-Vars``, which the next
  ``pivot_req`` carries;
* ``record_caller`` records nothing and continues with ``_``;
* modules that keep the call (``conference``, ``voicemail``, ``callflow``) end the walk.

Every other node is reported and followed through its ``_`` child.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .twiml.after_dial import AFTER_DIAL_URL
from .twiml.continuation import TOKEN_PARAM

FLUSH_BELOW_MS = 100
DIAL_MODULES = frozenset({"resources", "offnet", "user", "device", "ring_group"})
DIAL_FALLS_BACK = frozenset({"user", "device", "ring_group"})
DIAL_OUTCOME = "NO_ANSWER"
KEEPS_CALL = {
    "conference": "the caller stays in the conference",
    "voicemail": "the caller leaves a voicemail",
    "callflow": "another callflow runs",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One node the engine ran: its number in the call, module, data and a one-line description."""

    number: int
    module: str
    data: dict[str, Any]
    text: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.number, "module": self.module, "data": self.data}
        out["text"] = self.text
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a walk stopped. ``end`` is ``pivot`` (``node`` holds the pivot node), or how the call ended:
    ``hangup``, ``end_of_flow``, ``max_steps``, ``response``, ``dial_failed``, ``bridged`` or ``kept``."""

    end: str
    node: dict[str, Any] | None = None
    detail: str = ""


@dataclass
class CallState:
    """The simulated call: the caller's digit groups still to press and the call's key-value store."""

    digits: list[str]
    kvs: dict[str, Any]
    max_steps: int = 50
    step: int = 0
    ask: Callable[[], str | None] | None = None  # asked for digits once the scripted ones ran out
    variables: dict[str, Any] = field(default_factory=dict)  # the call's Custom-Application-Vars
    answer_dials: bool = False
    transfer_after_bridge: str = ""  # the extension an ``after_bridge`` transfer armed

    def next_step(self) -> int | None:
        """The next step number, or ``None`` when ``max_steps`` steps have run already."""
        if self.step >= self.max_steps:
            return None
        self.step += 1
        return self.step


def parse_digits(text: str) -> list[str]:
    """``"1234#,2"`` -> ``["1234#", "2"]``; an empty item is a collect that times out."""
    return [part.strip() for part in text.split(",")] if text else []


def shown_url(url: str) -> str:
    """The URL without the continuation token (``_pivot_k``) the worker signs into callbacks."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if TOKEN_PARAM not in parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TOKEN_PARAM]
    return urlunsplit(parts._replace(query=urlencode(query)))


def pivot_line(data: dict[str, Any]) -> str:
    method = str(data.get("method") or "get").upper()
    fmt = data.get("req_format") or "twiml"
    return f"pivot -> {method} {shown_url(str(data.get('voice_url', '')))} ({fmt})"


@dataclass(frozen=True, slots=True)
class _Outcome:
    text: str
    child: str | None = "_"  # the child to follow; None: stop with ``end``
    end: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _take_digits(state: CallState) -> str | None:
    if state.digits:
        return state.digits.pop(0)
    return state.ask() if state.ask is not None else None


def _collect_dtmf(data: dict[str, Any], children: dict[str, Any], state: CallState) -> _Outcome:
    name = str(data.get("collection_name") or "default")
    timeout = data.get("timeout")
    if isinstance(timeout, int | float) and timeout < FLUSH_BELOW_MS:
        return _Outcome(f"collect_dtmf: flush ({name}, nothing pressed)", extra={"digits": None})
    pressed = _take_digits(state)
    if not pressed:
        return _Outcome(f"collect_dtmf: no input ({name}, timeout)", extra={"digits": None})
    terminator = str(data.get("terminator") or "#")
    digits = pressed.split(terminator, 1)[0] if terminator and terminator in pressed else pressed
    max_digits = data.get("max_digits")
    if isinstance(max_digits, int) and max_digits > 0:
        digits = digits[:max_digits]
    state.kvs.setdefault("dtmf_collections", {})[name] = digits
    return _Outcome(f"collect_dtmf: using {digits} ({name})", extra={"digits": digits})


def _menu(data: dict[str, Any], children: dict[str, Any], state: CallState) -> _Outcome:
    pressed = _take_digits(state) or ""
    child = pressed if pressed in children else "_"
    return _Outcome(f"menu: using {pressed or 'no input'} -> child {child}", child, extra={"digits": pressed})


def _dial_target(module: str, data: dict[str, Any]) -> str:
    if module == "resources":
        return str(data.get("to_did") or "the dialled number")
    if module == "ring_group":
        return f"ring group of {len(data.get('endpoints') or [])} endpoints"
    if module == "offnet":
        return "offnet"
    return f"{module} {data.get('id', '')}".strip()


AFTER_DIAL_NODE: dict[str, Any] = {"module": "pivot", "data": {"voice_url": AFTER_DIAL_URL}, "children": {}}
"""The only node of the operator's after-dial callflow."""


def _dial(module: str) -> Callable[[dict[str, Any], dict[str, Any], CallState], _Outcome]:
    def run(data: dict[str, Any], children: dict[str, Any], state: CallState) -> _Outcome:
        if state.answer_dials:
            return _answered(module, data, state)
        text = f"dial: {_dial_target(module, data)} (simulated no-answer)"
        extra = {"outcome": DIAL_OUTCOME}
        if DIAL_OUTCOME in children:
            return _Outcome(text, DIAL_OUTCOME, extra=extra)
        if module in DIAL_FALLS_BACK:
            return _Outcome(text, "_", extra=extra)
        return _Outcome(text, None, "dial_failed", extra)

    return run


def _answered(module: str, data: dict[str, Any], state: CallState) -> _Outcome:
    text = f"dial: {_dial_target(module, data)} (simulated: answered, then the called party hung up)"
    extension = state.transfer_after_bridge
    if not extension:
        return _Outcome(text, None, "bridged", {"outcome": "answered"})
    text += f"; after_bridge transfers the caller to {extension}"
    return _Outcome(text, None, TRANSFERRED, {"outcome": "answered", "transfer": extension})


TRANSFERRED = "transferred"


def _set_variables(data: dict[str, Any], children: dict[str, Any], state: CallState) -> _Outcome:
    variables = data.get("custom_application_vars")
    if isinstance(variables, dict):
        state.variables.update(variables)
    shown = ", ".join(f"{key}={str(value)[:24]}" for key, value in sorted(state.variables.items()))
    return _Outcome(f"set_variables: {shown}")


def _after_bridge(data: dict[str, Any], children: dict[str, Any], state: CallState) -> _Outcome:
    if data.get("action") == "transfer" and isinstance(data.get("data"), str):
        state.transfer_after_bridge = data["data"]
        return _Outcome(f"after_bridge: transfer to {data['data']} once a bridge ends")
    return _Outcome(f"after_bridge: {data.get('action', '')}")


def _simple(
    text: Callable[[dict[str, Any]], str], end: str = ""
) -> Callable[[dict[str, Any], dict[str, Any], CallState], _Outcome]:
    def run(data: dict[str, Any], children: dict[str, Any], state: CallState) -> _Outcome:
        return _Outcome(text(data), None if end else "_", end)

    return run


_HANDLERS: dict[str, Callable[[dict[str, Any], dict[str, Any], CallState], _Outcome]] = {
    "tts": _simple(lambda d: f"say: {d.get('text', '')}"),
    "play": _simple(lambda d: f"play: {d.get('id', '')}"),
    "sleep": _simple(lambda d: f"sleep: {d.get('duration', 1)} {d.get('unit', 's')}"),
    "send_dtmf": _simple(lambda d: f"send_dtmf: {d.get('digits', '')}"),
    "record_caller": _simple(lambda _: "record: (simulated)"),
    "record_call": _simple(lambda d: f"record_call: {d.get('action', 'start')} (simulated)"),
    "set_cid": _simple(lambda d: f"set_cid: {d.get('caller_id_number', '')}"),
    "answer": _simple(lambda _: "answer"),
    "language": _simple(lambda d: f"language: {d.get('language', '')}"),
    "hangup": _simple(lambda _: "hangup", end="hangup"),
    "response": _simple(
        lambda d: f"response: {d.get('code', '')} {d.get('message', '')}".rstrip(), "response"
    ),
    "collect_dtmf": _collect_dtmf,
    "menu": _menu,
    "set_variables": _set_variables,
    "after_bridge": _after_bridge,
    **{module: _dial(module) for module in DIAL_MODULES},
}


def _run_node(module: str, data: dict[str, Any], children: dict[str, Any], state: CallState) -> _Outcome:
    handler = _HANDLERS.get(module)
    if handler is not None:
        return handler(data, children, state)
    if module in KEEPS_CALL:
        return _Outcome(f"{module}: {KEEPS_CALL[module]} (not simulated further)", None, "kept")
    if module == "branch_variable":
        return _Outcome("branch_variable: the variable is unknown here, taking _")
    return _Outcome(f"{module}: (not simulated)")


def walk(flow: dict[str, Any], state: CallState, emit: Callable[[Step], None]) -> Stop:
    """Run ``flow`` from its root, reporting each node to ``emit``, until a stop (see :class:`Stop`)."""
    node: dict[str, Any] | None = flow
    while node is not None:
        number = state.next_step()
        if number is None:
            return Stop("max_steps", detail=f"{state.max_steps} steps")
        module = str(node.get("module", ""))
        data = node.get("data") or {}
        children = node.get("children") or {}
        if module == "pivot":
            extra = {
                "url": shown_url(str(data.get("voice_url", ""))),
                "method": str(data.get("method") or "get"),
            }
            emit(Step(number, module, data, pivot_line(data), extra))
            return Stop("pivot", node)
        outcome = _run_node(module, data, children, state)
        emit(Step(number, module, data, outcome.text, outcome.extra))
        if outcome.end == TRANSFERRED:
            return _transferred(state, emit)
        if outcome.child is None:
            return Stop(outcome.end, detail=outcome.text)
        node = children.get(outcome.child)
    return Stop("end_of_flow")


def _transferred(state: CallState, emit: Callable[[Step], None]) -> Stop:
    """The caller reaches the after-dial extension, whose callflow is one pivot node."""
    number = state.next_step()
    if number is None:
        return Stop("max_steps", detail=f"{state.max_steps} steps")
    data = AFTER_DIAL_NODE["data"]
    text = f"{pivot_line(data)} (the callflow of {state.transfer_after_bridge})"
    emit(Step(number, "pivot", data, text, {"url": AFTER_DIAL_URL, "method": "get"}))
    return Stop("pivot", AFTER_DIAL_NODE)
