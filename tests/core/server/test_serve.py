"""The garbage-collector tuning ``headrace server start`` applies once the app has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from headrace.server.serve import GC_GEN0_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_what_start_up_built_and_collects_young_objects_less_often() -> None:
    gc.unfreeze()
    built_at_start_up = [{"n": n} for n in range(1000)]
    tune_gc()
    assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
    assert gc.get_freeze_count() >= len(built_at_start_up)
    scanned = {id(item) for item in gc.get_objects()}  # the permanent generation is never scanned
    assert id(built_at_start_up[0]) not in scanned


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_switches_the_collector_back_on_after_a_start_up_without_it() -> None:
    gc.disable()
    try:
        tune_gc()
        assert gc.isenabled()
    finally:
        gc.enable()
