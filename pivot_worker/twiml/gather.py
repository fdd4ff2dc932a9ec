"""``<Gather>``: prompts, then DTMF collection, then the action as a nested pivot request.

Kazoo's ``collect_dtmf`` always continues with its ``_`` child, digits or not, so the callflow
cannot choose between "request the action" and Twilio's "no input: go on with the next verb".
The flow therefore always makes the nested pivot request; the verbs after the Gather travel in
its continuation token, and the worker that serves the follow-up decides (``plan_followup``):
digits (or ``actionOnEmptyResult``) -> fetch the action; no digits -> translate the carried
verbs without any HTTP request. Those verbs are also translated at once, as that request would,
so that their errors fail this document rather than the call later (:func:`check_carried`).

Each Gather collects into its own collection, ``pivot_g<iteration>``, so digits from an earlier
Gather never leak into a later request. A first ``collect_dtmf`` into ``pivot_discard`` empties
the call's ``default`` collection, where Kazoo keeps keys pressed during earlier prompts; Twilio
discards keys pressed outside a Gather.

**Prompts stop once the caller answers.** Kazoo's ``tts`` and ``play`` stop at a key and append
it to the ``default`` collection (``cf_util:wait_for_noop``), but nothing in a callflow can skip
the following nodes on input (``collect_dtmf`` always goes on to ``_``, and ``branch_variable``
reads channel variables, not DTMF collections). A Gather with several prompt units (nested
verbs, repetitions of a ``<Say>``), whose prompts the caller may interrupt, therefore plays only
its first unit and then makes a *prompt hop*: a nested pivot whose token carries the rest of the
Gather as TwiML (:func:`continued_document`). The worker serving it reads the keys pressed so far
from the ``default`` collection, raw (``collect_dtmf`` would drop a finishing key found there), and
runs, without HTTP, either the Gather with its prompts left (no key yet), or the same Gather with
no prompts (the caller has answered: ``collect_dtmf`` takes the keys already in ``default`` and
waits for the rest, as Twilio does once input has started), or the verbs after the Gather (the
finishing key alone, which is no input) (:func:`settle_prompts`). A hop is part of the request
that made it: its token keeps that request's iteration, so hops cost nothing against
``PIVOT_MAX_ITERATIONS`` and never fetch anything themselves; the chain ends because every hop
carries fewer prompt units than the one before.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from ..errors import Reason, TranslationError
from . import attrs, continuation
from .continuation import Continuation
from .limits import MAX_FINDINGS
from .parse import parse_document
from .speech import pause, play, say_repetitions
from .state import Node, State, Step, Template

DISCARD_COLLECTION = "pivot_discard"
KAZOO_DEFAULT_COLLECTION = "default"
"""The collection Kazoo's ``tts`` and ``play`` append the keys pressed during them to."""
UNLIMITED_DIGITS = 128
MAX_TIMEOUT_S = 3600
CONTINUED_NS = "urn:pivot-worker:twiml"
CONTINUED = f"{{{CONTINUED_NS}}}continued"
"""Marks the ``<Gather>`` of a prompt hop's document: it goes on with keys already pressed, so it
does not discard the ``default`` collection. Reserved: the worker writes it into its own tokens."""
SPEECH_ATTRIBUTES = (
    "speechTimeout",
    "maxSpeechTime",
    "speechModel",
    "enhanced",
    "profanityFilter",
    "hints",
    "language",
    "partialResultCallback",
    "partialResultCallbackMethod",
)
_DISCARD = Template(
    "collect_dtmf",
    {"collection_name": DISCARD_COLLECTION, "max_digits": 1, "timeout": 1, "interdigit_timeout": 1},
)


@dataclass(frozen=True, slots=True)
class Settings:
    """A Gather's attributes, read and checked (the action URL is resolved after the prompts)."""

    method: str
    timeout_s: int
    key: str
    digits: int
    on_empty: bool
    barge_in: bool


@dataclass(frozen=True, slots=True)
class PromptUnit:
    """What plays between two chances to look at the keys: a Play, a Pause, or one repetition of a Say."""

    element: etree._Element
    repetition: int
    repetitions: int
    nodes: list[Node]


def collection_name(iteration: int) -> str:
    return f"pivot_g{iteration}"


def remaining_twiml(rest: Sequence[etree._Element]) -> str:
    """The verbs after a callback verb, as a TwiML document (empty string when there are none)."""
    if not rest:
        return ""
    return _document("", rest)


def _document(first: str, rest: Sequence[etree._Element]) -> str:
    return (
        "<Response>"
        + first
        + "".join(etree.tostring(e, encoding="unicode", with_tail=False) for e in rest)
        + "</Response>"
    )


def gather(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    continued = _take_continued_marker(element)
    a = attrs.read(element, st)
    settings = _settings(element, a, st)
    _check_input(element, a, st)
    units = _prompt_units(element, st, settings.barge_in)
    action = st.url(element, a.get("action") or st.ctx.document_url, "<Gather> action")
    check_carried(rest, st)
    nodes: list[Node] = [] if continued else [st.fixed_node(element, _DISCARD)]
    # Made even when a hop replaces them: the action's loop guard and token size are checked now.
    answer = _answer_nodes(element, st, settings, action, rest)
    hop = _prompt_hop(element, st, settings, action, units, rest)
    if hop is not None:
        nodes.extend(units[0].nodes)
        nodes.append(hop)
    else:
        nodes.extend(node for unit in units for node in unit.nodes)
        nodes.extend(answer)
    return Step(nodes, terminal=True, consumed=True)


def _take_continued_marker(element: etree._Element) -> bool:
    """Whether ``element`` carries :data:`CONTINUED`; removed, so it is not an unknown attribute."""
    if element.get(CONTINUED) is None:
        return False
    del element.attrib[CONTINUED]
    return True


def _settings(element: etree._Element, a: attrs.Values, st: State) -> Settings:
    method = attrs.method(element, a, st, "13312")
    timeout = attrs.integer(element, a, st, "timeout", 5, "13313", minimum=1, maximum=MAX_TIMEOUT_S)
    key = _finish_key(element, a, st)
    digits = attrs.integer(
        element, a, st, "numDigits", UNLIMITED_DIGITS, "13314", minimum=1, maximum=UNLIMITED_DIGITS
    )
    on_empty = attrs.boolean(element, a, st, "actionOnEmptyResult", False, "13338")
    barge_in = attrs.boolean(element, a, st, "bargeIn", True, "gather-bargein")
    attrs.unsupported(
        element, a, st, "debug", "Twilio's Gather debug output does not exist on Kazoo", unless=("false",)
    )
    return Settings(method, timeout, key, digits, on_empty, barge_in)


def _finish_key(element: etree._Element, a: attrs.Values, st: State) -> str:
    key = attrs.finish_key(element, a, st, "#", "13310")
    if key != "":
        return key
    st.warn(
        element,
        "kazoo-unsupported",
        'finishOnKey="" (no finishing key) cannot be expressed: Kazoo\'s collect_dtmf always ends on a '
        "key (an empty terminator or terminators list makes cf_collect_dtmf crash); '#' ends the input "
        "and is not sent",
    )
    return "#"


def _check_input(element: etree._Element, a: attrs.Values, st: State) -> None:
    """``input``: keys only. Speech alone is refused; speech with keys collects keys, with warnings."""
    raw = a.get("input")
    if raw is None:
        return
    modes = raw.lower().split()
    if not modes or any(mode not in ("dtmf", "speech") for mode in modes):
        st.warn(element, "gather-input", f'input={raw!r} must be dtmf, speech or "dtmf speech"; using dtmf')
        return
    if "speech" not in modes:
        return
    if "dtmf" not in modes:
        st.error(
            element,
            "unsupported-verb",
            f"input={raw!r} needs speech recognition, which Kazoo's callflow engine does not have "
            '(no callflow module listens to the caller); use input="dtmf" to collect keys instead',
            Reason.UNSUPPORTED_VERB,
        )
        return
    st.warn(
        element,
        "kazoo-unsupported",
        f"input={raw!r}: Kazoo's callflow engine has no speech recognition; only keys (DTMF) are collected",
    )
    for name in SPEECH_ATTRIBUTES:
        attrs.unsupported(element, a, st, name, "speech recognition is not available on Kazoo")


def _prompt_units(element: etree._Element, st: State, barge_in: bool) -> list[PromptUnit]:
    units: list[PromptUnit] = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "Say":
            repetitions = say_repetitions(child, st, True, barge_in)
            units.extend(
                PromptUnit(child, n, len(repetitions), nodes) for n, nodes in enumerate(repetitions, 1)
            )
        elif child.tag in ("Play", "Pause"):
            prompt = play if child.tag == "Play" else pause
            nodes = prompt(child, st, in_gather=True, barge_in=barge_in)
            if nodes:
                units.append(PromptUnit(child, 1, 1, nodes))
        else:
            st.error(
                child,
                "13320",
                f"<{child.tag}> cannot be nested in <Gather> (only Say, Play, Pause)",
                Reason.SCHEMA_ERROR,
            )
    return units


def _answer_nodes(
    element: etree._Element, st: State, settings: Settings, action: str, rest: Sequence[etree._Element]
) -> list[Node]:
    """The ``collect_dtmf`` that waits for the answer, and the nested pivot that acts on it."""
    name = collection_name(st.ctx.iteration)
    collect = st.node(
        element,
        "collect_dtmf",
        {
            "collection_name": name,
            "max_digits": settings.digits,
            "timeout": settings.timeout_s * 1000,
            "interdigit_timeout": settings.timeout_s * 1000,
            "terminator": settings.key,
        },
    )
    remaining = remaining_twiml(rest)
    callback = st.callback(
        element,
        action,
        settings.method,
        continuation.GATHER,
        collection=name,
        action_on_empty=settings.on_empty,
        remaining=remaining,
        base_url=_base_url(st, action, remaining),
    )
    return [collect, callback]


def _base_url(st: State, action: str, carried: str) -> str:
    """The URL carried verbs resolve against, when the request's own URL (the action) is not it."""
    return st.ctx.document_url if carried and st.ctx.document_url != action else ""


def _prompt_hop(
    element: etree._Element,
    st: State,
    settings: Settings,
    action: str,
    units: Sequence[PromptUnit],
    rest: Sequence[etree._Element],
) -> Node | None:
    """The nested pivot after the first prompt unit (:func:`settle_prompts` decides what it runs).

    None when there is nothing to hop over (one unit, or prompts the caller cannot interrupt), or
    when the prompts left do not fit in a token: all prompts then play, as before hops existed.
    """
    if not settings.barge_in or len(units) < 2:
        return None
    document = continued_document(settings, action, units[1:], rest)
    try:
        return st.callback(
            element,
            action,
            settings.method,
            continuation.PROMPTS,
            remaining=document,
            base_url=_base_url(st, action, document),
        )
    except TranslationError as exc:
        if exc.reason is not Reason.LIMIT_EXCEEDED:
            raise
    st.warn(
        element,
        "kazoo-unsupported",
        "the prompts after the first do not fit in a continuation token, so they all play even once "
        "the caller has answered (Kazoo cannot skip callflow nodes on input)",
    )
    return None


def continued_document(
    settings: Settings, action: str, units_left: Sequence[PromptUnit], rest: Sequence[etree._Element]
) -> str:
    """The Gather still under way, with the prompt units not played yet, then the verbs after it.

    Its attributes are the values already read (nothing is warned about twice); a ``<Say>`` cut
    between two repetitions keeps the repetitions left as its ``loop``.
    """
    values = {
        "action": action,
        "method": settings.method.upper(),
        "timeout": str(settings.timeout_s),
        "finishOnKey": settings.key,
    }
    if settings.digits != UNLIMITED_DIGITS:
        values["numDigits"] = str(settings.digits)
    if settings.on_empty:
        values["actionOnEmptyResult"] = "true"
    continued = etree.Element("Gather", nsmap={"pivot": CONTINUED_NS})
    continued.set(CONTINUED, "true")
    for name, value in values.items():
        continued.set(name, value)
    for prompt in _prompts_left(units_left):
        continued.append(prompt)
    return _document(etree.tostring(continued, encoding="unicode"), rest)


def _prompts_left(units_left: Sequence[PromptUnit]) -> list[etree._Element]:
    """Copies of the prompt elements still to play, the first one's ``loop`` cut to what is left."""
    prompts: list[etree._Element] = []
    seen: set[int] = set()
    for unit in units_left:
        if id(unit.element) in seen:
            continue
        seen.add(id(unit.element))
        prompt = copy.deepcopy(unit.element)
        prompt.tail = None
        if unit.repetition > 1:
            prompt.set("loop", str(unit.repetitions - unit.repetition + 1))
        prompts.append(prompt)
    return prompts


def check_carried(rest: Sequence[etree._Element], st: State) -> None:
    """Translate now the verbs a Gather carries, as its no-input request will, and keep their errors.

    A URL they name that fails the address check, or any other error of theirs, then fails this
    document, located, instead of the call after the prompts. Their warnings are reported when
    they run. They are translated with the variables set so far and this request's context; the
    loop guard, which depends on the path the call takes, is left to the request that runs them.
    """
    if not rest:
        return
    scratch = State(st.ctx, st.doc, st.walk)
    scratch.variables = dict(st.variables)
    scratch.checked = st.checked
    try:
        st.walk(rest, scratch)
    except TranslationError as exc:
        if exc.reason is Reason.REDIRECT_LOOP:
            return
        raise TranslationError(
            str(exc), reason=exc.reason, findings=exc.findings, warnings=st.warnings
        ) from None
    st.errors.extend(scratch.errors[: max(0, MAX_FINDINGS - len(st.errors))])


def settle_prompts(cont: Continuation, keys: str) -> Continuation:
    """What a prompt hop runs, given ``keys``: Kazoo's ``default`` collection as it stands (raw).

    * no key yet: the Gather goes on with its prompts left (``cont.remaining`` as carried);
    * keys, no finishing key among them: the Gather goes on without prompts; its ``collect_dtmf``
      takes the keys already pressed and waits for the rest (or ends at once at ``numDigits``);
    * the finishing key after some digits: the same, with ``numDigits`` set to those digits, so
      ``collect_dtmf`` ends at once with exactly them (it would otherwise drop the key and wait);
    * the finishing key alone: no input. The verbs after the Gather run, or, with
      ``actionOnEmptyResult``, the Gather goes on without prompts and requests its action.

    The result is a ``resume`` continuation: a document run without HTTP, at the hop's iteration.
    """
    if not keys:
        return dataclasses.replace(cont, kind=continuation.RESUME)
    root = parse_document(cont.remaining.encode()).root
    first = root[0] if len(root) else None
    if first is None or first.tag != "Gather" or first.get(CONTINUED) is None:
        return dataclasses.replace(cont, kind=continuation.RESUME)
    key = first.get("finishOnKey") or ""
    if key and key in keys:
        digits = keys.split(key, 1)[0][: int(first.get("numDigits") or UNLIMITED_DIGITS)]
        if not digits and first.get("actionOnEmptyResult") != "true":
            root.remove(first)
            return _resume(cont, root)
        if digits:
            first.set("numDigits", str(len(digits)))
    for prompt in list(first):
        first.remove(prompt)
    return _resume(cont, root)


def _resume(cont: Continuation, root: etree._Element) -> Continuation:
    document = etree.tostring(root, encoding="unicode")
    return dataclasses.replace(cont, kind=continuation.RESUME, remaining=document)
