"""The bus message contracts: schemas, their examples, and the validators the worker uses."""

from __future__ import annotations

import copy
import json
import pathlib
import tomllib
from importlib import resources
from typing import Any

import fastjsonschema
import orjson
import pytest
from jsonschema import Draft202012Validator

from pivot_worker.contracts import (
    OUTGOING,
    check,
    compiled,
    contract_schema,
    validate_outgoing,
    validate_pivot_req,
)
from pivot_worker.errors import PivotError, Reason, RequestRejected

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "amqp_schemas"
OURS = ("pivot_req", *OUTGOING)
# Keywords whose meaning is identical in draft-07 (what fastjsonschema implements) and 2020-12.
PORTABLE_KEYWORDS = {
    "$schema", "$id", "$ref", "$defs", "title", "description", "type", "properties", "required",
    "additionalProperties", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "anyOf", "oneOf", "items", "minItems",
}  # fmt: skip


def _load(path: pathlib.Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _examples(kind: str) -> list[tuple[str, pathlib.Path]]:
    return [
        (name, path)
        for name in OURS
        for path in sorted((SCHEMA_DIR / "examples" / kind / name).glob("*.json"))
    ]


def _id(case: tuple[str, pathlib.Path]) -> str:
    return f"{case[0]}/{case[1].stem}"


def _fast_accepts(name: str, doc: object) -> bool:
    try:
        fastjsonschema.compile(_load(SCHEMA_DIR / f"{name}.json"))(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_schema_is_a_valid_2020_12_schema_with_id(path: pathlib.Path) -> None:
    schema = _load(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{path.name}")
    assert schema.get("description")


@pytest.mark.parametrize("name", OURS)
def test_schema_uses_only_keywords_that_mean_the_same_in_draft_07(name: str) -> None:
    used: set[str] = set()

    def walk(node: object, in_properties: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not in_properties:
                    used.add(key)
                walk(value, in_properties=(key in ("properties", "$defs") and not in_properties))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(_load(SCHEMA_DIR / f"{name}.json"))
    assert used <= PORTABLE_KEYWORDS, used - PORTABLE_KEYWORDS


@pytest.mark.parametrize("name", OURS)
@pytest.mark.parametrize("kind", ["valid", "invalid"])
def test_each_schema_has_several_examples(name: str, kind: str) -> None:
    assert len(list((SCHEMA_DIR / "examples" / kind / name).glob("*.json"))) >= 2


@pytest.mark.parametrize("case", _examples("valid"), ids=_id)
def test_valid_examples_pass_both_validators(case: tuple[str, pathlib.Path]) -> None:
    name, path = case
    doc = _load(path)
    errors = [e.message for e in Draft202012Validator(_load(SCHEMA_DIR / f"{name}.json")).iter_errors(doc)]
    assert errors == []
    assert _fast_accepts(name, doc)


@pytest.mark.parametrize("case", _examples("invalid"), ids=_id)
def test_invalid_examples_fail_both_validators(case: tuple[str, pathlib.Path]) -> None:
    name, path = case
    doc = _load(path)
    assert not Draft202012Validator(_load(SCHEMA_DIR / f"{name}.json")).is_valid(doc)
    assert not _fast_accepts(name, doc)


@pytest.mark.parametrize(
    ("example", "message", "pointer", "code"),
    [
        ("missing_call", "pivot_req /Call: is required", "/Call", "required"),
        ("missing_voice_uri", "pivot_req /Voice-URI: is required", "/Voice-URI", "required"),
        ("call_without_call_id", "pivot_req /Call/Call-ID: is required", "/Call/Call-ID", "required"),
        (
            "call_without_controller_queue",
            "pivot_req /Call/Controller-Queue: is required",
            "/Call/Controller-Queue",
            "required",
        ),
        ("call_id_empty", "pivot_req /Call/Call-ID: must not be empty", "/Call/Call-ID", "min_length"),
        (
            "debug_maybe",
            'pivot_req /Debug: must be one of true, false, "true", "false" (got "maybe")',
            "/Debug",
            "enum",
        ),
        (
            "request_timeout_string",
            "pivot_req /Request-Timeout: must be an integer, not a string",
            "/Request-Timeout",
            "type",
        ),
        (
            "request_timeout_zero",
            "pivot_req /Request-Timeout: must be >= 1 (got 0)",
            "/Request-Timeout",
            "minimum",
        ),
        (
            "request_format_xml",
            'pivot_req /Request-Format: must be one of "kazoo", "twiml" (got "xml")',
            "/Request-Format",
            "enum",
        ),
        ("not_an_object", "pivot_req (root): must be an object, not an array", "", "type"),
        ("call_not_object", "pivot_req /Call: must be an object, not a string", "/Call", "type"),
    ],
)
def test_rejection_names_the_field_and_the_rule(example: str, message: str, pointer: str, code: str) -> None:
    doc = _load(SCHEMA_DIR / "examples" / "invalid" / "pivot_req" / f"{example}.json")
    with pytest.raises(RequestRejected) as caught:
        validate_pivot_req(doc)
    assert str(caught.value) == message
    assert caught.value.reason is Reason.INVALID_REQUEST
    rule = {
        "required": "required",
        "min_length": "minLength",
        "enum": "enum",
        "type": "type",
        "minimum": "minimum",
    }
    assert caught.value.detail == {
        "schema": "pivot_req",
        "pointer": pointer,
        "rule": rule[code],
        "code": code,
    }


def test_http_method_rule_is_named() -> None:
    doc = _load(SCHEMA_DIR / "examples" / "invalid" / "pivot_req" / "http_method_put.json")
    with pytest.raises(
        RequestRejected, match=r"^pivot_req /HTTP-Method: must match the pattern .* \(got \"put\"\)$"
    ):
        validate_pivot_req(doc)


def test_several_missing_keys_are_all_named() -> None:
    with pytest.raises(RequestRejected) as caught:
        validate_pivot_req({"Voice-URI": "https://x.example/", "Call": {}})
    assert str(caught.value) == "pivot_req /Call/Call-ID: is required (also missing: /Call/Controller-Queue)"


@pytest.mark.parametrize("method", ["get", "GET", "Post", "pOsT"])
def test_http_method_accepts_any_letter_case(method: str) -> None:
    validate_pivot_req(
        {
            "Voice-URI": "https://x.example/",
            "HTTP-Method": method,
            "Call": {"Call-ID": "c", "Controller-Queue": "q"},
        }
    )


@pytest.mark.parametrize("value", [True, False, "true", "false"])
def test_debug_accepts_booleans_and_their_strings(value: object) -> None:
    validate_pivot_req(
        {"Voice-URI": "https://x.example/", "Debug": value, "Call": {"Call-ID": "c", "Controller-Queue": "q"}}
    )


@pytest.mark.parametrize("value", [1, 0, "TRUE", "yes", None, 1.0])
def test_debug_rejects_look_alikes(value: object) -> None:
    with pytest.raises(RequestRejected, match=r"^pivot_req /Debug: must be one of"):
        validate_pivot_req(
            {
                "Voice-URI": "https://x.example/",
                "Debug": value,
                "Call": {"Call-ID": "c", "Controller-Queue": "q"},
            }
        )


def test_validation_does_not_modify_the_request() -> None:
    doc = _load(SCHEMA_DIR / "examples" / "valid" / "pivot_req" / "minimal.json")
    before = copy.deepcopy(doc)
    validate_pivot_req(doc)
    assert doc == before


def test_failure_reason_enum_is_exactly_the_reason_codes() -> None:
    enum = contract_schema("pivot_failed")["properties"]["Failure-Reason"]["enum"]
    assert enum == [r.value for r in Reason]


@pytest.mark.parametrize("name", OUTGOING)
def test_outgoing_envelopes_forbid_unknown_keys(name: str) -> None:
    schema = contract_schema(name)
    assert schema["additionalProperties"] is False
    assert {"App-Name", "App-Version", "Event-Category", "Event-Name", "Msg-ID", "Call-ID"} <= set(
        schema["required"]
    )


def test_pivot_req_envelope_accepts_unknown_keys() -> None:
    assert "additionalProperties" not in contract_schema("pivot_req")
    assert "additionalProperties" not in contract_schema("pivot_req")["$defs"]["call"]


def test_validate_outgoing_accepts_every_valid_example() -> None:
    for name in OUTGOING:
        for path in sorted((SCHEMA_DIR / "examples" / "valid" / name).glob("*.json")):
            validate_outgoing(name, _load(path))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("{not json", "must be JSON text of an object"),
        ('["module", "tts"]', "must be JSON text of an object"),
        ('"{}"', "must be JSON text of an object"),
    ],
)
def test_channel_pivot_application_data_must_be_a_json_object(data: str, why: str) -> None:
    msg = _load(SCHEMA_DIR / "examples" / "valid" / "channel_pivot" / "kazoo_wire_example.json")
    msg["Application-Data"] = data
    with pytest.raises(PivotError) as caught:
        validate_outgoing("channel_pivot", msg)
    assert str(caught.value).startswith(f"outgoing channel_pivot /Application-Data: {why}")
    assert caught.value.reason is Reason.INTERNAL_ERROR


def test_validate_outgoing_names_the_broken_field() -> None:
    msg = _load(SCHEMA_DIR / "examples" / "valid" / "pivot_failed" / "with_failure_reason.json")
    msg["Failure-Reason"] = "on_fire"
    with pytest.raises(
        PivotError, match=r'^outgoing pivot_failed /Failure-Reason: must be one of .*\(got "on_fire"\)$'
    ):
        validate_outgoing("pivot_failed", msg)


def test_unknown_contract_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no message contract named 'pivot_reply'; known: .*pivot_req"):
        validate_outgoing("pivot_reply", {})


def test_validators_are_compiled_once() -> None:
    assert compiled("pivot_req") is compiled("pivot_req")
    assert check("pivot_req", {"Voice-URI": "u", "Call": {"Call-ID": "c", "Controller-Queue": "q"}}) is None


def test_bundled_schemas_are_the_repository_files() -> None:
    """What an installed wheel loads (package data) must be byte-identical to amqp_schemas/."""
    bundled = resources.files("pivot_worker.schemas").joinpath("amqp")
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        assert bundled.joinpath(path.name).read_bytes() == path.read_bytes(), path.name


def test_package_data_ships_the_schemas() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["pivot_worker"]
    assert "schemas/**/*.json" in patterns
    link = REPO / "pivot_worker" / "schemas" / "amqp"
    assert link.resolve() == SCHEMA_DIR.resolve()


def test_kazoo_wire_example_decodes_with_orjson_and_passes() -> None:
    raw = (SCHEMA_DIR / "examples" / "valid" / "pivot_req" / "kazoo_wire_example.json").read_bytes()
    validate_pivot_req(orjson.loads(raw))
