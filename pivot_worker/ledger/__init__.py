"""The reply ledger: what makes "exactly one answer per pivot_req" hold when workers die.

Why it is needed: the broker redelivers a request whose ack it never read. A worker killed after
its replies were confirmed but before its ack reached the broker would otherwise see the request
served twice, and Kazoo's ``cf_exe`` runs every ``CHANNEL_PIVOT`` it receives (the caller's IVR
restarts). The ledger is a small shared record per request, keyed by a hash of the message body
(identical on every redelivery):

1. after the answer is decided and before the first reply is published, the worker *claims* the
   request, storing the answer and a short lease;
2. after the final reply (``CHANNEL_PIVOT`` or ``pivot.failed``) is confirmed, it marks it *done*;
3. a redelivered request is looked up first: *done* means ack and publish nothing; *claimed* means
   another worker (or this one, after a reconnect) owns it: wait for its lease, then take over and
   publish the final reply from the stored answer, never ``processing`` again (``cf_exe`` handles
   ``CHANNEL_PIVOT`` whether or not ``cf_pivot`` saw ``processing``, so skipping it is harmless,
   while a second one is not).

Backends: SQLite (one host: every worker process on it shares the file; the default), Redis
(several hosts), memory (one process; tests) and ``off`` (at-least-once, for measuring the cost).
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
