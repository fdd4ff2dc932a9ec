"""Property: any input becomes a flow Kazoo accepts, or a located error; never anything else.

Documents are generated from TwiML's own vocabulary (right and wrong attribute names, good and bad
values, legal and illegal nesting, unknown verbs), plus raw bytes and mangled XML. Whatever comes
in, ``translate_twiml`` either returns a flow that passes Kazoo's schemas and that
``validate_flow`` leaves unchanged, or raises ``TranslationError`` whose findings all say where,
or ``PivotError`` for a URL the worker's check refuses, also located.
"""

from __future__ import annotations

import copy
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pivot_worker.callflow.validate import validate_flow
from pivot_worker.errors import PivotError, Reason, TranslationError
from pivot_worker.twiml import Continuation, Translation, TranslationMemo, TwimlContext, translate_twiml
from pivot_worker.twiml.continuation import REDIRECT
from pivot_worker.twiml.vocabulary import ATTRIBUTES
from tests.kazoo_conformance import assert_flow_conforms

from .support import CALL_ID, make_ctx, refuse_host

VERBS = ["Say", "Play", "Pause", "Gather", "Record", "Dial", "Redirect", "Hangup", "Reject", "Set", "Enqueue"]
ODD = ["Leave", "Refer", "Connect", "Foo", "say", "Number", "Variable", "Conference", "Sip", "break"]
CHILDREN = {
    "Gather": ["Say", "Play", "Pause"],
    "Dial": ["Number", "User", "Device", "Conference"],
    "Set": ["Variable"],
    "Redirect": ["Variable"],
    "Say": ["break", "prosody", "emphasis"],
}
WRONG_CHILDREN = ["Dial", "Hangup", "Sip", "Queue", "Client", "Say", "Foo"]
VALUES = [
    "",
    "0",
    "1",
    "2",
    "5",
    "30",
    "-1",
    "1000",
    "99999999999",
    "abc",
    "true",
    "false",
    "TRUE",
    "GET",
    "post",
    "PUT",
    "#",
    "*",
    "12",
    "",
    " ",
    "/rel/path",
    "next?x=1",
    "https://h.example/x",
    "http://evil.example.net/a",
    "ftp://h/x",
    "onEnter",
    "onExit",
    "busy",
    "rejected",
    "record-from-answer",
    "do-not-record",
    "woman",
    "Polly.Joanna",
    "en-US",
    "fr",
    "flite",
    "dtmf speech",
    "1234w#",
    "+14155551234",
    "6d2f0c1b2a3948576a5b4c3d2e1f0a9b",
    "é",
    "\u202e",
    "a b",
]
TEXTS = [*VALUES, "Hello world", "x" * 1200, "https://media.example.com/a.mp3", "Room 1", "sip:a@b"]

xml_chars = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
names = st.sampled_from(
    sorted({a for attrs in ATTRIBUTES.values() for a in attrs} | {"Voice", "bogus", "LOOP"})
)
values = st.one_of(st.sampled_from(VALUES), st.text(xml_chars, max_size=20))
texts = st.one_of(st.sampled_from(TEXTS), st.text(xml_chars, max_size=40))


def _element(tag: str, depth: int, strict: bool = False) -> st.SearchStrategy[str]:
    children = CHILDREN.get(tag, [])
    kinds = (
        st.one_of(
            st.sampled_from(children),
            st.sampled_from(children),
            st.sampled_from(children),
            st.sampled_from(WRONG_CHILDREN),
        )
        if children
        else st.nothing()
    )
    child = (
        st.lists(kinds.flatmap(lambda t: _element(t, depth + 1, strict)), max_size=3)
        if children and depth < 3
        else st.just([])
    )
    return st.builds(
        lambda attrs, text, kids: (
            f"<{tag}"
            + "".join(f" {name}={quoteattr(value)}" for name, value in attrs.items())
            + f">{escape(text)}{''.join(kids)}</{tag}>"
        ),
        st.dictionaries(names, values, max_size=4),
        texts,
        child,
    )


tags = st.one_of(*[st.sampled_from(VERBS)] * 9, st.sampled_from(ODD))  # about one odd tag in ten
verbs = tags.flatmap(lambda tag: _element(tag, 1))
good_verbs = st.sampled_from([v for v in VERBS if v != "Enqueue"]).flatmap(lambda tag: _element(tag, 1, True))
_wrap = lambda vs: ("<Response>" + "".join(vs) + "</Response>").encode()  # noqa: E731
documents = st.one_of(st.lists(good_verbs, max_size=6).map(_wrap), st.lists(verbs, max_size=6).map(_wrap))


def _mangle(doc: bytes, cut: int, junk: bytes) -> bytes:
    position = cut % (len(doc) + 1)
    return doc[:position] + junk + doc[position:]


mangled = st.builds(_mangle, documents, st.integers(min_value=0), st.binary(max_size=8))


def _outcome(body: bytes, iteration: int) -> Translation | PivotError:
    cont = None if iteration == 1 else Continuation(call_id=CALL_ID, iteration=iteration, kind=REDIRECT)
    ctx = make_ctx(continuation=cont, check_url=refuse_host("evil.example.net"))
    try:
        return translate_twiml(body, ctx)
    except PivotError as err:  # TranslationError included; anything else fails the test
        return err


def _check(body: bytes, iteration: int = 1) -> None:
    outcome = _outcome(body, iteration)
    if isinstance(outcome, TranslationError):
        assert outcome.findings, "a translation error must say what is wrong"
        for finding in outcome.findings:
            assert finding.code
            assert finding.line is not None or finding.pointer, f"unlocated finding: {finding}"
    elif isinstance(outcome, PivotError):
        assert outcome.reason in (Reason.INVALID_URL, Reason.BLOCKED_ADDRESS), outcome
        assert outcome.detail.get("pointer"), "a refused URL must say which element named it"
    else:
        assert_flow_conforms(outcome.flow)
        # The translator checks its own nodes instead of calling validate_flow: the flow must be
        # exactly what validate_flow would make of it (every default already filled in).
        assert validate_flow(copy.deepcopy(outcome.flow)) == outcome.flow
        for warning in outcome.warnings:
            assert warning.pointer


FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(documents, st.sampled_from([1, 1, 1, 49, 50]))
def test_generated_documents(body: bytes, iteration: int) -> None:
    _check(body, iteration)


@FAST
@given(mangled)
def test_mangled_documents(body: bytes) -> None:
    _check(body)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    _check(body)


def _attempt(memo: TranslationMemo | None, body: bytes, ctx: TwimlContext) -> Translation | str:
    try:
        return memo.translate(body, ctx) if memo is not None else translate_twiml(body, ctx)
    except PivotError as err:
        return f"{type(err).__name__}: {err}"


@FAST
@given(
    documents,
    st.sampled_from([1, 1, 2, 49]),
    st.dictionaries(st.sampled_from(["lang", "tier", "x"]), st.text(xml_chars, max_size=5), max_size=2),
    st.sampled_from(["b2f0c6a1-0d4e-4a57-9a0e-6c1d2e3f4a5b", "x", "call@host.example", "c" * 300]),
)
def test_the_memo_gives_each_call_what_a_fresh_translation_would(
    body: bytes, iteration: int, variables: dict[str, str], other_call: str
) -> None:
    # Whatever the document: after a translation for one call, the next call gets byte for byte
    # the flow (or the error) a fresh translation for it gives; never a token of the first call.
    def ctx(call_id: str) -> TwimlContext:
        cont = (
            None
            if iteration == 1 and not variables
            else Continuation(call_id=call_id, iteration=iteration, kind=REDIRECT, variables=variables)
        )
        return make_ctx(call_id=call_id, continuation=cont, check_url=refuse_host("evil.example.net"))

    memo = TranslationMemo(4)
    assert _attempt(memo, body, ctx(CALL_ID)) == _attempt(None, body, ctx(CALL_ID))
    reused = _attempt(memo, body, ctx(other_call))
    assert reused == _attempt(None, body, ctx(other_call))
    if isinstance(reused, Translation):
        assert CALL_ID not in str(reused.flow)
