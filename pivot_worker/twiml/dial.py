"""``<Dial>``: numbers through ``resources``, Kazoo users and devices, or an ad-hoc conference.

Kazoo's ``resources``, ``user``, ``device`` and ``ring_group`` modules stop the callflow after a
successful bridge and, on failure, look for a child named after the hangup cause (then, except
``resources``, fall back to ``_``). So the callflow itself only knows the failure cause: each
failure child is a nested pivot whose token carries ``DialCallStatus`` (``busy``, ``no-answer``
or ``failed``), or the verbs after the Dial.

What follows an answered Dial needs the operator's after-dial extension
(``PIVOT_AFTER_DIAL_EXTENSION``, see :mod:`.after_dial`): the flow then arms Kazoo's transfer after
the bridge and keeps the continuation in the call's variables. Without it, an answered Dial ends
the call, and a Dial whose action or following verbs would be lost says so in a warning.

The translation runs in steps: check the nouns, read the attributes, build the nodes placed before
the dial node, choose what to ring (:mod:`.dial_nouns`), then link the dial nodes to each other
(``sequential``) and the last one to the failure path.
"""

from __future__ import annotations

import itertools

from lxml import etree

from ..errors import Reason
from . import attrs, continuation
from .after_dial import CALL_VAR, NOTHING_FOLLOWS
from .conference import conference
from .dial_nouns import NUMBER, Ringing, Target, choose_targets
from .gather import remaining_twiml
from .ringtones import RINGBACK
from .state import Node, State, Step, Template
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

RECORD_TIME_LIMIT = 10800
"""``record_call.time_limit``: Kazoo's largest (``callflows.record_call``, and the default
``max_recording_time_limit`` of ``kz_media_util``); its default of 3600 would cut long calls."""

_RECORD_ON = (
    "true",
    "record-from-answer",
    "record-from-ringing",
    "record-from-answer-dual",
    "record-from-ringing-dual",
)
_RECORD_OFF = ("false", "do-not-record")
_NOUNS = ("Number", "User", "Device", "Conference")
_ANSWER = Template("answer", {})

_NO_KEYS = "Kazoo listens for no key to end a bridge or leave a room"
_NO_RECORDING_CALLBACK = "Kazoo's record_call reports nothing to a URL"
_NO_REFER = "Kazoo's dial modules do not hand a SIP REFER from the called party to a document"
_UNSUPPORTED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("timeLimit", "no Kazoo dial or conference module has a call duration limit", ()),
    ("hangupOnStar", _NO_KEYS, ("false",)),
    ("hangupOn", _NO_KEYS, ()),
    ("recordingStatusCallback", _NO_RECORDING_CALLBACK, ()),
    ("recordingStatusCallbackMethod", _NO_RECORDING_CALLBACK, ()),
    ("recordingStatusCallbackEvent", _NO_RECORDING_CALLBACK, ()),
    ("recordingConfigurationId", "Twilio recording configurations do not exist on Kazoo", ()),
    ("recordingTrack", "Kazoo's record_call always records both directions", ("both",)),
    ("trim", "Kazoo's record_call cannot trim silence", ("do-not-trim",)),
    ("referUrl", _NO_REFER, ()),
    ("referMethod", _NO_REFER, ()),
    ("events", "Kazoo's dial modules report no call progress events", ()),
    ("passports", "Kazoo's dial modules cannot attach a STIR/SHAKEN PASSporT", ()),
    ("continueOnFail", "a failed dial always goes on with the action or the next verbs", ("true",)),
)
"""``<Dial>`` attributes Kazoo cannot honour: name, why, values that need no warning."""

_NOT_FOR_CONFERENCE = ("timeout", "callerId", "strategy", "sequential", "ringTone", "answerOnBridge")


class DialOptions:
    """The ``<Dial>`` attributes that shape the dial nodes and what follows them."""

    __slots__ = ("action", "answer_on_bridge", "method", "ringing")

    def __init__(self, action: str, method: str, ringing: Ringing, *, answer_on_bridge: bool) -> None:
        self.action = action
        """The ``action`` attribute as written (``""`` when absent)."""
        self.method = method
        self.ringing = ringing
        self.answer_on_bridge = answer_on_bridge


def dial(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    a = attrs.read(element, st)
    nouns = _checked_nouns(element, st)
    if nouns is None:
        return Step([], terminal=True)
    if any(noun.tag == "Conference" for noun in nouns):
        return _conference_step(element, a, st, nouns)
    options = _read_options(element, a, st)
    before = nodes_before_dial(element, a, st, options, rest)
    targets = choose_targets(element, st, nouns, options.ringing)
    if targets is None:
        return Step([], terminal=True)
    for current, following in itertools.pairwise(targets):
        current.node["children"] = _next_children(current, following.node)
    _attach_continuation(element, st, targets[-1], options, rest)
    return Step([*before, targets[0].node], terminal=True, consumed=True)


# -- attributes and nouns ----------------------------------------------------------------------


def _read_options(element: etree._Element, a: attrs.Values, st: State) -> DialOptions:
    method = attrs.method(element, a, st, "13210")
    answer_on_bridge = attrs.boolean(element, a, st, "answerOnBridge", False, "dial-answer-on-bridge")
    ringing = Ringing(
        attrs.integer(element, a, st, "timeout", 30, "13212", minimum=1, maximum=3600),
        attrs.choice(element, a, st, "strategy", ("simultaneous", "single"), "simultaneous", "dial-strategy"),
        sequential=attrs.boolean(element, a, st, "sequential", False, "dial-sequential"),
        ringback=_ringback(element, a, st, answered=not answer_on_bridge),
    )
    _warn_unsupported(element, a, st)
    return DialOptions(a.get("action") or "", method, ringing, answer_on_bridge=answer_on_bridge)


def _ringback(element: etree._Element, a: attrs.Values, st: State, *, answered: bool) -> str | None:
    """The ``ringback`` tone for Twilio's ``ringTone`` country code (None: Kazoo's default).

    FreeSWITCH plays ``ringback`` only to a caller not answered yet; an answered caller hears
    ``transfer_ringback``, which Kazoo sets when it routes the call and no dial module changes.
    """
    raw = a.get("ringTone")
    if raw is None:
        return None
    tone = RINGBACK.get(raw.strip())
    if tone is None:
        st.warn(
            element,
            "dial-ringtone",
            f"ringTone={raw!r} is not one of Twilio's country codes; Kazoo's default ringback plays",
        )
    elif answered:
        st.warn(
            element,
            "kazoo-unsupported",
            f"ringTone={raw!r} is ignored: the caller is answered before this Dial (answerOnBridge is "
            'not "true"), and an answered caller hears the ringback Kazoo set when it routed the call; '
            "Kazoo's dial modules only set the tone for a caller not answered yet",
        )
        return None
    return tone


def _warn_unsupported(element: etree._Element, a: attrs.Values, st: State) -> None:
    for name, why, harmless in _UNSUPPORTED:
        attrs.unsupported(element, a, st, name, why, unless=harmless)


def _checked_nouns(element: etree._Element, st: State) -> list[etree._Element] | None:
    """The Dial's nouns, or None after a located error (text and nouns, nothing, a wrong noun)."""
    nouns = [child for child in element if isinstance(child.tag, str)]
    text = attrs.own_text(element)
    if text and nouns:
        st.error(
            element,
            attrs.SCHEMA_WARNING,
            "<Dial> holds either a number or nouns, not both",
            Reason.SCHEMA_ERROR,
        )
        return None
    if not text and not nouns:
        st.error(element, "13224", "<Dial> has nothing to dial", Reason.SCHEMA_ERROR)
        return None
    errors_before = len(st.errors)
    for noun in nouns:
        _check_noun(noun, st)
    return nouns if len(st.errors) == errors_before else None


def _check_noun(noun: etree._Element, st: State) -> None:
    if noun.tag in UNSUPPORTED_DIAL_NOUNS:
        st.error(
            noun,
            "unsupported-noun",
            f"<{noun.tag}>: {UNSUPPORTED_DIAL_NOUNS[noun.tag]}",
            Reason.UNSUPPORTED_VERB,
        )
    elif noun.tag not in _NOUNS:
        st.error(noun, attrs.SCHEMA_WARNING, f"<{noun.tag}> cannot be nested in <Dial>", Reason.SCHEMA_ERROR)


# -- conference --------------------------------------------------------------------------------


def _conference_step(
    element: etree._Element, a: attrs.Values, st: State, nouns: list[etree._Element]
) -> Step:
    """``cf_conference`` hands the call to the conference application: nothing follows it."""
    if len(nouns) > 1:
        st.error(
            element,
            attrs.SCHEMA_WARNING,
            "<Conference> must be the only noun in its <Dial>",
            Reason.SCHEMA_ERROR,
        )
        return Step([], terminal=True)
    _warn_conference_dial(element, a, st)
    node = conference(nouns[0], st)
    return Step([node] if node else [], terminal=True)


def _warn_conference_dial(element: etree._Element, a: attrs.Values, st: State) -> None:
    if a.get("action"):
        st.warn(
            element,
            "kazoo-unsupported",
            "action is ignored: Kazoo's conference module keeps the call until it hangs up",
        )
    attrs.unsupported(
        element,
        a,
        st,
        "record",
        "Kazoo's conference application records no room (its conferences document has no recording setting)",
        unless=_RECORD_OFF,
    )
    _warn_unsupported(element, a, st)
    for name in _NOT_FOR_CONFERENCE:
        if name in a:
            st.warn(element, attrs.SCHEMA_WARNING, f"{name}={a[name]!r} has no effect on a <Conference>")


# -- nodes before the dial node ----------------------------------------------------------------


def nodes_before_dial(
    element: etree._Element,
    a: attrs.Values,
    st: State,
    options: DialOptions,
    rest: list[etree._Element],
) -> list[Node]:
    """The nodes placed before the dial node, in order: what follows an answered dial, the
    answer (Twilio's ``answerOnBridge="false"``), caller id, then recording."""
    nodes = _after_dial_nodes(element, st, options, rest)
    if not options.answer_on_bridge:
        nodes.append(st.fixed_node(element, _ANSWER))
    caller_id = _caller_id(element, a, st)
    if caller_id is not None:
        nodes.append(caller_id)
    recording = _record_call(element, a, st)
    if recording is not None:
        nodes.append(recording)
    return nodes


def _after_dial_nodes(
    element: etree._Element, st: State, options: DialOptions, rest: list[etree._Element]
) -> list[Node]:
    """Arm Kazoo's transfer after the bridge, with the continuation in the call's variables.

    ``cf_after_bridge`` sets ``Transfer-After-Pickup`` (FreeSWITCH's ``transfer_after_bridge``):
    when the called party hangs up, the caller goes to the operator's after-dial extension, whose
    pivot node reads ``Custom-Application-Vars.pivot_after_dial`` (see :mod:`.after_dial`).
    """
    extension = st.ctx.after_dial_extension
    if not extension:
        _warn_answered_dial_ends_call(element, st, options, rest)
        return []
    value = _after_dial_value(element, st, options, rest)
    return [
        st.node(element, "set_variables", {"custom_application_vars": {CALL_VAR: value}}),
        st.node(element, "after_bridge", {"action": "transfer", "data": extension}),
    ]


def _after_dial_value(
    element: etree._Element, st: State, options: DialOptions, rest: list[etree._Element]
) -> str:
    """A token for the action (``DialCallStatus=completed``) or the verbs after the Dial, or ``-``."""
    if options.action:
        url = st.url(element, options.action, "<Dial> action")
        return st.token(
            element, continuation.AFTER_DIAL, url=url, method=options.method, dial_status="completed"
        )
    if rest:
        return st.token(
            element, continuation.AFTER_DIAL, remaining=remaining_twiml(rest), base_url=st.ctx.document_url
        )
    return NOTHING_FOLLOWS


def _warn_answered_dial_ends_call(
    element: etree._Element, st: State, options: DialOptions, rest: list[etree._Element]
) -> None:
    if options.action:
        what = "the action is requested only when the dial fails"
    elif rest:
        what = "the verbs after it run only when the dial fails"
    else:
        return
    st.warn(
        element,
        "kazoo-unsupported",
        "an answered <Dial> ends the call when the bridge ends (Kazoo's dial modules stop the "
        f"callflow) unless the operator sets PIVOT_AFTER_DIAL_EXTENSION: {what}",
    )


def _caller_id(element: etree._Element, a: attrs.Values, st: State) -> Node | None:
    caller_id = a.get("callerId")
    if caller_id is None:
        return None
    if NUMBER.match(caller_id.strip()):
        return st.node(element, "set_cid", {"caller_id_number": caller_id.strip()})
    st.warn(element, "13214", f"callerId={caller_id!r} is not a phone number; the caller's number is kept")
    return None


def _record_call(element: etree._Element, a: attrs.Values, st: State) -> Node | None:
    record = a.get("record")
    if record is None or record in _RECORD_OFF:
        return None
    if record not in _RECORD_ON:
        st.warn(element, "dial-record", f"record={record!r} is not a Twilio record mode; not recording")
        return None
    # "from answer" means from when the dialled party answers, i.e. the bridge.
    data: dict[str, object] = {
        "action": "start",
        "format": "mp3",
        "record_on_bridge": not record.startswith("record-from-ringing"),
        "time_limit": RECORD_TIME_LIMIT,
        # Twilio records the dialled conversation only: the recording must not follow the
        # after-dial transfer into what the caller does next.
        "should_follow_transfer": False,
    }
    if st.ctx.recording_url:
        data["url"] = st.url(element, st.ctx.recording_url, "PIVOT_RECORDING_URL")
    return st.node(element, "record_call", data)


# -- what follows a failed dial ----------------------------------------------------------------


def _next_children(target: Target, following: Node) -> dict[str, Node]:
    """``sequential``: every failure of ``target`` goes on with the next dial node."""
    if not target.offnet:
        return {"_": following}
    return _failure_children(dict.fromkeys(BUSY_CAUSES + NO_ANSWER_CAUSES, following), True, following)


def _attach_continuation(
    element: etree._Element, st: State, target: Target, options: DialOptions, rest: list[etree._Element]
) -> None:
    """Give the last dial node the failure children that request the action or run the next verbs."""
    if options.action:
        url = st.url(element, options.action, "<Dial> action")
        target.node["children"] = _action_children(element, st, url, options.method, target.offnet)
    elif rest:
        target.node["children"] = _resume_children(element, st, target.offnet, rest)


def _action_children(
    element: etree._Element, st: State, url: str, method: str, offnet: bool
) -> dict[str, Node]:
    outcome = {
        status: st.callback(element, url, method, continuation.DIAL, dial_status=status)
        for status in ("busy", "no-answer", "failed")
    }
    by_cause = dict.fromkeys(BUSY_CAUSES, outcome["busy"]) | dict.fromkeys(
        NO_ANSWER_CAUSES, outcome["no-answer"]
    )
    return _failure_children(by_cause, offnet, outcome["failed"])


def _resume_children(
    element: etree._Element, st: State, offnet: bool, rest: list[etree._Element]
) -> dict[str, Node]:
    if not offnet:
        return {"_": st.walk(rest, st)}
    resume = st.callback(
        element, st.ctx.document_url, "post", continuation.RESUME, remaining=remaining_twiml(rest)
    )
    return _failure_children(dict.fromkeys(BUSY_CAUSES + NO_ANSWER_CAUSES, resume), offnet, resume)


def _failure_children(targets: dict[str, Node], offnet: bool, failed: Node) -> dict[str, Node]:
    children = dict(targets)
    if offnet:
        children.update(dict.fromkeys(FAILED_CAUSES, failed))
    children["_"] = failed
    return children
