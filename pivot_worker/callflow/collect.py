"""List every problem in one node's ``data``: the slow path, run only after the fast check failed.

fastjsonschema stops at the first broken rule; a developer fixing a flow wants them all. Failures
are rare, so here we re-check the same schema with jsonschema's ``iter_errors``. If jsonschema is
not installed, or (it should not happen) finds nothing, the fast path's single error is reported,
so a failed check never yields an empty list.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import fastjsonschema

from ..errors import Finding
from ..schemas.wording import describe
from .modules import data_schema

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


def escape(part: object) -> str:
    """One JSON-pointer reference token."""
    return str(part).replace("~", "~0").replace("/", "~1")


@functools.cache
def slow_validator(module: str) -> Validator | None:
    """jsonschema's validator for ``module``'s data (built once), or None without jsonschema."""
    try:
        from jsonschema import Draft7Validator
    except ImportError:  # pragma: no cover - jsonschema is installed wherever tests run
        return None
    validator: Validator = Draft7Validator(data_schema(module))
    return validator


def collect(
    module: str, data: dict[str, Any], at: str, first: fastjsonschema.JsonSchemaValueException
) -> list[Finding]:
    """Every finding for ``data`` of ``module``, pointers prefixed with ``at`` (the data's pointer)."""
    found: dict[tuple[str, str], Finding] = {}
    slow = slow_validator(module)
    if slow is not None:
        for err in slow.iter_errors(data):
            pointer = at + "".join("/" + escape(p) for p in err.absolute_path)
            rule = str(err.validator)
            if rule == "required" and isinstance(err.instance, dict):
                names = err.validator_value if isinstance(err.validator_value, list) else []
                for key in names:
                    if key not in err.instance:
                        target = f"{pointer}/{escape(key)}"
                        found.setdefault((target, "required"), Finding("required", "is required", target))
                continue
            code, message = describe(rule, err.validator_value, err.instance)
            found.setdefault((pointer, code), Finding(code, message, pointer))
    if not found:
        return [_from_fast(first, at)]
    return sorted(found.values(), key=lambda f: (f.pointer, f.code))


def _from_fast(exc: fastjsonschema.JsonSchemaValueException, at: str) -> Finding:
    pointer = at + "".join("/" + escape(p) for p in (exc.path or [])[1:])
    rule = str(exc.rule or "")
    if rule == "required" and isinstance(exc.value, dict) and isinstance(exc.rule_definition, list):
        missing = [k for k in exc.rule_definition if k not in exc.value]
        if missing:
            return Finding("required", "is required", f"{pointer}/{escape(missing[0])}")
    code, message = describe(rule, exc.rule_definition, exc.value)
    return Finding(code, message, pointer)
