"""From a finished trace to debug events: Kazoo's fields, our additions, the schema contract."""

from __future__ import annotations

import json
import pathlib

import jsonschema
import pytest

from pivot_worker.contracts import check
from pivot_worker.debug import EventBuilder, Redactor, debug_routing_key, should_keep
from pivot_worker.debug.gregorian import UNIX_EPOCH_GREGORIAN_S, month_bounds, month_prefix, unix_to_gregorian
from pivot_worker.errors import Finding, Reason
from pivot_worker.trace import HttpExchange, Outcome, PivotTrace, Timings

SCHEMA_PATH = pathlib.Path(__file__).resolve().parents[3] / "amqp_schemas" / "debug_event.json"
RECEIVED = 1_710_238_000.25  # 2024-03-12T10:06:40.25Z


def _trace(**kw: object) -> PivotTrace:
    trace = PivotTrace(
        call_id="4f6c1e2a-93b1-123d-77aa-00163e0a0b0c",
        account_id="3a1b2c4d5e6f708192a3b4c5d6e7f809",
        debug=True,
        node="pivot_worker@apps1",
        voice_uri="https://bob:pw@ivr.example.com/start?api_key=K",
        method="post",
        request_format="kazoo",
        received_at=RECEIVED,
    )
    for key, value in kw.items():
        setattr(trace, key, value)
    return trace


def _exchange(status: int | None, attempt: int = 1, total_ms: float = 10.0) -> HttpExchange:
    ex = HttpExchange(
        method="POST",
        url="https://bob:pw@ivr.example.com/start?api_key=K",
        request_headers={"Content-Type": "application/json", "Authorization": "Bearer abc"},
        request_body=b'{"Call-ID":"c","api_key":"K"}',
        attempt=attempt,
        timings=Timings(dns_ms=1.0, connect_ms=2.0, ttfb_ms=5.0, total_ms=total_ms),
    )
    if status is None:
        ex.error_reason = Reason.TIMEOUT
        ex.error = "no answer within 4000 ms from https://bob:pw@ivr.example.com/"
    else:
        ex.status = status
        ex.response_headers = [("Content-Type", "application/json"), ("Set-Cookie", "sid=1; Path=/")]
        ex.response_body = b'{"module":"tts","data":{"text":"Hi"}}'
    return ex


def _ids() -> object:
    n = iter(range(1000))
    return lambda: f"event{next(n):04d}"


def _build(trace: PivotTrace) -> list[dict[str, object]]:
    return EventBuilder(Redactor(["api_key"]), new_id=_ids()).build(trace)  # type: ignore[arg-type]


def test_success_with_one_retry_gives_request_error_request_response_result() -> None:
    trace = _trace(
        exchanges=[_exchange(None, attempt=1, total_ms=100.0), _exchange(206, attempt=2)],
        outcome=Outcome.SUCCESS,
        flow={"module": "tts", "data": {"text": "Hi"}, "children": {}},
        content_type="application/json",
        response_format="kazoo",
        total_ms=120.0,
    )
    events = _build(trace)
    assert [e["event_type"] for e in events] == ["request", "error", "request", "response", "result"]
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert len({e["event_id"] for e in events}) == 5
    error, response, result = events[1], events[3], events[4]
    assert error["reason"] == "timeout"
    assert "pw@" not in str(error["message"])
    assert response["resp_status_code"] == "206"  # the real status, not Kazoo's hard-coded "200"
    assert response["attempt"] == 2
    assert response["resp_headers"] == {"content-type": "application/json", "set-cookie": "sid=***; Path=/"}
    assert result["callflow"] == {"module": "tts", "data": {"text": "Hi"}, "children": {}}
    assert result["outcome"] == "success"
    assert result["attempts"] == 2
    times = [e["unix_time_us"] for e in events]
    assert times == sorted(times)
    assert times[0] == int(RECEIVED * 1_000_000)
    assert times[2] - times[0] == 100_000  # the second attempt starts after the first one's 100 ms


def test_kazoo_fields_and_redaction_on_request_events() -> None:
    events = _build(_trace(exchanges=[_exchange(200)], outcome=Outcome.SUCCESS))
    request = events[0]
    assert request["call_id"] == "4f6c1e2a-93b1-123d-77aa-00163e0a0b0c"
    assert request["iteration"] == 1
    assert request["method"] == "post"
    assert request["uri"] == "https://bob:***@ivr.example.com/start?api_key=***"
    assert request["req_headers"] == {"content-type": "application/json", "authorization": "Bearer ***"}
    assert request["req_body"] == '{"Call-ID":"c","api_key":"***"}'
    assert request["created"] == int(RECEIVED) + UNIX_EPOCH_GREGORIAN_S
    assert request["node"] == "pivot_worker@apps1"


def test_signature_headers_are_masked_in_request_events() -> None:
    exchange = _exchange(200)
    exchange.request_headers = {
        "X-Twilio-Signature": "0Lb7s5yQ+/abc=",
        "X-Pivot-Signature": "t=1710238000,v1=9f86d081884c7d65",
    }
    request = _build(_trace(exchanges=[exchange], outcome=Outcome.SUCCESS))[0]
    assert request["req_headers"] == {
        "x-twilio-signature": "***",
        "x-pivot-signature": "t=1710238000,v1=***",
    }


def test_failures_are_kept_without_debug_but_bodies_are_left_out() -> None:
    trace = _trace(debug=False, exchanges=[_exchange(500)], outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS)
    assert should_keep(trace)
    events = _build(trace)
    assert all("req_body" not in e and "resp_body" not in e for e in events)
    assert events[1]["resp_status_code"] == "500"
    assert events[-1]["reason"] == "http_status"
    assert all(e["debug"] is False for e in events)


def test_successes_without_debug_are_not_kept() -> None:
    assert not should_keep(_trace(debug=False, outcome=Outcome.SUCCESS))
    assert should_keep(_trace(debug=True, outcome=Outcome.SUCCESS))
    assert should_keep(_trace(debug=False, outcome=Outcome.DEAD_LETTERED))


@pytest.mark.parametrize(
    ("reason", "key"),
    [
        (Reason.PARSE_ERROR, "json_errors"),
        (Reason.SCHEMA_ERROR, "schema_errors"),
        (Reason.UNSUPPORTED_VERB, "schema_errors"),
    ],
)
def test_document_errors_land_in_kazoos_error_fields(reason: Reason, key: str) -> None:
    finding = Finding(code="12100", message="not well-formed", pointer="/Response", line=3, column=7)
    trace = _trace(exchanges=[_exchange(200)], outcome=Outcome.FAILED, reason=reason, errors=[finding])
    result = _build(trace)[-1]
    assert result[key]["errors"] == [finding.as_dict()]
    other = "schema_errors" if key == "json_errors" else "json_errors"
    assert other not in result


def test_a_trace_without_exchanges_still_says_what_happened() -> None:
    trace = _trace(outcome=Outcome.FAILED, reason=Reason.INVALID_URL, message="voice_url is not http(s)")
    events = _build(trace)
    assert [e["event_type"] for e in events] == ["result"]
    assert events[0]["uri"] == "https://bob:***@ivr.example.com/start?api_key=***"
    assert events[0]["attempts"] == 0


def test_non_utf8_bodies_do_not_fail() -> None:
    ex = _exchange(200)
    ex.response_body = b"\xff\xfe<Response/>"
    events = _build(_trace(exchanges=[ex], outcome=Outcome.SUCCESS))
    assert events[1]["resp_body"].endswith("<Response/>")


def _all_shapes() -> list[dict[str, object]]:
    shapes = _build(
        _trace(exchanges=[_exchange(None), _exchange(200, 2)], outcome=Outcome.SUCCESS, flow={"a": 1})
    )
    shapes += _build(
        _trace(
            debug=False,
            account_id=None,
            exchanges=[_exchange(404)],
            outcome=Outcome.FAILED,
            reason=Reason.SCHEMA_ERROR,
            errors=[Finding("schema", "bad")],
            warnings=[Finding("w1", "odd", "/x")],
        )
    )
    return shapes


def test_every_event_shape_conforms_to_the_contract() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    shapes = _all_shapes()
    assert {e["event_type"] for e in shapes} == {"request", "response", "error", "result"}
    for event in shapes:
        assert list(validator.iter_errors(event)) == []
        assert check("debug_event", event) is None


def test_contract_rejects_an_event_missing_its_kazoo_fields() -> None:
    event = _all_shapes()[3]
    del event["resp_status_code"]
    assert check("debug_event", event) is not None


@pytest.mark.parametrize(
    ("account", "key"),
    [
        ("3a1b2c4d5e6f708192a3b4c5d6e7f809", "debug.3a1b2c4d5e6f708192a3b4c5d6e7f809"),
        ("acme.example.com", "debug.acme%2Eexample%2Ecom"),
        (None, "debug.unknown"),
        ("", "debug.unknown"),
        ("#", "debug.unknown"),
    ],
)
def test_routing_key(account: str | None, key: str) -> None:
    assert debug_routing_key(account) == key


def test_gregorian_conversions_match_kazoo() -> None:
    assert unix_to_gregorian(0) == 62_167_219_200
    assert month_prefix(unix_to_gregorian(RECEIVED)) == "202403"
    start, end = month_bounds(2024, 12)
    assert month_prefix(start) == "202412"
    assert month_prefix(end) == "202501"
    assert month_prefix(end - 1) == "202412"
