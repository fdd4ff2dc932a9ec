"""A multi-step IVR where every request is served by a different, fresh worker.

Nothing is shared between the "workers" below except the continuation key: each one rebuilds its
context from the pivot_req it receives (the Voice-URI with its token, the Call with Kazoo's KVS),
exactly as the worker core does. Kazoo's part is simulated: it runs the callflow, stores the
digits under the collection the flow named, and sends the nested pivot node's voice_url back.
"""

from __future__ import annotations

from typing import Any

from pivot_worker.twiml import TwimlContext, open_continuation, plan_followup, translate_twiml
from tests.kazoo_conformance import assert_flow_conforms

from .support import CALL_ID, KEY, allow_all, modules_along, pivot_nodes

START = "https://ivr.example.com/app/start?tenant=7"
SERVER: dict[str, bytes] = {
    "https://ivr.example.com/app/start?tenant=7": b"""<Response>
        <Set><Variable key="caller_tier" value="gold"/></Set>
        <Gather action="choice" numDigits="1"><Say>Press 1 for sales, 2 to leave a message.</Say></Gather>
        <Say>We did not get your choice.</Say>
        <Redirect>start?tenant=7</Redirect>
    </Response>""",
    "https://ivr.example.com/app/choice": b"""<Response>
        <Say>Leave your message after the beep.</Say>
        <Record action="/voicemail/saved" maxLength="60"/>
    </Response>""",
    "https://ivr.example.com/voicemail/saved": b"<Response><Say>Thanks. Goodbye.</Say><Hangup/></Response>",
}


class Worker:
    """One stateless worker: everything it knows comes from the request in front of it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def serve(self, voice_uri: str, call: dict[str, Any]) -> dict[str, Any]:
        url, cont = open_continuation(voice_uri, key=KEY)
        params: dict[str, Any] = {}
        body: bytes
        document_url = url
        if cont is None:
            body = SERVER[url]
        else:
            plan = plan_followup(cont, call, "twiml")
            if plan.local_document is not None:
                body = plan.local_document
                document_url = plan.document_url or url
            else:
                params = plan.params
                body = SERVER[url]
        self.requests.append((url, params))
        ctx = TwimlContext(
            document_url=document_url,
            request_format="twiml",
            request_body_format="form",
            call_id=call["Call-ID"],
            continuation=cont,
            continuation_key=KEY,
            max_iterations=50,
            recording_url="https://store.example.com/vm",
            check_url=allow_all,
        )
        flow = translate_twiml(body, ctx).flow
        assert_flow_conforms(flow)
        return flow


def _kazoo_runs(flow: dict[str, Any], call: dict[str, Any], pressed: str) -> str:
    """Run the flow as Kazoo would up to its nested pivot node; return that node's voice_url."""
    node = flow
    while node["module"] != "pivot":
        if (
            node["module"] == "collect_dtmf"
            and pressed
            and node["data"]["collection_name"] != "pivot_discard"
        ):
            call["Key-Value-Store"]["dtmf_collections"][node["data"]["collection_name"]] = pressed
        node = node["children"]["_"]
    return str(node["data"]["voice_url"])


def _call() -> dict[str, Any]:
    return {
        "Call-ID": CALL_ID,
        "From-User": "1001",
        "To-User": "2000",
        "Key-Value-Store": {"dtmf_collections": {}},
    }


def test_menu_gather_record_hangup_across_three_workers() -> None:
    call = _call()
    a, b, c = Worker("a"), Worker("b"), Worker("c")

    menu = a.serve(START, call)
    choice_uri = _kazoo_runs(menu, call, pressed="2")
    assert choice_uri.startswith("https://ivr.example.com/app/choice?_pivot_k=")

    record = b.serve(choice_uri, call)
    assert b.requests == [
        (
            "https://ivr.example.com/app/choice",
            {
                "caller_tier": "gold",
                "Caller": "1001",
                "Called": "2000",
                "CallStatus": "in-progress",
                "Digits": "2",
            },
        )
    ]
    assert modules_along(record)[:4] == ["tts", "play", "record_caller", "pivot"]
    saved_uri = _kazoo_runs(record, call, pressed="")

    goodbye = c.serve(saved_uri, call)
    url, params = c.requests[0]
    assert url == "https://ivr.example.com/voicemail/saved"
    assert params["RecordingUrl"] == f"https://store.example.com/vm/{CALL_ID}.mp3"
    assert params["caller_tier"] == "gold"
    assert modules_along(goodbye) == ["tts", "hangup"]


def test_no_input_continues_with_the_next_verbs_without_a_fetch() -> None:
    call = _call()
    first, second, third = Worker("a"), Worker("b"), Worker("c")
    menu = first.serve(START, call)
    choice_uri = _kazoo_runs(menu, call, pressed="")

    retry = second.serve(choice_uri, call)
    # No digits: the verbs after the Gather ran from the token; the developer's server was not called
    # (the worker recorded the request URL but no params, and SERVER["choice"] was not used).
    assert second.requests == [("https://ivr.example.com/app/choice", {})]
    assert modules_along(retry) == ["tts", "pivot", "hangup"]
    # The relative Redirect resolved against the original document, and the loop goes on.
    again_uri = pivot_nodes(retry)[0]["data"]["voice_url"]
    assert again_uri.startswith("https://ivr.example.com/app/start?tenant=7&_pivot_k=")
    third.serve(again_uri, call)
    assert third.requests == [
        (START, {"caller_tier": "gold", "Caller": "1001", "Called": "2000", "CallStatus": "in-progress"})
    ]


def test_digits_of_an_earlier_gather_never_leak() -> None:
    call = _call()
    first = Worker("a").serve(START, call)
    retry_uri = _kazoo_runs(first, call, pressed="1")  # round 1: "1" stored under pivot_g1
    assert call["Key-Value-Store"]["dtmf_collections"] == {"pivot_g1": "1"}
    # Round 2 (the same menu served again as request 2): its Gather collects into pivot_g2.
    _, cont = open_continuation(retry_uri, key=KEY)
    assert cont is not None
    worker = Worker("b")
    second = worker.serve(START + "&_pivot_k=" + retry_uri.split("_pivot_k=")[1], call)
    collect = [n for n in _nodes(second) if n["module"] == "collect_dtmf"]
    assert collect[-1]["data"]["collection_name"] == "pivot_g2"
    next_uri = _kazoo_runs(second, call, pressed="")  # nothing pressed this time
    _, cont2 = open_continuation(next_uri, key=KEY)
    assert cont2 is not None and cont2.collection == "pivot_g2"
    # The stale "1" in pivot_g1 does not count: no input, so the verbs after the Gather run.
    assert plan_followup(cont2, call, "twiml").local_document is not None


def _nodes(flow: dict[str, Any]) -> list[dict[str, Any]]:
    out, stack = [], [flow]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.get("children", {}).values())
    return out
