"""Golden pairs: every TwiML verb and attribute we map, TwiML in, Kazoo callflow out.

Each ``tests/data/twiml/<name>.xml`` is translated with the context of ``support.make_ctx``
(overridden by ``<name>.ctx.json`` when present) and compared with ``<name>.json``: the flow,
with each pivot node's continuation token opened for reading, and the warnings' codes and
locations. Every flow must also pass Kazoo's own schemas. Set ``PIVOT_REGEN_GOLDEN=1`` to rewrite
the expected files after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import pytest

from pivot_worker.twiml import Continuation, translate_twiml
from tests.kazoo_conformance import assert_flow_conforms

from .support import make_ctx, readable

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "twiml"
CASES = sorted(p.stem for p in DATA.glob("*.xml"))
REGENERATE = os.environ.get("PIVOT_REGEN_GOLDEN") == "1"


def _context(name: str) -> Any:
    overrides_file = DATA / f"{name}.ctx.json"
    overrides: dict[str, Any] = json.loads(overrides_file.read_text()) if overrides_file.exists() else {}
    if "continuation" in overrides:
        overrides["continuation"] = Continuation(**overrides["continuation"])
    return make_ctx(**overrides)


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    translation = translate_twiml((DATA / f"{name}.xml").read_bytes(), _context(name))
    assert_flow_conforms(translation.flow)
    actual = {
        "flow": readable(translation.flow),
        "warnings": [
            {"code": w.code, "pointer": w.pointer, "line": w.line, "column": w.column}
            for w in translation.warnings
        ],
    }
    expected_file = DATA / f"{name}.json"
    if REGENERATE:
        expected_file.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    expected = json.loads(expected_file.read_text())
    assert actual == expected
