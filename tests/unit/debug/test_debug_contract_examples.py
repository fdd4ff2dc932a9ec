"""amqp_schemas/debug_event.json: its examples, with both validators the project uses."""

from __future__ import annotations

import json
import pathlib

import fastjsonschema
import pytest
from jsonschema import Draft202012Validator

REPO = pathlib.Path(__file__).resolve().parents[3]
SCHEMA = REPO / "amqp_schemas" / "debug_event.json"
EXAMPLES = REPO / "amqp_schemas" / "examples"


def _load(path: pathlib.Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def _cases(kind: str) -> list[pathlib.Path]:
    return sorted((EXAMPLES / kind / "debug_event").glob("*.json"))


def test_schema_is_valid_2020_12_with_id() -> None:
    schema = _load(SCHEMA)
    assert isinstance(schema, dict)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("/debug_event.json")
    assert len(_cases("valid")) >= 2
    assert len(_cases("invalid")) >= 2


@pytest.mark.parametrize("path", _cases("valid"), ids=lambda p: p.stem)
def test_valid_examples_pass(path: pathlib.Path) -> None:
    doc = _load(path)
    assert list(Draft202012Validator(_load(SCHEMA)).iter_errors(doc)) == []
    fastjsonschema.compile(_load(SCHEMA))(doc)


@pytest.mark.parametrize("path", _cases("invalid"), ids=lambda p: p.stem)
def test_invalid_examples_fail(path: pathlib.Path) -> None:
    doc = _load(path)
    assert list(Draft202012Validator(_load(SCHEMA)).iter_errors(doc)) != []
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        fastjsonschema.compile(_load(SCHEMA))(doc)
