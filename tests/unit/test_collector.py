"""The cycle collector paused while building, and what was built to keep frozen until it is dropped."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from common.collector import collector_paused, release_kept
from territory.repository import _LruCache


@pytest.fixture(autouse=True)
def _nothing_frozen() -> Iterator[None]:
    release_kept()
    yield
    release_kept()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_paused_block_collects_nothing_and_restores_the_collector() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_paused_block_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with collector_paused(keep=True):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_kept_objects_are_frozen_until_released() -> None:
    with collector_paused(keep=True):
        kept = [Cycle() for _ in range(100)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= 100
    assert all(gc.is_tracked(c) for c in kept)
    release_kept()
    assert gc.get_freeze_count() == 0


def test_a_frozen_cycle_is_collected_once_released() -> None:
    with collector_paused(keep=True):
        cycle = Cycle()
    ref = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert ref() is not None  # frozen: no pass looks at it
    release_kept()
    gc.collect()
    assert ref() is None


def test_the_snapshot_cache_releases_what_it_drops() -> None:
    released: list[int] = []
    cache = _LruCache(2, on_drop=lambda: released.append(1))
    for key in ("a", "b"):
        cache.get_or_build(key, lambda: object())
    assert released == []
    cache.get_or_build("a", lambda: pytest.fail("cached"))
    cache.get_or_build("c", lambda: object())  # evicts "b"
    assert released == [1]
    cache.clear()
    assert released == [1, 1]
