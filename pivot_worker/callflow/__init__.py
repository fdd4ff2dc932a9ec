"""Kazoo callflow JSON from a developer's server: validated as Kazoo would, with defaults filled in.

``validate_flow`` is the whole public surface; ``SUPPORTED_MODULES`` says which callflow modules a
developer may use. Each module's rules live in ``pivot_worker/schemas/callflows/<module>.json``.
"""

from __future__ import annotations

from .modules import SUPPORTED_MODULES
from .validate import prepare, validate_flow

__all__ = ["SUPPORTED_MODULES", "prepare", "validate_flow"]
