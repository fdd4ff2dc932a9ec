"""The ledger's contract, shared by every backend."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import orjson

logger = logging.getLogger("pivot_worker.ledger")


class LedgerError(RuntimeError):
    """The ledger cannot be opened or used (bad URL, unreachable store)."""


def request_key(body: bytes) -> bytes:
    """The ledger key of a request: a 16-byte BLAKE2b of its body (the same on every redelivery)."""
    return hashlib.blake2b(body, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Answer:
    """What was decided for one request: enough to publish its final reply again from another worker.

    ``reason`` is ``None`` for a flow (``processing`` then ``CHANNEL_PIVOT``), else the failure code
    of ``pivot.failed``. ``stale_at`` is the Unix time after which nothing may be published.
    """

    call_id: str
    controller_queue: str
    stale_at: float
    reason: str | None = None
    flow: bytes | None = None

    def dump(self) -> bytes:
        return (
            orjson.dumps(
                {"c": self.call_id, "q": self.controller_queue, "s": self.stale_at, "r": self.reason},
            )
            + b"\n"
            + (self.flow or b"")
        )

    @classmethod
    def load(cls, raw: bytes) -> Answer:
        head, _, flow = raw.partition(b"\n")
        fields = orjson.loads(head)
        return cls(fields["c"], fields["q"], fields["s"], fields["r"], flow or None)


@dataclass(frozen=True, slots=True)
class Entry:
    """The ledger's view of one request."""

    owner: str | None  # None: only redeliveries were counted, nobody claimed it yet
    lease_until: float  # Unix time; the owner is presumed alive before it
    done: bool
    deliveries: int
    answer: Answer | None


class Ledger(Protocol):
    """Every method is atomic in the backing store, so workers on several hosts may race."""

    async def open(self) -> None:
        """Connect to, or create, the store."""

    async def close(self) -> None:
        """Release the store."""

    async def count_delivery(self, key: bytes, expires_at: float) -> int:
        """Count one redelivery of ``key``; returns how many were counted so far."""

    async def claim(
        self, key: bytes, owner: str, answer: Answer, lease_until: float, expires_at: float
    ) -> Entry | None:
        """Claim an unclaimed request (``None``), or return the entry someone already claimed."""

    async def lookup(self, key: bytes) -> Entry | None:
        """The entry for ``key``, or ``None`` if the ledger knows nothing of it."""

    async def take_over(self, key: bytes, owner: str, expected_owner: str | None, lease_until: float) -> bool:
        """Become the owner if the owner is still ``expected_owner`` and the request is not done."""

    async def finish(self, key: bytes) -> None:
        """Mark the request done: its final reply was confirmed."""

    async def prune(self, now: float) -> int:
        """Forget entries that expired; returns how many."""


class NullLedger:
    """``PIVOT_LEDGER_URL=off``: remembers nothing (at-least-once replies); to measure the ledger's cost."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def count_delivery(self, key: bytes, expires_at: float) -> int:
        return 0

    async def claim(
        self, key: bytes, owner: str, answer: Answer, lease_until: float, expires_at: float
    ) -> Entry | None:
        return None

    async def lookup(self, key: bytes) -> Entry | None:
        return None

    async def take_over(self, key: bytes, owner: str, expected_owner: str | None, lease_until: float) -> bool:
        return True

    async def finish(self, key: bytes) -> None:
        return None

    async def prune(self, now: float) -> int:
        return 0


class ResilientLedger:
    """Wraps a ledger so that a failing store degrades to at-least-once instead of failing calls.

    A call must be answered even when Redis or the ledger file is unavailable: every error is
    logged (at most once per :data:`WARN_EVERY_S`) and answered as if the ledger knew nothing.
    """

    WARN_EVERY_S = 10.0

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self._warned_at = float("-inf")
        self.errors = 0

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at >= self.WARN_EVERY_S:
            self._warned_at = now
            logger.warning(
                "ledger %s failed (%s: %s); answering without it (at-least-once) until it recovers; "
                "%d ledger errors so far",
                what,
                type(exc).__name__,
                exc,
                self.errors,
            )

    async def open(self) -> None:
        await self.inner.open()  # a ledger that cannot open at start-up is a configuration error

    async def close(self) -> None:
        try:
            await self.inner.close()
        except Exception as exc:
            self._failed("close", exc)

    async def count_delivery(self, key: bytes, expires_at: float) -> int:
        try:
            return await self.inner.count_delivery(key, expires_at)
        except Exception as exc:
            self._failed("count", exc)
            return 0

    async def claim(
        self, key: bytes, owner: str, answer: Answer, lease_until: float, expires_at: float
    ) -> Entry | None:
        try:
            return await self.inner.claim(key, owner, answer, lease_until, expires_at)
        except Exception as exc:
            self._failed("claim", exc)
            return None

    async def lookup(self, key: bytes) -> Entry | None:
        try:
            return await self.inner.lookup(key)
        except Exception as exc:
            self._failed("lookup", exc)
            return None

    async def take_over(self, key: bytes, owner: str, expected_owner: str | None, lease_until: float) -> bool:
        try:
            return await self.inner.take_over(key, owner, expected_owner, lease_until)
        except Exception as exc:
            self._failed("take-over", exc)
            return True

    async def finish(self, key: bytes) -> None:
        try:
            await self.inner.finish(key)
        except Exception as exc:
            self._failed("finish", exc)

    async def prune(self, now: float) -> int:
        try:
            return await self.inner.prune(now)
        except Exception as exc:
            self._failed("prune", exc)
            return 0
