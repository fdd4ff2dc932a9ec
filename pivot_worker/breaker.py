"""Per-host circuit breakers: stop sending calls to a developer's host that does not answer at all.

One job: decide, per host (``scheme://host:port``), whether a request may go out now.

* **closed** (normal): every request goes; each timeout or connect error counts, any HTTP answer
  (whatever its status) resets the count. ``failures`` consecutive counted failures open it.
* **open**: every request is refused at once (``circuit_open``), without touching the network,
  until ``open_s`` have passed.
* **half-open**: the first request after that is the single probe; the others are refused while
  it runs. The probe's answer closes the circuit, its timeout or connect error opens it again for
  ``open_s``; a probe that ends otherwise (cancelled, DNS or TLS failure) lets the next request probe.

Errors that are not about reaching the host (DNS, TLS, blocked address, a 4xx, a body the
pipeline cannot parse) neither count nor, unless the host answered, reset. Results of requests
sent before the last transition are ignored, so stragglers of an outage cannot re-open a circuit
a successful probe has just closed.

Only hosts with failures or a transition have an entry, at most ``max_hosts`` of them (the oldest
closed entry goes first), so memory stays bounded however many hosts the calls name. Time comes
from an injectable monotonic ``clock``; transitions are logged once each with the host only (never
a path or query) and counted for the metrics.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import FetchError, Reason

logger = logging.getLogger(__name__)

DEFAULT_MAX_HOSTS = 4096


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class _Host:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    changed_seq: int = -1  # admission number at the last transition; -1 = never transitioned
    reopen_at: float = 0.0  # clock time the open period ends
    probing: bool = False
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Ticket:
    """One admitted request; hand it back with exactly one of the ``Breakers`` result methods."""

    host: str
    seq: int
    probe: bool = False


class Breakers:
    """The circuit breakers of one process, one per host that has recently failed."""

    def __init__(
        self,
        failures: int,
        open_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_hosts: int = DEFAULT_MAX_HOSTS,
    ) -> None:
        """``failures`` = 0 turns the breakers off (every request is admitted)."""
        if failures < 0 or open_s <= 0 or max_hosts < 1:
            raise ValueError("failures must be >= 0, open_s > 0 and max_hosts >= 1")
        self.threshold = failures
        self.open_s = open_s
        self.max_hosts = max_hosts
        self._clock = clock
        self._wall = wall_clock
        self._hosts: dict[str, _Host] = {}
        self._seq = 0
        self.open_hosts = 0  # hosts whose circuit is open or half-open now
        self.transitions: Counter[str] = Counter()  # CircuitState value -> transitions into it

    def state(self, host: str) -> CircuitState:
        entry = self._hosts.get(host)
        return entry.state if entry is not None else CircuitState.CLOSED

    def __len__(self) -> int:
        return len(self._hosts)

    def admit(self, host: str) -> Ticket:
        """Let a request to ``host`` go, or raise ``FetchError`` (``circuit_open``) at once."""
        self._seq += 1
        entry = self._hosts.get(host)
        if entry is None or entry.state is CircuitState.CLOSED:
            return Ticket(host, self._seq)
        if entry.state is CircuitState.OPEN:
            left = entry.reopen_at - self._clock()
            if left > 0:
                raise self._refusal(host, entry, left)
            self._move(host, entry, CircuitState.HALF_OPEN)
            entry.probing = True
            self._seq += 1
            return Ticket(host, self._seq, probe=True)
        if not entry.probing:  # half-open, the previous probe ended without a verdict
            entry.probing = True
            return Ticket(host, self._seq, probe=True)
        raise FetchError(
            f"circuit half-open for {host}: a probe request is in flight and its answer decides "
            f"whether requests go again (last failure: {entry.last_error})",
            reason=Reason.CIRCUIT_OPEN,
            detail={"host": host},
        )

    def succeeded(self, ticket: Ticket) -> None:
        """The host answered (any HTTP status): resets the count, or closes after a probe."""
        entry = self._current(ticket)
        if entry is None:
            return
        if entry.state is CircuitState.HALF_OPEN:
            entry.probing = False
            entry.failures = 0
            self._move(ticket.host, entry, CircuitState.CLOSED)
        elif entry.state is CircuitState.CLOSED:
            if entry.changed_seq < 0:
                del self._hosts[ticket.host]  # nothing left to remember
            else:
                entry.failures = 0

    def failed(self, ticket: Ticket, reason: str) -> None:
        """A timeout or connect error: counts toward opening, or re-opens after a probe."""
        if self.threshold == 0:
            return
        entry = self._current(ticket)
        if entry is None:
            if ticket.host in self._hosts:
                return  # a result from before the last transition
            entry = self._add(ticket.host)
        entry.last_error = reason
        if entry.state is CircuitState.HALF_OPEN:
            entry.probing = False
            self._open(ticket.host, entry)
        elif entry.state is CircuitState.CLOSED:
            entry.failures += 1
            if entry.failures >= self.threshold:
                self._open(ticket.host, entry)

    def released(self, ticket: Ticket) -> None:
        """The request ended without saying anything about the host (cancelled, DNS, TLS, refused)."""
        if not ticket.probe:
            return
        entry = self._current(ticket)
        if entry is not None and entry.state is CircuitState.HALF_OPEN:
            entry.probing = False

    # -- internals ------------------------------------------------------------------------------

    def _current(self, ticket: Ticket) -> _Host | None:
        """The ticket's entry if its result still counts: issued after the last transition, and
        in half-open state only the probe's own."""
        entry = self._hosts.get(ticket.host)
        if entry is None or ticket.seq <= entry.changed_seq:
            return None
        if entry.state is CircuitState.OPEN:
            return None
        if entry.state is CircuitState.HALF_OPEN and not ticket.probe:
            return None
        return entry

    def _add(self, host: str) -> _Host:
        if len(self._hosts) >= self.max_hosts:
            victim = next((h for h, e in self._hosts.items() if e.state is CircuitState.CLOSED), None)
            if victim is None:
                victim = next(iter(self._hosts))
                self.open_hosts -= 1  # forgetting an open circuit: the host gets a fresh start
            del self._hosts[victim]
        entry = self._hosts[host] = _Host()
        return entry

    def _open(self, host: str, entry: _Host) -> None:
        was = entry.state
        entry.reopen_at = self._clock() + self.open_s
        self._move(host, entry, CircuitState.OPEN)
        if was is CircuitState.HALF_OPEN:
            logger.warning(
                "circuit open again for %s: the probe failed (%s); next probe in %.1f s",
                host,
                entry.last_error,
                self.open_s,
            )
        else:
            logger.warning(
                "circuit open for %s after %d consecutive failures (last: %s); next probe in %.1f s",
                host,
                entry.failures,
                entry.last_error,
                self.open_s,
            )

    def _move(self, host: str, entry: _Host, state: CircuitState) -> None:
        was_closed = entry.state is CircuitState.CLOSED
        entry.state = state
        entry.changed_seq = self._seq
        self.transitions[state.value] += 1
        if state is CircuitState.CLOSED:
            self.open_hosts -= 1
            logger.info("circuit closed for %s: the probe was answered", host)
        elif was_closed:
            self.open_hosts += 1
        if state is CircuitState.HALF_OPEN:
            logger.info("circuit half-open for %s: letting one probe request through", host)

    def _refusal(self, host: str, entry: _Host, left_s: float) -> FetchError:
        at = datetime.fromtimestamp(self._wall() + left_s, UTC).isoformat(timespec="milliseconds")
        return FetchError(
            f"circuit open for {host}: its last {self.threshold} requests timed out or could not "
            f"connect (last: {entry.last_error}); not contacted; next probe in {left_s:.1f} s, at {at}",
            reason=Reason.CIRCUIT_OPEN,
            detail={"host": host, "retry_in_s": round(left_s, 3)},
        )
