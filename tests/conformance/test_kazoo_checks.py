"""The Kazoo conformance checks must catch what Kazoo would reject, or every test built on them is hollow."""

from __future__ import annotations

import pathlib

import pytest

from tests.kazoo_conformance import (
    assert_conforms,
    assert_flow_conforms,
    flow_errors,
    kazoo_schemas_dir,
)


@pytest.fixture(autouse=True)
def _schemas() -> pathlib.Path:
    return kazoo_schemas_dir()


def test_accepts_a_valid_nested_flow() -> None:
    flow = {
        "module": "tts",
        "data": {"text": "Hello"},
        "children": {"_": {"module": "pivot", "data": {"voice_url": "https://ivr.example.com/next"}}},
    }
    assert flow_errors(flow) == []
    assert_flow_conforms(flow)


def test_lists_every_error_with_its_path() -> None:
    flow = {
        "module": "tts",
        "data": {"text": ""},
        "children": {
            "_": {"module": "no_such_module", "data": {}},
            "a/b": {"module": "pivot", "data": {"voice_url": "ftp://x", "req_timeout_ms": 99999}},
        },
    }
    with pytest.raises(AssertionError) as caught:
        assert_flow_conforms(flow)
    text = str(caught.value)
    assert "(4)" in text
    assert "/data/text:" in text
    assert "/children/_/module: unable to find callflow schema for module 'no_such_module'" in text
    assert "/children/a~1b/data/req_timeout_ms:" in text
    assert "/children/a~1b/data/voice_url:" in text


def test_resolves_bare_id_refs_into_conferences() -> None:
    bad = {"module": "conference", "data": {"config": {"name": 5}}}
    errors = flow_errors(bad)
    assert errors == ["/data/config/name: 5 is not of type 'string' (schema callflows.conference)"]


def test_children_are_validated_as_actions() -> None:
    errors = flow_errors({"module": "answer", "data": {}, "children": {"_": {"data": {}}}})
    assert any(e.startswith("/children/_:") and "'module' is a required property" in e for e in errors)


def test_non_object_root_is_rejected() -> None:
    with pytest.raises(AssertionError, match=r"\(root\): \[\] is not of type 'object'"):
        assert_flow_conforms([])  # type: ignore[arg-type]


def test_message_check_reports_missing_required_header() -> None:
    with pytest.raises(AssertionError, match="Call-ID"):
        assert_conforms("kapi.pivot.processing", {"Event-Category": "pivot", "Event-Name": "processing"})


def test_missing_directory_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("PIVOT_KAZOO_SCHEMAS", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Kazoo schemas not found"):
        kazoo_schemas_dir()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Kazoo schemas not found"):
        kazoo_schemas_dir()
