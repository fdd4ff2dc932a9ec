"""Check that what we produce is something Kazoo itself would accept.

Kazoo's own JSON schemas (draft-04, MPL-2.0 reference data) live outside this repository, beside
it in ``shared/kazoo-schemas``; env ``PIVOT_KAZOO_SCHEMAS`` points elsewhere. Tests only read
them. When they are missing, tests that need them are skipped on a developer machine and fail
when ``CI=true``, so a broken CI checkout can never pass silently.

Kazoo's callflow schemas refer to each other by bare ids (``"$ref": "callflows.action"``,
``"conferences"``), declared in a non-standard ``_id`` key. We therefore register every file
under its ``_id`` (falling back to the file name) in one ``referencing.Registry`` and validate
with draft-04 semantics, as Kazoo's validator does. Kazoo's extension keywords
(``kazoo-validation``, ``support_level``) mean nothing to a standard validator and are ignored;
the URL blacklist check they trigger in Kazoo is out of scope here.

Typical use::

    from tests.kazoo_conformance import assert_flow_conforms

    assert_flow_conforms(flow)  # AssertionError listing every problem with its path

Kazoo fills schema defaults while it validates (a node without ``data`` gets ``{}``, a
``response`` without ``code`` gets 486), so the checks here fill them the same way first:
:func:`kazoo_filled_flow` returns the flow Kazoo would actually run.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pathlib
import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMAS_ENV = "PIVOT_KAZOO_SCHEMAS"
_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
_DEFAULT_DIR = _REPO_ROOT.parent / "shared" / "kazoo-schemas"
_MARKER = "callflows.action.json"


def kazoo_schemas_dir() -> pathlib.Path:
    """Return the directory holding Kazoo's schemas, or skip (locally) / fail (``CI=true``).

    The directory is ``$PIVOT_KAZOO_SCHEMAS`` when set, else ``<repo root>/../shared/kazoo-schemas``.
    It counts as present only if it contains ``callflows.action.json``.
    """
    configured = os.environ.get(SCHEMAS_ENV)
    directory = pathlib.Path(configured) if configured else _DEFAULT_DIR
    if (directory / _MARKER).is_file():
        return directory
    why = (
        f"Kazoo schemas not found: {directory / _MARKER} does not exist "
        f"(set {SCHEMAS_ENV} or place shared/kazoo-schemas beside the repository)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


@functools.cache
def _load(directory: pathlib.Path) -> tuple[dict[str, dict[str, Any]], Registry[Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(contents, dict):
            continue
        schema_id = contents.get("_id") or contents.get("id") or path.stem
        schemas[schema_id] = contents
    registry: Registry[Any] = Registry().with_resources(
        (schema_id, Resource.from_contents(contents, default_specification=DRAFT4))
        for schema_id, contents in schemas.items()
    )
    return schemas, registry


def kazoo_schema(name: str) -> dict[str, Any]:
    """Return Kazoo's schema registered under ``name`` (e.g. ``"kapi.pivot.req"``); fail if absent."""
    schemas, _ = _load(kazoo_schemas_dir())
    if name not in schemas:
        raise AssertionError(f"Kazoo has no schema named {name!r} in {kazoo_schemas_dir()}")
    return schemas[name]


def kazoo_validator(name: str) -> Draft4Validator:
    """A draft-04 validator for Kazoo's schema ``name`` that resolves Kazoo's bare-id ``$ref``s."""
    return _validator(kazoo_schemas_dir(), name)


@functools.cache
def _validator(directory: pathlib.Path, name: str) -> Draft4Validator:
    schemas, registry = _load(directory)
    if name not in schemas:
        raise AssertionError(f"Kazoo has no schema named {name!r} in {directory}")
    return Draft4Validator(schemas[name], registry=registry)


def _pointer(parts: Iterable[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def kazoo_errors(name: str, instance: object, *, at: str = "") -> list[str]:
    """Every error Kazoo's schema ``name`` reports for ``instance``, as ``"<pointer>: <message>"``."""
    validator = kazoo_validator(name)
    return [
        f"{at + _pointer(err.absolute_path) or '(root)'}: {err.message} (schema {name})"
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


_DRAFT4_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def _default_applies(subschema: dict[str, Any]) -> bool:
    # Kazoo's validator inserts a default only when the property declares a type and the default
    # has that type (a default on a property without "type" is never inserted).
    declared = subschema.get("type")
    types = declared if isinstance(declared, list) else [declared]
    checks = [_DRAFT4_TYPES[t] for t in types if isinstance(t, str) and t in _DRAFT4_TYPES]
    return any(check(subschema["default"]) for check in checks)


def _fill(schema: object, value: object, registry: Registry[Any]) -> None:
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        _fill(registry.resolver().lookup(ref).contents, value, registry)
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                _fill(sub, value[name], registry)
            elif isinstance(sub, dict) and "default" in sub and _default_applies(sub):
                value[name] = copy.deepcopy(sub["default"])
                _fill(sub, value[name], registry)
        for pattern, sub in (schema.get("patternProperties") or {}).items():
            for key, item in value.items():
                if re.search(pattern, key):
                    _fill(sub, item, registry)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _fill(schema["items"], item, registry)


def kazoo_inserted_default(subschema: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, value)`` if Kazoo inserts a value for a missing property with this schema, else
    ``(False, None)``. The value is the declared default with its own nested defaults filled."""
    if "default" not in subschema or not _default_applies(subschema):
        return False, None
    _, registry = _load(kazoo_schemas_dir())
    value = copy.deepcopy(subschema["default"])
    _fill(subschema, value, registry)
    return True, value


def kazoo_resolve(subschema: dict[str, Any]) -> dict[str, Any]:
    """``subschema`` with a bare-id ``$ref`` (e.g. ``"conferences"``) replaced by its target's keys."""
    ref = subschema.get("$ref")
    if not isinstance(ref, str):
        return subschema
    _, registry = _load(kazoo_schemas_dir())
    target = registry.resolver().lookup(ref).contents
    merged = {**subschema, **target}
    del merged["$ref"]
    return merged


def kazoo_filled(name: str, instance: object) -> Any:
    """A copy of ``instance`` with the defaults Kazoo inserts while validating it against ``name``.

    Kazoo (jesse with ``use_defaults`` and ``apply_defaults_to_empty_objects``) fills a missing
    property that has a typed, type-valid ``default``, then validates what it filled, so nested
    defaults inside an inserted object are filled too; properties come before ``required``, so a
    required property with a default is never missing.
    """
    schemas, registry = _load(kazoo_schemas_dir())
    if name not in schemas:
        raise AssertionError(f"Kazoo has no schema named {name!r}")
    filled = copy.deepcopy(instance)
    _fill(schemas[name], filled, registry)
    return filled


def kazoo_filled_flow(flow: object) -> Any:
    """What Kazoo would run for ``flow``: ``callflows.action`` defaults on every node (``data: {}``)
    and ``callflows.<module>`` defaults in every node's ``data``. Unknown modules are left alone.
    """
    schemas, _ = _load(kazoo_schemas_dir())
    filled = kazoo_filled("callflows.action", flow)
    stack: list[object] = [filled]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        module, data = node.get("module"), node.get("data")
        if isinstance(module, str) and f"callflows.{module}" in schemas and isinstance(data, dict):
            node["data"] = kazoo_filled(f"callflows.{module}", data)
        children = node.get("children")
        if isinstance(children, dict):
            stack.extend(children.values())
    return filled


def flow_errors(flow: object) -> list[str]:
    """Every problem Kazoo would find in ``flow``: the tree against ``callflows.action``, and each
    node's ``data`` against ``callflows.<module>`` (a module without a schema is an error, as in
    Kazoo). Defaults are filled first, as Kazoo does (see :func:`kazoo_filled_flow`).
    """
    flow = kazoo_filled_flow(flow)
    errors = kazoo_errors("callflows.action", flow)
    schemas, _ = _load(kazoo_schemas_dir())
    stack: list[tuple[str, object]] = [("", flow)]
    while stack:
        at, node = stack.pop()
        if not isinstance(node, dict):
            continue  # already reported by callflows.action
        module = node.get("module")
        if isinstance(module, str):
            name = f"callflows.{module}"
            if name not in schemas:
                errors.append(f"{at}/module: unable to find callflow schema for module {module!r}")
            else:
                data = node.get("data", {})
                errors.extend(kazoo_errors(name, data, at=f"{at}/data"))
        children = node.get("children")
        if isinstance(children, dict):
            for key, child in children.items():
                stack.append((f"{at}/children/{_pointer([key])[1:]}", child))
    return errors


def assert_flow_conforms(flow: dict[str, Any]) -> None:
    """Fail with every problem listed if Kazoo's schemas would reject ``flow`` (root and all children)."""
    errors = flow_errors(flow)
    if errors:
        listing = "\n  ".join(errors)
        raise AssertionError(
            f"flow does not conform to Kazoo's callflow schemas ({len(errors)}):\n  {listing}"
        )


def assert_conforms(name: str, instance: object) -> None:
    """Fail with every problem listed if Kazoo's schema ``name`` rejects ``instance``."""
    errors = kazoo_errors(name, instance)
    if errors:
        listing = "\n  ".join(errors)
        raise AssertionError(f"message rejected by Kazoo's {name} ({len(errors)}):\n  {listing}")
