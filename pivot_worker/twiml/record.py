"""``<Record>``: an optional beep, Kazoo's ``record_caller``, then the action as a nested pivot.

``record_caller`` stores the file with an HTTP PUT to ``<storage URL>/<call-id>.mp3`` (Kazoo
names the file after the call and strips a trailing ``/`` from the URL), so the translator knows
``RecordingUrl`` in advance and carries it to the action request in the continuation token.
The storage URL is the Kazoo ``recordingUrl`` attribute when present, else
``PIVOT_RECORDING_URL``. Kazoo cannot report the duration, the key that ended the recording, or
stop on silence: see docs/twiml.md.
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


def record(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    a = attrs.read(element, st)
    method = attrs.method(element, a, st, "13610")
    max_length = attrs.integer(element, a, st, "maxLength", 3600, "13612", minimum=1)
    beep = attrs.boolean(element, a, st, "playBeep", True, "record-playbeep")
    if a.get("timeout") is not None:
        attrs.integer(element, a, st, "timeout", 5, "13611", minimum=0)
        st.warn(
            element,
            "kazoo-unsupported",
            "timeout is ignored: Kazoo's record_caller does not stop on silence, only on a key, "
            "a hang-up or maxLength",
        )
    key = a.get("finishOnKey")
    if key is not None and set(key) != set(DTMF_KEYS):
        st.warn(
            element, "kazoo-unsupported", f"finishOnKey={key!r} is ignored: any key ends a Kazoo recording"
        )
    attrs.unsupported(
        element, a, st, "transcribe", "Kazoo's callflow engine cannot transcribe", unless=("false",)
    )
    attrs.unsupported(element, a, st, "transcribeCallback", "Kazoo's callflow engine cannot transcribe")
    attrs.unsupported(element, a, st, "recordingStatusCallback", "no recording status callbacks on Kazoo")
    attrs.unsupported(element, a, st, "trim", "Kazoo does not trim silence", unless=("do-not-trim",))
    if any(isinstance(child.tag, str) for child in element):
        st.warn(element, attrs.SCHEMA_WARNING, "<Record> takes no nested elements; they are ignored")

    time_limit = min(max(max_length, MIN_TIME_LIMIT_S), MAX_TIME_LIMIT_S)
    if time_limit != max_length:
        st.warn(element, "13612", f"maxLength={max_length} is outside Kazoo's 5..10800 s; using {time_limit}")

    custom = a.get("recordingUrl")
    storage = st.url(element, custom, "<Record> recordingUrl") if custom else ""
    if not storage and st.ctx.recording_url:
        storage = st.url(element, st.ctx.recording_url, "PIVOT_RECORDING_URL")
    data: dict[str, object] = {"format": RECORDING_FORMAT, "time_limit": time_limit, "method": "put"}
    location = ""
    if storage:
        data["url"] = storage
        location = recording_location(storage, st.bind_to_call())
    else:
        st.warn(
            element,
            "record-storage",
            "no recordingUrl attribute and no PIVOT_RECORDING_URL: Kazoo keeps the recording only if the "
            "account stores recordings itself, and RecordingUrl is not sent",
        )

    nodes: list[Node] = []
    if beep:
        nodes.append(st.node(element, "play", {"id": BEEP, "terminators": []}))
    nodes.append(st.node(element, "record_caller", data))
    action = st.url(element, a.get("action") or st.ctx.document_url, "<Record> action")
    nodes.append(st.callback(element, action, method, continuation.RECORD, recording_url=location))
    return Step(nodes, terminal=True)
