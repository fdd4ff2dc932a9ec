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
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
from collections.abc import Iterable
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


def flow_errors(flow: object) -> list[str]:
    """Every problem Kazoo would find in ``flow``: the tree against ``callflows.action``, and each
    node's ``data`` against ``callflows.<module>`` (a module without a schema is an error, as in Kazoo).
    """
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
