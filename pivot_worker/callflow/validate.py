"""Validate a developer's Kazoo callflow the way Kazoo does, filling in schema defaults.

Kazoo checks every node against ``callflows.action`` (``module``: string of 1..64 characters;
``data``: object, default ``{}``; ``children``: object of nodes) and each node's ``data`` against
``callflows.<module>``, inserting the schema defaults; the flow it then runs is the filled-in
one. We do the same with our own schemas, so ``{"module": "tts", "data": {"text": "Hi"}}`` comes
back with ``voice`` and ``terminators`` set, exactly as Kazoo would publish it.

A valid flow costs one fastjsonschema call per node. An invalid one is re-checked node by node
with a collector that lists every problem, each located by a JSON pointer, so the developer can
fix the whole document at once. Depth and size limits bound the work done on hostile input.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeAlias

import fastjsonschema

from ..errors import Finding, Reason, TranslationError
from ..schemas.wording import describe, shown
from .collect import collect, escape, slow_validator
from .modules import PASS_THROUGH_MODULES, SUPPORTED_MODULES, data_validator

MODULE_MIN_LENGTH = 1
MODULE_MAX_LENGTH = 64
_ACCEPTED = ", ".join(sorted(SUPPORTED_MODULES))

_Link: TypeAlias = "tuple[_Link, str] | None"


def prepare() -> None:
    """Compile every module's validators now (about 60 ms, plus 35 ms to import jsonschema for the
    error collector) instead of on first use, so a fresh worker's first flows are not slower."""
    for module in SUPPORTED_MODULES:
        data_validator(module)
        slow_validator(module)


def validate_flow(flow: object, *, max_depth: int = 64, max_nodes: int = 500) -> dict[str, Any]:
    """Check ``flow`` and fill Kazoo's defaults into every node's ``data``; return the same object.

    Defaults are written in place (a node without ``data`` gets ``{}`` first). The root is at
    depth 1; a node deeper than ``max_depth`` or beyond the ``max_nodes``-th is a finding, and
    nodes past the node limit are not examined.

    Raises:
        TranslationError: reason ``schema_error``; ``findings`` lists every problem found, each
            with a short ``code`` (``required``, ``type``, ``enum``, ``max_length``,
            ``unknown_module``, ``too_deep``, ``too_many_nodes``...) and a JSON ``pointer``.
            Defaults may already have been filled into the nodes that were valid.
    """
    if not isinstance(flow, dict):
        code, message = describe("type", "object", flow)
        _reject([Finding(code, f"a callflow {message}", "")])
    findings: list[Finding] = []
    # Each entry: (node, link to its place in the tree, depth). A link is (parent link, child key),
    # turned into a JSON pointer only when something is wrong, so a valid flow builds no strings.
    stack: list[tuple[object, _Link, int]] = [(flow, None, 1)]
    seen = 0
    while stack:
        node, link, depth = stack.pop()
        seen += 1
        if seen > max_nodes:
            message = f"the flow has more than {max_nodes} nodes; the rest was not checked"
            findings.append(Finding("too_many_nodes", message, _pointer(link)))
            break
        if depth > max_depth:
            message = f"nodes may be nested at most {max_depth} deep; this one is deeper"
            findings.append(Finding("too_deep", message, _pointer(link)))
            continue
        if not isinstance(node, dict):
            code, message = describe("type", "object", node)
            findings.append(Finding(code, f"a callflow node {message}", _pointer(link)))
            continue
        _check_node(node, link, findings)
        children = node.get("children")
        if children is None and "children" not in node:
            continue
        if not isinstance(children, dict):
            code, message = describe("type", "object", children)
            findings.append(Finding(code, message, f"{_pointer(link)}/children"))
            continue
        for key, child in reversed(children.items()):
            stack.append((child, (link, key), depth + 1))
    if findings:
        _reject(findings)
    return flow


def _pointer(link: _Link) -> str:
    """The JSON pointer of the node at ``link`` (``""`` for the root)."""
    keys: list[str] = []
    while link is not None:
        link, key = link
        keys.append(key)
    return "".join(f"/children/{escape(key)}" for key in reversed(keys))


def _check_node(node: dict[str, Any], link: _Link, findings: list[Finding]) -> None:
    """Check one node's ``module`` and ``data`` (not its children), filling ``data`` defaults."""
    data = node.get("data")
    if data is None and "data" not in node:
        data = node["data"] = {}
    module = node.get("module")
    name = module if isinstance(module, str) else ""
    validator = data_validator(name)
    if validator is not None and isinstance(data, dict):
        try:
            validator(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            findings.extend(collect(name, data, f"{_pointer(link)}/data", exc))
        return
    # Slow path: something is wrong with the module name or the data type; say exactly what.
    pointer = _pointer(link)
    known = _module(node, pointer, findings)
    if not isinstance(data, dict):
        code, message = describe("type", "object", data)
        findings.append(Finding(code, message, f"{pointer}/data"))
    if known is not None and validator is None and known not in PASS_THROUGH_MODULES:
        findings.append(
            Finding(
                "unknown_module",
                f"{shown(known)} is not a callflow module we accept; accepted: {_ACCEPTED}",
                f"{pointer}/module",
            )
        )


def _module(node: dict[str, Any], pointer: str, findings: list[Finding]) -> str | None:
    """The node's module name, or None after recording why it is unusable."""
    at = f"{pointer}/module"
    module = node.get("module")
    if module is None and "module" not in node:
        findings.append(Finding("required", "is required", at))
        return None
    if not isinstance(module, str):
        findings.append(Finding(*describe("type", "string", module), at))
        return None
    if len(module) < MODULE_MIN_LENGTH:
        findings.append(Finding(*describe("minLength", MODULE_MIN_LENGTH, module), at))
        return None
    if len(module) > MODULE_MAX_LENGTH:
        findings.append(Finding(*describe("maxLength", MODULE_MAX_LENGTH, module), at))
        return None
    return module


def _reject(findings: list[Finding]) -> NoReturn:
    count = len(findings)
    raise TranslationError(
        f"Kazoo callflow rejected: {count} problem{'s' if count != 1 else ''}",
        reason=Reason.SCHEMA_ERROR,
        findings=findings,
    )
