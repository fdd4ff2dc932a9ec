"""``<Dial>``: a number through ``resources``, Kazoo users and devices, or an ad-hoc conference.

Kazoo's ``resources``, ``user``, ``device`` and ``ring_group`` modules stop the callflow after a
successful bridge and, on failure, look for a child named after the hangup cause (then, except
``resources``, fall back to ``_``). So the outcome the callflow can know is the failure cause:
each failure child is a nested pivot whose token carries ``DialCallStatus`` (``busy``,
``no-answer`` or ``failed``). When the dialled party answers, the call ends with the bridge and
the action is never requested (see docs/twiml.md).
"""

from __future__ import annotations

import hashlib
import re

from lxml import etree

from ..errors import Reason
from . import attrs, continuation
from .gather import remaining_twiml
from .state import Node, State, Step
from .vocabulary import UNSUPPORTED_DIAL_NOUNS

BUSY_CAUSES = ("USER_BUSY", "CALL_REJECTED")
NO_ANSWER_CAUSES = ("NO_ANSWER", "NO_USER_RESPONSE")
FAILED_CAUSES = (
    "UNALLOCATED_NUMBER",
    "NO_ROUTE_DESTINATION",
    "INVALID_NUMBER_FORMAT",
    "NORMAL_TEMPORARY_FAILURE",
    "DESTINATION_OUT_OF_ORDER",
    "RECOVERY_ON_TIMER_EXPIRE",
    "NORMAL_CIRCUIT_CONGESTION",
    "SUBSCRIBER_ABSENT",
)
"""Extra cause children for ``resources``, which never falls back to ``_`` on a failure."""

_NUMBER_PUNCTUATION = re.compile(r"[\s().-]")
_NUMBER = re.compile(r"^\+?[0-9]{1,20}$")
_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_QUEUE_ID = re.compile(r"^[0-9a-f]{32}$")
_RECORD_ON = (
    "true",
    "record-from-answer",
    "record-from-ringing",
    "record-from-answer-dual",
    "record-from-ringing-dual",
)
_NOUNS = ("Number", "User", "Device", "Conference")


def _number(element: etree._Element, st: State, text: str) -> str | None:
    cleaned = _NUMBER_PUNCTUATION.sub("", text)
    if not cleaned:
        st.error(element, "13224", "no phone number to dial", Reason.SCHEMA_ERROR)
        return None
    if not _NUMBER.match(cleaned):
        st.error(
            element,
            "13223",
            f"{text.strip()!r} is not a phone number (digits, optional leading +)",
            Reason.SCHEMA_ERROR,
        )
        return None
    return cleaned


def _failure_children(targets: dict[str, Node], offnet: bool, failed: Node) -> dict[str, Node]:
    children = dict(targets)
    if offnet:
        children.update(dict.fromkeys(FAILED_CAUSES, failed))
    children["_"] = failed
    return children


def _conference(noun: etree._Element, st: State) -> Node | None:
    na = attrs.read(noun, st)
    room = (noun.text or "").strip()
    if not room or len(room) > 128:
        st.error(noun, "13237", "<Conference> needs a room name of 1 to 128 characters", Reason.SCHEMA_ERROR)
        return None
    muted = attrs.boolean(noun, na, st, "muted", False, "13230")
    start = attrs.boolean(noun, na, st, "startConferenceOnEnter", True, "13232")
    if attrs.boolean(noun, na, st, "endConferenceOnExit", False, "13231"):
        st.warn(
            noun,
            "kazoo-unsupported",
            "endConferenceOnExit is ignored: Kazoo rooms end when the last member leaves",
        )
    beep = attrs.choice(noun, na, st, "beep", ("true", "false", "onEnter", "onExit"), "true", "13235")
    attrs.unsupported(
        noun, na, st, "waitUrl", "the room's own music on hold plays while waiting", unless=("",)
    )
    attrs.unsupported(
        noun, na, st, "record", "conference recording is configured on Kazoo", unless=("do-not-record",)
    )
    entry, leave = beep in ("true", "onEnter"), beep in ("true", "onExit")
    member = {"join_muted": muted, "join_deaf": False}
    config: dict[str, object] = {
        "name": room,
        "play_welcome": False,
        "wait_for_moderator": not start,
        "member": member,
        "moderator": dict(member),
        "play_entry_tone": entry,
        "play_exit_tone": leave,
    }
    if na.get("maxParticipants") is not None:
        config["max_participants"] = attrs.integer(
            noun, na, st, "maxParticipants", 250, "conference-max", minimum=2, maximum=250
        )
    scope = f"{st.ctx.account_id}:{room}".encode()
    data: dict[str, object] = {
        "id": hashlib.md5(scope, usedforsecurity=False).hexdigest(),
        "moderator": start,
        "play_entry_tone": entry,
        "play_exit_tone": leave,
        "welcome_prompt": {"play": False},
        "config": config,
    }
    return st.node(noun, "conference", data)


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


def dial(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    a = attrs.read(element, st)
    method = attrs.method(element, a, st, "13210")
    timeout = attrs.integer(element, a, st, "timeout", 30, "13212", minimum=1, maximum=3600)
    strategy = attrs.choice(
        element, a, st, "strategy", ("simultaneous", "single"), "simultaneous", "dial-strategy"
    )
    attrs.unsupported(element, a, st, "timeLimit", "Kazoo's dial modules have no call time limit")
    attrs.unsupported(
        element, a, st, "hangupOnStar", "Kazoo's dial modules cannot end a bridge on *", unless=("false",)
    )
    attrs.unsupported(element, a, st, "hangupOn", "Kazoo's dial modules cannot end a bridge on a key")
    attrs.unsupported(
        element, a, st, "answerOnBridge", "Kazoo answers as its modules decide", unless=("false",)
    )
    attrs.unsupported(element, a, st, "ringTone", "use Kazoo's ringback settings")
    attrs.unsupported(
        element, a, st, "sequential", "Kazoo rings a <Dial>'s endpoints together", unless=("false",)
    )
    attrs.unsupported(element, a, st, "recordingStatusCallback", "no recording status callbacks on Kazoo")

    nouns = [child for child in element if isinstance(child.tag, str)]
    text = attrs.own_text(element)
    if text and nouns:
        st.error(
            element,
            attrs.SCHEMA_WARNING,
            "<Dial> holds either a number or nouns, not both",
            Reason.SCHEMA_ERROR,
        )
        return Step([], terminal=True)
    if not text and not nouns:
        st.error(element, "13224", "<Dial> has nothing to dial", Reason.SCHEMA_ERROR)
        return Step([], terminal=True)
    errors_before = len(st.errors)
    for noun in nouns:
        if noun.tag in UNSUPPORTED_DIAL_NOUNS:
            st.error(
                noun,
                "unsupported-noun",
                f"<{noun.tag}>: {UNSUPPORTED_DIAL_NOUNS[noun.tag]}",
                Reason.UNSUPPORTED_VERB,
            )
        elif noun.tag not in _NOUNS:
            st.error(
                noun, attrs.SCHEMA_WARNING, f"<{noun.tag}> cannot be nested in <Dial>", Reason.SCHEMA_ERROR
            )
    if len(st.errors) > errors_before:
        return Step([], terminal=True)

    kinds = {str(n.tag) for n in nouns}
    if "Conference" in kinds:
        if len(nouns) > 1:
            st.error(
                element,
                attrs.SCHEMA_WARNING,
                "<Conference> must be the only noun in its <Dial>",
                Reason.SCHEMA_ERROR,
            )
            return Step([], terminal=True)
        if a.get("action"):
            st.warn(
                element, "kazoo-unsupported", "action is ignored: Kazoo's conference module keeps the call"
            )
        node = _conference(nouns[0], st)
        return Step([node] if node else [], terminal=True)

    prefix: list[Node] = []
    caller_id = a.get("callerId")
    if caller_id is not None:
        if _NUMBER.match(caller_id.strip()):
            prefix.append(st.node(element, "set_cid", {"caller_id_number": caller_id.strip()}))
        else:
            st.warn(
                element, "13214", f"callerId={caller_id!r} is not a phone number; the caller's number is kept"
            )
    record = a.get("record")
    if record is not None and record not in _RECORD_ON and record not in ("false", "do-not-record"):
        st.warn(element, "dial-record", f"record={record!r} is not a Twilio record mode; not recording")
    elif record in _RECORD_ON:
        # "from answer" means from when the dialled party answers, i.e. the bridge.
        data: dict[str, object] = {
            "action": "start",
            "format": "mp3",
            "record_on_bridge": not record.startswith("record-from-ringing"),
        }
        if st.ctx.recording_url:
            data["url"] = st.url(element, st.ctx.recording_url, "PIVOT_RECORDING_URL")
        prefix.append(st.node(element, "record_call", data))

    offnet = False
    if text or kinds == {"Number"}:
        if len(nouns) > 1:
            st.error(
                element,
                "dial-several-numbers",
                "Kazoo can dial only one number per <Dial>",
                Reason.UNSUPPORTED_VERB,
            )
            return Step([], terminal=True)
        if nouns:
            na = attrs.read(nouns[0], st)
            attrs.unsupported(
                nouns[0], na, st, "sendDigits", "Kazoo cannot send digits once the number answers"
            )
            attrs.unsupported(nouns[0], na, st, "url", "Kazoo cannot play a whisper to the called party")
        number = _number(nouns[0] if nouns else element, st, (nouns[0].text or "") if nouns else text)
        if number is None:
            return Step([], terminal=True)
        target = st.node(element, "resources", {"to_did": number, "timeout": timeout})
        offnet = True
    elif "Number" in kinds:
        st.error(
            element,
            "dial-mixed",
            "Kazoo cannot ring numbers and users/devices in one <Dial>",
            Reason.UNSUPPORTED_VERB,
        )
        return Step([], terminal=True)
    else:
        ids = [(str(n.tag).lower(), _endpoint_id(n, st)) for n in nouns]
        if any(i is None for _, i in ids):
            return Step([], terminal=True)
        if len(ids) == 1 and ids[0][0] == "user":
            target = st.node(element, "user", {"id": ids[0][1], "timeout": timeout, "strategy": strategy})
        elif len(ids) == 1:
            target = st.node(
                element, "device", {"id": ids[0][1], "timeout": timeout, "dial_strategy": strategy}
            )
        else:
            endpoints = [{"endpoint_type": kind, "id": i, "timeout": timeout} for kind, i in ids]
            target = st.node(
                element, "ring_group", {"endpoints": endpoints, "timeout": timeout, "strategy": strategy}
            )

    action = a.get("action")
    if action:
        url = st.url(element, action, "<Dial> action")
        outcome = {
            status: st.callback(element, url, method, continuation.DIAL, dial_status=status)
            for status in ("busy", "no-answer", "failed")
        }
        by_cause = dict.fromkeys(BUSY_CAUSES, outcome["busy"]) | dict.fromkeys(
            NO_ANSWER_CAUSES, outcome["no-answer"]
        )
        target["children"] = _failure_children(by_cause, offnet, outcome["failed"])
    elif rest:
        if offnet:
            resume = st.callback(
                element,
                st.ctx.document_url,
                "post",
                continuation.RESUME,
                remaining=remaining_twiml(rest),
            )
            by_cause = dict.fromkeys(BUSY_CAUSES + NO_ANSWER_CAUSES, resume)
            target["children"] = _failure_children(by_cause, offnet, resume)
        else:
            target["children"] = {"_": st.walk(rest, st)}
    return Step([*prefix, target], terminal=True, consumed=True)
