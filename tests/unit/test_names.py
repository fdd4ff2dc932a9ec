from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pivot_worker import names


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("sip.example.com", "sip%2Eexample%2Ecom"),
        ("abc@10.0.0.1", "abc%4010%2E0%2E0%2E1"),
        ("a b", "a+b"),
        ("Az09-~_", "Az09-~_"),
        ("a:b/c", "a%3Ab%2Fc"),
        ("é", "%C3%A9"),
        ("", ""),
        ("*", "*"),
        ("#", "#"),
        ("a*b", "a%2Ab"),
    ],
)
def test_encode_key_part_matches_kazoo(raw: str, encoded: str) -> None:
    assert names.encode_key_part(raw) == encoded


def test_routing_keys() -> None:
    assert names.pivot_req_routing_key("sip.example.com") == "pivot.req.sip%2Eexample%2Ecom"
    assert (
        names.call_event_routing_key("CHANNEL_PIVOT", "4f6c1e2a-93b1@10.0.0.5")
        == "call.CHANNEL_PIVOT.4f6c1e2a-93b1%4010%2E0%2E0%2E5"
    )


def test_reply_target_pid_form() -> None:
    target = names.reply_target("pid://<0.2345.0>/callflow_route_1")
    assert target.routing_key == "callflow_route_1"
    assert target.deliver_to_pid == "<0.2345.0>"
    assert target.headers() == {"Deliver-To-PID": "<0.2345.0>"}


def test_reply_target_plain_queue() -> None:
    target = names.reply_target("callflow_route_7")
    assert target.routing_key == "callflow_route_7"
    assert target.headers() == {}


def test_reply_target_pid_with_slash_in_pid_takes_last_segment_as_queue() -> None:
    # Kazoo's regex is greedy: the queue is what follows the last "/".
    target = names.reply_target("pid://<a/b>/q1")
    assert (target.deliver_to_pid, target.routing_key) == ("<a/b>", "q1")


def _reference_encoding(value: str) -> str:
    # docs/kazoo-contract.md §1.2, byte by byte.
    kept = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-~_")
    out = []
    for byte in value.encode():
        out.append(chr(byte) if byte in kept else "+" if byte == 0x20 else f"%{byte:02X}")
    return "".join(out)


@given(st.text(max_size=40))
def test_encoding_matches_the_byte_by_byte_rule(value: str) -> None:
    if value not in ("", "*", "#"):
        assert names.encode_key_part(value) == _reference_encoding(value)


@pytest.mark.parametrize(
    ("key", "fits"),
    [
        ("q" * 255, True),
        ("q" * 256, False),
        ("é" * 127 + "q", True),  # 255 bytes, 128 characters
        ("é" * 128, False),  # 256 bytes, 128 characters: bytes count, not characters
        ("", True),
        ("\ud800", False),  # a lone surrogate cannot go on the wire at all
    ],
)
def test_routing_key_fits_counts_utf8_bytes(key: str, fits: bool) -> None:
    assert names.routing_key_fits(key) is fits


def test_channel_pivot_key_of_a_long_dotted_call_id_does_not_fit() -> None:
    call_id = "a." * 55 + "b@10.0.0.5"  # 120 characters
    key = names.call_event_routing_key("CHANNEL_PIVOT", call_id)
    assert len(key) == 257
    assert not names.routing_key_fits(key)
    assert names.routing_key_fits(names.call_event_routing_key("CHANNEL_PIVOT", "a" * 236))
    assert not names.routing_key_fits(names.call_event_routing_key("CHANNEL_PIVOT", "a" * 237))


@pytest.mark.parametrize(
    "queue",
    ["pid://<0.2345.0>/callflow_route_1", "callflow_route_7", "pid://<0.1.0>/" + "q" * 255, "q" * 255],
)
def test_reply_target_problem_accepts_routable_queues(queue: str) -> None:
    assert names.reply_target_problem(queue) is None


@pytest.mark.parametrize(
    ("queue", "says"),
    [
        ("pid://<0.1.0>/" + "q" * 256, "256 bytes"),
        ("q" * 300, "300 bytes"),
        ("pid://<0.1.0>/", "names no queue"),
        ("pid:///callflow_route_1", "Deliver-To-PID"),
    ],
)
def test_reply_target_problem_names_what_cannot_be_routed(queue: str, says: str) -> None:
    problem = names.reply_target_problem(queue)
    assert problem is not None and says in problem
