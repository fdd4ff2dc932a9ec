"""Every TwiML verb, noun and attribute Twilio's own helper library can write, through our translator.

The corpus (:mod:`tests.conformance.twilio_corpus`) is built with ``twilio.twiml.voice_response``
from the helper library's method signatures, plus examples from Twilio's TwiML documentation:
~190 valid documents, one test each. Each document is translated with ``translate_twiml`` and a
context like the worker's (``support.make_ctx``); then, per document:

1. **Accepted or refused, never broken.** Either the flow passes Kazoo's own callflow schemas
   (``tests/kazoo_conformance.py``), or translation raises a ``TranslationError`` with reason
   ``unsupported_verb`` (or ``limit_exceeded``) whose every finding is located (its pointer names
   an element of the document, its line and column are that element's) and says what Kazoo
   cannot do (it names Kazoo). The corpus is valid TwiML, so a ``schema_error``, a ``parse_error``
   or a 12200 ("not TwiML") warning is itself a failure. Warnings must be located too, and an
   ``unreachable`` warning must follow a verb after which Twilio itself runs nothing more.
2. **Nothing silently accepted with a changed meaning.** For an accepted document, each attribute
   of each element is removed in turn, and each element nested in a verb too, and the document
   translated again. If the flow and the warnings (code, element, message) are exactly those of
   the whole document, the translator ignored that attribute or element without a word: a
   failure naming document, element and attribute. Continuation tokens are opened for the
   comparison, and the verbs a token carries (after a Gather with no input, or a Dial that
   failed) are translated as the follow-up request would translate them, so an attribute of a
   verb that runs later is judged by what it does when it runs.

   Removing an attribute may legitimately change nothing when:

   * its value is Twilio's documented default (:data:`DOCUMENTED_DEFAULTS`, a short list taken
     from Twilio's TwiML reference for the values the documentation examples spell out);
   * it only qualifies another attribute (``twilio_corpus.PRINCIPALS``: a callback's method, the
     speech settings of a ``<Gather>``, the settings of a recording) and that attribute is absent,
     or is reported by a finding on the same element that names it, or itself qualifies nothing;
   * it is about nested elements that are not there (``INERT_WITHOUT_CHILDREN``: ``sequential``
     with one number to dial, ``bargeIn`` without prompts);
   * it belongs to SSML markup inside ``<Say>`` and the ``<Say>`` carries the
     ``kazoo-unsupported`` warning that Kazoo's TTS drops all markup (docs/twiml.md, ``<Say>``);
   * its element carries a warning that the whole element is ignored (``<Parameter> in <Hangup>
     is ignored: ...``).

Failing documents are not marked xfail: each failure is a gap to close in the translator (or,
if Twilio itself would reject the document, in the generator).
"""

from __future__ import annotations

import copy
import functools
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from lxml import etree

from pivot_worker.errors import Finding, PivotError, Reason, TranslationError
from pivot_worker.twiml import (
    TOKEN_PARAM,
    Continuation,
    Translation,
    TwimlContext,
    open_continuation,
    translate_twiml,
)
from tests.conformance.twilio_corpus import (
    DOCUMENT_URL,
    PRINCIPALS,
    CorpusDocument,
    corpus,
    unchosen_attributes,
)
from tests.kazoo_conformance import flow_errors, kazoo_schemas_dir
from tests.unit.twiml.support import DOC_URL, KEY, continuation_dict, make_ctx

CORPUS = corpus()

DOCUMENTED_DEFAULTS: dict[tuple[str, str], str] = {
    ("Conference", "startConferenceOnEnter"): "true",  # <Conference>: "defaults to true"
    ("Redirect", "method"): "POST",  # <Redirect>: "method ... defaults to POST"
}
"""Attributes whose value in a corpus document is Twilio's documented default for it."""

REFUSAL_REASONS = frozenset({Reason.UNSUPPORTED_VERB, Reason.LIMIT_EXCEEDED})
"""Why a valid document may be refused: Kazoo cannot run it, or it exceeds one of our limits."""

INERT_WITHOUT_CHILDREN = {("Dial", "sequential"): 2, ("Gather", "bargeIn"): 1}
"""Attributes about nested elements, and how many they need to mean anything: ``sequential``
orders the nouns of a ``<Dial>`` (one number has no order), ``bargeIn`` lets input interrupt the
prompts of a ``<Gather>`` (without prompts there is nothing to interrupt)."""

MARKUP_WARNING = ("Say", "kazoo-unsupported")
"""The warning on an enclosing ``<Say>`` that covers the SSML markup inside it."""

_RAW_TOKEN = re.compile(r"[A-Za-z0-9_-]{24,}")
_XML_NAMESPACE = "{http://www.w3.org/XML/1998/namespace}"


# -- translating and comparing ------------------------------------------------------------------


@dataclass
class Outcome:
    """What translating one document gives, in a form two translations can be compared by."""

    body: bytes
    view: dict[str, Any]
    flow: dict[str, Any] | None = None
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    unlocated: str = ""
    """The message of a ``PivotError`` that carries no findings."""
    reason: str = ""
    followups: list[tuple[str, Outcome]] = field(default_factory=list)
    """The carried verbs of each continuation, translated as their follow-up request would."""

    @property
    def accepted(self) -> bool:
        return self.flow is not None

    def findings(self) -> list[Finding]:
        return [*self.errors, *self.warnings]


def _seen(findings: list[Finding]) -> list[tuple[str, str, str]]:
    """Findings as compared: code, element, message (lines and columns move when text is removed)."""
    return [(f.code, f.pointer, f.message) for f in findings]


def translate(body: bytes, ctx: TwimlContext | None = None) -> Outcome:
    try:
        translation = translate_twiml(body, ctx or make_ctx())
    except TranslationError as exc:
        view = {"refused": exc.reason.value, "errors": _seen(exc.findings), "warnings": _seen(exc.warnings)}
        return Outcome(body, view, errors=exc.findings, warnings=exc.warnings, reason=exc.reason.value)
    except PivotError as exc:
        view = {"refused": exc.reason.value, "message": str(exc)}
        return Outcome(body, view, unlocated=str(exc), reason=exc.reason.value)
    followups: list[tuple[str, Outcome]] = []
    flow_view = _open_tokens(translation.flow, followups)
    view = {"flow": flow_view, "warnings": _seen(translation.warnings)}
    return Outcome(body, view, flow=translation.flow, warnings=translation.warnings, followups=followups)


def _open_tokens(value: Any, followups: list[tuple[str, Outcome]]) -> Any:
    """``value`` with every continuation token (in a URL or bare) replaced by what it carries."""
    if isinstance(value, dict):
        return {key: _open_tokens(item, followups) for key, item in value.items()}
    if isinstance(value, list):
        return [_open_tokens(item, followups) for item in value]
    if isinstance(value, str):
        url, cont = _opened(value)
        if cont is not None:
            return {"url": url, "continuation": _carried(url, cont, followups)}
    return value


def _opened(text: str) -> tuple[str, Continuation | None]:
    if TOKEN_PARAM in text:
        return open_continuation(text, key=KEY)
    if _RAW_TOKEN.fullmatch(text):
        try:
            return "", open_continuation(f"token:?{TOKEN_PARAM}={text}", key=KEY)[1]
        except PivotError:
            return text, None
    return text, None


def _carried(url: str, cont: Continuation, followups: list[tuple[str, Outcome]]) -> dict[str, Any]:
    """What a token carries; its verbs are translated as the follow-up request would translate them."""
    carried = continuation_dict(cont)
    if cont.remaining:
        ctx = make_ctx(continuation=cont, document_url=cont.base_url or url or DOC_URL)
        later = translate(cont.remaining.encode(), ctx)
        followups.append((f"verbs carried by a {cont.kind} token", later))
        carried["remaining"] = later.view
    return carried


# -- where findings point -----------------------------------------------------------------------


def pointer(element: etree._Element) -> str:
    """``/Response/Gather[1]/Say[2]``, the way the translator names an element."""
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        parent = node.getparent()
        if parent is None:
            steps.append(str(node.tag))
        else:
            index = 1 + sum(1 for s in node.itersiblings(preceding=True) if s.tag == node.tag)
            steps.append(f"{node.tag}[{index}]")
        node = parent
    return "/" + "/".join(reversed(steps))


@functools.cache
def _elements_by_pointer(body: bytes) -> dict[str, etree._Element]:
    root = etree.fromstring(body)
    return {pointer(e): e for e in root.iter() if isinstance(e.tag, str)}


def location_problem(body: bytes, finding: Finding) -> str | None:
    element = _elements_by_pointer(body).get(finding.pointer)
    if element is None:
        return f"not located: pointer {finding.pointer!r} names no element of the document ({finding})"
    line = element.sourceline if isinstance(element.sourceline, int) else None
    if finding.line != line or not finding.column:
        return (
            f"mislocated: line {finding.line}, column {finding.column}, but {finding.pointer} starts on "
            f"line {line} ({finding})"
        )
    return None


# -- check 1: accepted or refused, never broken ------------------------------------------------


def outcome_problems(outcome: Outcome) -> list[str]:
    problems = [p for f in outcome.findings() if (p := location_problem(outcome.body, f))]
    problems += [f"valid TwiML reported as invalid: {w}" for w in outcome.warnings if w.code == "12200"]
    problems += [
        p for w in outcome.warnings if w.code == "unreachable" and (p := reachable_problem(outcome.body, w))
    ]
    if outcome.flow is not None:
        problems += [f"Kazoo's schemas reject the flow: {e}" for e in flow_errors(outcome.flow)]
    else:
        problems += refusal_problems(outcome)
    for label, later in outcome.followups:
        problems += [f"{label}: {p}" for p in outcome_problems(later)]
    return problems


def twilio_stops_after(verb: etree._Element) -> bool:
    """Whether Twilio never runs the verbs after ``verb`` (its TwiML reference, verb by verb).

    ``<Hangup>``, ``<Reject>`` and ``<Redirect>`` end the document; a ``<Dial>`` or ``<Enqueue>``
    with an ``action`` requests it instead of going on; a ``<Gather>`` goes on when it gets no
    input unless ``actionOnEmptyResult`` is true; a ``<Record>`` that records nothing goes on.
    """
    tag = verb.tag
    if tag in ("Hangup", "Reject", "Redirect"):
        return True
    if tag in ("Dial", "Enqueue"):
        return bool(verb.get("action"))
    return tag == "Gather" and verb.get("actionOnEmptyResult", "").lower() == "true"


def reachable_problem(body: bytes, warning: Finding) -> str | None:
    """A verb reported unreachable that Twilio would run: a change of meaning, not a warning."""
    element = _elements_by_pointer(body).get(warning.pointer)
    previous = element.getprevious() if element is not None else None
    if previous is None or twilio_stops_after(previous):
        return None
    return f"Twilio runs the verbs after <{previous.tag}>, reported unreachable: {warning}"


def refusal_problems(outcome: Outcome) -> list[str]:
    if outcome.unlocated:
        return [f"refused ({outcome.reason}) without a located finding: {outcome.unlocated}"]
    problems = []
    if outcome.reason not in REFUSAL_REASONS:
        listed = "; ".join(str(f) for f in outcome.errors)
        problems.append(f"valid TwiML refused as {outcome.reason}: {listed}")
    if not outcome.errors:
        problems.append(f"refused ({outcome.reason}) with no finding")
    problems += [
        f"refusal does not say what Kazoo cannot do: {f}"
        for f in outcome.errors
        if "kazoo" not in f.message.lower()
    ]
    return problems


# -- check 2: nothing silently ignored ----------------------------------------------------------


def attribute_label(name: str) -> str:
    return "xml:" + name[len(_XML_NAMESPACE) :] if name.startswith(_XML_NAMESPACE) else name


def names(word: str, message: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", message) is not None


def _tagged(root: etree._Element) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str)]


def _edited(root: etree._Element, index: int, edit: Callable[[etree._Element], object]) -> bytes:
    """``root``'s document with ``edit`` applied to a copy of its ``index``-th element."""
    copied = copy.deepcopy(root)
    edit(_tagged(copied)[index])
    xml: bytes = etree.tostring(copied, xml_declaration=True, encoding="UTF-8")
    return xml


def _without(attribute: str) -> Callable[[etree._Element], object]:
    def remove(element: etree._Element) -> object:
        return element.attrib.pop(attribute)

    return remove


def _variants(body: bytes) -> Iterator[tuple[etree._Element, str | None, bytes]]:
    """Each attribute removed in turn, then each element nested in a verb: (element, attribute, XML)."""
    root = etree.fromstring(body)
    elements = _tagged(root)
    for index, element in enumerate(elements):
        for name in map(str, element.attrib):
            yield element, name, _edited(root, index, _without(name))
    for index, element in enumerate(elements):
        parent = element.getparent()
        if parent is not None and parent is not root:
            yield element, None, _edited(root, index, _remove_keeping_tail)


def _remove_keeping_tail(element: etree._Element) -> None:
    parent = element.getparent()
    assert parent is not None
    previous = element.getprevious()
    if element.tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _reported_at(element: etree._Element, full: Outcome) -> list[Finding]:
    where = pointer(element)
    return [f for f in full.findings() if f.pointer == where]


def _covered_by_markup_warning(element: etree._Element, full: Outcome) -> bool:
    tag, code = MARKUP_WARNING
    for ancestor in element.iterancestors(tag):
        if any(f.code == code for f in _reported_at(ancestor, full)):
            return True
    return False


def excused(element: etree._Element, attribute: str | None, full: Outcome) -> bool:
    """True when removing ``attribute`` (or ``element`` itself when ``None``) may change nothing."""
    if _covered_by_markup_warning(element, full):
        return True
    if attribute is None:
        return False
    tag = str(element.tag)
    if _reported_as_ignored(element, full):
        return True  # the whole element is reported as ignored: so are its attributes
    default = DOCUMENTED_DEFAULTS.get((tag, attribute))
    if default is not None and default.lower() == str(element.get(attribute, "")).lower():
        return True
    if len(element) < INERT_WITHOUT_CHILDREN.get((tag, attribute), 0):
        return True
    return _qualifies_nothing(element, attribute, full)


def _reported_as_ignored(element: etree._Element, full: Outcome) -> bool:
    """A warning at ``element`` itself says the whole element is ignored (``<Tag> ... is ignored``)."""
    tag = f"<{element.tag}>"
    return any(tag in f.message and "is ignored" in f.message for f in _reported_at(element, full))


def _qualifies_nothing(element: etree._Element, attribute: str, full: Outcome) -> bool:
    """Whether ``attribute`` qualifies an attribute that is absent, reported, or itself qualifies nothing."""
    principal = PRINCIPALS.get((str(element.tag), attribute))
    if principal is None:
        return False
    if principal not in element.attrib:
        return True
    if any(names(principal, f.message) for f in _reported_at(element, full)):
        return True
    return _qualifies_nothing(element, principal, full)


def silent_problems(full: Outcome) -> list[str]:
    problems = []
    for element, attribute, variant in _variants(full.body):
        label = attribute_label(attribute) if attribute is not None else None
        if translate(variant).view != full.view or excused(element, label, full):
            continue
        if attribute is None:
            problems.append(f"{pointer(element)}: <{element.tag}> is silently ignored")
        else:
            problems.append(f"{pointer(element)}: {label}={element.get(attribute)!r} is silently ignored")
    return problems


# -- the tests ----------------------------------------------------------------------------------


def test_the_corpus_covers_twilio_broadly() -> None:
    ids = [d.doc_id for d in CORPUS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 100
    assert sum(d.origin == "twilio-docs" for d in CORPUS) >= 10
    assert DOCUMENT_URL == DOC_URL


def test_every_attribute_of_what_kazoo_runs_has_a_chosen_value() -> None:
    """A ``twilio`` release that adds an attribute to a verb Kazoo runs needs a documented value here."""
    assert unchosen_attributes() == []


@pytest.mark.parametrize("markup_warned", [False, True])
def test_the_silent_check_names_what_a_translator_ignores(
    monkeypatch: pytest.MonkeyPatch, markup_warned: bool
) -> None:
    """A stand-in translator that maps only ``loop``: the check names everything else, unless excused."""
    body = b'<Response><Say voice="woman" loop="2">Hi<break time="1s"/></Say></Response>'

    def loop_only(document: bytes, ctx: TwimlContext) -> Translation:
        say = etree.fromstring(document)[0]
        warned = [Finding("kazoo-unsupported", "SSML", "/Response/Say[1]", 1, 11)] if markup_warned else []
        return Translation({"module": "tts", "data": {"loop": say.get("loop")}, "children": {}}, warned)

    monkeypatch.setattr(sys.modules[__name__], "translate_twiml", loop_only)
    markup = ["/Response/Say[1]/break[1]: time='1s' is silently ignored"]
    markup += ["/Response/Say[1]/break[1]: <break> is silently ignored"]
    expected = ["/Response/Say[1]: voice='woman' is silently ignored", *([] if markup_warned else markup)]
    assert silent_problems(translate(body)) == expected


@pytest.mark.parametrize("doc", CORPUS, ids=[d.doc_id for d in CORPUS])
def test_twilio_document(doc: CorpusDocument) -> None:
    kazoo_schemas_dir()  # skip (locally) or fail (CI) without Kazoo's schemas
    full = translate(doc.xml)
    problems = outcome_problems(full)
    if full.accepted:
        problems += silent_problems(full)
    listing = "\n  ".join(problems)
    assert not problems, f"{doc.doc_id} ({len(problems)}):\n  {listing}\n{doc.xml.decode()}"
