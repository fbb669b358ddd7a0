"""Where the local pool runs a run's chunks: in worker processes, or in the caller's own when the run is
a few chunks (starting workers would cost more than the work)."""

from __future__ import annotations

import os

from common.batch import INLINE_CHUNKS_PER_WORKER, Chunk, ProcessPoolBackend

TASK = "tests.unit.test_batch_backends:process_of"


def process_of(_database_url: str, chunk: Chunk) -> dict[str, int]:
    """A task that says which process ran it."""
    return {"pid": os.getpid(), "number": chunk.number}


def _pids(backend: ProcessPoolBackend, count: int) -> set[int]:
    chunks = [Chunk(1, "plan", n, n, n) for n in range(1, count + 1)]
    seen: list[dict[str, int]] = []
    backend.run(
        TASK, "sqlite://", chunks, done=lambda _chunk, counts: seen.append(counts), stop=lambda: False
    )
    assert sorted(c["number"] for c in seen) == list(range(1, count + 1))
    return {c["pid"] for c in seen}


def test_a_run_of_a_few_chunks_runs_in_the_calling_process():
    assert _pids(ProcessPoolBackend(2), 2 * INLINE_CHUNKS_PER_WORKER) == {os.getpid()}


def test_a_larger_run_goes_to_the_workers():
    pids = _pids(ProcessPoolBackend(2), 2 * INLINE_CHUNKS_PER_WORKER + 1)
    assert os.getpid() not in pids and pids


def test_the_threshold_can_be_turned_off():
    assert os.getpid() not in _pids(ProcessPoolBackend(1, inline_up_to=0), 1)
