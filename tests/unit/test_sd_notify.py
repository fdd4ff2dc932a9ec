from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pivot_worker.runtime import sd_notify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield server


def test_sends_each_state_as_one_datagram(notify_socket: socket.socket) -> None:
    assert sd_notify("READY=1") is True
    assert sd_notify("STOPPING=1") is True
    assert notify_socket.recv(64) == b"READY=1"
    assert notify_socket.recv(64) == b"STOPPING=1"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0pivot-worker-notify-test")
        server.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@pivot-worker-notify-test")
        assert sd_notify("READY=1") is True
        assert server.recv(64) == b"READY=1"


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False


def test_a_missing_socket_is_logged_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sd_notify("READY=1") is False
