"""Continuation tokens: round trip, byte-exact stripping, and refusal of anything altered."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest

from pivot_worker.errors import PivotError, Reason
from pivot_worker.twiml import TOKEN_PARAM, Continuation, open_continuation
from pivot_worker.twiml.continuation import AFTER_DIAL, GATHER, RECORD, attach_token, seal_continuation
from pivot_worker.twiml.limits import MAX_TOKEN_CHARS

from .support import CALL_ID, KEY

FULL = Continuation(
    call_id=CALL_ID,
    iteration=3,
    kind=GATHER,
    variables={"customer": "42", "lang": "fr"},
    collection="pivot_g2",
    action_on_empty=True,
    remaining="<Response><Say>Bye</Say><Hangup/></Response>",
    base_url="https://ivr.example.com/app/start?tenant=7",
)


@pytest.mark.parametrize(
    "cont",
    [
        FULL,
        Continuation(call_id="c", iteration=1, kind=RECORD, recording_url="https://s/x/c.mp3"),
        Continuation(
            call_id="c",
            iteration=2,
            kind=GATHER,
            remaining="<Response>" + "<Say>long text</Say>" * 40 + "</Response>",
        ),
    ],
)
def test_round_trip(cont: Continuation) -> None:
    url = attach_token("https://ivr.example.com/next", seal_continuation(cont, KEY))
    stripped, opened = open_continuation(url, key=KEY)
    assert stripped == "https://ivr.example.com/next"
    assert opened == cont


def test_every_field_survives_the_round_trip() -> None:
    """A field added to Continuation without a short name in the token fails here."""
    values = {
        f.name: (f"{f.name}-value" if f.type == "str" else True)
        for f in dataclasses.fields(Continuation)
        if f.name not in ("call_id", "iteration", "kind", "variables")
    }
    cont = Continuation(call_id="c", iteration=2, kind=AFTER_DIAL, variables={"k": "v"}, **values)
    _, opened = open_continuation(attach_token("https://a/b", seal_continuation(cont, KEY)), key=KEY)
    assert opened == cont


def test_large_payloads_are_compressed() -> None:
    cont = Continuation(
        call_id="c",
        iteration=2,
        kind=GATHER,
        remaining="<Response>" + "<Say>same</Say>" * 100 + "</Response>",
    )
    token = seal_continuation(cont, KEY)
    assert len(token) < len(cont.remaining) / 3
    assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[0] == 2


@pytest.mark.parametrize(
    "url",
    [
        "https://h/p",
        "https://h/p?a=1&b=2",
        "https://h/p?",
        "https://h/p?a=1&",
        "https://h/p#frag",
        "https://h/p?q=%20x#f?g&h",
        "https://h/p?_pivot_k=developer-own&x=1",
        "https://user:pw@h:8443/p;m?x=%C3%A9",
    ],
)
def test_developer_url_survives_byte_for_byte(url: str) -> None:
    token = seal_continuation(FULL, KEY)
    carried = attach_token(url, token)
    assert carried.count(TOKEN_PARAM + "=" + token) == 1
    hash_at = carried.find("#")
    assert (carried if hash_at == -1 else carried[:hash_at]).endswith(token)
    assert open_continuation(carried, key=KEY) == (url, FULL)


def test_url_without_token_is_untouched() -> None:
    assert open_continuation("https://h/p?x=1#f", key=KEY) == ("https://h/p?x=1#f", None)


def _flip(token: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(token[index]) + 1) % 64]
    return token[:index] + replacement + token[index + 1 :]


@pytest.mark.parametrize("index", [0, 1, 5, 20, 24, 40, -2])
def test_any_altered_character_is_refused(index: int) -> None:
    token = seal_continuation(FULL, KEY)
    with pytest.raises(PivotError) as info:
        open_continuation(f"https://h/p?{TOKEN_PARAM}={_flip(token, index)}", key=KEY)
    assert info.value.reason is Reason.INVALID_CONTINUATION


def test_other_key_is_refused() -> None:
    url = attach_token("https://h/p", seal_continuation(FULL, KEY))
    with pytest.raises(PivotError) as info:
        open_continuation(url, key=b"another key entirely, also 32 b")
    assert info.value.reason is Reason.INVALID_CONTINUATION
    assert "signature" in str(info.value)


@pytest.mark.parametrize("token", ["", "x", "!!!!", "A" * 10, "AQ" + "A" * 40, "A" * (MAX_TOKEN_CHARS + 4)])
def test_garbage_tokens_are_refused(token: str) -> None:
    with pytest.raises(PivotError) as info:
        open_continuation(f"https://h/p?a=1&{TOKEN_PARAM}={token}", key=KEY)
    assert info.value.reason is Reason.INVALID_CONTINUATION


def test_validly_signed_but_malformed_payload_is_refused() -> None:
    from pivot_worker.twiml.continuation import _mac

    for body in (
        b"[]",
        b'{"c":"x","i":0,"k":"g"}',
        b'{"c":"x","i":1,"k":"?"}',
        b'{"c":"x","i":1,"k":"g","v":{"a":1}}',
        b"not json",
    ):
        blob = bytes((1,)) + _mac(KEY, 1, body) + body
        token = base64.urlsafe_b64encode(blob).rstrip(b"=").decode()
        with pytest.raises(PivotError) as info:
            open_continuation(f"https://h/?{TOKEN_PARAM}={token}", key=KEY)
        assert info.value.reason is Reason.INVALID_CONTINUATION


def test_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(PivotError) as info:
        seal_continuation(FULL, b"")
    assert info.value.reason is Reason.INTERNAL_ERROR
    assert "PIVOT_CONTINUATION_KEY" in str(info.value)


def test_oversized_state_is_a_limit_error() -> None:
    noise = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(200))  # incompressible
    huge = Continuation(call_id="c", iteration=2, kind=GATHER, remaining=noise)
    with pytest.raises(PivotError) as info:
        seal_continuation(huge, KEY)
    assert info.value.reason is Reason.LIMIT_EXCEEDED
