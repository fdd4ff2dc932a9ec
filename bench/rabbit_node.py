"""A private RabbitMQ node for tests and benchmarks: its own name, ports and data, stopped at the end.

Tests that restart a broker must never touch the shared one, so :class:`RabbitNode` starts
``rabbitmq-server`` as a separate node: a unique ``RABBITMQ_NODENAME`` (``pivot_t<hex>@localhost``),
a free AMQP port (``RABBITMQ_NODE_PORT``, on 127.0.0.1 only) and distribution port
(``RABBITMQ_DIST_PORT``), and everything else under one temporary directory: mnesia and logs
(``RABBITMQ_MNESIA_BASE``, ``RABBITMQ_LOG_BASE``), the pid file, an empty plugins file (no management
plugin), its own ``rabbitmq.conf`` and ``rabbitmq-env.conf`` (so the system's files, whose listener
may name the shared node's port, are never read) and its own ``HOME``, hence its own Erlang cookie:
``rabbitmqctl`` run with this node's environment cannot even authenticate to the shared node.

``start()`` waits until the port speaks AMQP *and* the broker names this node in its
``Connection.Start`` (its ``cluster_name``, ``<short node name>@<host name>`` by default), so a
listener that is not this node is never taken for it. ``stop()`` is graceful (``rabbitmqctl -n
<node> stop``), with SIGKILL as the fallback; ``start()`` again reuses the same ports and data
directory, so durable queues survive a restart; ``restart()`` does both; ``close()`` stops the node
and removes the directory. The server runs as a direct child (``RABBITMQ_ALLOW_INPUT`` makes the
start script ``exec`` the Erlang VM, ``-noshell`` keeps the VM from reading stdin) with
``PR_SET_PDEATHSIG``: if the process that started it dies, even by SIGKILL, the node dies with it.
It registers its name with the local ``epmd`` (started by the VM if none runs; epmd is a shared
name service, not a broker, and is left running).

``python bench/rabbit_node.py`` starts one, prints its AMQP URL and how long the start took, and
stops it on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

PR_SET_PDEATHSIG = 1
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
# Never take these: the shared node's AMQP and distribution ports (and their TLS/management kin).
RESERVED_PORTS = frozenset({4369, 5671, 5672, 15672, 25672})
BIN_DIR_ENV = "PIVOT_RABBITMQ_BIN_DIR"


class RabbitNodeError(RuntimeError):
    """The private node could not be started or stopped."""


def rabbitmq_bin_dir() -> Path | None:
    """The directory holding the real ``rabbitmq-server`` and ``rabbitmqctl`` scripts, or ``None``.

    Debian's packaged ``rabbitmq-server`` on PATH is a wrapper that switches to the ``rabbitmq`` user (and
    its HOME, hence the shared node's cookie); the scripts next to the wrapper's target are the
    real ones and run as the current user. ``PIVOT_RABBITMQ_BIN_DIR`` overrides the search.
    """
    override = os.environ.get(BIN_DIR_ENV)
    if override:
        path = Path(override)
        return path if (path / "rabbitmq-server").exists() else None
    found = shutil.which("rabbitmq-server")
    if found is None:
        return None
    directory = Path(os.path.realpath(found)).parent
    if (directory / "rabbitmq-server").exists() and (directory / "rabbitmqctl").exists():
        return directory
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and not a RabbitMQ default)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def amqp_greeting(port: int, timeout: float = 1.0) -> bytes | None:
    """The broker's first frame (``Connection.Start``) on 127.0.0.1:``port``, or ``None``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(AMQP_HEADER)
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
                if len(data) >= 7 and len(data) >= 7 + int.from_bytes(data[3:7], "big") + 1:
                    break
            return data or None
    except OSError:
        return None


class RabbitNode:
    """One private RabbitMQ node on loopback; see the module docstring."""

    def __init__(self, base_dir: Path | None = None, *, prefix: str = "pivot_t") -> None:
        bin_dir = rabbitmq_bin_dir()
        if bin_dir is None:
            raise RabbitNodeError(f"rabbitmq-server not found on PATH (or set {BIN_DIR_ENV})")
        self.bin_dir = bin_dir
        self.node_name = f"{prefix}{secrets.token_hex(4)}@localhost"
        if self.node_name.startswith("rabbit@"):
            raise RabbitNodeError("refusing the shared node's name")
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self._own_dir = base_dir is None
        root = Path(tempfile.mkdtemp(prefix="pivot-rabbit-")) if base_dir is None else base_dir
        self.dir = root / self.short_name
        self.dir.mkdir(parents=True, exist_ok=False)
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "rabbitmq.conf").write_text(
            "# a private test node: the AMQP listener comes from RABBITMQ_NODE_IP_ADDRESS/PORT\n"
            "loopback_users.guest = true\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._launched_at = 0.0
        self.start_seconds: list[float] = []  # how long each start() took, in order
        self._closed = False

    # -- addresses -------------------------------------------------------------------------------

    @property
    def short_name(self) -> str:
        return self.node_name.split("@", 1)[0]

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def server_log(self) -> Path:
        return self.dir / "server.out"

    def env(self) -> dict[str, str]:
        """The environment both the server and ``rabbitmqctl`` need to be about this node only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            {
                "HOME": str(self.dir),  # its own .erlang.cookie, created by the node on first start
                "RABBITMQ_NODENAME": self.node_name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
                "RABBITMQ_ALLOW_INPUT": "true",  # the start script then execs the VM (no shell in between)
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-noshell -kernel inet_dist_use_interface {127,0,0,1}",
                "ERL_EPMD_ADDRESS": "127.0.0.1",
            }
        )
        return env

    # -- lifecycle -------------------------------------------------------------------------------

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running() and self.process is not None else None

    def launch(self) -> None:
        """Start the server process without waiting for it (call :meth:`wait_ready` next).

        Call it from the thread that lives as long as the node should (the main thread): the
        parent-death signal fires when the *thread* that started the child ends.
        """
        if self._closed:
            raise RabbitNodeError("node is closed")
        if self.running():
            raise RabbitNodeError(f"{self.node_name} is already running")
        if amqp_greeting(self.port, timeout=0.3) is not None:
            raise RabbitNodeError(f"port {self.port} is already taken by another broker")
        log = self.server_log.open("ab")
        try:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "rabbitmq-server")],
                env=self.env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group: kill() reaches the VM's helper programs too
                preexec_fn=_die_with_parent
                if threading.current_thread() is threading.main_thread()
                else None,
            )
        finally:
            log.close()
        self._launched_at = time.monotonic()

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Block until this node answers AMQP and names itself; returns seconds since :meth:`launch`."""
        deadline = time.monotonic() + timeout
        # The broker's cluster_name defaults to <this node's short name>@<host name>.
        name = self.short_name.encode() + b"@"
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise RabbitNodeError(f"{self.node_name} exited ({code}) while starting:\n{self.log_tail()}")
            greeting = amqp_greeting(self.port, timeout=1.0)
            if greeting is not None:
                if name not in greeting:
                    raise RabbitNodeError(f"port {self.port} answers AMQP but not as {self.node_name}")
                took = time.monotonic() - self._launched_at
                self.start_seconds.append(took)
                return took
            if time.monotonic() > deadline:
                self.kill()
                raise RabbitNodeError(f"{self.node_name} not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def start(self, timeout: float = 90.0) -> float:
        """Start the node (again, on the same ports and data) and wait until it accepts AMQP."""
        self.launch()
        return self.wait_ready(timeout)

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -n <this node> ARGS`` with this node's environment (and cookie)."""
        return subprocess.run(
            [str(self.bin_dir / "rabbitmqctl"), "-n", self.node_name, *args],
            env=self.env(),
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully (``rabbitmqctl -n <node> stop``); SIGKILL if that fails or takes too long."""
        if not self.running():
            return
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self.ctl("stop", timeout=timeout)
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the node's process group (the VM and its port programs); no graceful shutdown."""
        # The group id is the VM's pid; it is still ours while the VM is not reaped (poll() is None).
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)

    def restart(self, timeout: float = 90.0) -> float:
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the node (gracefully if it still answers) and remove its directory. Idempotent."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            shutil.rmtree(self.dir, ignore_errors=True)
            if self._own_dir:
                shutil.rmtree(self.dir.parent, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.server_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- asyncio helpers: the blocking parts run in a thread, the launch in the loop's thread ----

    async def astart(self, timeout: float = 90.0) -> float:
        self.launch()
        return await asyncio.to_thread(self.wait_ready, timeout)

    async def astop(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def arestart(self, timeout: float = 90.0) -> float:
        await self.astop()
        return await self.astart(timeout)

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def private_node(base_dir: Path | None = None) -> Iterator[RabbitNode]:
    """A started :class:`RabbitNode`, always closed (and its directory removed) on exit."""
    node = RabbitNode(base_dir)
    try:
        node.start()
        yield node
    finally:
        node.close()


def main() -> int:
    node = RabbitNode()
    try:
        took = node.start()
        print(f"{node.node_name} ready in {took:.1f} s: {node.amqp_url}  (data {node.dir})", flush=True)
        print("Ctrl-C stops it and removes its data", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while node.running():
                time.sleep(0.5)
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
