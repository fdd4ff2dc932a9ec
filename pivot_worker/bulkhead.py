"""Per-host bulkhead: at most ``limit`` requests in flight to one host from this process.

A developer's server that accepts connections and never answers holds every request sent to it
until its deadline. Without a bound per host, one such tenant fills all of a process's request
slots (``PIVOT_PREFETCH``) and every other tenant's calls wait behind it. Beyond the limit a
request is refused at once (``host_busy``); the caller's fallback runs instead of dead air.

Only hosts with requests in flight have an entry, so the map is as small as the in-flight set.
"""

from __future__ import annotations

from .errors import FetchError, Reason


class Bulkhead:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._in_flight: dict[str, int] = {}

    def enter(self, host: str) -> None:
        """Take a slot for ``host`` or raise ``FetchError`` (``host_busy``)."""
        now = self._in_flight.get(host, 0)
        if now >= self.limit:
            raise FetchError(
                f"{host} already has {now} requests in flight from this worker, its limit "
                f"(PIVOT_HOST_CONCURRENCY={self.limit}); not sent",
                reason=Reason.HOST_BUSY,
                detail={"host": host, "limit": self.limit},
            )
        self._in_flight[host] = now + 1

    def leave(self, host: str) -> None:
        left = self._in_flight[host] - 1
        if left:
            self._in_flight[host] = left
        else:
            del self._in_flight[host]

    def in_flight(self, host: str) -> int:
        return self._in_flight.get(host, 0)

    def __len__(self) -> int:
        return len(self._in_flight)
