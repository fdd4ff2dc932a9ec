"""A flow wrapped for ``CDR-URI`` (``set_variables`` + the answer as its ``_`` child) is still a flow
Kazoo's own callflow schemas accept, already carrying the defaults Kazoo would fill in."""

from __future__ import annotations

import orjson
import pytest

from pivot_worker.trace import Outcome
from tests.conformance.flow_examples import menu_flow
from tests.e2e.kazoo_side import base_call, pivot_req
from tests.kazoo_conformance import assert_flow_conforms, kazoo_filled_flow, kazoo_schemas_dir
from tests.unit.test_pipeline import QUEUE, ScriptedFetcher, handle, json_answer, pipeline, xml_answer

CDR = {"CDR-URI": "https://cdr.example.com/calls?tenant=7"}
TWIML = b"""<Response><Gather numDigits="1" action="/menu"><Say>Press 1</Say></Gather>
<Say voice="woman">Goodbye</Say><Hangup/></Response>"""


@pytest.fixture(autouse=True)
def _kazoo_schemas_present() -> None:
    kazoo_schemas_dir()


@pytest.mark.parametrize(
    ("answer", "request_format"),
    [(json_answer(menu_flow()), "kazoo"), (xml_answer(TWIML), "twiml")],
    ids=["kazoo-json", "twiml"],
)
async def test_wrapped_flow_conforms_to_kazoo_schemas(answer: object, request_format: str) -> None:
    body = orjson.dumps(
        pivot_req(
            base_call("c1@10.0.0.5", QUEUE),
            "https://ivr.example.com/start",
            **{**CDR, "Request-Format": request_format},
        )
    )
    decision = await handle(pipeline(ScriptedFetcher(answer)), body)  # type: ignore[arg-type]
    assert decision.outcome is Outcome.SUCCESS, decision.message
    flow = decision.flow
    assert flow is not None and flow["module"] == "set_variables"
    assert_flow_conforms(flow)
    assert kazoo_filled_flow(flow) == flow, "a published flow must already carry Kazoo's defaults"
