"""The debug collector: stores debug events and serves Kazoo's ``/pivot/debug`` API.

``Collector`` runs consumer, API and retention under one start/stop (``pivot-worker run`` embeds
it); ``pivot-collector`` is the standalone command.
"""

from __future__ import annotations

from .service import Collector

__all__ = ["Collector"]
