"""Prompt hops: a Gather's prompts stop once the caller answers (docs/twiml.md, <Gather>).

A Gather with several prompt units plays the first, then a nested pivot (kind ``prompts``) whose
follow-up looks at the keys Kazoo's ``tts``/``play`` left in the ``default`` collection and runs,
without HTTP, the rest of the prompts, the Gather without prompts, or the verbs after it.
"""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from pivot_worker.errors import Reason, TranslationError
from pivot_worker.twiml import Continuation, open_continuation, plan_followup, translate_twiml
from pivot_worker.twiml.continuation import GATHER, PROMPTS, REDIRECT, RESUME
from pivot_worker.twiml.gather import CONTINUED, settle_prompts

from .support import CALL_ID, DOC_URL, KEY, make_ctx

MENU = (
    b'<Response><Gather action="/pin" numDigits="4"><Say loop="3">Enter your PIN.</Say>'
    b"<Play>/wait.mp3</Play></Gather><Say>Goodbye.</Say></Response>"
)


def _chain(flow: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = []
    node: dict[str, Any] | None = flow
    while node is not None:
        nodes.append(node)
        node = node["children"].get("_")
    return nodes


def _modules(flow: dict[str, Any]) -> list[str]:
    return [node["module"] for node in _chain(flow)]


def _pivot(flow: dict[str, Any]) -> tuple[str, Continuation]:
    node = next(n for n in _chain(flow) if n["module"] == "pivot")
    url, cont = open_continuation(node["data"]["voice_url"], key=KEY)
    assert cont is not None
    return url, cont


def _call(keys: str | None) -> dict[str, Any]:
    collections = {} if keys is None else {"default": keys}
    return {"Call-ID": CALL_ID, "Key-Value-Store": {"dtmf_collections": collections}}


def _hop_of(body: bytes, **ctx: Any) -> Continuation:
    cont = _pivot(translate_twiml(body, make_ctx(**ctx)).flow)[1]
    assert cont.kind == PROMPTS
    return cont


def test_a_single_prompt_keeps_the_plain_gather_flow() -> None:
    body = b'<Response><Gather numDigits="1"><Say>Press 1.</Say></Gather></Response>'
    flow = translate_twiml(body, make_ctx()).flow
    assert _modules(flow) == ["collect_dtmf", "tts", "collect_dtmf", "pivot", "hangup"]


def test_without_barge_in_every_prompt_plays_and_there_is_no_hop() -> None:
    body = b'<Response><Gather bargeIn="false"><Say>One.</Say><Say>Two.</Say></Gather></Response>'
    flow = translate_twiml(body, make_ctx()).flow
    assert _modules(flow) == ["collect_dtmf", "tts", "tts", "collect_dtmf", "pivot", "hangup"]
    assert _pivot(flow)[1].kind == GATHER


def test_the_first_prompt_unit_plays_then_a_hop_carries_the_rest() -> None:
    flow = translate_twiml(MENU, make_ctx()).flow
    assert _modules(flow) == ["collect_dtmf", "tts", "pivot", "hangup"]
    url, cont = _pivot(flow)
    assert url == "https://ivr.example.com/pin"
    assert cont.kind == PROMPTS
    assert cont.iteration == 1, "a hop is part of the request that made it"
    assert cont.base_url == DOC_URL
    root = etree.fromstring(cont.remaining.encode())
    carried = root[0]
    assert carried.tag == "Gather" and carried.get(CONTINUED) == "true"
    assert dict(carried.items()) == {
        CONTINUED: "true",
        "action": "https://ivr.example.com/pin",
        "method": "POST",
        "timeout": "5",
        "finishOnKey": "#",
        "numDigits": "4",
    }
    assert [(p.tag, p.get("loop")) for p in carried] == [("Say", "2"), ("Play", None)]
    assert [e.tag for e in root] == ["Gather", "Say"]


def test_the_continued_gather_does_not_discard_the_keys_already_pressed() -> None:
    cont = _hop_of(MENU)
    later = translate_twiml(cont.remaining.encode(), make_ctx(continuation=cont))
    assert _modules(later.flow) == ["tts", "pivot", "hangup"]
    assert later.warnings == [], "the marker is not an unknown attribute"


def test_hops_cost_no_iteration_and_the_action_keeps_its_number() -> None:
    start = Continuation(call_id=CALL_ID, iteration=7, kind=REDIRECT)
    cont = _hop_of(MENU, continuation=start)
    hops = 0
    while cont.kind == PROMPTS:
        assert cont.iteration == 7
        hops += 1
        local = plan_followup(cont, _call(None), "twiml")
        assert local.local_document is not None and local.iteration == 7
        flow = translate_twiml(local.local_document, make_ctx(continuation=cont)).flow
        cont = _pivot(flow)[1]
    assert hops == 3, "four prompt units: three hops, each carrying fewer units"
    assert cont.kind == GATHER
    assert cont.iteration == 8
    assert cont.collection == "pivot_g7"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("12", '<Gather numDigits="4"/><Say>Goodbye.</Say>'),
        ("1234", '<Gather numDigits="4"/><Say>Goodbye.</Say>'),
        ("123456", '<Gather numDigits="4"/><Say>Goodbye.</Say>'),
        ("12#", '<Gather numDigits="2"/><Say>Goodbye.</Say>'),
        ("12#34", '<Gather numDigits="2"/><Say>Goodbye.</Say>'),
        ("#", "<Say>Goodbye.</Say>"),
    ],
)
def test_the_keys_pressed_decide_what_the_hop_runs(keys: str, expected: str) -> None:
    settled = settle_prompts(_hop_of(MENU), keys)
    assert settled.kind == RESUME
    root = etree.fromstring(settled.remaining.encode())
    for gather in root.iter("Gather"):
        gather.attrib.pop(CONTINUED)
        for name in ("action", "method", "timeout", "finishOnKey"):
            gather.attrib.pop(name)
    shown = "".join(etree.tostring(e, encoding="unicode") for e in root).replace(
        ' xmlns:pivot="urn:pivot-worker:twiml"', ""
    )
    assert shown == expected


def test_no_key_yet_goes_on_with_the_prompts_left() -> None:
    cont = _hop_of(MENU)
    settled = settle_prompts(cont, "")
    assert settled.kind == RESUME and settled.remaining == cont.remaining


def test_the_finishing_key_alone_with_action_on_empty_result_still_asks_the_action() -> None:
    body = (
        b'<Response><Gather actionOnEmptyResult="true" finishOnKey="*"><Say>One.</Say><Say>Two.</Say>'
        b"</Gather><Say>Later.</Say></Response>"
    )
    settled = settle_prompts(_hop_of(body), "*")
    root = etree.fromstring(settled.remaining.encode())
    assert [e.tag for e in root] == ["Gather", "Say"]
    assert len(root[0]) == 0 and root[0].get("actionOnEmptyResult") == "true"


def test_plan_followup_runs_a_hop_locally_from_the_default_collection() -> None:
    cont = _hop_of(MENU)
    plan = plan_followup(cont, _call("7#"), "twiml")
    assert plan.params == {}
    assert plan.iteration == cont.iteration
    assert plan.document_url == DOC_URL
    assert plan.local_document is not None
    flow = translate_twiml(plan.local_document, make_ctx(continuation=cont)).flow
    assert _modules(flow) == ["collect_dtmf", "pivot", "hangup"]
    collect = flow["data"]
    assert (collect["collection_name"], collect["max_digits"], collect["terminator"]) == ("pivot_g1", 1, "#")
    action_url, action = _pivot(flow)
    assert action_url == "https://ivr.example.com/pin"
    assert (action.kind, action.iteration, action.remaining) == (
        GATHER,
        2,
        "<Response><Say>Goodbye.</Say></Response>",
    )


def test_the_loop_guard_checks_the_action_of_a_gather_with_hops_up_front() -> None:
    last = Continuation(call_id=CALL_ID, iteration=50, kind=REDIRECT)
    with pytest.raises(TranslationError) as info:
        translate_twiml(MENU, make_ctx(continuation=last, max_iterations=50))
    assert info.value.reason is Reason.REDIRECT_LOOP
    assert info.value.findings[0].pointer == "/Response/Gather[1]"


def test_prompts_too_large_for_a_token_all_play_with_a_warning() -> None:
    noise = [" ".join(f"{m}w{n:04x}{n * 7919 % 65521:x}" for n in range(350)) for m in range(3)]
    says = "".join(f"<Say>{text}</Say>" for text in noise)
    body = f"<Response><Gather><Say>Hi.</Say>{says}</Gather></Response>".encode()
    translation = translate_twiml(body, make_ctx())
    assert _modules(translation.flow)[-3:] == ["collect_dtmf", "pivot", "hangup"]
    assert _pivot(translation.flow)[1].kind == GATHER
    [warning] = translation.warnings
    assert (warning.code, warning.pointer) == ("kazoo-unsupported", "/Response/Gather[1]")
    assert "do not fit in a continuation token" in warning.message
