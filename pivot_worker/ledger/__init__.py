"""The reply ledger: who answers a request when the broker connection failed during its commit.

A worker killed before committing published nothing (replies and the ack commit together), so its
redelivered request can simply be served again. What the transaction cannot settle is a commit whose
connection died on the way: the broker may or may not have applied it, and may be redelivering the
request to another worker. So that worker and this one both *claim* the request, atomically, in a
small shared record keyed by a hash of the message body (identical on every redelivery), storing
the answer and a short lease, before publishing anything for it (a first delivery whose commit goes
through never needs to):

1. after reconnecting, the worker publishes the final reply again (never ``processing``: ``cf_exe``
   runs a ``CHANNEL_PIVOT`` whether or not ``cf_pivot`` saw ``processing``) if it is still the owner,
   and marks the request *done*;
2. a redelivered request is looked up first: *done* means ack and publish nothing; *claimed* means
   wait for the owner's lease, take the claim over atomically and commit the final reply with the ack.

The ledger also counts redeliveries, so that a message that kills its worker is dead-lettered after
``PIVOT_MAX_DELIVERIES``. Backends: SQLite (one host: every worker process on it shares the
directory; the default), Redis (several hosts), memory (one process; tests) and ``off``.
"""

from __future__ import annotations

from .base import Answer, Entry, Ledger, LedgerError, NullLedger, request_key
from .memory import MemoryLedger

__all__ = [
    "Answer",
    "Entry",
    "Ledger",
    "LedgerError",
    "MemoryLedger",
    "NullLedger",
    "open_ledger",
    "request_key",
]


def open_ledger(url: str) -> Ledger:
    """The ledger ``PIVOT_LEDGER_URL`` names: ``sqlite:///dir``, ``redis://...``, ``memory://``, ``off``."""
    if url == "off":
        return NullLedger()
    if url == "memory://":
        return MemoryLedger()
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteLedger

        return SqliteLedger(url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisLedger

        return RedisLedger(url)
    raise LedgerError(
        f"PIVOT_LEDGER_URL={url!r} is not supported: "
        "use sqlite:///directory, redis://host:port/db, memory:// or off"
    )
