"""<Gather> attributes Kazoo cannot honour, and the verbs a Gather carries, checked up front."""

from __future__ import annotations

import pytest

from pivot_worker.errors import PivotError, Reason, TranslationError
from pivot_worker.twiml import Continuation, translate_twiml
from pivot_worker.twiml.continuation import REDIRECT

from .support import CALL_ID, make_ctx, refuse_host


def _warnings(body: bytes) -> list[tuple[str, str]]:
    return [(w.code, w.message) for w in translate_twiml(body, make_ctx()).warnings]


def test_speech_only_input_is_refused_located_and_says_why() -> None:
    body = b'<Response>\n<Gather input="speech" action="/heard"><Say>Say something.</Say></Gather></Response>'
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    assert info.value.reason is Reason.UNSUPPORTED_VERB
    [finding] = info.value.findings
    assert (finding.code, finding.pointer, finding.line) == ("unsupported-verb", "/Response/Gather[1]", 2)
    assert "Kazoo's callflow engine" in finding.message
    assert 'input="dtmf"' in finding.message


@pytest.mark.parametrize("value", ["dtmf speech", "speech dtmf", "DTMF Speech"])
def test_speech_with_keys_collects_keys_and_names_each_ignored_speech_attribute(value: str) -> None:
    body = (
        f'<Response><Gather input="{value}" hints="yes, no" speechModel="phone_call" enhanced="true" '
        'speechTimeout="auto" maxSpeechTime="30" partialResultCallback="/partial">'
        "<Say>Say or press.</Say></Gather></Response>"
    ).encode()
    warnings = _warnings(body)
    assert warnings[0][0] == "kazoo-unsupported" and "no speech recognition" in warnings[0][1]
    named = {message.split("=", 1)[0] for _, message in warnings[1:]}
    assert named == {
        "hints",
        "speechModel",
        "enhanced",
        "speechTimeout",
        "maxSpeechTime",
        "partialResultCallback",
    }
    assert all(code == "kazoo-unsupported" for code, _ in warnings)


def test_speech_attributes_are_quiet_when_only_keys_are_asked_for_as_on_twilio() -> None:
    assert (
        _warnings(b'<Response><Gather hints="yes" language="fr-FR"><Say>Hi</Say></Gather></Response>') == []
    )


def test_an_unknown_input_value_collects_keys_with_a_warning() -> None:
    assert _warnings(b'<Response><Gather input="touchtone"/></Response>') == [
        ("gather-input", "input='touchtone' must be dtmf, speech or \"dtmf speech\"; using dtmf")
    ]


def test_no_finishing_key_cannot_be_expressed_and_says_why() -> None:
    body = b'<Response><Gather finishOnKey=""/></Response>'
    translation = translate_twiml(body, make_ctx())
    collect = translation.flow["children"]["_"]["data"]
    assert collect["terminator"] == "#"
    [(code, message)] = [(w.code, w.message) for w in translation.warnings]
    assert code == "kazoo-unsupported" and "cf_collect_dtmf" in message


def test_an_ftp_play_after_a_gather_fails_the_document_up_front() -> None:
    body = b"<Response>\n<Gather/>\n<Play>ftp://files.example.com/x.mp3</Play></Response>"
    with pytest.raises(PivotError) as info:
        translate_twiml(body, make_ctx())
    assert info.value.reason is Reason.INVALID_URL
    assert (info.value.detail["pointer"], info.value.detail["line"]) == ("/Response/Play[1]", 3)


def test_a_blocked_url_after_a_gather_fails_the_document_up_front() -> None:
    body = b"<Response><Gather/><Redirect>https://evil.example.net/next</Redirect></Response>"
    with pytest.raises(PivotError) as info:
        translate_twiml(body, make_ctx(check_url=refuse_host("evil.example.net")))
    assert info.value.reason is Reason.BLOCKED_ADDRESS
    assert info.value.detail["pointer"] == "/Response/Redirect[1]"


def test_an_error_in_a_carried_verb_is_reported_with_the_document() -> None:
    body = b"<Response><Gather/><Play/></Response>"
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    assert info.value.reason is Reason.SCHEMA_ERROR
    assert [f.pointer for f in info.value.findings] == ["/Response/Play[1]"]


def test_carried_verbs_warn_only_when_they_run() -> None:
    assert _warnings(b'<Response><Gather/><Say voice="robot">Bye</Say></Response>') == []


def test_the_loop_guard_is_reported_at_the_gather_not_at_its_carried_verbs() -> None:
    cont = Continuation(call_id=CALL_ID, iteration=50, kind=REDIRECT)
    body = b"<Response><Gather/><Redirect>/again</Redirect></Response>"
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx(continuation=cont, max_iterations=50))
    assert info.value.reason is Reason.REDIRECT_LOOP
    assert [f.pointer for f in info.value.findings] == ["/Response/Gather[1]"]


def test_debug_is_reported_as_ignored_unless_false() -> None:
    assert _warnings(b'<Response><Gather debug="false"/></Response>') == []
    [(code, message)] = _warnings(b'<Response><Gather debug="true"/></Response>')
    assert code == "kazoo-unsupported" and message.startswith("debug='true' is ignored")
