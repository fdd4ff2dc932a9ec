"""Logging set-up for the console scripts (library modules only create loggers)."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

LIFECYCLE = "pivot_worker.lifecycle"
REQUEST_FIELDS = "request"
"""``extra=`` key under which the per-request line passes its fields (a dict) to the JSON format."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601 UTC), ``level``, ``logger``, ``message``, the
    per-request fields as keys of their own, and ``exc_info`` (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, REQUEST_FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(str(key), value)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def formatter(fmt: str) -> logging.Formatter:
    """The formatter ``PIVOT_LOG_FORMAT`` names: ``text`` (default) or ``json``."""
    if fmt == "json":
        return JsonFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Start-up and shutdown summaries stay visible at any level: they are rare and say what runs.
    logging.getLogger(LIFECYCLE).setLevel(logging.INFO)
    # aio-pika/aiormq log every failed reconnect attempt (every 0.25 s) with a traceback; the
    # broker link reports outages itself (lost, still down every 5 s, reconnected in N ms).
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.CRITICAL, root.level))
