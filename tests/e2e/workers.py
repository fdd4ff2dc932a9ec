"""Worker processes for end-to-end tests: started exactly as users start them (`pivot-worker run`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class WorkerProcess:
    def __init__(
        self, env: dict[str, str], log_path: Path, name: str, args: tuple[str, ...] = ("--no-collector",)
    ) -> None:
        self.env = env
        self.args = args
        self.log_path = log_path
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> WorkerProcess:
        full_env = {**os.environ, **self.env, "PIVOT_NODE": f"{self.name}@test"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pivot_worker", "run", *self.args],
            env=full_env,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while "pivot_worker.lifecycle: consuming" not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"worker {self.name} did not start in {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode
