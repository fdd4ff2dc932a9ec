"""The bus message contracts (``amqp_schemas/*.json``), compiled once and checked on every message.

Every incoming pivot_req goes through :func:`validate_pivot_req` before anything else happens, so
the schema is compiled with fastjsonschema (a few microseconds per message; jsonschema would cost
about 30 times more). fastjsonschema stops at the first broken rule, which is all a rejected
request needs: the message names the field as a JSON pointer and the rule it broke, e.g.
``pivot_req /Call/Call-ID: is required``.

:func:`validate_outgoing` checks what we are about to publish (tests call it on every message the
worker emits); a failure there is our bug, never the sender's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import fastjsonschema
import orjson

from .errors import PivotError, Reason, RequestRejected
from .schemas import load_schema, schema_names
from .schemas.wording import describe

__all__ = [
    "INCOMING",
    "OUTGOING",
    "ContractBreach",
    "check",
    "compiled",
    "contract_schema",
    "validate_outgoing",
    "validate_pivot_req",
]

INCOMING = "pivot_req"
OUTGOING = ("pivot_processing", "pivot_failed", "channel_pivot")
_APPLICATION_DATA = "Application-Data"


@functools.cache
def contract_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``amqp_schemas/<name>.json``; ValueError naming the known ones if absent."""
    known = schema_names("amqp")
    if name not in known:
        raise ValueError(f"no message contract named {name!r}; known: {', '.join(known)}")
    return load_schema(f"amqp/{name}.json")


@functools.cache
def compiled(name: str) -> Callable[[object], object]:
    """The fastjsonschema validator for contract ``name``, compiled on first use and kept."""
    validate: Callable[[object], object] = fastjsonschema.compile(contract_schema(name))
    return validate


class ContractBreach:
    """Where and how a message broke its contract: a JSON pointer, a rule code and a message."""

    __slots__ = ("code", "message", "pointer", "rule")

    def __init__(self, pointer: str, rule: str, code: str, message: str) -> None:
        self.pointer = pointer
        self.rule = rule
        self.code = code
        self.message = message

    def describe(self, schema_name: str) -> str:
        return f"{schema_name} {self.pointer or '(root)'}: {self.message}"

    def as_detail(self, schema_name: str) -> dict[str, object]:
        return {"schema": schema_name, "pointer": self.pointer, "rule": self.rule, "code": self.code}


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _breach(exc: fastjsonschema.JsonSchemaValueException) -> ContractBreach:
    # exc.path is ["data", key, key, ...]; keys containing "." or "[" would be split, but no key we
    # constrain has one.
    parts = [str(p) for p in (exc.path or [])[1:]]
    pointer = "".join("/" + _escape(p) for p in parts)
    rule = str(exc.rule or "")
    if rule == "required" and isinstance(exc.value, dict) and isinstance(exc.rule_definition, list):
        missing = [str(k) for k in exc.rule_definition if k not in exc.value]
        if missing:
            first, rest = missing[0], missing[1:]
            message = "is required"
            if rest:
                message += " (also missing: " + ", ".join(f"{pointer}/{_escape(k)}" for k in rest) + ")"
            return ContractBreach(f"{pointer}/{_escape(first)}", rule, "required", message)
    code, message = describe(rule, exc.rule_definition, exc.value)
    return ContractBreach(pointer, rule, code, message)


def check(name: str, msg: object) -> ContractBreach | None:
    """Return the first breach of contract ``name`` by ``msg``, or None when it conforms."""
    try:
        compiled(name)(msg)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _breach(exc)
    return None


def validate_pivot_req(msg: object) -> None:
    """Accept a decoded pivot_req or raise :class:`RequestRejected` naming the field and the rule.

    ``detail`` carries ``schema``, ``pointer``, ``rule`` and ``code`` for logs and debug events.
    Unknown keys are accepted (Kazoo may add some); nothing in ``msg`` is modified.
    """
    breach = check(INCOMING, msg)
    if breach is not None:
        raise RequestRejected(breach.describe(INCOMING), detail=breach.as_detail(INCOMING))


def validate_outgoing(schema_name: str, msg: object) -> None:
    """Raise :class:`PivotError` (``internal_error``) if a message we publish breaks its contract.

    For ``channel_pivot`` the ``Application-Data`` string must also decode to a JSON object, a
    rule the schema itself cannot express.
    """
    breach = check(schema_name, msg)
    if breach is None and schema_name == "channel_pivot" and isinstance(msg, dict):
        breach = _application_data_breach(msg.get(_APPLICATION_DATA))
    if breach is not None:
        raise PivotError(
            f"outgoing {breach.describe(schema_name)}",
            reason=Reason.INTERNAL_ERROR,
            detail=breach.as_detail(schema_name),
        )


def _application_data_breach(data: object) -> ContractBreach | None:
    pointer = "/" + _APPLICATION_DATA
    try:
        flow = orjson.loads(data) if isinstance(data, str) else None
    except orjson.JSONDecodeError as exc:
        return ContractBreach(pointer, "json", "json", f"must be JSON text of an object ({exc})")
    if not isinstance(flow, dict):
        return ContractBreach(pointer, "json", "json", "must be JSON text of an object")
    return None
