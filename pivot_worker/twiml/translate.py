"""Turn one TwiML document into one Kazoo callflow.

The document is parsed (hardened), its structure checked as a whole (unknown or misplaced
elements are reported together, before anything is built), then its verbs are translated in
order into a chain of callflow nodes linked by their ``_`` children. Running out of verbs hangs
up, as on Twilio. Every node's data is finally checked and completed with Kazoo's defaults by the
validators :func:`~pivot_worker.callflow.validate.validate_flow` uses (``State.complete``), so what
we publish is what Kazoo would run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lxml import etree

from ..callflow.modules import PASS_THROUGH_MODULES, SUPPORTED_MODULES
from ..errors import Reason
from . import attrs, control, dial, gather, record, speech
from .context import Translation, TwimlContext
from .limits import MAX_VERBS
from .parse import parse_document
from .state import HANGUP, Node, State, Step, chain
from .vocabulary import SSML_ELEMENTS, UNSUPPORTED_DIAL_NOUNS, UNSUPPORTED_VERBS

Handler = Callable[[etree._Element, State, list[etree._Element]], Step]

HANDLERS: dict[str, Handler] = {
    "Say": speech.say_step,
    "Play": speech.play_step,
    "Pause": speech.pause_step,
    "Gather": gather.gather,
    "Record": record.record,
    "Dial": dial.dial,
    "Redirect": control.redirect,
    "Hangup": control.hangup,
    "Reject": control.reject,
    "Set": control.set_variables,
    "Enqueue": control.enqueue,
}

_NESTED: dict[str, frozenset[str]] = {
    "Gather": frozenset({"Say", "Play", "Pause"}),
    "Dial": frozenset({"Number", "User", "Device", "Conference"}),
    "Set": frozenset({"Variable"}),
    "Redirect": frozenset({"Variable"}),
}
_NOUNS = frozenset({"Number", "User", "Device", "Conference", "Variable"}) | frozenset(UNSUPPORTED_DIAL_NOUNS)
_NESTED_CODES = {"Gather": "13320"}
_NOTHING: frozenset[str] = frozenset()
ACCEPTED_MODULES = SUPPORTED_MODULES | PASS_THROUGH_MODULES
"""Modules the flow validator lets through; ``<Enqueue>`` needs ``acdc_member`` among them."""


def translate_twiml(body: bytes, ctx: TwimlContext) -> Translation:
    """Translate the TwiML ``body`` into a validated Kazoo callflow.

    Raises ``TranslationError`` (reason ``parse_error``, ``schema_error``, ``unsupported_verb``,
    ``limit_exceeded`` or ``redirect_loop``) with located findings, and ``PivotError``
    (``blocked_address``/``invalid_url``) when a URL the flow would use fails ``ctx.check_url``.
    """
    return translate_document(body, ctx)[0]


def translate_document(body: bytes, ctx: TwimlContext) -> tuple[Translation, State]:
    """:func:`translate_twiml`, also returning the translation's :class:`State` (for the memo)."""
    doc = parse_document(body)
    st = State(ctx, doc, walk)
    if ctx.iteration > ctx.max_iterations:
        raise st.fatal(
            doc.root,
            "redirect-loop",
            f"request {ctx.iteration} of this call exceeds PIVOT_MAX_ITERATIONS ({ctx.max_iterations})",
            Reason.REDIRECT_LOOP,
        )
    verbs = check_structure(doc.root, st)
    st.raise_errors()
    head = walk(verbs, st)
    st.raise_errors()
    return Translation(flow=st.complete(head), warnings=st.warnings), st


def walk(verbs: Sequence[etree._Element], st: State) -> Node:
    """Translate ``verbs`` in order into a chain; the verbs after a terminal one are unreachable."""
    nodes: list[Node] = []
    for index, verb in enumerate(verbs):
        rest = list(verbs[index + 1 :])
        step = HANDLERS[str(verb.tag)](verb, st, rest)
        nodes.extend(step.nodes)
        if step.terminal:
            if rest and not step.consumed:
                st.warn(rest[0], "unreachable", f"verbs after <{verb.tag}> never run")
            if step.nodes:
                return chain(nodes)
            break  # the verb failed; its error is reported, keep the flow well-formed meanwhile
    nodes.append(st.fixed_node(verbs[-1] if verbs else st.doc.root, HANGUP))
    return chain(nodes)


def check_structure(root: etree._Element, st: State) -> list[etree._Element]:
    """Report unknown, unsupported and misplaced elements; return the top-level verbs."""
    if (root.text or "").strip():
        st.warn(root, attrs.SCHEMA_WARNING, "text directly inside <Response> is ignored")
    attrs.read(root, st)
    verbs: list[etree._Element] = []
    count = 0
    for verb in root:
        tag = verb.tag
        tail = verb.tail
        if tail and not tail.isspace():
            st.warn(verb, attrs.SCHEMA_WARNING, f"text after <{tag}> is ignored")
        if not isinstance(tag, str):
            continue
        count += 1
        if tag in HANDLERS:
            verbs.append(verb)
            count += _check_nested(verb, tag, st)
        elif tag in UNSUPPORTED_VERBS:
            st.error(
                verb,
                "unsupported-verb",
                f"<{tag}> is not supported: {UNSUPPORTED_VERBS[tag]}",
                Reason.UNSUPPORTED_VERB,
            )
        elif tag in _NOUNS:
            st.error(
                verb,
                attrs.SCHEMA_WARNING,
                f"<{tag}> is not a verb; it belongs inside another verb",
                Reason.SCHEMA_ERROR,
            )
        else:
            st.error(verb, attrs.SCHEMA_WARNING, f"<{tag}> is not a TwiML voice verb", Reason.SCHEMA_ERROR)
        if count > MAX_VERBS:
            raise st.fatal(
                verb,
                "verb-count",
                f"the document has more than {MAX_VERBS} verbs and nouns",
                Reason.LIMIT_EXCEEDED,
            )
        if tag == "Enqueue" and "acdc_member" not in ACCEPTED_MODULES:
            st.error(
                verb,
                "unsupported-verb",
                "<Enqueue> needs Kazoo's acdc_member module, which this worker does not accept yet",
                Reason.UNSUPPORTED_VERB,
            )
    return verbs


NESTED_KAZOO_LACKS: dict[tuple[str, str], str] = {
    ("Hangup", "Parameter"): "Kazoo's hangup module carries no custom parameters",
    ("Reject", "Parameter"): "Kazoo's response module carries no custom parameters",
    ("Enqueue", "Task"): "TaskRouter tasks do not exist on Kazoo (ACDc queues route by queue id)",
}
"""TwiML nouns that are valid where they stand but that Kazoo cannot honour: warned, not errors."""


def _check_nested(verb: etree._Element, tag: str, st: State) -> int:
    allowed = _NESTED.get(tag, _NOTHING)
    count = 0
    for child in verb:
        name = child.tag
        if not isinstance(name, str):
            continue
        count += 1
        if name in allowed:
            continue
        if tag == "Say" and name in SSML_ELEMENTS:
            count -= 1  # SSML is text markup, not a verb
            continue
        if tag == "Dial" and name in UNSUPPORTED_DIAL_NOUNS:
            st.error(
                child,
                "unsupported-noun",
                f"<{name}>: {UNSUPPORTED_DIAL_NOUNS[name]}",
                Reason.UNSUPPORTED_VERB,
            )
            continue
        if (tag, name) in NESTED_KAZOO_LACKS:
            why = NESTED_KAZOO_LACKS[(tag, name)]
            st.warn(child, "kazoo-unsupported", f"<{name}> in <{tag}> is ignored: {why}")
            continue
        if tag in _NESTED or tag == "Say":
            code = _NESTED_CODES.get(tag, attrs.SCHEMA_WARNING)
            st.error(child, code, f"<{name}> cannot be nested in <{tag}>", Reason.SCHEMA_ERROR)
        else:
            st.warn(child, attrs.SCHEMA_WARNING, f"<{tag}> takes no nested elements; <{name}> is ignored")
    return count
