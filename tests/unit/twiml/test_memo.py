"""The translation memo: a reused translation is exactly what a fresh one for that call would be."""

from __future__ import annotations

import copy
import dataclasses
import random
import string
from typing import Any

import pytest

from pivot_worker.errors import TranslationError
from pivot_worker.twiml import (
    Continuation,
    TranslationMemo,
    open_continuation,
    plan_followup,
    translate_twiml,
)
from pivot_worker.twiml.memo import MAX_MEMO_BODY

from .support import CALL_ID, KEY, make_ctx
from .test_golden import CASES, DATA, _context

OTHER_CALL = "b2f0c6a1-0d4e-4a57-9a0e-6c1d2e3f4a5b"
MENU = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Say>Welcome.</Say>'
    b'<Gather action="/menu" numDigits="1" input="dtmf speech"><Say>Press 1 for sales.</Say></Gather>'
    b"<Redirect>/start</Redirect></Response>"
)


def _for_call(ctx: Any, call_id: str) -> Any:
    return dataclasses.replace(ctx, call_id=call_id)


def _pivot_urls(flow: dict[str, Any]) -> list[str]:
    urls: list[str] = []
    stack = [flow]
    while stack:
        node = stack.pop()
        if node.get("module") == "pivot":
            urls.append(node["data"]["voice_url"])
        stack.extend(node.get("children", {}).values())
    return sorted(urls)


@pytest.mark.parametrize("name", CASES)
def test_a_reused_translation_is_the_fresh_one_for_that_call(name: str) -> None:
    body = (DATA / f"{name}.xml").read_bytes()
    first_ctx = _context(name)
    second_ctx = _for_call(first_ctx, OTHER_CALL)
    memo = TranslationMemo(8)
    try:
        expected_first = translate_twiml(body, first_ctx)
    except TranslationError:
        with pytest.raises(TranslationError):
            memo.translate(body, first_ctx)
        assert len(memo) == 0  # failures are never kept
        return
    assert memo.translate(body, first_ctx) == expected_first
    reused = memo.translate(body, second_ctx)
    assert reused == translate_twiml(body, second_ctx)
    assert memo.hits == len(memo)  # a kept entry serves the second call; a call-bound one is not kept


def test_the_menu_is_served_from_the_memo_with_tokens_for_the_new_call() -> None:
    memo = TranslationMemo(8)
    memo.translate(MENU, make_ctx())
    reused = memo.translate(MENU, make_ctx(call_id=OTHER_CALL))
    assert (memo.hits, memo.misses) == (1, 1)
    [voice_url] = _pivot_urls(reused.flow)
    _, continuation = open_continuation(voice_url, key=KEY)
    assert continuation is not None and continuation.call_id == OTHER_CALL
    plan_followup(continuation, {"Call-ID": OTHER_CALL}, "twiml")  # the new call's follow-up accepts it


def test_record_callbacks_name_the_call_and_are_never_reused() -> None:
    body = b'<Response><Record action="/done"/></Response>'
    memo = TranslationMemo(8)
    memo.translate(body, make_ctx())
    second = memo.translate(body, make_ctx(call_id=OTHER_CALL))
    assert len(memo) == 0 and memo.hits == 0
    assert second == translate_twiml(body, make_ctx(call_id=OTHER_CALL))
    [voice_url] = _pivot_urls(second.flow)
    _, continuation = open_continuation(voice_url, key=KEY)
    assert continuation is not None  # the recording's location names the call, beside the token's call id
    assert continuation.recording_url.endswith(f"/{OTHER_CALL}.mp3"), continuation.recording_url
    assert CALL_ID not in continuation.recording_url


def test_changing_a_reused_flow_does_not_change_the_next_one() -> None:
    memo = TranslationMemo(8)
    memo.translate(MENU, make_ctx())
    first = memo.translate(MENU, make_ctx(call_id=OTHER_CALL))
    pristine = copy.deepcopy(first.flow)
    first.flow["data"]["text"] = "tampered"
    first.flow["children"].clear()
    assert first.warnings
    first.warnings.clear()
    again = memo.translate(MENU, make_ctx(call_id=OTHER_CALL))
    assert again.flow == pristine
    assert again.warnings == translate_twiml(MENU, make_ctx(call_id=OTHER_CALL)).warnings


@pytest.mark.parametrize(
    "change",
    [
        {"document_url": "https://ivr.example.com/app/other"},
        {"request_format": "kazoo"},
        {"request_body_format": "json"},
        {"account_id": "00000000000000000000000000000000"},
        {"debug": True},
        {"request_timeout_ms": 3000},
        {"max_iterations": 10},
        {"recording_url": "https://elsewhere.example.com/"},
        {"continuation_key": b"another key of 32 bytes length!!"},
        {"continuation": Continuation(call_id=OTHER_CALL, iteration=4, kind="redirect")},
        {
            "continuation": Continuation(
                call_id=OTHER_CALL, iteration=1, kind="redirect", variables={"a": "1"}
            )
        },
    ],
)
def test_anything_the_translation_depends_on_but_the_call_is_part_of_the_key(change: dict[str, Any]) -> None:
    memo = TranslationMemo(8)
    memo.translate(MENU, make_ctx())
    ctx = make_ctx(call_id=OTHER_CALL, **change)
    assert memo.translate(MENU, ctx) == translate_twiml(MENU, ctx)
    assert memo.hits == 0 and len(memo) == 2


def test_the_memo_keeps_the_most_recently_used_entries() -> None:
    memo = TranslationMemo(2)
    documents = [MENU.replace(b"Welcome.", f"Welcome {n}.".encode()) for n in range(3)]
    memo.translate(documents[0], make_ctx())
    memo.translate(documents[1], make_ctx())
    memo.translate(documents[0], make_ctx(call_id=OTHER_CALL))  # documents[0] is now the most recent
    memo.translate(documents[2], make_ctx())  # pushes out documents[1]
    assert len(memo) == 2
    hits = memo.hits
    memo.translate(documents[0], make_ctx())
    memo.translate(documents[1], make_ctx())
    assert memo.hits == hits + 1


def test_size_zero_and_large_documents_are_never_kept() -> None:
    off = TranslationMemo(0)
    off.translate(MENU, make_ctx())
    off.translate(MENU, make_ctx())
    assert len(off) == 0 and off.hits == 0
    say = b"<Say>" + b"x" * 4000 + b"</Say>"
    large = b"<Response>" + say * (MAX_MEMO_BODY // len(say) + 1) + b"<Hangup/></Response>"
    memo = TranslationMemo(8)
    assert memo.translate(large, make_ctx()) == translate_twiml(large, make_ctx())
    assert len(memo) == 0


def test_a_token_that_no_longer_fits_for_a_longer_call_id_fails_where_a_fresh_translation_fails() -> None:
    # Verbs after a Gather travel in its token; pad them (with text zlib cannot shrink) until the
    # token just fits for a short call id but not for a long one.
    noise = random.Random(7)
    text = "".join(noise.choices(string.ascii_letters, k=4000)).encode()
    long_call = "".join(noise.choices(string.ascii_letters, k=600))

    def menu_with(chars: int) -> bytes:
        return (
            b'<Response><Gather action="/menu"><Say>Press 1.</Say></Gather><Say>'
            + text[:chars]
            + b"</Say></Response>"
        )

    short_ctx, long_ctx = make_ctx(call_id="c"), make_ctx(call_id=long_call)
    chars = next(
        n
        for n in range(1000, 4000, 16)
        if _fits(menu_with(n), short_ctx) and not _fits(menu_with(n), long_ctx)
    )
    body = menu_with(chars)
    memo = TranslationMemo(8)
    memo.translate(body, short_ctx)
    assert len(memo) == 1
    with pytest.raises(TranslationError) as raised:
        memo.translate(body, long_ctx)
    with pytest.raises(TranslationError) as fresh:
        translate_twiml(body, long_ctx)
    assert raised.value.findings == fresh.value.findings
    assert raised.value.findings[0].code == "continuation-size"
    assert memo.hits == 0


def _fits(body: bytes, ctx: Any) -> bool:
    try:
        translate_twiml(body, ctx)
    except TranslationError:
        return False
    return True


# The decision for each TwimlContext field: in the memo key (a change gives another translation) or
# left out (and why, in pivot_worker.twiml.memo.NOT_IN_KEY). A new field fails here until decided.
KEYED = {
    "document_url",
    "request_format",
    "request_body_format",
    "continuation_key",
    "max_iterations",
    "recording_url",
    "account_id",
    "debug",
    "request_timeout_ms",
    "after_dial_extension",
}


def test_every_context_field_is_either_keyed_or_left_out_for_a_stated_reason() -> None:
    from dataclasses import fields

    from pivot_worker.twiml.context import TwimlContext
    from pivot_worker.twiml.memo import NOT_IN_KEY

    names = {f.name for f in fields(TwimlContext)}
    assert names == KEYED | set(NOT_IN_KEY), "decide whether the new TwimlContext field keys the memo"
    assert not KEYED & set(NOT_IN_KEY)


def test_an_after_dial_token_is_never_handed_to_another_call() -> None:
    """The token sits in a set_variables node, outside any callback URL the memo re-seals."""
    from pivot_worker.twiml.after_dial import CALL_VAR
    from pivot_worker.twiml.continuation import open_token

    document = b'<Response><Dial action="/after">+14155550123</Dial></Response>'
    memo = TranslationMemo(16)
    ctx = make_ctx(after_dial_extension="*7799")
    for call_id in ("call-A", "call-B", "call-A"):
        flow = memo.translate(document, dataclasses.replace(ctx, call_id=call_id)).flow
        token = flow["data"]["custom_application_vars"][CALL_VAR]
        assert open_token(token, key=KEY).call_id == call_id
