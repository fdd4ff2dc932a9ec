"""The nested ``pivot`` nodes of a developer's Kazoo callflow: their ``voice_url`` is checked at once.

A flow that pivots again sends the next ``pivot_req`` to the nested node's ``data.voice_url``
(``cf_pivot.erl`` reads it from the node's data). A URL the worker would refuse to fetch (not
http(s), no host, a blocked IP literal such as 169.254.169.254) is refused when the flow arrives,
as TwiML refuses its callback URLs while translating, instead of one request later. The check is
the worker's static one: no DNS lookup, no connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Finding, PivotError, TranslationError
from .collect import escape

_Link = tuple[Any, str] | None  # (parent link, child key), the same shape validate.py uses


def check_pivot_urls(flow: dict[str, Any], check: Callable[[str], object]) -> None:
    """Run ``check`` on the ``data.voice_url`` of every ``pivot`` node of a validated ``flow``.

    Raises:
        TranslationError: with the reason of the first refused URL (``blocked_address`` or
            ``invalid_url``) and one finding per refused URL, located by its JSON pointer
            (``/children/_/data/voice_url``).
    """
    findings: list[Finding] = []
    first: PivotError | None = None
    stack: list[tuple[object, _Link]] = [(flow, None)]
    while stack:
        node, link = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("module") == "pivot":
            data = node.get("data")
            url = data.get("voice_url") if isinstance(data, dict) else None
            if isinstance(url, str):
                try:
                    check(url)
                except PivotError as exc:
                    first = first or exc
                    pointer = f"{_pointer(link)}/data/voice_url"
                    findings.append(Finding(exc.reason.value, str(exc), pointer))
        children = node.get("children")
        if isinstance(children, dict):
            for key, child in reversed(children.items()):
                stack.append((child, (link, key)))
    if first is not None:
        count = len(findings)
        raise TranslationError(
            f"Kazoo callflow rejected: {count} nested pivot voice_url{'s' if count != 1 else ''} refused",
            reason=first.reason,
            findings=findings,
        )


def _pointer(link: _Link) -> str:
    keys: list[str] = []
    while link is not None:
        link, key = link
        keys.append(key)
    return "".join(f"/children/{escape(key)}" for key in reversed(keys))
