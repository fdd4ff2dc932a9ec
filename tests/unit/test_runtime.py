from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pivot_worker.runtime import GC_GEN0_THRESHOLD, settle_heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_settle_heap_freezes_start_up_objects_and_raises_the_gen0_threshold() -> None:
    settle_heap()
    assert gc.get_freeze_count() > 1000
    assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
