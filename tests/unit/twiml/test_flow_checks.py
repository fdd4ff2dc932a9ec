"""The translator's own check of its flows (``State.complete``) equals ``validate_flow``.

``State.complete`` runs the flow validator's compiled per-module validators over the list of
nodes the translator made, instead of walking the tree. These tests pin the two promises that
make that safe: every flow comes out exactly as ``validate_flow`` would leave it (defaults
included), and a translator bug that breaks a schema still fails the document with the flow
validator's located ``schema_error`` findings.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
from lxml import etree

from pivot_worker.callflow.validate import validate_flow
from pivot_worker.errors import Reason, TranslationError
from pivot_worker.twiml import translate as translate_module
from pivot_worker.twiml import translate_twiml
from pivot_worker.twiml.limits import MAX_FLOW_NODES
from pivot_worker.twiml.state import State, Step
from tests.kazoo_conformance import assert_flow_conforms

from .support import make_ctx
from .test_golden import CASES, DATA, _context


@pytest.mark.parametrize("name", CASES)
def test_golden_flow_is_a_fixed_point_of_validate_flow(name: str) -> None:
    flow = translate_twiml((DATA / f"{name}.xml").read_bytes(), _context(name)).flow
    assert validate_flow(copy.deepcopy(flow)) == flow
    assert_flow_conforms(flow)


def test_node_budget_keeps_flows_within_the_validators_depth() -> None:
    # Depth is never checked by State.complete: a chain of at most MAX_FLOW_NODES nodes is at most
    # that deep, which must stay below what validate_flow accepts.
    assert inspect.signature(validate_flow).parameters["max_depth"].default > MAX_FLOW_NODES


def _buggy_hangup(data: dict[str, Any], module: str = "tts") -> Any:
    def handler(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
        return Step([st.node(element, module, data)], terminal=True)

    return handler


def test_a_node_that_breaks_its_schema_fails_with_located_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = dict(translate_module.HANDLERS)
    handlers["Hangup"] = _buggy_hangup({"text": "x" * 1001})
    monkeypatch.setattr(translate_module, "HANDLERS", handlers)
    with pytest.raises(TranslationError) as info:
        translate_twiml(b"<Response><Say>Hi</Say><Hangup/></Response>", make_ctx())
    assert info.value.reason is Reason.SCHEMA_ERROR
    assert [f.pointer for f in info.value.findings] == ["/children/_/data/text"]


def test_a_module_the_validator_refuses_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = dict(translate_module.HANDLERS)
    handlers["Hangup"] = _buggy_hangup({}, module="no_such_module")
    monkeypatch.setattr(translate_module, "HANDLERS", handlers)
    with pytest.raises(TranslationError) as info:
        translate_twiml(b"<Response><Hangup/></Response>", make_ctx())
    assert info.value.reason is Reason.SCHEMA_ERROR
    assert [(f.code, f.pointer) for f in info.value.findings] == [("unknown_module", "/module")]


def test_defaults_are_filled_in() -> None:
    flow = translate_twiml(b'<Response><Redirect method="GET">/next</Redirect></Response>', make_ctx()).flow
    assert flow["module"] == "pivot"
    assert flow["data"]["debug"] is False  # callflows.pivot default, not written by the translator
