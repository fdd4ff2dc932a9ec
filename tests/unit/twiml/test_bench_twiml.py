"""Cost of turning a typical TwiML document into a callflow (no thresholds: numbers to report).

The typical document is the one the reference measurements used (bench/README.md): a Say, a Gather
with a nested Say, and a Redirect. Run with ``-p no:cacheprovider --benchmark-only -k bench`` to see
the table.
"""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("pytest_benchmark")

from pivot_worker.callflow.validate import validate_flow
from pivot_worker.twiml import translate_twiml
from pivot_worker.twiml.parse import parse_document

from .support import make_ctx

TYPICAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say voice="woman">Welcome to Example Corp.</Say>
  <Gather action="/ivr/menu" numDigits="1" timeout="5">
    <Say>Press 1 for sales, 2 for support, or 3 to leave a message.</Say>
  </Gather>
  <Redirect method="POST">/ivr/start</Redirect>
</Response>"""

pytestmark = pytest.mark.benchmark(group="twiml", min_rounds=50, max_time=0.25, warmup=False)


def test_bench_translate_typical(benchmark) -> None:
    ctx = make_ctx()
    translation = benchmark(translate_twiml, TYPICAL, ctx)
    assert translation.flow["module"] == "tts"


def test_bench_parse_only(benchmark) -> None:
    doc = benchmark(parse_document, TYPICAL)
    assert doc.root.tag == "Response"


def test_bench_validate_only(benchmark) -> None:
    flow = translate_twiml(TYPICAL, make_ctx()).flow
    fresh = copy.deepcopy(flow)
    assert benchmark(validate_flow, fresh) == flow
