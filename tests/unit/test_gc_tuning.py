"""A started service takes what it allocated at start out of the collector's full passes and collects its young
generation less often: a listing of a thousand servers otherwise spends more time in the collector than in
building its body."""

from __future__ import annotations

import gc

from stratus import service


def test_tune_gc_freezes_the_start_up_heap_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        service.tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (service.GC_GEN0_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
