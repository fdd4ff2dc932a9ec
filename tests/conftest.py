"""Shared fixtures: where the real broker and database are, and whether their absence skips or fails."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

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
