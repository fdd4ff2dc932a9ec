"""``<Record>``: an optional beep, Kazoo's ``record_caller``, then the action as a nested pivot.

``record_caller`` stores the file with an HTTP PUT to ``<storage URL>/<call-id>.mp3`` (Kazoo
names the file after the call and strips a trailing ``/`` from the URL), so the translator knows
``RecordingUrl`` in advance and carries it to the action request in the continuation token.
The storage URL is the Kazoo ``recordingUrl`` attribute when present, else
``PIVOT_RECORDING_URL``.

What ``cf_record_caller`` does, and therefore what can be honoured: it runs
``kapps_call_command:b_record(Media, ?ANY_DIGIT, TimeLimit, Call)``, that is FreeSWITCH's
``record`` with every key as a terminator and the default silence detection (threshold 200,
5 "hits", which FreeSWITCH counts in seconds): the recording ends on any key, on 5 s of silence,
at ``time_limit`` or on hang-up. Twilio's default ``timeout`` (5 s of silence) and
``finishOnKey`` (any key) are therefore exact; other values are not (``callflows.record_caller``
has no field for them). It discards ``b_record``'s result and stores nothing in the call's KVS or
channel variables, so the next request cannot learn the duration, the key pressed, or whether
the recording is empty: Twilio's "an empty recording goes on with the next verb" cannot be
decided, and the action is always requested. See docs/twiml.md.
"""

from __future__ import annotations

from lxml import etree

from . import attrs, continuation
from .attrs import DTMF_KEYS
from .state import Node, State, Step

BEEP = "tone_stream://%(500,100,440)"
MIN_TIME_LIMIT_S = 5  # callflows.record_caller
MAX_TIME_LIMIT_S = 10800
RECORDING_FORMAT = "mp3"


def recording_location(storage_url: str, call_id: str) -> str:
    """Where Kazoo puts the file: ``<storage URL without trailing />/<call-id>.mp3``."""
    return f"{storage_url.rstrip('/')}/{call_id}.{RECORDING_FORMAT}"


SILENCE_TIMEOUT_S = 5
"""Seconds of silence that end a Kazoo recording (``b_record``'s 5 silence hits); Twilio's default."""


def record(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    a = attrs.read(element, st)
    method = attrs.method(element, a, st, "13610")
    max_length = attrs.integer(element, a, st, "maxLength", 3600, "13612", minimum=1)
    beep = attrs.boolean(element, a, st, "playBeep", True, "record-playbeep")
    _check_ending(element, a, st)
    _check_unsupported(element, a, st)
    if any(isinstance(child.tag, str) for child in element):
        st.warn(element, attrs.SCHEMA_WARNING, "<Record> takes no nested elements; they are ignored")

    time_limit = min(max(max_length, MIN_TIME_LIMIT_S), MAX_TIME_LIMIT_S)
    if time_limit != max_length:
        st.warn(element, "13612", f"maxLength={max_length} is outside Kazoo's 5..10800 s; using {time_limit}")
    data, location = _record_data(element, a, st, time_limit)

    nodes: list[Node] = []
    if beep:
        nodes.append(st.node(element, "play", {"id": BEEP, "terminators": []}))
    nodes.append(st.node(element, "record_caller", data))
    action = st.url(element, a.get("action") or st.ctx.document_url, "<Record> action")
    nodes.append(st.callback(element, action, method, continuation.RECORD, recording_url=location))
    if rest:
        _warn_after_record(rest[0], st)
    return Step(nodes, terminal=True, consumed=True)


def _check_ending(element: etree._Element, a: attrs.Values, st: State) -> None:
    """``timeout`` and ``finishOnKey``: Kazoo ends on 5 s of silence and on any key, Twilio's defaults."""
    if a.get("timeout") is not None:
        timeout = attrs.integer(element, a, st, "timeout", SILENCE_TIMEOUT_S, "13611", minimum=0)
        if timeout != SILENCE_TIMEOUT_S:
            st.warn(
                element,
                "kazoo-unsupported",
                f"timeout={a.get('timeout')!r} is ignored: Kazoo's record_caller always ends a recording "
                f"after {SILENCE_TIMEOUT_S} s of silence",
            )
    key = a.get("finishOnKey")
    if key is not None and set(key) != set(DTMF_KEYS):
        st.warn(
            element,
            "kazoo-unsupported",
            f"finishOnKey={key!r} is ignored: Kazoo's record_caller ends a recording on any key",
        )


def _check_unsupported(element: etree._Element, a: attrs.Values, st: State) -> None:
    attrs.unsupported(
        element, a, st, "transcribe", "Kazoo's callflow engine cannot transcribe", unless=("false",)
    )
    attrs.unsupported(element, a, st, "transcribeCallback", "Kazoo's callflow engine cannot transcribe")
    attrs.unsupported(element, a, st, "recordingStatusCallback", "no recording status callbacks on Kazoo")
    attrs.unsupported(
        element, a, st, "recordingConfigurationId", "Twilio recording configurations do not exist on Kazoo"
    )
    if a.get("trim", "trim-silence").strip() != "do-not-trim":
        st.warn(
            element,
            "kazoo-unsupported",
            f"trim={a.get('trim', 'trim-silence')!r} (Twilio's default) is not honoured: Kazoo's "
            'record_caller keeps leading and trailing silence (trim="do-not-trim" asks for exactly that)',
        )


def _record_data(
    element: etree._Element, a: attrs.Values, st: State, time_limit: int
) -> tuple[dict[str, object], str]:
    """``record_caller``'s data, and the recording's location (``""`` when it is not known)."""
    custom = a.get("recordingUrl")
    storage = st.url(element, custom, "<Record> recordingUrl") if custom else ""
    if not storage and st.ctx.recording_url:
        storage = st.url(element, st.ctx.recording_url, "PIVOT_RECORDING_URL")
    data: dict[str, object] = {"format": RECORDING_FORMAT, "time_limit": time_limit, "method": "put"}
    if not storage:
        st.warn(
            element,
            "record-storage",
            "no recordingUrl attribute and no PIVOT_RECORDING_URL: Kazoo keeps the recording only if the "
            "account stores recordings itself, and RecordingUrl is not sent",
        )
        return data, ""
    data["url"] = storage
    return data, recording_location(storage, st.bind_to_call())


def _warn_after_record(following: etree._Element, st: State) -> None:
    """Twilio runs the verbs after ``<Record>`` when nothing was recorded; here they never run."""
    st.warn(
        following,
        "kazoo-unsupported",
        "verbs after <Record> never run: Twilio runs them when the recording is empty, but Kazoo's "
        "record_caller tells the next request nothing about the recording (no duration, no silence "
        "flag), so the action is always requested",
    )
