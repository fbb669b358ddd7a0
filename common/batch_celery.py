"""The Celery backend of the chunked runner: each chunk a Celery task over the Redis broker, run by
``prm worker`` processes on any number of machines that share the database.

One Celery task, ``prm.batch.chunk``, carries ``(task, database_url, chunk, after)``: the worker runs
the named chunk task (``common.chunks.run_chunk``) and then, when given, the ``after`` task with the same
arguments (a run's owner uses it to finish the run once its last chunk is done, so nothing has to wait
for the chunks in a web request). Delivery is at least once, so every chunk task is idempotent (keyed
by run and record, a unique constraint behind it; see ``common.batch``):

- ``task_acks_late``: a message is acknowledged after its task ran, so a worker killed mid-chunk
  leaves the message unacknowledged, and the broker hands it out again once the *visibility timeout*
  (``PRM_CELERY_VISIBILITY_TIMEOUT``, seconds) has passed (a live worker of the queue sweeps such
  messages back a few times per timeout); ``task_reject_on_worker_lost`` does the same
  for a pool process that dies under a live worker;
- a worker prefetches one message per pool process (``worker_prefetch_multiplier=1``), so a killed
  worker holds back at most as many chunks as it was running;
- the pool is ``prefork``: one process per slot, each with its own rules runtime and database engine,
  built after the fork (``rules.engine`` drops a runtime inherited across a fork, ``database_for`` is
  keyed by process id, and ``worker_process_init`` forgets engines inherited from the parent).

Settings: ``PRM_CELERY_BROKER_URL`` (default ``redis://127.0.0.1:6379/0``, also the result backend),
``PRM_CELERY_QUEUE`` (default ``prm-batch``), ``PRM_CELERY_VISIBILITY_TIMEOUT`` (default 900).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from celery.signals import worker_process_init
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.utils.url import maybe_sanitize_url
from sqlalchemy.exc import OperationalError

from common import chunks as chunk_runner
from common.chunks import Chunk, DoneCallback, StopCheck
from common.errors import ServiceUnavailable

BROKER_VARIABLE = "PRM_CELERY_BROKER_URL"
QUEUE_VARIABLE = "PRM_CELERY_QUEUE"
VISIBILITY_VARIABLE = "PRM_CELERY_VISIBILITY_TIMEOUT"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "prm-batch"
DEFAULT_VISIBILITY_TIMEOUT = 900
CHUNK_TASK = "prm.batch.chunk"
#: How long ``CeleryBackend.run`` waits for one chunk's result before it looks at ``stop`` again.
POLL_SECONDS = 0.5


def broker_url() -> str:
    return os.environ.get(BROKER_VARIABLE) or DEFAULT_BROKER_URL


def queue_name() -> str:
    return os.environ.get(QUEUE_VARIABLE) or DEFAULT_QUEUE


def visibility_timeout() -> int:
    return max(1, int(os.environ.get(VISIBILITY_VARIABLE) or DEFAULT_VISIBILITY_TIMEOUT))


def chunk_task(
    task: str, database_url: str, chunk: dict[str, Any], after: str | None = None
) -> dict[str, int]:
    """Run one chunk (then ``after``) in this worker process; the chunk's counts."""
    piece = Chunk(**chunk)
    _, counts = chunk_runner.run_chunk(task, database_url, piece)
    if after:
        chunk_runner.resolve_task(after)(database_url, piece)
    return counts


def make_app(url: str | None = None, queue: str | None = None, visibility: int | None = None) -> Celery:
    """A Celery app on broker ``url`` whose chunk tasks go to ``queue`` (defaults: the settings)."""
    url = url or broker_url()
    queue = queue or queue_name()
    timeout = visibility or visibility_timeout()
    transport = {
        "visibility_timeout": timeout,
        # Unacknowledged messages are kept per queue, and swept back into it a few times per timeout
        # (kombu's default sweeps every ~100 s whatever the timeout).
        "unacked_key": f"{queue}:unacked",
        "unacked_index_key": f"{queue}:unacked_index",
        "unacked_mutex_key": f"{queue}:unacked_mutex",
        "unacked_restore_interval": max(1, min(10, timeout // 4)),
        "unacked_restore_throttle": 1,
    }
    app = Celery("prm", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": timeout},
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        # an unreachable broker is reported within a few seconds, not after minutes of retries
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 1},
        enable_utc=True,
    )
    # A dropped database connection is retried (the chunk is idempotent); anything else fails the task.
    app.task(
        name=CHUNK_TASK,
        autoretry_for=(OperationalError,),
        max_retries=5,
        retry_backoff=True,
    )(chunk_task)
    return app


def _fresh_process(**_: Any) -> None:
    """A pool process starts without the parent's database engines (they are keyed by process id, so
    this only drops the references)."""
    for key in [k for k in chunk_runner._DATABASES if k[0] != os.getpid()]:
        del chunk_runner._DATABASES[key]


worker_process_init.connect(_fresh_process, weak=False)


class CeleryBackend:
    """Sends each chunk as a Celery task; ``run`` waits for their results, ``submit`` does not."""

    name = "celery"

    def __init__(
        self, url: str | None = None, queue: str | None = None, visibility: int | None = None
    ) -> None:
        self.app = make_app(url, queue, visibility)
        self.queue = str(self.app.conf.task_default_queue)

    def send(
        self, task: str, database_url: str, chunk: Chunk, after: str | None = None, *, result: bool = True
    ) -> AsyncResult:
        """Publish one chunk task (``result=False``: nobody waits for it, so no result is stored).
        Raises ``ServiceUnavailable`` when the broker cannot be reached."""
        try:
            return self.app.send_task(
                CHUNK_TASK,
                args=(task, database_url, asdict(chunk), after),
                queue=self.queue,
                ignore_result=not result,
            )
        except (KombuOperationalError, OSError) as exc:
            where = maybe_sanitize_url(str(self.app.conf.broker_url))
            raise ServiceUnavailable(f"the batch broker at {where} cannot be reached: {exc}") from exc

    def submit(self, task: str, database_url: str, chunks: Iterable[Chunk], *, after: str | None) -> int:
        """Publish every chunk and return at once (the workers run ``after`` behind each); how many."""
        sent = 0
        for chunk in chunks:
            self.send(task, database_url, chunk, after, result=False)
            sent += 1
        return sent

    def run(
        self, task: str, database_url: str, chunks: Iterable[Chunk], *, done: DoneCallback, stop: StopCheck
    ) -> None:
        """Publish the chunks (none once ``stop()`` says so) and report each one's counts as it finishes."""
        pending: list[tuple[Chunk, AsyncResult]] = []
        for chunk in chunks:
            if stop():
                break
            pending.append((chunk, self.send(task, database_url, chunk)))
        while pending:
            still: list[tuple[Chunk, AsyncResult]] = []
            for chunk, result in pending:
                if result.ready():
                    done(chunk, dict(result.get(disable_sync_subtasks=False)))
                    result.forget()
                else:
                    still.append((chunk, result))
            pending = still
            if pending:
                time.sleep(POLL_SECONDS)


_SHARED: dict[tuple[int, str, str, int], CeleryBackend] = {}


def shared_backend() -> CeleryBackend:
    """This process's backend for the current settings (one broker connection pool, not one per call)."""
    key = (os.getpid(), broker_url(), queue_name(), visibility_timeout())
    backend = _SHARED.get(key)
    if backend is None:
        backend = _SHARED[key] = CeleryBackend(key[1], key[2], key[3])
    return backend


def start_worker(concurrency: int, *, loglevel: str = "INFO", hostname: str | None = None) -> None:
    """Run a Celery worker for the chunk tasks in this process (returns when the worker stops)."""
    app = make_app()
    argv = [
        "worker",
        "--pool=prefork",
        f"--concurrency={max(1, concurrency)}",
        f"--queues={queue_name()}",
        "--prefetch-multiplier=1",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
