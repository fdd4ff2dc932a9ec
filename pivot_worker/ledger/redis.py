"""The multi-host ledger on Redis: one hash per request, each operation one atomic Lua script.

Costs one round trip for the claim and one for 'done' per request. Keys expire on their own
(``expires_at``), so nothing needs pruning.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .base import Answer, Entry, LedgerError

PREFIX = b"pivot:ledger:"

# KEYS[1] = request key; ARGV: owner, lease_until, answer, expires_at (Unix seconds)
_CLAIM = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then
  return redis.call('HMGET', KEYS[1], 'owner', 'lease', 'done', 'deliveries', 'answer')
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease', ARGV[2], 'answer', ARGV[3])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[4])))
return false
"""

# ARGV: new owner, expected owner ('' = nobody), lease_until
_TAKE_OVER = """
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if owner ~= ARGV[2] or redis.call('HGET', KEYS[1], 'done') then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease', ARGV[3])
return 1
"""

# ARGV: expires_at
_COUNT = """
local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[1])))
end
return n
"""


def _entry(values: list[Any]) -> Entry:
    owner, lease, done, deliveries, answer = values
    return Entry(
        owner.decode() if owner else None,
        float(lease or 0),
        bool(done),
        int(deliveries or 0),
        Answer.load(answer) if answer else None,
    )


class RedisLedger:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client: aioredis.Redis | None = None
        self._claim: Any = None
        self._take_over: Any = None
        self._count: Any = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise LedgerError("the Redis ledger is not open")
        return self._client

    async def open(self) -> None:
        client = aioredis.from_url(self.url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise LedgerError(f"cannot reach the Redis ledger: {exc}") from exc
        self._client = client
        self._claim = client.register_script(_CLAIM)
        self._take_over = client.register_script(_TAKE_OVER)
        self._count = client.register_script(_COUNT)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def count_delivery(self, key: bytes, expires_at: float) -> int:
        return int(await self._count(keys=[PREFIX + key], args=[expires_at]))

    async def claim(
        self, key: bytes, owner: str, answer: Answer, lease_until: float, expires_at: float
    ) -> Entry | None:
        existing = await self._claim(
            keys=[PREFIX + key], args=[owner, lease_until, answer.dump(), expires_at]
        )
        return _entry(existing) if existing else None

    async def lookup(self, key: bytes) -> Entry | None:
        values = await self.client.hmget(PREFIX + key, ["owner", "lease", "done", "deliveries", "answer"])
        return None if all(v is None for v in values) else _entry(values)

    async def take_over(self, key: bytes, owner: str, expected_owner: str | None, lease_until: float) -> bool:
        changed = await self._take_over(keys=[PREFIX + key], args=[owner, expected_owner or "", lease_until])
        return bool(changed)

    async def finish(self, key: bytes) -> None:
        await self.client.hset(PREFIX + key, "done", 1)

    async def prune(self, now: float | None = None) -> int:
        del now  # keys expire by themselves
        return 0
