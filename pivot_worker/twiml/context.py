"""The seam between the worker and the translator: what a translation needs and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import Finding
from .continuation import Continuation


@dataclass(frozen=True, slots=True)
class TwimlContext:
    """Everything about the current request that shapes the callflow a document becomes.

    ``check_url`` is the worker's static safety check; it is called for every follow-up and media
    URL the flow will name and raises ``PivotError`` (``blocked_address`` or ``invalid_url``).
    ``debug`` and ``request_timeout_ms`` are optional extras copied into nested ``pivot`` nodes so
    follow-up requests behave like the first one; ``account_id`` scopes ad-hoc conference rooms.
    ``after_dial_extension`` (``PIVOT_AFTER_DIAL_EXTENSION``) is the extension Kazoo transfers the
    caller to when an answered ``<Dial>`` ends (empty: an answered Dial ends the call).
    """

    document_url: str
    request_format: str
    request_body_format: str
    call_id: str
    continuation: Continuation | None
    continuation_key: bytes
    max_iterations: int
    recording_url: str
    check_url: Callable[[str], None]
    account_id: str = ""
    debug: bool = False
    request_timeout_ms: int | None = None
    after_dial_extension: str = ""

    @property
    def iteration(self) -> int:
        """This request's number within the call (1 for the callflow's own pivot request)."""
        return self.continuation.iteration if self.continuation is not None else 1


@dataclass(frozen=True, slots=True)
class Translation:
    """A validated Kazoo callflow (root node) and the non-fatal findings met on the way."""

    flow: dict[str, Any]
    warnings: list[Finding]
