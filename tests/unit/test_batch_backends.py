"""Where the local pool runs a run's chunks: on PostgreSQL in the caller's process and processes forked
from it, whatever the run's size; elsewhere in spawned worker processes, or in the caller's own when the
run is a few chunks (starting workers would cost more than the work)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def met_process_of(database_url: str, chunk: Chunk) -> dict[str, int]:
    """``process_of``, once two processes have started a chunk (each leaves its pid in the folder
    ``params["folder"]``; after 10 s alone it goes on)."""
    folder = Path(chunk.params["folder"])
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 10
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return process_of(database_url, chunk)


def slow_process_of(database_url: str, chunk: Chunk) -> dict[str, int]:
    """``process_of``, a tenth of a second long (a helper starts while the caller works)."""
    time.sleep(0.1)
    return process_of(database_url, chunk)


def failing(_database_url: str, chunk: Chunk) -> dict[str, int]:
    """A task that fails on chunk 2."""
    time.sleep(0.1)
    if chunk.number == 2:
        raise ValueError(f"chunk {chunk.number} cannot be done")
    return {"pid": os.getpid(), "number": chunk.number}


#: (never connected to: the tasks here touch no database; a PostgreSQL URL is what lets a few chunks fork)
POSTGRES_URL = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def test_a_few_chunks_on_postgresql_also_run_in_a_process_forked_from_the_caller(tmp_path):
    seen: list[dict[str, int]] = []
    chunks = [
        Chunk(1, "plan", n, n, n, {"folder": str(tmp_path)})
        for n in range(1, 2 * INLINE_CHUNKS_PER_WORKER + 1)
    ]
    ProcessPoolBackend(2).run(
        "tests.unit.test_batch_backends:met_process_of",
        POSTGRES_URL,
        chunks,
        done=lambda _chunk, counts: seen.append(counts),
        stop=lambda: False,
    )
    assert sorted(c["number"] for c in seen) == [c.number for c in chunks]  # each chunk once
    pids = {c["pid"] for c in seen}
    assert os.getpid() in pids and len(pids) == 2


def test_a_large_run_on_postgresql_is_shared_with_a_forked_helper_whose_results_arrive_as_it_goes():
    seen: list[dict[str, int]] = []
    chunks = [Chunk(1, "apply", n, n, n) for n in range(1, 8 * INLINE_CHUNKS_PER_WORKER + 1)]
    ProcessPoolBackend(2).run(
        "tests.unit.test_batch_backends:slow_process_of",
        POSTGRES_URL,
        chunks,
        done=lambda _chunk, counts: seen.append(counts),
        stop=lambda: False,
    )
    assert sorted(c["number"] for c in seen) == [c.number for c in chunks]  # each chunk once
    pids = [c["pid"] for c in seen]
    assert set(pids) - {os.getpid()} and os.getpid() in pids
    # the helper's chunks are counted between the caller's (progress moves with both), not at the end
    first_helper = next(i for i, pid in enumerate(pids) if pid != os.getpid())
    last_caller = max(i for i, pid in enumerate(pids) if pid == os.getpid())
    assert first_helper < last_caller, pids


def test_a_forked_helpers_failure_is_raised_in_the_caller():
    chunks = [Chunk(1, "plan", n, n, n) for n in range(1, 5)]
    done: list[int] = []
    with pytest.raises(ValueError, match="chunk 2 cannot be done"):
        ProcessPoolBackend(2).run(
            "tests.unit.test_batch_backends:failing",
            POSTGRES_URL,
            chunks,
            done=lambda chunk, _counts: done.append(chunk.number),
            stop=lambda: False,
        )
    assert 2 not in done and len(done) == len(set(done))


def test_once_stop_says_so_no_process_takes_another_chunk():
    chunks = [Chunk(1, "apply", n, n, n) for n in range(1, 2 * INLINE_CHUNKS_PER_WORKER + 1)]
    done: list[int] = []
    ProcessPoolBackend(2).run(
        TASK,
        POSTGRES_URL,
        chunks,
        done=lambda chunk, _counts: done.append(chunk.number),
        stop=lambda: bool(done),
    )
    # the caller stops after its first chunk; the helper finishes the one it holds, at most one more
    assert 1 <= len(done) <= 3 and len(done) < len(chunks)


def noted(_database_url: str, chunk: Chunk) -> dict[str, int]:
    """A task that leaves a file per chunk started in ``params["folder"]`` and takes half a second."""
    (Path(chunk.params["folder"]) / f"chunk-{chunk.number}").touch()
    time.sleep(0.5)
    return {"number": chunk.number}


CALLER = """
import sys
from common.batch import ProcessPoolBackend, Chunk
chunks = [Chunk(1, "plan", n, n, n, {"folder": sys.argv[1]}) for n in range(1, 9)]
ProcessPoolBackend(2).run("tests.unit.test_batch_backends:noted", sys.argv[2], chunks,
                          done=lambda *_: None, stop=lambda: False)
"""


def test_a_forked_helper_takes_no_more_chunks_once_its_caller_is_killed(tmp_path):
    root = Path(__file__).resolve().parents[2]
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(tmp_path), POSTGRES_URL], cwd=root)
    deadline = time.monotonic() + 30
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:  # both at work
        time.sleep(0.01)
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    time.sleep(2.5)  # what a helper left alone would need for the rest (4 chunks of 0.5 s each)
    started = sorted(p.name for p in tmp_path.iterdir())
    assert 2 <= len(started) <= 3, started  # the two at work when the caller died, at most one more
