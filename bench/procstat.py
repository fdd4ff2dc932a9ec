"""Exact CPU time of processes from ``/proc``, for "CPU per request" figures.

``/proc/<pid>/task/<tid>/schedstat`` holds each thread's time on CPU in nanoseconds; summing the
threads gives the process's CPU time with no 10 ms tick sampling (limits.md found utime/stime
unreliable at low load). Threads that exit between two readings take their time with them; the
processes measured here keep theirs for life.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def cpu_ns(pid: int) -> int | None:
    """Total on-CPU nanoseconds of every thread of ``pid``; ``None`` if the process is gone."""
    total = 0
    try:
        tids = os.listdir(PROC / str(pid) / "task")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for tid in tids:
        try:
            text = (PROC / str(pid) / "task" / tid / "schedstat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread exited between listing and reading
        total += int(text.split()[0])
    return total


def find_broker_pid() -> int | None:
    """The RabbitMQ node's ``beam.smp`` process, or ``None`` when it cannot be found."""
    candidates: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "beam.smp":
                continue
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"rabbit" in cmdline:
            candidates.append(int(entry.name))
    return candidates[0] if len(candidates) == 1 else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """CPU nanoseconds per named process at one instant (absent when unreadable)."""

    ns: dict[str, int]

    @classmethod
    def take(cls, pids: dict[str, int]) -> Snapshot:
        out: dict[str, int] = {}
        for name, pid in pids.items():
            value = cpu_ns(pid)
            if value is not None:
                out[name] = value
        return cls(out)

    def since(self, earlier: Snapshot) -> dict[str, float]:
        """CPU seconds used by each process between ``earlier`` and this snapshot."""
        return {name: (ns - earlier.ns[name]) / 1e9 for name, ns in self.ns.items() if name in earlier.ns}
