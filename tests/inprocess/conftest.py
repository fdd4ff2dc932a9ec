"""Every fake broker of a test must end it without a violation (a real broker closes the channel)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import BROKERS


@pytest.fixture(autouse=True)
def no_broker_violations() -> Iterator[None]:
    BROKERS.clear()
    yield
    violations = [v for broker in BROKERS for v in broker.violations]
    BROKERS.clear()
    assert violations == [], "the broker would have closed the channel"
