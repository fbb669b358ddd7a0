"""The chunked runner of batch work: a run split into chunks, each executed by a pluggable backend.

A chunk names a range of ids of one phase of one run (``Chunk``). The work itself is a *task*: a
module-level function ``task(database_url, chunk) -> dict[str, int]`` named by ``"module:function"``, so
any process that imports this repository can run it, and a backend only moves names and numbers around
(those shared parts live in ``common.chunks``, which the Celery backend imports too).
A task owns its transaction and must be idempotent (keyed by run and record, backed by a unique
constraint): a chunk run twice, redelivered or resumed after a kill changes nothing twice.

Backends (``Backend``) have one method, ``run``: execute the chunks, call ``done`` with each finished
chunk's counts in the caller's process, and stop handing out chunks once ``stop()`` says so. Here:

- ``InlineBackend``: in this process, one chunk after another (small runs, tests, debugging);
- ``ProcessPoolBackend``: local worker processes. durable_rules wants processes, not threads, and one
  rules host per process; each worker builds its own host and database engine when it first runs a
  task (DESIGN.md 2.1 and 2.7). On PostgreSQL, from the main thread, the calling process works too,
  with processes forked from it; elsewhere a pool of spawned workers (a run of a few chunks: the calling
  process alone). See ``ProcessPoolBackend``.

- ``CeleryBackend`` (``common.batch_celery``, ``PRM_BATCH_BACKEND=celery``): each chunk a Celery task
  over the Redis broker, run by ``prm worker`` processes on any number of machines sharing the database.

A backend that can hand chunks off without waiting for them (``submit``, the Celery one) lets a caller
such as a web request start a run and return at once (``is_queued``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Protocol

from sqlalchemy.orm import Session

from common.chunks import Chunk as Chunk
from common.chunks import Counts as Counts
from common.chunks import DoneCallback as DoneCallback
from common.chunks import StopCheck as StopCheck
from common.chunks import database_for as database_for
from common.chunks import dispose_databases
from common.chunks import resolve_task as resolve_task
from common.chunks import run_chunk as run_chunk
from common.database import Database

BACKEND_VARIABLE = "PRM_BATCH_BACKEND"
WORKERS_VARIABLE = "PRM_BATCH_WORKERS"
CHUNK_SIZE_VARIABLE = "PRM_BATCH_CHUNK_SIZE"
DEFAULT_CHUNK_SIZE = 1000


class Backend(Protocol):
    """Executes chunks of a run; see the module docstring."""

    name: str

    def run(
        self, task: str, database_url: str, chunks: Iterable[Chunk], *, done: DoneCallback, stop: StopCheck
    ) -> None: ...


class InlineBackend:
    """Runs every chunk in the calling process, in order."""

    name = "inline"

    def run(
        self, task: str, database_url: str, chunks: Iterable[Chunk], *, done: DoneCallback, stop: StopCheck
    ) -> None:
        for chunk in chunks:
            if stop():
                return
            done(*run_chunk(task, database_url, chunk))


#: A run of at most this many chunks per worker runs in the calling process: starting a worker (an
#: interpreter, the imports, the territory model it decides with) costs about as much as four chunks of
#: a thousand leads, and the caller has most of that loaded already (an incremental plan of 10,000 of a
#: million leads: 6 s of CPU on a pool of two, 3 s inline).
INLINE_CHUNKS_PER_WORKER = 4


class ProcessPoolBackend:
    """Runs chunks on ``workers`` local processes.

    On PostgreSQL, started from the main thread, the calling process takes chunks one after another
    and ``workers - 1`` processes forked from it take the others from the same counter. A forked helper
    starts in milliseconds with what the caller has loaded (the imports, the territory snapshot it
    checked, frozen for the collector); as gunicorn's workers do, it builds its own database engine and
    rules host (both are per process id) and never touches the caller's connections. Spawned workers
    cost a fresh interpreter each, the imports and the snapshot loaded again: ~1.5 s of a 15 s apply of
    200,000 leads on two cores, with the caller idle meanwhile.

    Elsewhere (SQLite, whose writers take turns anyway; another thread, a web server's, where locks
    another thread holds would be inherited held) workers are started with ``spawn`` (a fresh
    interpreter: no engine, connection or rules host is inherited), at most two chunks per worker in
    flight, each worker keeping its host and engine for every chunk it runs; a run of a few chunks
    (``inline_up_to`` per worker) runs in the calling process instead, as starting a worker costs
    about as much as four chunks.
    """

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        start_method: str = "spawn",
        *,
        inline_up_to: int = INLINE_CHUNKS_PER_WORKER,
    ) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.start_method = start_method
        self.inline_up_to = inline_up_to

    def run(
        self, task: str, database_url: str, chunks: Iterable[Chunk], *, done: DoneCallback, stop: StopCheck
    ) -> None:
        if self.workers > 1 and _may_fork(database_url):
            chunks = list(chunks)
            if len(chunks) > 1:
                _run_forked(task, database_url, chunks, min(self.workers, len(chunks)), done, stop)
            else:
                InlineBackend().run(task, database_url, chunks, done=done, stop=stop)
            return
        if isinstance(chunks, Sized) and len(chunks) <= self.inline_up_to * self.workers:
            InlineBackend().run(task, database_url, chunks, done=done, stop=stop)
            return
        context = multiprocessing.get_context(self.start_method)
        in_flight: set[Future[tuple[Chunk, dict[str, int]]]] = set()
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            try:
                for chunk in chunks:
                    if stop():
                        break
                    in_flight.add(pool.submit(run_chunk, task, database_url, chunk))
                    if len(in_flight) >= 2 * self.workers:
                        finished, in_flight = _settle(in_flight, FIRST_COMPLETED)
                        for future in finished:
                            done(*future.result())
                finished, in_flight = _settle(in_flight, None)
                for future in finished:
                    done(*future.result())
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise


def _may_fork(database_url: str) -> bool:
    return (
        database_url.startswith("postgresql")
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.current_thread() is threading.main_thread()
    )


def _run_forked(
    task: str, database_url: str, chunks: Sequence[Chunk], processes: int, done: DoneCallback, stop: StopCheck
) -> None:
    """Run ``chunks`` in this process and ``processes - 1`` forked from it, each taking the next chunk
    from a shared counter; ``done`` is called here for every chunk (the helpers' as they arrive,
    between this process's own), and once ``stop()`` says so, or a helper failed, no process takes
    another chunk. A helper's failure is raised here, after every process stopped."""
    context = multiprocessing.get_context("fork")
    taken = context.Value("i", 0)
    stopped = context.Event()

    def take() -> Chunk | None:
        with taken.get_lock():
            index = taken.value
            taken.value = index + 1
        return chunks[index] if index < len(chunks) and not stopped.is_set() else None

    helpers = []
    for _ in range(processes - 1):
        receive, send = context.Pipe(duplex=False)
        helper = context.Process(
            target=_helper, args=(task, database_url, take, send, os.getpid()), daemon=True
        )
        helper.start()
        send.close()
        helpers.append((helper, receive))
    failure: BaseException | None = None
    try:
        while not stopped.is_set():
            if stop():
                stopped.set()
                break
            chunk = take()
            if chunk is None:
                break
            done(*run_chunk(task, database_url, chunk))
            failure = _collect(helpers, done, wait=False)
            if failure is not None:
                stopped.set()
    except BaseException:
        stopped.set()
        _collect(helpers, done)
        raise
    failure = _collect(helpers, done) or failure
    if failure is not None:
        raise failure


def _helper(
    task: str, database_url: str, take: Callable[[], Chunk | None], results: Connection, caller: int
) -> None:
    """A forked helper: chunks from ``take`` until there are none or the caller is gone (killed: what
    is left waits for a resume), each chunk's counts (or the failure that stopped it) sent to it."""
    try:
        while os.getppid() == caller and (chunk := take()) is not None:
            results.send(("done", run_chunk(task, database_url, chunk)))
    except BrokenPipeError:  # the caller is gone
        pass
    except BaseException as exc:
        try:
            results.send(("failed", exc))
        except BrokenPipeError:
            pass
        except Exception:  # (an exception that does not pickle)
            results.send(("failed", RuntimeError(traceback.format_exc())))
    finally:
        results.close()
        dispose_databases()


def _collect(
    helpers: Sequence[tuple[BaseProcess, Connection]], done: DoneCallback, *, wait: bool = True
) -> BaseException | None:
    """The helpers' results so far, passed to ``done`` (``wait``: every result, once each helper has
    ended); the first failure."""
    failure: BaseException | None = None
    for helper, receive in helpers:
        if receive.closed:
            continue
        while wait or receive.poll():
            try:
                kind, value = receive.recv()
            except EOFError:
                receive.close()
                break
            if kind == "done":
                done(*value)
            elif failure is None:
                failure = value
        if receive.closed:  # (at its end: always so when waiting)
            helper.join()
            if helper.exitcode and failure is None:
                failure = RuntimeError(f"a forked chunk worker ended with exit code {helper.exitcode}")
    return failure


def _settle(
    futures: set[Future[tuple[Chunk, dict[str, int]]]], mode: str | None
) -> tuple[set[Future[tuple[Chunk, dict[str, int]]]], set[Future[tuple[Chunk, dict[str, int]]]]]:
    if not futures:
        return set(), set()
    result = wait(futures, return_when=mode) if mode else wait(futures)
    return set(result.done), set(result.not_done)


def backend_named(name: str | None = None, workers: int | None = None) -> Backend:
    """The backend ``name`` (``local``, ``inline``, ``celery``), else the one ``PRM_BATCH_BACKEND`` names
    (default ``local``); workers from ``PRM_BATCH_WORKERS`` when not given."""
    choice = (name or os.environ.get(BACKEND_VARIABLE) or "local").strip().lower()
    if workers is None and os.environ.get(WORKERS_VARIABLE):
        workers = int(os.environ[WORKERS_VARIABLE])
    if choice == "local":
        return ProcessPoolBackend(workers)
    if choice == "inline":
        return InlineBackend()
    if choice == "celery":
        from common.batch_celery import shared_backend  # Celery is imported only where it is used

        return shared_backend()
    raise ValueError(f"{BACKEND_VARIABLE} must be 'local', 'inline' or 'celery', not {choice!r}")


def is_queued(backend: Backend) -> bool:
    """Whether ``backend`` can hand chunks to workers elsewhere and return at once (``submit``)."""
    return callable(getattr(backend, "submit", None))


def default_chunk_size() -> int:
    """``PRM_BATCH_CHUNK_SIZE``, or 1,000 leads per chunk."""
    return max(1, int(os.environ.get(CHUNK_SIZE_VARIABLE) or DEFAULT_CHUNK_SIZE))


#: The next ids (ascending) after ``after``, at most ``limit`` of them, read in the session given.
IdPage = Callable[[Session, int, int], list[int]]


def keyset_chunks(
    db: Database,
    next_ids: IdPage,
    *,
    run_id: int,
    phase: str,
    size: int,
    params: Mapping[str, str] | None = None,
) -> Iterator[Chunk]:
    """Chunks of up to ``size`` ids each, streamed in keyset pages (one short transaction per page, never
    every id in memory): a backend consumes them while earlier chunks run."""
    after, number = 0, 0
    while True:
        with db.transaction() as session:
            ids = next_ids(session, after, size)
        if not ids:
            return
        number += 1
        yield Chunk(run_id, phase, number, ids[0], ids[-1], dict(params or {}))
        if len(ids) < size:
            return
        after = ids[-1]


def sweep_backend(backend: Backend | None = None) -> Backend:
    """The backend of a sweep (expiry, reminders): the one given, the one ``PRM_BATCH_BACKEND`` names
    when set, else this process (a sweep is database work, no rules engine to spread over processes)."""
    if backend is not None:
        return backend
    return backend_named() if os.environ.get(BACKEND_VARIABLE) else InlineBackend()
