"""An in-process ledger: exact semantics, no durability. For tests and single-process experiments."""

from __future__ import annotations

import dataclasses

from .base import Answer, Entry


@dataclasses.dataclass(slots=True)
class _Row:
    owner: str | None = None
    lease_until: float = 0.0
    done: bool = False
    deliveries: int = 0
    answer: Answer | None = None
    expires_at: float = 0.0

    def entry(self) -> Entry:
        return Entry(self.owner, self.lease_until, self.done, self.deliveries, self.answer)


class MemoryLedger:
    def __init__(self) -> None:
        self.rows: dict[bytes, _Row] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def count_delivery(self, key: bytes, expires_at: float) -> int:
        row = self.rows.setdefault(key, _Row(expires_at=expires_at))
        row.deliveries += 1
        return row.deliveries

    async def claim(
        self, key: bytes, owner: str, answer: Answer, lease_until: float, expires_at: float
    ) -> Entry | None:
        row = self.rows.setdefault(key, _Row())
        if row.owner is not None:
            return row.entry()
        row.owner, row.lease_until, row.answer = owner, lease_until, answer
        row.expires_at = max(row.expires_at, expires_at)
        return None

    async def lookup(self, key: bytes) -> Entry | None:
        row = self.rows.get(key)
        return row.entry() if row is not None else None

    async def take_over(self, key: bytes, owner: str, expected_owner: str | None, lease_until: float) -> bool:
        row = self.rows.get(key)
        if row is None or row.done or row.owner != expected_owner:
            return False
        row.owner, row.lease_until = owner, lease_until
        return True

    async def finish(self, key: bytes) -> None:
        row = self.rows.get(key)
        if row is not None:
            row.done = True

    async def prune(self, now: float) -> int:
        old = [key for key, row in self.rows.items() if row.expires_at < now]
        for key in old:
            del self.rows[key]
        return len(old)
