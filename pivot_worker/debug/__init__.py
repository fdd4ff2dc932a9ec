"""Debug events: what the worker tells the collector about each pivot request.

``DebugPublisher`` is the worker's debug sink; ``EventBuilder`` and ``Redactor`` turn a trace into
redacted events (``amqp_schemas/debug_event.json``).
"""

from __future__ import annotations

from .events import EVENT_VERSION, EventBuilder, should_keep
from .publisher import DebugPublisher
from .redact import Redactor
from .routing import BINDING_KEY, debug_routing_key

__all__ = [
    "BINDING_KEY",
    "EVENT_VERSION",
    "DebugPublisher",
    "EventBuilder",
    "Redactor",
    "debug_routing_key",
    "should_keep",
]
