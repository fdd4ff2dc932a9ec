"""The debug collector: stores debug events and serves Kazoo's ``/pivot/debug`` API.

``serve_collector`` runs it until an event is set (embedding in ``pivot-worker run``);
``Collector`` gives start/stop control; ``pivot-collector`` is the standalone command.
"""

from __future__ import annotations

from .service import Collector, serve_collector

__all__ = ["Collector", "serve_collector"]
