"""The working state of one translation: findings, variables, node budget and callbacks.

Verb handlers report through :class:`State` so every finding is located the same way (pointer,
line, column) and every nested ``pivot`` node gets the same loop guard, token and propagated
request settings.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import fastjsonschema
import orjson
from lxml import etree

from ..callflow.modules import PASS_THROUGH_MODULES, DataValidator, data_validator
from ..callflow.validate import validate_flow
from ..errors import Finding, PivotError, Reason, TranslationError
from .context import TwimlContext
from .continuation import PROMPTS, attach_token, payload, seal_json
from .limits import MAX_FINDINGS, MAX_FLOW_NODES
from .parse import Document
from .urls import resolve_http_url

Node = dict[str, Any]
Walker = Callable[[Sequence[etree._Element], "State"], Node]

PIVOT_TIMEOUT_CAP_MS = 5000  # callflows.pivot caps req_timeout_ms

_VALIDATORS: dict[str, DataValidator] = {}


def _validator(module: str) -> DataValidator:
    """The data validator of a module the translator uses; KeyError for a module the flow
    validator would refuse (``validate_flow`` then says so)."""
    validator = data_validator(module)
    if validator is None:
        if module not in PASS_THROUGH_MODULES:
            raise KeyError(module)
        validator = _accept_as_is
    _VALIDATORS[module] = validator
    return validator


def _accept_as_is(data: Any) -> Any:
    """Pass-through modules: Kazoo validates and defaults their data itself."""
    return data


class State:
    """Findings and shared resources for translating one document."""

    __slots__ = (
        "call_bound",
        "checked",
        "ctx",
        "doc",
        "errors",
        "made",
        "nodes",
        "sealed",
        "variables",
        "walk",
        "warnings",
    )

    def __init__(self, ctx: TwimlContext, doc: Document, walk: Walker) -> None:
        self.ctx = ctx
        self.doc = doc
        self.walk = walk
        self.errors: list[tuple[Finding, Reason]] = []
        self.warnings: list[Finding] = []
        self.nodes = 0
        self.made: list[tuple[str, dict[str, Any]]] = []
        """``(module, data)`` of every node made, for :meth:`complete`."""
        self.variables: dict[str, str] = dict(ctx.continuation.variables) if ctx.continuation else {}
        self.checked: set[str] = set()
        """URLs that already passed ``ctx.check_url`` in this translation (each is checked once)."""
        self.sealed: list[SealedCallback] = []
        """Every callback made, with what its token was sealed from (see :mod:`.memo`)."""
        self.call_bound = False
        """Set when node data other than a callback token names the call (:meth:`bind_to_call`)."""

    def bind_to_call(self) -> str:
        """The call's id, for node data that names the call (not for callback tokens).

        Such a flow is only right for this call, so it is never reused for another one.
        """
        self.call_bound = True
        return self.ctx.call_id

    # -- findings ------------------------------------------------------------------------------

    def finding(self, element: etree._Element, code: str, message: str) -> Finding:
        line, column = self.doc.locator.position(element)
        return Finding(
            code=code, message=message, pointer=self.doc.locator.pointer(element), line=line, column=column
        )

    def warn(self, element: etree._Element, code: str, message: str) -> None:
        if len(self.warnings) < MAX_FINDINGS:
            self.warnings.append(self.finding(element, code, message))

    def error(self, element: etree._Element, code: str, message: str, reason: Reason) -> None:
        if len(self.errors) < MAX_FINDINGS:
            self.errors.append((self.finding(element, code, message), reason))

    def fatal(self, element: etree._Element, code: str, message: str, reason: Reason) -> TranslationError:
        """An error that stops translation at once (limits, loops)."""
        return TranslationError(
            message, reason=reason, findings=[self.finding(element, code, message)], warnings=self.warnings
        )

    def raise_errors(self) -> None:
        if self.errors:
            findings = [f for f, _ in self.errors]
            first_reason = self.errors[0][1]
            raise TranslationError(
                f"TwiML document has {len(findings)} error(s)",
                reason=first_reason,
                findings=findings,
                warnings=self.warnings,
            )

    # -- nodes ---------------------------------------------------------------------------------

    def node(
        self, element: etree._Element, module: str, data: dict[str, Any], children: Node | None = None
    ) -> Node:
        """A callflow node, counted against :data:`MAX_FLOW_NODES`; :meth:`complete` checks its data."""
        self.made.append((module, data))
        return self._node(element, module, data, children)

    def fixed_node(self, element: etree._Element, template: Template) -> Node:
        """A node whose data never changes: checked and completed once per process, copied here."""
        return self._node(element, template.module, template.data(), None)

    def _node(
        self, element: etree._Element, module: str, data: dict[str, Any], children: Node | None
    ) -> Node:
        self.nodes += 1
        if self.nodes > MAX_FLOW_NODES:
            raise self.fatal(
                element,
                "flow-size",
                f"the document needs more than {MAX_FLOW_NODES} callflow nodes; split it into several",
                Reason.LIMIT_EXCEEDED,
            )
        return {"module": module, "data": data, "children": children if children is not None else {}}

    def complete(self, head: Node) -> Node:
        """Check every node's ``data`` against its module's schema and fill in Kazoo's defaults.

        The same compiled validators as :func:`~pivot_worker.callflow.validate.validate_flow`, run
        over the list of nodes made instead of a walk of the tree: the tree's shape is right by
        construction (modules are literals, children are nodes, at most :data:`MAX_FLOW_NODES`
        nodes, so no deeper than that either). A translator bug that breaks a schema still fails
        the document: ``validate_flow`` then runs on the whole flow and raises its located
        ``schema_error`` findings.
        """
        try:
            for module, data in self.made:
                validator = _VALIDATORS.get(module) or _validator(module)
                validator(data)
        except (fastjsonschema.JsonSchemaValueException, KeyError):
            return validate_flow(head)
        return head

    # -- URLs ----------------------------------------------------------------------------------

    def url(self, element: etree._Element, reference: str, what: str, base: str | None = None) -> str:
        """Resolve ``reference`` (RFC 3986) and run the worker's safety check on the result."""
        try:
            url = resolve_http_url(base if base is not None else self.ctx.document_url, reference, what=what)
            if url not in self.checked:
                self.ctx.check_url(url)
                self.checked.add(url)
        except PivotError as exc:
            line, column = self.doc.locator.position(element)
            pointer = self.doc.locator.pointer(element)
            where = f"{pointer} (line {line})" if line else pointer
            raise PivotError(
                f"{where}: {exc}",
                reason=exc.reason,
                detail={**exc.detail, "pointer": pointer, "line": line, "column": column, "what": what},
            ) from exc
        return url

    # -- callbacks -----------------------------------------------------------------------------

    def callback(self, element: etree._Element, url: str, method: str, kind: str, **fields: Any) -> Node:
        """A nested ``pivot`` node for ``url`` carrying a signed continuation of ``kind``.

        The node's ``_`` child hangs up: if the follow-up request fails, Twilio would end the call
        too (after its error prompt), and an explicit hangup beats Kazoo's "lost" path.
        """
        ctx = self.ctx
        raw, token = self._seal(element, kind, fields)
        data: dict[str, Any] = {
            "voice_url": attach_token(url, token),
            "method": method,
            "req_format": ctx.request_format,
            "req_body_format": ctx.request_body_format,
        }
        if ctx.debug:
            data["debug"] = True
        if ctx.request_timeout_ms:
            data["req_timeout_ms"] = min(ctx.request_timeout_ms, PIVOT_TIMEOUT_CAP_MS)
        self.sealed.append(SealedCallback(data, url, raw))
        return self.node(element, "pivot", data, {"_": self.fixed_node(element, HANGUP)})

    def token(self, element: etree._Element, kind: str, **fields: Any) -> str:
        """A signed continuation of ``kind`` for the next request, carried outside a ``voice_url``.

        Such a token names the call outside a callback node, so the flow is never reused for
        another call (:meth:`bind_to_call`).
        """
        self.bind_to_call()
        formats = {"request_format": self.ctx.request_format, "body_format": self.ctx.request_body_format}
        return self._seal(element, kind, {**formats, **fields})[1]

    def _seal(self, element: etree._Element, kind: str, fields: dict[str, Any]) -> tuple[bytes, str]:
        """The payload for the next request and its token, under the loop guard and size bound."""
        ctx = self.ctx
        following = ctx.iteration if kind == PROMPTS else ctx.iteration + 1  # a prompt hop is this request
        if following > ctx.max_iterations:
            raise self.fatal(
                element,
                "redirect-loop",
                f"this would be request {following} of the call; PIVOT_MAX_ITERATIONS allows "
                f"{ctx.max_iterations}",
                Reason.REDIRECT_LOOP,
            )
        raw = orjson.dumps(payload(ctx.call_id, following, kind, self.variables, **fields))
        try:
            return raw, seal_json(raw, ctx.continuation_key)
        except PivotError as exc:
            if exc.reason is Reason.LIMIT_EXCEEDED:
                raise self.fatal(element, "continuation-size", str(exc), Reason.LIMIT_EXCEEDED) from exc
            raise


class SealedCallback:
    """A callback node's ``data``, its URL before the token, and the payload the token seals."""

    __slots__ = ("data", "payload", "url")

    def __init__(self, data: dict[str, Any], url: str, payload: bytes) -> None:
        self.data = data
        self.url = url
        self.payload = payload


class Template:
    """Constant node data, checked against its module's schema and completed on first use.

    A broken template fails its first document with ``validate_flow``'s ``schema_error``, as any
    other node would; every use gets its own shallow copy (the values are scalars or ``{}``).
    """

    __slots__ = ("_completed", "module", "raw")

    def __init__(self, module: str, data: dict[str, Any]) -> None:
        self.module = module
        self.raw = data
        self._completed: dict[str, Any] | None = None

    def data(self) -> dict[str, Any]:
        if self._completed is None:
            node = validate_flow({"module": self.module, "data": copy.deepcopy(self.raw)})
            self._completed = node["data"]
        return dict(self._completed)


HANGUP = Template("hangup", {})


class Step:
    """What one verb contributes: nodes to chain in order, and whether the chain ends there.

    ``terminal`` steps end the chain (their last node carries its own children); ``consumed``
    says the step already dealt with the verbs after it (a Gather carries them in its token, a
    Dial without action runs them on failure), so they are not "unreachable".
    """

    __slots__ = ("consumed", "nodes", "terminal")

    def __init__(self, nodes: list[Node], *, terminal: bool = False, consumed: bool = False) -> None:
        self.nodes = nodes
        self.terminal = terminal
        self.consumed = consumed


def chain(nodes: list[Node]) -> Node:
    """Link ``nodes`` through their ``_`` children; the last node keeps its own children."""
    for current, following in itertools.pairwise(nodes):
        current["children"]["_"] = following
    return nodes[0]
