"""Logging set-up for the console scripts (library modules only create loggers)."""

from __future__ import annotations

import logging
import sys

LIFECYCLE = "pivot_worker.lifecycle"


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Start-up and shutdown summaries stay visible at any level: they are rare and say what runs.
    logging.getLogger(LIFECYCLE).setLevel(logging.INFO)
    # aio-pika/aiormq log every failed reconnect attempt (every 0.25 s) with a traceback; the
    # broker link reports outages itself (lost, still down every 5 s, reconnected in N ms).
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.CRITICAL, root.level))
