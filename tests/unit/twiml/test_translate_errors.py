"""Documents that cannot become a callflow fail with a stable code, a reason and a location."""

from __future__ import annotations

import hashlib

import pytest

from pivot_worker.errors import PivotError, Reason, TranslationError
from pivot_worker.twiml import Continuation, translate_twiml
from pivot_worker.twiml.continuation import REDIRECT
from pivot_worker.twiml.limits import MAX_FLOW_NODES, MAX_SAY_CHARS, MAX_VARIABLES, MAX_VERBS

from .support import CALL_ID, make_ctx, refuse_host

# (document, reason, code, pointer, line, column)
CASES = [
    (b"<Response><Foo/></Response>", Reason.SCHEMA_ERROR, "12200", "/Response/Foo[1]", 1, 11),
    (
        b"<Response>\n  <Say>a</Say>\n  <Number>1</Number>\n</Response>",
        Reason.SCHEMA_ERROR,
        "12200",
        "/Response/Number[1]",
        3,
        3,
    ),
    (
        b"<Response><Leave/></Response>",
        Reason.UNSUPPORTED_VERB,
        "unsupported-verb",
        "/Response/Leave[1]",
        1,
        11,
    ),
    (
        b"<Response><Refer><Sip>sip:a@b</Sip></Refer></Response>",
        Reason.UNSUPPORTED_VERB,
        "unsupported-verb",
        "/Response/Refer[1]",
        1,
        11,
    ),
    (
        b"<Response><Connect/></Response>",
        Reason.UNSUPPORTED_VERB,
        "unsupported-verb",
        "/Response/Connect[1]",
        1,
        11,
    ),
    (
        b"<Response><Gather><Dial>1</Dial></Gather></Response>",
        Reason.SCHEMA_ERROR,
        "13320",
        "/Response/Gather[1]/Dial[1]",
        1,
        19,
    ),
    (
        b"<Response><Dial><Sip>sip:a@b.c</Sip></Dial></Response>",
        Reason.UNSUPPORTED_VERB,
        "unsupported-noun",
        "/Response/Dial[1]/Sip[1]",
        1,
        17,
    ),
    (
        b"<Response><Dial><Client>joe</Client></Dial></Response>",
        Reason.UNSUPPORTED_VERB,
        "unsupported-noun",
        "/Response/Dial[1]/Client[1]",
        1,
        17,
    ),
    (
        b"<Response><Dial><Queue>support</Queue></Dial></Response>",
        Reason.UNSUPPORTED_VERB,
        "unsupported-noun",
        "/Response/Dial[1]/Queue[1]",
        1,
        17,
    ),
    (b"<Response><Dial>call me</Dial></Response>", Reason.SCHEMA_ERROR, "13223", "/Response/Dial[1]", 1, 11),
    (b"<Response><Dial> </Dial></Response>", Reason.SCHEMA_ERROR, "13224", "/Response/Dial[1]", 1, 11),
    (
        b"<Response><Dial><Number>1</Number><Number>2</Number></Dial></Response>",
        Reason.UNSUPPORTED_VERB,
        "dial-several-numbers",
        "/Response/Dial[1]",
        1,
        11,
    ),
    (
        b"<Response><Dial><Number>1</Number><User>u1</User></Dial></Response>",
        Reason.UNSUPPORTED_VERB,
        "dial-mixed",
        "/Response/Dial[1]",
        1,
        11,
    ),
    (
        b"<Response><Dial><Conference></Conference></Dial></Response>",
        Reason.SCHEMA_ERROR,
        "13237",
        "/Response/Dial[1]/Conference[1]",
        1,
        17,
    ),
    (
        b"<Response><Dial><User>not an id!</User></Dial></Response>",
        Reason.SCHEMA_ERROR,
        "12200",
        "/Response/Dial[1]/User[1]",
        1,
        17,
    ),
    (b"<Response><Redirect/></Response>", Reason.SCHEMA_ERROR, "12200", "/Response/Redirect[1]", 1, 11),
    (b"<Response><Play/></Response>", Reason.SCHEMA_ERROR, "12200", "/Response/Play[1]", 1, 11),
    (
        b"<Response><Set><Variable value='x'/></Set></Response>",
        Reason.SCHEMA_ERROR,
        "variable-key",
        "/Response/Set[1]/Variable[1]",
        1,
        16,
    ),
    (
        b"<Response><Set><Say>x</Say></Set></Response>",
        Reason.SCHEMA_ERROR,
        "12200",
        "/Response/Set[1]/Say[1]",
        1,
        16,
    ),
    (
        b"<Response><Enqueue>support</Enqueue></Response>",
        Reason.UNSUPPORTED_VERB,
        None,
        "/Response/Enqueue[1]",
        1,
        11,
    ),
]


@pytest.mark.parametrize(("body", "reason", "code", "pointer", "line", "column"), CASES)
def test_located_errors(
    body: bytes, reason: Reason, code: str | None, pointer: str, line: int, column: int
) -> None:
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    err = info.value
    assert err.reason is reason
    first = err.findings[0]
    if code is not None:
        assert first.code == code
    assert (first.pointer, first.line, first.column) == (pointer, line, column)


def test_all_structural_errors_are_reported_together() -> None:
    body = b"<Response>\n<Foo/>\n<Say>ok</Say>\n<Bar/>\n<Gather><Hangup/></Gather>\n</Response>"
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    assert [(f.pointer, f.line) for f in info.value.findings] == [
        ("/Response/Foo[1]", 2),
        ("/Response/Bar[1]", 4),
        ("/Response/Gather[1]/Hangup[1]", 5),
    ]


def test_blocked_url_is_a_located_pivot_error() -> None:
    body = b"<Response>\n<Say>hi</Say>\n<Play>https://evil.example.net/x.mp3</Play></Response>"
    with pytest.raises(PivotError) as info:
        translate_twiml(body, make_ctx(check_url=refuse_host("evil.example.net")))
    err = info.value
    assert err.reason is Reason.BLOCKED_ADDRESS
    assert err.detail["pointer"] == "/Response/Play[1]"
    assert err.detail["line"] == 3
    assert "evil.example.net" in str(err)


@pytest.mark.parametrize(
    "body",
    [
        b'<Response><Gather action="/ok"/><Say>x</Say><Redirect>https://evil.example.net/</Redirect></Response>',
        b'<Response><Record recordingUrl="https://evil.example.net/store"/></Response>',
        b'<Response><Dial action="https://evil.example.net/a"><Number>1</Number></Dial></Response>',
        b'<Response><Reject prompt="https://evil.example.net/p.mp3"/></Response>',
    ],
)
def test_every_follow_up_and_media_url_is_checked(body: bytes) -> None:
    # Verbs after a Gather (its no-input path) are checked up front too, as they will run.
    with pytest.raises(PivotError) as info:
        translate_twiml(body, make_ctx(check_url=refuse_host("evil.example.net")))
    assert info.value.reason is Reason.BLOCKED_ADDRESS


def test_non_http_action_is_invalid_url() -> None:
    with pytest.raises(PivotError) as info:
        translate_twiml(b"<Response><Redirect>ftp://files.example.com/x</Redirect></Response>", make_ctx())
    assert info.value.reason is Reason.INVALID_URL


def test_loop_guard_refuses_the_callback_beyond_the_limit() -> None:
    cont = Continuation(call_id=CALL_ID, iteration=50, kind=REDIRECT)
    body = b"<Response><Say>again</Say><Redirect>/start</Redirect></Response>"
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx(continuation=cont, max_iterations=50))
    assert info.value.reason is Reason.REDIRECT_LOOP
    assert info.value.findings[0].pointer == "/Response/Redirect[1]"
    # The same document one request earlier is fine, and a document without callbacks still runs.
    translate_twiml(body, make_ctx(continuation=Continuation(call_id=CALL_ID, iteration=49, kind=REDIRECT)))
    translate_twiml(b"<Response><Say>bye</Say></Response>", make_ctx(continuation=cont))


def test_request_past_the_limit_is_refused_outright() -> None:
    cont = Continuation(call_id=CALL_ID, iteration=51, kind=REDIRECT)
    with pytest.raises(TranslationError) as info:
        translate_twiml(b"<Response><Hangup/></Response>", make_ctx(continuation=cont))
    assert info.value.reason is Reason.REDIRECT_LOOP


def test_say_text_limit() -> None:
    body = f"<Response><Say>{'a' * (MAX_SAY_CHARS + 1)}</Say></Response>".encode()
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    assert info.value.reason is Reason.LIMIT_EXCEEDED
    assert info.value.findings[0].code == "say-length"


def test_verb_count_limit() -> None:
    body = ("<Response>" + "<Pause/>" * (MAX_VERBS + 1) + "</Response>").encode()
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    assert info.value.reason is Reason.LIMIT_EXCEEDED
    assert info.value.findings[0].code == "verb-count"


def test_flow_node_limit() -> None:
    body = ("<Response>" + '<Say loop="10">x</Say>' * (MAX_FLOW_NODES // 10 + 1) + "</Response>").encode()
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    assert info.value.findings[0].code == "flow-size"


def test_variable_count_limit() -> None:
    variables = "".join(f'<Variable key="k{i}" value="v"/>' for i in range(MAX_VARIABLES + 1))
    with pytest.raises(TranslationError) as info:
        translate_twiml(f"<Response><Set>{variables}</Set></Response>".encode(), make_ctx())
    assert info.value.findings[0].code == "variable-count"


def test_remaining_verbs_too_large_for_a_token() -> None:
    noise = [hashlib.sha512(str(i).encode()).hexdigest() * 2 for i in range(40)]  # hard to compress
    says = "".join(f"<Say>{words}</Say>" for words in noise)
    body = f'<Response><Gather action="/g"/>{says}</Response>'.encode()
    with pytest.raises(TranslationError) as info:
        translate_twiml(body, make_ctx())
    assert info.value.reason is Reason.LIMIT_EXCEEDED
    assert info.value.findings[0].pointer == "/Response/Gather[1]"
