"""Child processes of a benchmark run: started, paused and resumed together, always stopped at the end.

Each child gets ``PR_SET_PDEATHSIG`` = SIGKILL, so it dies with the orchestrator even if that is
killed outright; normal runs stop children politely (SIGCONT, then SIGTERM, then SIGKILL after a
grace period). Children run in their own process group, so Ctrl-C reaches only the orchestrator, which
then stops them in order and removes its queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Children:
    """Every process a run started, in start order."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    async def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdin_pipe: bool = False,
        stdout_pipe: bool = False,
    ) -> Child:
        """Start ``argv``; stderr (and stdout unless piped) goes to ``<log_dir>/<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        self._logs.append(log)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin_pipe else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child = Child(name, process, log_path)
        self.started.append(child)
        return child

    @staticmethod
    def pause(children: Sequence[Child]) -> None:
        for child in children:
            os.kill(child.pid, signal.SIGSTOP)

    @staticmethod
    def resume(children: Sequence[Child]) -> None:
        for child in children:
            os.kill(child.pid, signal.SIGCONT)

    async def stop(self, children: Sequence[Child], grace_s: float = 10.0) -> None:
        """SIGCONT + SIGTERM, wait up to ``grace_s``, then SIGKILL whatever is left."""
        live = [c for c in children if c.alive()]
        for child in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGCONT)
                child.process.terminate()
        if live:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(c.process.wait()) for c in live], timeout=grace_s
            )
            for child in live:
                if child.alive():
                    with contextlib.suppress(ProcessLookupError):
                        child.process.kill()
            if pending:
                await asyncio.wait(pending, timeout=5)

    async def stop_all(self) -> None:
        await self.stop(list(reversed(self.started)))
        for log in self._logs:
            log.close()
        self._logs.clear()
