"""Plain-English wording for one broken JSON Schema rule, shared by bus contracts and callflow checks.

Both fastjsonschema (the fast path) and jsonschema (the error collector) report a violated keyword,
its value in the schema and the offending instance; this module turns that triple into a stable
short ``code`` (``required``, ``type``, ``max_length``...) and a message a developer can act on,
without echoing long input back.
"""

from __future__ import annotations

import re

_ARTICLE_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}
_MAX_SHOWN = 40


def json_type(value: object) -> str:
    """The JSON type name of a decoded JSON value (``bool`` is ``boolean``, not ``integer``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shown(value: object) -> str:
    """A short JSON-ish rendering of ``value`` for messages, cut at 40 characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = '"' + value.replace('"', '\\"') + '"'
    else:
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _actual(value: object) -> str:
    name = json_type(value)
    return _ARTICLE_TYPES.get(name, name)


def _types(rule_value: object) -> str:
    names = rule_value if isinstance(rule_value, list) else [rule_value]
    return " or ".join(_ARTICLE_TYPES.get(str(n), str(n)) for n in names)


def _code(rule: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rule).lower()


def describe(rule: str, rule_value: object, value: object) -> tuple[str, str]:
    """Return ``(code, message)`` for ``value`` breaking ``rule`` (a JSON Schema keyword).

    For ``required`` the caller points at the missing key itself, so the message is just
    "is required". Unknown keywords still get a readable message naming the keyword.
    """
    if rule == "required":
        return "required", "is required"
    if rule == "type":
        return "type", f"must be {_types(rule_value)}, not {_actual(value)}"
    if rule in ("enum", "const"):
        options = rule_value if isinstance(rule_value, list) else [rule_value]
        if len(options) == 1:
            return "enum", f"must be {shown(options[0])} (got {shown(value)})"
        listed = ", ".join(shown(o) for o in options)
        return "enum", f"must be one of {listed} (got {shown(value)})"
    if rule == "minLength" and rule_value == 1:
        return "min_length", "must not be empty"
    if rule in ("minLength", "maxLength"):
        size = len(value) if isinstance(value, str) else None
        bound = "at least" if rule == "minLength" else "at most"
        got = f" (it has {size})" if size is not None else ""
        return _code(rule), f"must be {bound} {rule_value} characters long{got}"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        symbol = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[rule]
        return _code(rule), f"must be {symbol} {rule_value} (got {shown(value)})"
    if rule == "pattern":
        return "pattern", f"must match the pattern {rule_value} (got {shown(value)})"
    if rule in ("minItems", "maxItems"):
        bound = "at least" if rule == "minItems" else "at most"
        return _code(rule), f"must have {bound} {rule_value} items"
    if rule == "uniqueItems":
        return "unique_items", "must not contain the same item twice"
    if rule in ("oneOf", "anyOf"):
        branches = rule_value if isinstance(rule_value, list) else []
        forms = [s.get("type") for s in branches if isinstance(s, dict)]
        if forms and all(isinstance(f, str) for f in forms):
            return _code(rule), f"must be {_types(forms)}, not {_actual(value)}"
        return _code(rule), "does not match any of the allowed forms"
    if rule == "additionalProperties":
        return "unknown_key", "is not an allowed key here"
    if rule == "format":
        return "format", f"must be a valid {rule_value}"
    return _code(rule), f"breaks the schema rule {rule!r}"
