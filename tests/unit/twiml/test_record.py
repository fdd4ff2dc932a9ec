"""<Record>: what Kazoo's record_caller does, and what it cannot tell the next request."""

from __future__ import annotations

import pytest

from pivot_worker.twiml import translate_twiml

from .support import make_ctx


def _warnings(record: str, after: str = "") -> list[tuple[str, str, str]]:
    body = f'<Response><Record action="/done" trim="do-not-trim" {record}/>{after}</Response>'.encode()
    return [(w.code, w.pointer, w.message) for w in translate_twiml(body, make_ctx()).warnings]


@pytest.mark.parametrize("record", ['timeout="5"', 'finishOnKey="#*0987654321"', ""])
def test_twilio_defaults_that_kazoo_shares_are_quiet(record: str) -> None:
    assert _warnings(record) == []


@pytest.mark.parametrize(("record", "name"), [('timeout="10"', "timeout"), ('timeout="0"', "timeout")])
def test_another_silence_timeout_is_reported(record: str, name: str) -> None:
    [(code, _, message)] = _warnings(record)
    assert code == "kazoo-unsupported"
    assert message.startswith(f"{name}=") and "5 s of silence" in message


@pytest.mark.parametrize("key", ["#", "", "12"])
def test_a_chosen_finishing_key_is_reported(key: str) -> None:
    [(code, _, message)] = _warnings(f'finishOnKey="{key}"')
    assert code == "kazoo-unsupported" and "any key" in message


def test_trimming_silence_by_default_is_reported() -> None:
    body = b'<Response><Record action="/done"/></Response>'
    [warning] = translate_twiml(body, make_ctx()).warnings
    assert warning.code == "kazoo-unsupported" and "trim-silence" in warning.message


def test_verbs_after_a_record_are_reported_as_never_run_and_why() -> None:
    warnings = _warnings("", "<Say>Nothing recorded.</Say>")
    assert [(code, pointer) for code, pointer, _ in warnings] == [("kazoo-unsupported", "/Response/Say[1]")]
    assert "empty" in warnings[0][2] and "record_caller" in warnings[0][2]
