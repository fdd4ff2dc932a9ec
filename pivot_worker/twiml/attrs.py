"""Read TwiML attribute values the way Twilio does.

Twilio treats a bad attribute value as a warning (its 13xxx codes) and runs the verb with the
attribute's default; so do we, recording the warning with its location. Unknown attributes are
12200 warnings. Nothing here raises.
"""

from __future__ import annotations

from lxml import etree

from .state import State
from .vocabulary import ATTRIBUTES

SCHEMA_WARNING = "12200"
DTMF_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")
_NO_ATTRIBUTES: frozenset[str] = frozenset()

Values = dict[str, str]
"""An element's attributes, read with one call into lxml (each ``element.get`` is a call of its own)."""


def read(element: etree._Element, st: State) -> Values:
    """The element's attributes (one call into lxml), after a 12200 warning for each unknown one."""
    values: Values = dict(element.items())  # type: ignore[arg-type]  # lxml gives str, stubs say bytes too
    if values:
        known = ATTRIBUTES.get(element.tag, _NO_ATTRIBUTES)
        if not known.issuperset(values):
            for name in values:
                if name not in known:
                    st.warn(
                        element,
                        SCHEMA_WARNING,
                        f"unknown attribute {name!r} on <{element.tag}> is ignored "
                        "(names are case-sensitive)",
                    )
    return values


def integer(
    element: etree._Element,
    values: Values,
    st: State,
    name: str,
    default: int,
    code: str,
    *,
    minimum: int = 1,
    maximum: int | None = None,
) -> int:
    """A whole number in ``[minimum, maximum]``; out of range or malformed: warn, use ``default``."""
    raw = values.get(name)
    if raw is None:
        return default
    text = raw.strip()
    value: int | None = int(text) if text.isascii() and text.lstrip("+").isdigit() else None
    if value is None or value < minimum:
        st.warn(
            element, code, f"{name}={raw!r} must be a whole number of at least {minimum}; using {default}"
        )
        return default
    if maximum is not None and value > maximum:
        st.warn(element, code, f"{name}={raw!r} is above the maximum {maximum}; using {maximum}")
        return maximum
    return value


def boolean(element: etree._Element, values: Values, st: State, name: str, default: bool, code: str) -> bool:
    raw = values.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    st.warn(element, code, f"{name}={raw!r} must be true or false; using {str(default).lower()}")
    return default


def method(element: etree._Element, values: Values, st: State, code: str, name: str = "method") -> str:
    """``get`` or ``post`` (Twilio's default is POST), lower-cased for ``callflows.pivot``."""
    raw = values.get(name)
    if raw is None or not raw.strip():
        return "post"
    lowered = raw.strip().lower()
    if lowered in ("get", "post"):
        return lowered
    st.warn(element, code, f"{name}={raw!r} must be GET or POST; using POST")
    return "post"


def choice(
    element: etree._Element,
    values: Values,
    st: State,
    name: str,
    allowed: tuple[str, ...],
    default: str,
    code: str,
) -> str:
    raw = values.get(name)
    if raw is None:
        return default
    if raw in allowed:
        return raw
    shown = ", ".join(allowed)
    st.warn(element, code, f"{name}={raw!r} must be one of {shown}; using {default!r}")
    return default


def finish_key(element: etree._Element, values: Values, st: State, default: str, code: str) -> str:
    """One DTMF key or ``""`` (none)."""
    raw = values.get("finishOnKey")
    if raw is None:
        return default
    if raw == "" or raw in DTMF_KEYS:
        return raw
    st.warn(element, code, f"finishOnKey={raw!r} must be one of 0-9, * or # (or empty); using {default!r}")
    return default


def unsupported(
    element: etree._Element, values: Values, st: State, name: str, why: str, *, unless: tuple[str, ...] = ()
) -> None:
    """Warn that attribute ``name`` cannot be honoured on Kazoo, unless its value is harmless."""
    raw = values.get(name)
    if raw is not None and raw.strip() not in unless:
        st.warn(element, "kazoo-unsupported", f"{name}={raw!r} is ignored: {why}")


def own_text(element: etree._Element) -> str:
    """The element's direct text, including text between its children, stripped."""
    return ((element.text or "") + "".join(child.tail or "" for child in element)).strip()
