"""plan_followup: what each kind of callback sends, and when no request is made at all."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pivot_worker.errors import PivotError, Reason
from pivot_worker.twiml import Continuation, call_aliases, plan_followup
from pivot_worker.twiml.continuation import AFTER_DIAL, DIAL, ENQUEUE, GATHER, RECORD, REDIRECT, RESUME

from .support import CALL_ID


def _call(collections: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "Call-ID": CALL_ID,
        "From": "1001@sip.example.com",
        "From-User": "1001",
        "To": "2000@sip.example.com",
        "To-User": "2000",
        "Key-Value-Store": {"dtmf_collections": collections or {}},
    }
    call.update(extra)
    return call


def test_gather_digits_come_flat_from_the_named_collection() -> None:
    cont = Continuation(
        call_id=CALL_ID, iteration=4, kind=GATHER, collection="pivot_g3", variables={"step": "2"}
    )
    plan = plan_followup(cont, _call({"pivot_g3": "42", "pivot_g1": "9", "default": "7"}), "twiml")
    assert plan.local_document is None
    assert plan.iteration == 4
    assert plan.params == {
        "step": "2",
        "Caller": "1001",
        "Called": "2000",
        "CallStatus": "in-progress",
        "Digits": "42",
    }


def test_gather_without_input_runs_the_remaining_verbs_locally() -> None:
    rest = "<Response><Say>No input</Say></Response>"
    cont = Continuation(
        call_id=CALL_ID,
        iteration=2,
        kind=GATHER,
        collection="pivot_g1",
        remaining=rest,
        base_url="https://h/a",
    )
    plan = plan_followup(cont, _call({"pivot_g0": "55"}), "twiml")
    assert plan.local_document == rest.encode()
    assert plan.document_url == "https://h/a"
    assert plan.params == {}


def test_gather_without_input_and_nothing_after_hangs_up() -> None:
    cont = Continuation(call_id=CALL_ID, iteration=2, kind=GATHER, collection="pivot_g1")
    assert plan_followup(cont, _call(), "twiml").local_document == b"<Response/>"


def test_action_on_empty_result_requests_with_empty_digits() -> None:
    cont = Continuation(
        call_id=CALL_ID, iteration=2, kind=GATHER, collection="pivot_g1", action_on_empty=True
    )
    plan = plan_followup(cont, _call(), "twiml")
    assert plan.local_document is None
    assert plan.params["Digits"] == ""


def test_record_sends_recording_url_in_both_formats() -> None:
    cont = Continuation(call_id=CALL_ID, iteration=2, kind=RECORD, recording_url="https://s/r/c.mp3")
    assert plan_followup(cont, _call(), "twiml").params["RecordingUrl"] == "https://s/r/c.mp3"
    kazoo = plan_followup(cont, _call(), "kazoo").params
    assert kazoo["Recording-Url"] == kazoo["RecordingUrl"] == "https://s/r/c.mp3"
    assert kazoo["Call-Status"] == "in-progress"
    assert "Caller" not in kazoo


def test_record_sends_a_stable_recording_sid() -> None:
    cont = Continuation(call_id=CALL_ID, iteration=2, kind=RECORD, recording_url="https://s/r/c.mp3")
    sid = plan_followup(cont, _call(), "twiml").params["RecordingSid"]
    assert re.fullmatch(r"RE[0-9a-f]{32}", sid)
    assert plan_followup(cont, _call(), "kazoo").params["Recording-ID"] == sid
    other = Continuation(call_id=CALL_ID, iteration=3, kind=RECORD, recording_url="https://s/r/d.mp3")
    assert plan_followup(other, _call(), "twiml").params["RecordingSid"] != sid


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed"])
def test_dial_failure_status(status: str) -> None:
    cont = Continuation(call_id=CALL_ID, iteration=2, kind=DIAL, dial_status=status)
    params = plan_followup(cont, _call(), "twiml").params
    assert (params["DialCallStatus"], params["DialBridged"]) == (status, "false")


def test_after_an_answered_dial_the_action_gets_completed_and_bridged() -> None:
    cont = Continuation(
        call_id=CALL_ID,
        iteration=3,
        kind=AFTER_DIAL,
        url="https://a/after",
        method="post",
        dial_status="completed",
    )
    plan = plan_followup(cont, _call(**{"Other-Leg-Call-ID": "b-leg-1"}), "twiml")
    assert plan.local_document is None
    assert plan.iteration == 3
    assert plan.params == {
        "Caller": "1001",
        "Called": "2000",
        "CallStatus": "in-progress",
        "DialCallStatus": "completed",
        "DialBridged": "true",
        "DialCallSid": "b-leg-1",
    }
    assert "DialCallSid" not in plan_followup(cont, _call(), "twiml").params  # only when Kazoo names it


def test_after_an_answered_dial_without_action_runs_the_verbs_after_it() -> None:
    rest = "<Response><Say>How was your call?</Say></Response>"
    cont = Continuation(
        call_id=CALL_ID, iteration=3, kind=AFTER_DIAL, remaining=rest, base_url="https://a/doc"
    )
    plan = plan_followup(cont, _call(), "twiml")
    assert (plan.local_document, plan.document_url, plan.params) == (rest.encode(), "https://a/doc", {})


def test_redirect_and_enqueue_send_only_common_params() -> None:
    for kind in (REDIRECT, ENQUEUE):
        params = plan_followup(Continuation(call_id=CALL_ID, iteration=2, kind=kind), _call(), "twiml").params
        assert set(params) == {"Caller", "Called", "CallStatus"}


def test_request_vars_win_over_user_variables() -> None:
    cont = Continuation(
        call_id=CALL_ID,
        iteration=2,
        kind=GATHER,
        collection="g",
        variables={"Digits": "x", "CallStatus": "y"},
    )
    params = plan_followup(cont, _call({"g": "1"}), "twiml").params
    assert (params["Digits"], params["CallStatus"]) == ("1", "in-progress")


def test_resume_never_fetches() -> None:
    cont = Continuation(call_id=CALL_ID, iteration=5, kind=RESUME, remaining="<Response><Hangup/></Response>")
    plan = plan_followup(cont, _call(), "twiml")
    assert (plan.local_document, plan.iteration, plan.params) == (b"<Response><Hangup/></Response>", 5, {})


def test_token_for_another_call_is_refused() -> None:
    cont = Continuation(call_id="someone-else", iteration=2, kind=REDIRECT)
    with pytest.raises(PivotError) as info:
        plan_followup(cont, _call(), "twiml")
    assert info.value.reason is Reason.INVALID_CONTINUATION


@pytest.mark.parametrize(
    "kvs",
    [None, "junk", {"dtmf_collections": "junk"}, {"dtmf_collections": {"g": 5}}, {}],
)
def test_odd_kvs_shapes_mean_no_digits(kvs: Any) -> None:
    call = _call()
    call["Key-Value-Store"] = kvs
    cont = Continuation(call_id=CALL_ID, iteration=2, kind=GATHER, collection="g")
    assert plan_followup(cont, call, "twiml").local_document == b"<Response/>"


def test_aliases_fall_back_to_the_user_part() -> None:
    assert call_aliases({"From": "alice@realm", "To": "bob@realm"}) == {"Caller": "alice", "Called": "bob"}
    assert call_aliases({}) == {}
