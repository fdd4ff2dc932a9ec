"""validate_flow: Kazoo's callflow rules, defaults filled in, every problem located."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pivot_worker.callflow import SUPPORTED_MODULES, validate_flow
from pivot_worker.callflow.modules import data_schema, data_validator
from pivot_worker.errors import Reason, TranslationError
from pivot_worker.schemas import schema_names
from tests.conformance.flow_examples import MODULE_EXAMPLES, menu_flow, single_node

ALL_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]


def _findings(flow: object, **limits: int) -> list[tuple[str, str]]:
    with pytest.raises(TranslationError) as caught:
        validate_flow(flow, **limits)
    assert caught.value.reason is Reason.SCHEMA_ERROR
    assert caught.value.findings, "a rejection must say why"
    return [(f.code, f.pointer) for f in caught.value.findings]


def _contains(big: object, small: object) -> bool:
    """True if ``big`` equals ``small`` apart from keys added to objects (defaults)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(_contains, big, small))
    return type(big) is type(small) and big == small


def _chain(length: int, module: str = "answer") -> dict[str, Any]:
    node: dict[str, Any] = {"module": module, "data": {}}
    for _ in range(length - 1):
        node = {"module": module, "data": {}, "children": {"_": node}}
    return node


# --- defaults --------------------------------------------------------------------------------------


def test_tts_gets_kazoo_defaults() -> None:
    flow = {"module": "tts", "data": {"text": "Hi"}}
    assert validate_flow(flow) == {
        "module": "tts",
        "data": {"text": "Hi", "voice": "female", "terminators": ALL_KEYS},
    }


def test_defaults_are_filled_in_place_and_the_same_object_is_returned() -> None:
    flow = {"module": "flush_dtmf"}
    assert validate_flow(flow) is flow
    assert flow == {"module": "flush_dtmf", "data": {"collection_name": "default"}}


def test_given_values_are_never_replaced_by_defaults() -> None:
    flow = validate_flow({"module": "tts", "data": {"text": "Hi", "voice": "male", "terminators": []}})
    assert flow["data"] == {"text": "Hi", "voice": "male", "terminators": []}


def test_default_lists_are_not_shared_between_calls() -> None:
    first = validate_flow({"module": "tts", "data": {"text": "a"}})
    first["data"]["terminators"].append("X")
    second = validate_flow({"module": "tts", "data": {"text": "b"}})
    assert second["data"]["terminators"] == ALL_KEYS


def test_defaults_reach_nested_children() -> None:
    flow = validate_flow(menu_flow())
    collect = flow["children"]["_"]
    pivot = collect["children"]["_"]
    assert collect["data"] == {"max_digits": 1, "collection_name": "menu", "timeout": 5000, "terminator": "#"}
    assert pivot["data"] == {
        "voice_url": "https://ivr.example.com/menu",
        "method": "post",
        "req_format": "kazoo",
        "req_body_format": "form",
        "debug": False,
    }


def test_required_field_with_a_default_is_filled_not_rejected() -> None:
    """Kazoo inserts defaults before it checks ``required`` (response.code, record_call.action...)."""
    assert validate_flow({"module": "response", "data": {}})["data"] == {"code": 486}
    assert validate_flow({"module": "set_variables"})["data"] == {"custom_application_vars": {}}
    assert validate_flow({"module": "record_call"})["data"]["action"] == "start"
    assert validate_flow({"module": "branch_variable"})["data"] == {
        "variable": "",
        "scope": "custom_channel_vars",
    }


def test_conference_room_gets_nested_member_and_moderator_defaults() -> None:
    data = validate_flow({"module": "conference", "data": {"config": {"name": "room-1"}}})["data"]
    assert data["config"]["member"] == {"join_deaf": False, "join_muted": True, "numbers": [], "pins": []}
    assert data["config"]["moderator"] == {"join_deaf": False, "join_muted": False, "numbers": [], "pins": []}
    assert data["config"]["conference_numbers"] == []
    assert data["config"]["play_name"] is False


def test_send_dtmf_duration_is_not_defaulted() -> None:
    """Kazoo's schema declares a default but no type for duration_ms, so Kazoo never inserts it."""
    assert validate_flow({"module": "send_dtmf", "data": {"digits": "12"}})["data"] == {"digits": "12"}


def test_ring_group_endpoint_defaults() -> None:
    data = validate_flow(
        {"module": "ring_group", "data": {"endpoints": [{"endpoint_type": "user", "id": "u1"}]}}
    )["data"]
    assert data["endpoints"] == [{"endpoint_type": "user", "id": "u1", "delay": 0, "timeout": 20}]
    assert data["strategy"] == "simultaneous"


def test_unknown_keys_are_kept() -> None:
    """Kazoo's module schemas do not forbid extra keys, so neither do we."""
    flow = validate_flow({"module": "tts", "data": {"text": "Hi", "x_custom": 1}, "name": "greeting"})
    assert flow["data"]["x_custom"] == 1
    assert flow["name"] == "greeting"


# --- every module -----------------------------------------------------------------------------------


def test_supported_modules_match_the_bundled_schemas() -> None:
    assert set(schema_names("callflows")) == SUPPORTED_MODULES
    assert set(MODULE_EXAMPLES) == SUPPORTED_MODULES


@pytest.mark.parametrize("module", sorted(SUPPORTED_MODULES))
def test_each_module_accepts_a_realistic_example(module: str) -> None:
    flow = single_node(module)
    given = copy.deepcopy(flow["data"])
    data = validate_flow(flow)["data"]
    assert _contains(data, given), (data, given)


@pytest.mark.parametrize("module", sorted(SUPPORTED_MODULES))
def test_each_module_accepts_skip_module(module: str) -> None:
    flow = single_node(module)
    flow["data"]["skip_module"] = True
    validate_flow(flow)
    flow["data"]["skip_module"] = "yes"
    assert ("type", "/data/skip_module") in _findings(flow)


@pytest.mark.parametrize("module", sorted(SUPPORTED_MODULES))
def test_each_module_schema_allows_unknown_keys(module: str) -> None:
    schema = data_schema(module)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema.get("additionalProperties", True) is True
    assert data_validator(module) is data_validator(module)


# --- problems, all of them, located -------------------------------------------------------------


def test_every_problem_is_listed_with_its_pointer() -> None:
    flow = {
        "module": "tts",
        "data": {"text": "", "engine": "espeak", "voice": 5},
        "children": {
            "_": {"module": "pivot", "data": {"voice_url": "ftp://x", "req_timeout_ms": 9000}},
            "1": {"module": "collect_dtmf", "data": {"max_digits": 0, "terminator": "A"}},
            "2": {
                "module": "sleep",
                "data": {"unit": "days"},
                "children": {"_": {"module": "play", "data": {"loop_count": "2"}}},
            },
        },
    }
    assert _findings(flow) == [
        ("enum", "/data/engine"),
        ("min_length", "/data/text"),
        ("type", "/data/voice"),
        ("maximum", "/children/_/data/req_timeout_ms"),
        ("pattern", "/children/_/data/voice_url"),
        ("minimum", "/children/1/data/max_digits"),
        ("enum", "/children/1/data/terminator"),
        ("enum", "/children/2/data/unit"),
        ("type", "/children/2/children/_/data/loop_count"),
    ]


def test_missing_required_field_points_at_the_field() -> None:
    with pytest.raises(TranslationError) as caught:
        validate_flow({"module": "answer", "data": {}, "children": {"_": {"module": "tts", "data": {}}}})
    [finding] = caught.value.findings
    assert (finding.code, finding.pointer, finding.message) == (
        "required",
        "/children/_/data/text",
        "is required",
    )
    assert "/children/_/data/text: is required [required]" in str(caught.value)


def test_messages_are_plain_english() -> None:
    with pytest.raises(TranslationError) as caught:
        validate_flow({"module": "tts", "data": {"text": "x" * 1001, "engine": "espeak"}})
    messages = {f.pointer: f.message for f in caught.value.findings}
    assert messages["/data/text"] == "must be at most 1000 characters long (it has 1001)"
    assert (
        messages["/data/engine"]
        == 'must be one of "flite", "google", "ispeech", "voicefabric" (got "espeak")'
    )


def test_nested_items_are_located() -> None:
    flow = {"module": "ring_group", "data": {"endpoints": [{"endpoint_type": "user", "id": "u"}, {"id": ""}]}}
    assert _findings(flow) == [
        ("required", "/data/endpoints/1/endpoint_type"),
        ("min_length", "/data/endpoints/1/id"),
    ]


def test_one_of_is_explained() -> None:
    with pytest.raises(TranslationError) as caught:
        validate_flow({"module": "conference", "data": {"play_entry_tone": 3}})
    [finding] = caught.value.findings
    assert (finding.code, finding.pointer) == ("one_of", "/data/play_entry_tone")
    assert finding.message == "must be a boolean or a string, not an integer"


def test_custom_sip_header_names_are_checked() -> None:
    flow = {"module": "resources", "data": {"custom_sip_headers": {"in": {"X-A": 1}}}}
    assert _findings(flow) == [("any_of", "/data/custom_sip_headers")]


def test_unknown_module() -> None:
    with pytest.raises(TranslationError) as caught:
        validate_flow({"module": "say", "data": {"text": "Hi"}})
    [finding] = caught.value.findings
    assert (finding.code, finding.pointer) == ("unknown_module", "/module")
    assert finding.message.startswith('"say" is not a callflow module we accept; accepted: answer, ')


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"data": {}}, [("required", "/module")]),
        ({"module": 7, "data": {}}, [("type", "/module")]),
        ({"module": "", "data": {}}, [("min_length", "/module")]),
        ({"module": "m" * 65, "data": {}}, [("max_length", "/module")]),
        ({"module": "tts", "data": ["Hi"]}, [("type", "/data")]),
        ({"module": "tts", "data": None}, [("type", "/data")]),
        ({"module": "answer", "data": {}, "children": []}, [("type", "/children")]),
        ({"module": "answer", "data": {}, "children": None}, [("type", "/children")]),
        ({"module": "answer", "data": {}, "children": {"_": "hangup"}}, [("type", "/children/_")]),
        ({"module": None, "data": 3}, [("type", "/module"), ("type", "/data")]),
    ],
)
def test_node_shape_problems(node: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _findings(node) == expected


def test_child_keys_are_escaped_in_pointers() -> None:
    flow = {"module": "answer", "data": {}, "children": {"a/b~c": {"module": "tts", "data": {}}}}
    assert _findings(flow) == [("required", "/children/a~1b~0c/data/text")]


@pytest.mark.parametrize("value", [None, [], ["module"], "tts", 3, 2.5, True, b"{}"])
def test_non_object_input_is_one_finding_at_the_root(value: object) -> None:
    with pytest.raises(TranslationError) as caught:
        validate_flow(value)
    [finding] = caught.value.findings
    assert finding.code == "type"
    assert finding.pointer == ""
    assert finding.message.startswith("a callflow must be an object, not ")


# --- limits ---------------------------------------------------------------------------------------


def test_depth_limit() -> None:
    validate_flow(_chain(64))
    found = _findings(_chain(65))
    assert found == [("too_deep", "/children/_" * 64)]


def test_custom_depth_limit() -> None:
    validate_flow(_chain(3), max_depth=3)
    assert _findings(_chain(4), max_depth=3) == [("too_deep", "/children/_/children/_/children/_")]


def test_node_limit() -> None:
    wide = {"module": "answer", "data": {}, "children": {str(i): {"module": "noop"} for i in range(499)}}
    validate_flow(copy.deepcopy(wide))
    wide["children"]["499"] = {"module": "noop"}
    assert _findings(wide) == [("too_many_nodes", "/children/499")]


def test_node_limit_stops_work_and_keeps_earlier_findings() -> None:
    flow = {"module": "tts", "data": {}, "children": {str(i): {"module": "noop"} for i in range(10)}}
    assert _findings(flow, max_nodes=5) == [("required", "/data/text"), ("too_many_nodes", "/children/4")]


def test_huge_flow_is_bounded() -> None:
    flow = _chain(5000)
    found = _findings(flow)
    assert found == [("too_deep", "/children/_" * 64)]


# --- wire -----------------------------------------------------------------------------------------


def test_validated_flow_serializes_like_the_kazoo_example() -> None:
    """docs/kazoo-contract.md §2.5: the CHANNEL_PIVOT example's tts has voice and terminators filled."""
    flow = validate_flow({"module": "tts", "data": {"text": "Hello"}, "children": {}})
    assert json.loads(json.dumps(flow)) == {
        "module": "tts",
        "data": {"text": "Hello", "terminators": ALL_KEYS, "voice": "female"},
        "children": {},
    }


def test_prepare_compiles_every_module_up_front() -> None:
    from pivot_worker.callflow import prepare
    from pivot_worker.callflow.collect import slow_validator

    prepare()
    for module in SUPPORTED_MODULES:
        assert data_validator(module) is not None
        assert slow_validator(module) is not None


def test_kazoo_modules_we_do_not_restate_pass_with_node_level_checks() -> None:
    flow = validate_flow({"module": "park", "data": {"action": "park"}, "children": {}})
    assert flow["data"] == {"action": "park"}
    with pytest.raises(TranslationError) as info:
        validate_flow({"module": "park", "data": "slot 1"})
    assert [f.pointer for f in info.value.findings] == ["/data"]
