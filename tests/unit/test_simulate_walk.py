"""The simulator's flow walker: what Kazoo's engine would run, on hand-written and translated flows."""

from __future__ import annotations

from typing import Any

import pytest

from pivot_worker import contracts
from pivot_worker.simulate import build_call, build_pivot_req
from pivot_worker.simulate_walk import CallState, Step, Stop, parse_digits, shown_url, walk
from pivot_worker.twiml import TwimlContext, translate_twiml
from pivot_worker.twiml.after_dial import AFTER_DIAL_URL

KEY = b"walker test key"


def node(module: str, data: dict[str, Any] | None = None, **children: dict[str, Any]) -> dict[str, Any]:
    return {"module": module, "data": data or {}, "children": children}


def run(flow: dict[str, Any], digits: str = "", max_steps: int = 50) -> tuple[list[Step], Stop, CallState]:
    state = CallState(parse_digits(digits), {}, max_steps)
    steps: list[Step] = []
    stop = walk(flow, state, steps.append)
    return steps, stop, state


def test_linear_flow_prints_each_module_and_ends_at_hangup() -> None:
    flow = node(
        "tts",
        {"text": "Hi"},
        _=node(
            "play",
            {"id": "http://x/a.mp3"},
            _=node("sleep", {"duration": 2, "unit": "s"}, _=node("record_caller", {}, _=node("hangup"))),
        ),
    )
    steps, stop, _ = run(flow)
    assert [s.text for s in steps] == [
        "say: Hi",
        "play: http://x/a.mp3",
        "sleep: 2 s",
        "record: (simulated)",
        "hangup",
    ]
    assert [s.number for s in steps] == [1, 2, 3, 4, 5]
    assert stop.end == "hangup"


def test_end_of_flow_without_hangup() -> None:
    steps, stop, _ = run(node("tts", {"text": "Hi"}))
    assert len(steps) == 1
    assert stop.end == "end_of_flow"


def test_collect_dtmf_consumes_groups_strips_terminator_and_stores_collection() -> None:
    flow = node(
        "collect_dtmf",
        {"collection_name": "pin", "timeout": 5000, "terminator": "#", "max_digits": 8},
        _=node("collect_dtmf", {"timeout": 5000, "max_digits": 1}, _=node("collect_dtmf", {"timeout": 5000})),
    )
    steps, _, state = run(flow, "1234#,29")
    assert [s.extra["digits"] for s in steps] == ["1234", "2", None]
    assert steps[0].text == "collect_dtmf: using 1234 (pin)"
    assert steps[2].text.startswith("collect_dtmf: no input")
    assert state.kvs["dtmf_collections"] == {"pin": "1234", "default": "2"}
    assert state.digits == []


def test_flush_collect_takes_no_digits() -> None:
    flow = node(
        "collect_dtmf",
        {"collection_name": "pivot_discard", "timeout": 1},
        _=node("collect_dtmf", {"timeout": 5000}),
    )
    steps, _, state = run(flow, "7")
    assert steps[0].extra["digits"] is None
    assert steps[1].extra["digits"] == "7"
    assert state.kvs["dtmf_collections"] == {"default": "7"}


def test_pivot_node_stops_the_walk_and_hides_the_token() -> None:
    pivot = node(
        "pivot",
        {"voice_url": "https://ivr.example.com/gathered?a=1&_pivot_k=SECRET", "method": "post"},
        _=node("hangup"),
    )
    steps, stop, _ = run(node("tts", {"text": "x"}, _=pivot))
    assert stop.end == "pivot"
    assert stop.node is pivot
    assert steps[-1].text == "pivot -> POST https://ivr.example.com/gathered?a=1 (twiml)"
    assert "SECRET" not in steps[-1].extra["url"]
    assert shown_url("https://h/x?_pivot_k=abc") == "https://h/x"


@pytest.mark.parametrize(
    ("module", "children", "expected"),
    [
        ("resources", {"NO_ANSWER": node("tts", {"text": "busy"}), "_": node("hangup")}, "say: busy"),
        ("user", {"_": node("tts", {"text": "fallback"})}, "say: fallback"),
        ("ring_group", {"_": node("tts", {"text": "fallback"})}, "say: fallback"),
    ],
)
def test_dial_is_not_answered_and_takes_the_branch_kazoo_would(
    module: str, children: dict[str, Any], expected: str
) -> None:
    flow = {"module": module, "data": {"to_did": "+14155550100", "id": "u1"}, "children": children}
    steps, _, _ = run(flow)
    assert steps[0].text.startswith("dial: ")
    assert steps[0].text.endswith("(simulated no-answer)")
    assert steps[1].text == expected


def test_resources_without_a_no_answer_child_ends_the_call() -> None:
    steps, stop, _ = run(node("resources", {"to_did": "+14155550100"}, _=node("tts", {"text": "never"})))
    assert stop.end == "dial_failed"
    assert len(steps) == 1


def test_an_answered_dial_with_a_transfer_armed_goes_to_the_after_dial_pivot() -> None:
    dial = node("resources", {"to_did": "+14155550100"}, NO_ANSWER=node("tts", {"text": "busy path"}))
    flow = node(
        "set_variables",
        {"custom_application_vars": {"pivot_after_dial": "TOKEN"}},
        _=node("after_bridge", {"action": "transfer", "data": "*7799"}, _=dial),
    )
    state = CallState([], {}, 50, answer_dials=True)
    steps: list[Step] = []
    stop = walk(flow, state, steps.append)
    assert [s.module for s in steps] == ["set_variables", "after_bridge", "resources", "pivot"]
    assert "answered" in steps[2].text and "*7799" in steps[2].text
    assert stop.end == "pivot"
    assert stop.node is not None and stop.node["data"]["voice_url"] == AFTER_DIAL_URL
    assert state.variables == {"pivot_after_dial": "TOKEN"}  # what the next pivot_req carries


def test_an_answered_dial_without_a_transfer_ends_the_call_with_the_bridge() -> None:
    state = CallState([], {}, 50, answer_dials=True)
    steps: list[Step] = []
    stop = walk(node("user", {"id": "u1"}, _=node("tts", {"text": "never"})), state, steps.append)
    assert stop.end == "bridged"
    assert len(steps) == 1


def test_menu_follows_the_child_named_after_the_digits() -> None:
    flow = node("menu", {}, **{"1": node("tts", {"text": "one"}), "_": node("tts", {"text": "other"})})
    assert run(flow, "1")[0][1].text == "say: one"
    assert run(flow, "9")[0][1].text == "say: other"


def test_response_and_conference_end_the_call() -> None:
    assert run(node("response", {"code": 486, "message": "Busy Here"}))[1].end == "response"
    assert run(node("conference", {"id": "x"}, _=node("hangup")))[1].end == "kept"


def test_loop_limit_stops_a_flow_that_never_ends() -> None:
    flow: dict[str, Any] = node("tts", {"text": "again"})
    for _ in range(10):
        flow = node("tts", {"text": "again"}, _=flow)
    steps, stop, _ = run(flow, max_steps=4)
    assert len(steps) == 4
    assert stop.end == "max_steps"


def _translated(xml: str, url: str = "https://ivr.example.com/twiml") -> dict[str, Any]:
    ctx = TwimlContext(
        document_url=url,
        request_format="twiml",
        request_body_format="form",
        call_id="walker-call",
        continuation=None,
        continuation_key=KEY,
        max_iterations=50,
        recording_url="",
        check_url=lambda _: None,
    )
    return translate_twiml(xml.encode(), ctx).flow


def test_translated_gather_runs_prompt_collect_and_nested_pivot() -> None:
    flow = _translated(
        '<Response><Say>Welcome</Say><Gather numDigits="1" action="/gathered">'
        "<Say>Press</Say></Gather></Response>"
    )
    steps, stop, state = run(flow, "1")
    assert [s.module for s in steps] == ["tts", "collect_dtmf", "tts", "collect_dtmf", "pivot"]
    assert steps[3].text == "collect_dtmf: using 1 (pivot_g1)"
    assert state.kvs["dtmf_collections"] == {"pivot_g1": "1"}
    assert steps[4].text == "pivot -> POST https://ivr.example.com/gathered (twiml)"
    assert stop.node is not None
    assert stop.node["children"]["_"]["module"] == "hangup"  # the fallback if the follow-up fails


def test_translated_dial_without_action_resumes_through_a_pivot() -> None:
    # A failed Dial to a number goes on with the next verbs through a resume token (docs/twiml.md).
    steps, stop, _ = run(_translated("<Response><Dial>+14155550100</Dial><Say>after</Say></Response>"))
    assert [s.text for s in steps] == [
        "answer",  # answerOnBridge="false", Twilio's default: the caller is answered first
        "dial: +14155550100 (simulated no-answer)",
        "pivot -> POST https://ivr.example.com/twiml (twiml)",
    ]
    assert stop.end == "pivot"


def test_translated_pause_and_record() -> None:
    steps, stop, _ = run(_translated('<Response><Pause length="2"/><Record action="/rec"/></Response>'))
    texts = [s.text for s in steps]
    assert texts[0] == "sleep: 2 s"
    assert "record: (simulated)" in texts
    assert stop.end == "pivot"
    assert texts[-1] == "pivot -> POST https://ivr.example.com/rec (twiml)"


def test_translated_hangup_and_redirect() -> None:
    assert run(_translated("<Response><Hangup/></Response>"))[1].end == "hangup"
    steps, stop, _ = run(_translated('<Response><Redirect method="GET">/again</Redirect></Response>'))
    assert stop.end == "pivot"
    assert steps[-1].text == "pivot -> GET https://ivr.example.com/again (twiml)"


def test_the_simulated_pivot_req_meets_the_contract() -> None:
    call = build_call("c1", "pid://<0.4242.0>/pivot_simulate.x.replies", "+14155550100")
    call["Key-Value-Store"]["dtmf_collections"]["pivot_g1"] = "1"
    msg = build_pivot_req(call, {"voice_url": "https://ivr.example.com/x", "method": "POST"})
    assert contracts.check("pivot_req", msg) is None
    assert msg["HTTP-Method"] == "post"
    assert "Request-Format" not in msg  # absent in the node: cf_pivot sends none
    assert msg["Call"]["Key-Value-Store"]["dtmf_collections"] == {"pivot_g1": "1"}


def test_interactive_digits_are_asked_for_once_the_scripted_ones_ran_out() -> None:
    flow = node(
        "collect_dtmf",
        {"timeout": 5000, "max_digits": 1},
        _=node("collect_dtmf", {"collection_name": "pin", "timeout": 5000, "terminator": "#"}),
    )
    typed = iter(["42#"])
    state = CallState(parse_digits("7"), {}, 50, ask=lambda: next(typed))
    steps: list[Step] = []
    walk(flow, state, steps.append)
    assert [s.extra["digits"] for s in steps] == ["7", "42"]  # scripted first, then asked
    assert state.kvs["dtmf_collections"] == {"default": "7", "pin": "42"}
