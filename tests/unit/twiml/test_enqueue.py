"""``<Enqueue>`` maps to Kazoo's ``acdc_member`` (see also the golden pairs ``enqueue_*``).

Should the flow validator stop accepting ``acdc_member``, the verb must fail with a clear
``unsupported-verb`` rather than an obscure schema error.
"""

from __future__ import annotations

from typing import Any

import pytest

from pivot_worker.errors import Reason, TranslationError
from pivot_worker.twiml import translate as translate_module
from pivot_worker.twiml import translate_twiml
from tests.kazoo_conformance import assert_flow_conforms

from .support import make_ctx, modules_along, readable

QUEUE = "0123456789abcdef0123456789abcdef"


def test_refused_when_the_validator_lacks_acdc_member(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate_module, "ACCEPTED_MODULES", frozenset({"tts"}))
    with pytest.raises(TranslationError) as info:
        translate_twiml(f"<Response><Enqueue>{QUEUE}</Enqueue></Response>".encode(), make_ctx())
    assert info.value.reason is Reason.UNSUPPORTED_VERB
    assert "acdc_member" in info.value.findings[0].message


def test_enqueue_with_action() -> None:
    body = f'<Response><Enqueue action="/queue-done" waitUrl="/music">{QUEUE}</Enqueue></Response>'.encode()
    translation = translate_twiml(body, make_ctx())
    flow: dict[str, Any] = translation.flow
    assert_flow_conforms(flow)
    assert flow["module"] == "acdc_member"
    assert flow["data"] == {"id": QUEUE}
    pivot = readable(flow)["children"]["_"]
    assert pivot["data"]["voice_url"] == "https://ivr.example.com/queue-done"
    assert pivot["data"]["continuation"]["kind"] == "enqueue"
    assert [w.code for w in translation.warnings] == ["kazoo-unsupported"]


def test_enqueue_without_action_goes_on() -> None:
    body = f"<Response><Enqueue>{QUEUE}</Enqueue><Say>Nobody is free.</Say></Response>".encode()
    flow = translate_twiml(body, make_ctx()).flow
    assert_flow_conforms(flow)
    assert modules_along(flow) == ["acdc_member", "tts", "hangup"]


def test_queue_names_are_refused() -> None:
    with pytest.raises(TranslationError) as info:
        translate_twiml(b"<Response><Enqueue>support</Enqueue></Response>", make_ctx())
    assert info.value.findings[0].code == "enqueue-queue"
