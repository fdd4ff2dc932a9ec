"""The working state of one translation: findings, variables, node budget and callbacks.

Verb handlers report through :class:`State` so every finding is located the same way (pointer,
line, column) and every nested ``pivot`` node gets the same loop guard, token and propagated
request settings.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from lxml import etree

from ..errors import Finding, PivotError, Reason, TranslationError
from .context import TwimlContext
from .continuation import Continuation, attach_token, seal_continuation
from .limits import MAX_FINDINGS, MAX_FLOW_NODES
from .parse import Document
from .urls import resolve_http_url

Node = dict[str, Any]
Walker = Callable[[Sequence[etree._Element], "State"], Node]

PIVOT_TIMEOUT_CAP_MS = 5000  # callflows.pivot caps req_timeout_ms


class State:
    """Findings and shared resources for translating one document."""

    __slots__ = ("ctx", "doc", "errors", "nodes", "variables", "walk", "warnings")

    def __init__(self, ctx: TwimlContext, doc: Document, walk: Walker) -> None:
        self.ctx = ctx
        self.doc = doc
        self.walk = walk
        self.errors: list[tuple[Finding, Reason]] = []
        self.warnings: list[Finding] = []
        self.nodes = 0
        self.variables: dict[str, str] = dict(ctx.continuation.variables) if ctx.continuation else {}

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
        """A callflow node, counted against :data:`MAX_FLOW_NODES`."""
        self.nodes += 1
        if self.nodes > MAX_FLOW_NODES:
            raise self.fatal(
                element,
                "flow-size",
                f"the document needs more than {MAX_FLOW_NODES} callflow nodes; split it into several",
                Reason.LIMIT_EXCEEDED,
            )
        return {"module": module, "data": data, "children": children if children is not None else {}}

    # -- URLs ----------------------------------------------------------------------------------

    def url(self, element: etree._Element, reference: str, what: str, base: str | None = None) -> str:
        """Resolve ``reference`` (RFC 3986) and run the worker's safety check on the result."""
        try:
            url = resolve_http_url(base if base is not None else self.ctx.document_url, reference, what=what)
            self.ctx.check_url(url)
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
        following = ctx.iteration + 1
        if following > ctx.max_iterations:
            raise self.fatal(
                element,
                "redirect-loop",
                f"this would be request {following} of the call; PIVOT_MAX_ITERATIONS allows "
                f"{ctx.max_iterations}",
                Reason.REDIRECT_LOOP,
            )
        cont = Continuation(
            call_id=ctx.call_id, iteration=following, kind=kind, variables=dict(self.variables), **fields
        )
        try:
            token = seal_continuation(cont, ctx.continuation_key)
        except PivotError as exc:
            if exc.reason is Reason.LIMIT_EXCEEDED:
                raise self.fatal(element, "continuation-size", str(exc), Reason.LIMIT_EXCEEDED) from exc
            raise
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
        return self.node(element, "pivot", data, {"_": self.node(element, "hangup", {})})


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
