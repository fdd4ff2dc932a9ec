"""What a ``<Dial>`` rings: a number through ``resources``, Kazoo users and devices.

Each noun becomes the callflow node that dials it. ``resources`` (``cf_resources``) never falls
back to its ``_`` child on a failure, so its failure children must name the hangup causes; the
other modules do fall back to ``_`` (``cf_user``, ``cf_device``, ``cf_ring_group``).

``resources`` dials one ``to_did``, and ``ring_group`` endpoints are only devices, users and
groups (``callflows.ring_group``), so several numbers cannot ring at once. With Twilio's
``sequential="true"`` each noun gets its own dial node, tried in document order: a failure of one
leads to the next (:func:`choose_targets` returns them in that order).
"""

from __future__ import annotations

import re

from lxml import etree

from ..errors import Reason
from . import attrs
from .state import Node, State

_NUMBER_PUNCTUATION = re.compile(r"[\s().-]")
NUMBER = re.compile(r"^\+?[0-9]{1,20}$")
_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

_STATUS_CALLBACK = (
    "Kazoo's dial modules report no progress of the dialled leg to a URL (Kazoo's webhooks are set "
    "per account, not per dial)"
)
_MACHINE_DETECTION = "Kazoo's dial modules have no answering machine detection"
NUMBER_UNSUPPORTED: dict[str, str] = {
    "sendDigits": "no field of Kazoo's resources module sends DTMF once the number answers",
    "url": "no Kazoo dial module runs a document or plays a whisper on the called leg before the bridge",
    "method": "it is the method of url, which Kazoo cannot request",
    "byoc": "Twilio BYOC trunks do not exist on Kazoo; the account's carriers route the number",
    "statusCallback": _STATUS_CALLBACK,
    "statusCallbackMethod": _STATUS_CALLBACK,
    "statusCallbackEvent": _STATUS_CALLBACK,
    "machineDetection": _MACHINE_DETECTION,
    "amdStatusCallback": _MACHINE_DETECTION,
    "amdStatusCallbackMethod": _MACHINE_DETECTION,
    "machineDetectionTimeout": _MACHINE_DETECTION,
    "machineDetectionSpeechThreshold": _MACHINE_DETECTION,
    "machineDetectionSpeechEndThreshold": _MACHINE_DETECTION,
    "machineDetectionSilenceTimeout": _MACHINE_DETECTION,
}
"""``<Number>`` attributes Kazoo cannot honour, with the reason each warning gives."""


class Ringing:
    """How a ``<Dial>`` rings its nouns: ring time, Kazoo strategy, order, and ringback tone."""

    __slots__ = ("ringback", "sequential", "strategy", "timeout")

    def __init__(self, timeout: int, strategy: str, *, sequential: bool, ringback: str | None) -> None:
        self.timeout = timeout
        self.strategy = strategy
        self.sequential = sequential
        self.ringback = ringback


class Target:
    """A dial node and whether its failures must be named by cause (``resources``)."""

    __slots__ = ("node", "offnet")

    def __init__(self, node: Node, *, offnet: bool) -> None:
        self.node = node
        self.offnet = offnet


def choose_targets(
    element: etree._Element, st: State, nouns: list[etree._Element], ringing: Ringing
) -> list[Target] | None:
    """The dial nodes for the ``<Dial>``'s text number or nouns, tried in order (None after a
    located error). More than one only with ``sequential="true"``."""
    kinds = {str(n.tag) for n in nouns}
    if not nouns:
        return _single(_number_target(element, st, element, attrs.own_text(element), ringing))
    if ringing.sequential:
        return _sequence(element, st, nouns, ringing)
    if kinds == {"Number"}:
        return _one_number(element, st, nouns, ringing)
    if "Number" in kinds:
        st.error(
            element,
            "dial-mixed",
            "Kazoo cannot ring numbers and users/devices at once: resources dials one number and "
            'ring_group rings only devices and users; use sequential="true" to try them in turn',
            Reason.UNSUPPORTED_VERB,
        )
        return None
    return _single(_endpoint_target(element, st, nouns, ringing))


def _single(target: Target | None) -> list[Target] | None:
    return None if target is None else [target]


def _sequence(
    element: etree._Element, st: State, nouns: list[etree._Element], ringing: Ringing
) -> list[Target] | None:
    targets = [
        _number_noun_target(element, st, noun, ringing)
        if noun.tag == "Number"
        else _endpoint_target(element, st, [noun], ringing)
        for noun in nouns
    ]
    chosen = [target for target in targets if target is not None]
    return chosen if len(chosen) == len(targets) else None


def _one_number(
    element: etree._Element, st: State, nouns: list[etree._Element], ringing: Ringing
) -> list[Target] | None:
    if len(nouns) > 1:
        st.error(
            element,
            "dial-several-numbers",
            "Kazoo's resources module dials one number, so several <Number>s cannot ring at once; "
            'use sequential="true" to try them in turn, or Kazoo devices in a ring group',
            Reason.UNSUPPORTED_VERB,
        )
        return None
    return _single(_number_noun_target(element, st, nouns[0], ringing))


# -- numbers -----------------------------------------------------------------------------------


def _number_noun_target(
    element: etree._Element, st: State, noun: etree._Element, ringing: Ringing
) -> Target | None:
    na = attrs.read(noun, st)
    for name in na:
        why = NUMBER_UNSUPPORTED.get(name)
        if why is not None:
            st.warn(noun, "kazoo-unsupported", f"{name}={na[name]!r} is ignored: {why}")
    return _number_target(element, st, noun, noun.text or "", ringing)


def _number_target(
    element: etree._Element, st: State, holder: etree._Element, text: str, ringing: Ringing
) -> Target | None:
    number = _number(holder, st, text)
    if number is None:
        return None
    data: dict[str, object] = {"to_did": number, "timeout": ringing.timeout}
    if ringing.ringback is not None:
        data["ringback"] = ringing.ringback
    return Target(st.node(element, "resources", data), offnet=True)


def _number(element: etree._Element, st: State, text: str) -> str | None:
    cleaned = _NUMBER_PUNCTUATION.sub("", text)
    if not cleaned:
        st.error(element, "13224", "no phone number to dial", Reason.SCHEMA_ERROR)
        return None
    if not NUMBER.match(cleaned):
        st.error(
            element,
            "13223",
            f"{text.strip()!r} is not a phone number (digits, optional leading +)",
            Reason.SCHEMA_ERROR,
        )
        return None
    return cleaned


# -- users and devices -------------------------------------------------------------------------


def _endpoint_target(
    element: etree._Element, st: State, nouns: list[etree._Element], ringing: Ringing
) -> Target | None:
    """``user`` or ``device`` for one noun, else ``ring_group``, which alone takes a ringback."""
    ids = [(str(n.tag).lower(), _endpoint_id(n, st)) for n in nouns]
    endpoints = [(kind, i) for kind, i in ids if i is not None]
    if len(endpoints) < len(ids):
        return None
    if len(endpoints) == 1 and ringing.ringback is None:
        return Target(_single_endpoint(element, st, *endpoints[0], ringing), offnet=False)
    members = [{"endpoint_type": kind, "id": i, "timeout": ringing.timeout} for kind, i in endpoints]
    data: dict[str, object] = {"endpoints": members, "timeout": ringing.timeout, "strategy": ringing.strategy}
    if ringing.ringback is not None:
        data["ringback"] = ringing.ringback
    return Target(st.node(element, "ring_group", data), offnet=False)


def _single_endpoint(
    element: etree._Element, st: State, kind: str, endpoint_id: str, ringing: Ringing
) -> Node:
    if kind == "user":
        data = {"id": endpoint_id, "timeout": ringing.timeout, "strategy": ringing.strategy}
        return st.node(element, "user", data)
    data = {"id": endpoint_id, "timeout": ringing.timeout, "dial_strategy": ringing.strategy}
    return st.node(element, "device", data)


def _endpoint_id(noun: etree._Element, st: State) -> str | None:
    attrs.read(noun, st)
    value = (noun.text or "").strip()
    if not _ENDPOINT_ID.match(value):
        st.error(
            noun,
            attrs.SCHEMA_WARNING,
            f"<{noun.tag}> needs a Kazoo {noun.tag.lower()} id",
            Reason.SCHEMA_ERROR,
        )
        return None
    return value
