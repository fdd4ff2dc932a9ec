"""Shared fixtures: where the real broker and database are, and whether their absence skips or fails."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.devserver import DevServer

AMQP_URL = os.environ.get("PIVOT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The test broker; unreachable means skip locally and fail in CI (CI=true)."""
    if not _reachable(AMQP_URL):
        message = f"RabbitMQ not reachable at {AMQP_URL} (set PIVOT_TEST_AMQP_URL)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AMQP_URL


@pytest.fixture
async def dev() -> AsyncIterator[DevServer]:
    """A developer's web server on 127.0.0.1 whose routes a test sets."""
    server = DevServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def connects() -> AsyncIterator[list[Any]]:
    """Every address the event loop connects a socket to while the test runs: a test of a refused
    address checks that nothing was attempted beyond the machine."""
    loop = asyncio.get_running_loop()
    seen: list[Any] = []
    original = loop.sock_connect

    async def spy(sock: Any, address: Any) -> None:
        seen.append(address)
        await original(sock, address)

    loop.sock_connect = spy  # type: ignore[method-assign]
    yield seen
    del loop.sock_connect  # back to the class's method
