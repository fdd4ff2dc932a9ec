"""Routing keys of debug events: ``debug.<account id>`` on the debug exchange.

The account part is encoded as Kazoo encodes one variable part of a routing key
(:func:`pivot_worker.names.encode_key_part`), so a value with dots cannot add a level to the key
and the collector's ``debug.*`` binding always matches exactly one segment.
"""

from __future__ import annotations

from ..names import encode_key_part

ROUTING_PREFIX = "debug"
BINDING_KEY = f"{ROUTING_PREFIX}.*"
UNKNOWN_ACCOUNT = "unknown"


def debug_routing_key(account_id: str | None) -> str:
    """``debug.<encoded account id>``; ``debug.unknown`` when the request carried no usable account."""
    part = encode_key_part(account_id) if account_id else UNKNOWN_ACCOUNT
    if part in ("*", "#"):
        part = UNKNOWN_ACCOUNT
    return f"{ROUTING_PREFIX}.{part}"
