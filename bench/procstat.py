"""Exact CPU time (and peak memory) of processes from ``/proc``, for "per request" figures.

``/proc/<pid>/task/<tid>/schedstat`` holds each thread's time on CPU in nanoseconds; summing the
threads gives the process's CPU time with no 10 ms tick sampling (utime/stime proved unreliable at
low load in the reference measurements, bench/README.md). Threads that exit between two readings
take their time with them; the processes measured here keep theirs for life.
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


def peak_rss_mib(pid: int) -> float | None:
    """The most resident memory ``pid`` has held since it started (``VmHWM``), in MiB."""
    try:
        text = (PROC / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # the kernel writes kB
    return None


def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` now (``VmRSS``), in MiB; ``None`` if the process is gone."""
    try:
        text = (PROC / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def socket_count(pid: int) -> int | None:
    """Open sockets of ``pid`` (its file descriptors that are sockets); ``None`` if it is gone."""
    fd_dir = PROC / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    count = 0
    for name in names:
        try:
            if os.readlink(fd_dir / name).startswith("socket:"):
                count += 1
        except OSError:
            continue  # closed between listing and reading
    return count


def machine_busy_s() -> float:
    """CPU seconds all processors have spent busy since boot (``/proc/stat``, tick resolution).

    Compared with the sum of the measured processes over the same window, it shows how much CPU
    something else on the machine took: the "other" load that makes a run unrepresentative.
    """
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


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
    """CPU nanoseconds per named process at one instant (absent when unreadable), and the machine's."""

    ns: dict[str, int]
    machine_s: float

    @classmethod
    def take(cls, pids: dict[str, int]) -> Snapshot:
        out: dict[str, int] = {}
        for name, pid in pids.items():
            value = cpu_ns(pid)
            if value is not None:
                out[name] = value
        return cls(out, machine_busy_s())

    def other_s(self, earlier: Snapshot) -> float:
        """CPU seconds used by processes not in the snapshot since ``earlier`` (never negative)."""
        ours = sum(self.since(earlier).values())
        return max(0.0, self.machine_s - earlier.machine_s - ours)

    def since(self, earlier: Snapshot) -> dict[str, float]:
        """CPU seconds used by each process between ``earlier`` and this snapshot."""
        return {name: (ns - earlier.ns[name]) / 1e9 for name, ns in self.ns.items() if name in earlier.ns}
