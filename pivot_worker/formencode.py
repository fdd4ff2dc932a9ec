"""Form encoding of request params and merging them into a URL's query.

Nested values use the bracket form Kazoo and PHP-style servers expect (``Digits[default]=42``,
``User-ID[]=a``), but unlike Kazoo every key segment and value is escaped, nothing is emitted for
``None`` or empty containers (no ``&&``), and an existing query is merged instead of appended to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, unquote_plus, urlsplit, urlunsplit

_SAFE = re.compile(r"[A-Za-z0-9._~-]*")
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 4096


def _escape(text: str) -> str:
    """Keep ``A-Z a-z 0-9 . - ~ _``; space -> ``+``; every other UTF-8 byte -> ``%XX`` (upper case)."""
    if _SAFE.fullmatch(text):
        return text  # the common case (ids, numbers, realms) costs one regex match
    return quote_plus(text, safe="")


def _escape_key(key: str) -> str:
    """Like :func:`_escape`, memoised: param and collection names repeat on every request."""
    escaped = _KEY_CACHE.get(key)
    if escaped is None:
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        escaped = _KEY_CACHE[key] = _escape(key)
    return escaped


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value if isinstance(value, str) else str(value)


def _append(out: list[str], key: str, value: Any) -> None:
    if value is None:
        return
    if type(value) is str:
        out.append(f"{key}={_escape(value)}")
    elif isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _append(out, f"{key}[{_escape_key(str(sub_key))}]", sub_value)
    elif isinstance(value, list | tuple):
        for item in value:
            _append(out, f"{key}[]", item)
    else:
        out.append(f"{key}={_escape(_scalar(value))}")


def encode_form(params: Mapping[str, Any]) -> str:
    """``application/x-www-form-urlencoded`` body for ``params`` (nested as ``a[b]=v``, ``a[]=v``)."""
    out: list[str] = []
    for key, value in params.items():
        _append(out, _escape_key(key), value)
    return "&".join(out)


def _param_name(piece: str) -> str:
    name = unquote_plus(piece.split("=", 1)[0])
    return name.split("[", 1)[0]


def merge_query(url: str, params: Mapping[str, Any]) -> str:
    """Add ``params`` to ``url``'s query for a GET.

    The developer's own query items are kept byte for byte, in order, except items whose name we
    are about to send (our call data is authoritative, and duplicates confuse servers); empty items
    are dropped. The fragment is removed: it is never sent over HTTP.
    """
    parts = urlsplit(url)
    ours = encode_form(params)
    kept: list[str] = []
    if parts.query:
        names = set(params)
        kept = [p for p in parts.query.split("&") if p and _param_name(p) not in names]
    query = "&".join([*kept, ours] if ours else kept)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
