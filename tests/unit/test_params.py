from __future__ import annotations

from typing import Any

from pivot_worker.params import kazoo_params, request_params, twiml_params
from tests.e2e.kazoo_side import base_call


def _call() -> dict[str, Any]:
    return base_call("c1@10.0.0.5", "pid://<0.1.0>/callflow_route_1")


def test_kazoo_format_param_set() -> None:
    params = kazoo_params(_call())
    assert params == {
        "Account-ID": "3a1b2c4d5e6f708192a3b4c5d6e7f809",
        "Api-Version": "4.x",
        "Call-ID": "c1@10.0.0.5",
        "Caller-ID-Name": "Alice Smith",
        "Caller-ID-Number": "1001",
        "Custom-Application-Vars": {},
        "Custom-SIP-Headers": {"X-Tenant": "acme & co"},
        "Digits": {"default": "42"},
        "Direction": "inbound",
        "From": "1001",
        "From-Realm": "sip.example.com",
        "Language": "en-us",
        "Request": "2000",
        "Request-Realm": "sip.example.com",
        "To": "2000",
        "To-Realm": "sip.example.com",
        "User-ID": "6d2f0c1b2a3948576a5b4c3d2e1f0a9b",
    }


def test_twiml_format_param_set_with_twilio_aliases() -> None:
    params = twiml_params(_call())
    assert params == {
        "AccountSid": "3a1b2c4d5e6f708192a3b4c5d6e7f809",
        "ApiVersion": "2010-04-01",
        "CallSid": "c1@10.0.0.5",
        "CallStatus": "ringing",
        "Called": "2000",
        "Caller": "1001",
        "CallerName": "Alice Smith",
        "CallerNumber": "1001",
        "Digits": {"default": "42"},
        "Direction": "inbound",
        "From": "1001",
        "FromRealm": "sip.example.com",
        "To": "2000",
        "ToRealm": "sip.example.com",
    }


def test_first_request_call_status_follows_the_call_direction() -> None:
    call = _call()
    assert twiml_params(call)["CallStatus"] == "ringing"
    call["Call-Direction"] = "outbound"
    assert twiml_params(call)["CallStatus"] == "in-progress"
    call["Key-Value-Store"]["call_status"] = "completed"
    assert twiml_params(call)["CallStatus"] == "completed"
    assert "Call-Status" not in kazoo_params(_call())  # Kazoo's own format leaves it out


def test_digit_pressed_wins_over_collections_and_kvs_values_are_sent() -> None:
    call = _call()
    call["Key-Value-Store"].update(
        {"digit_pressed": "#", "call_status": "in-progress", "recording_url": "http://r/1.mp3"}
    )
    params = request_params(call, "twiml")
    assert params["Digits"] == "#"
    assert params["CallStatus"] == "in-progress"
    assert params["RecordingUrl"] == "http://r/1.mp3"
    assert request_params(call, "kazoo")["Call-Status"] == "in-progress"


def test_owner_falls_back_to_ccv_and_minimal_call_omits_absent_values() -> None:
    minimal = {"Call-ID": "x", "Controller-Queue": "q", "Custom-Channel-Vars": {"Owner-ID": "o1"}}
    params = kazoo_params(minimal)
    assert params["User-ID"] == "o1"
    assert "Caller-ID-Name" not in params and "Digits" not in params
