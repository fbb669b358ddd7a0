"""What a chunk of batch work is and how a process runs one: the part of the chunked runner
(``common.batch``) that every backend and worker shares, the Celery one (``common.batch_celery``) too.

A chunk names a range of ids of one phase of one run (``Chunk``); the work is a *task*, a module-level
function ``task(database_url, chunk) -> dict[str, int]`` named by ``"module:function"``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from common.database import Database

Counts = Mapping[str, int]
DoneCallback = Callable[["Chunk", Counts], None]
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class Chunk:
    """Ids ``first_id`` to ``last_id`` (inclusive) of phase ``phase`` of run ``run_id``; ``number`` orders
    the chunks of a phase. ``params`` carries what a run kept nowhere else needs (a sweep's time and
    actor), as strings."""

    run_id: int
    phase: str
    number: int
    first_id: int
    last_id: int
    params: Mapping[str, str] = field(default_factory=dict, hash=False)


def resolve_task(name: str) -> Callable[[str, Chunk], Counts]:
    """The function a ``"module:function"`` task name stands for."""
    module, _, attribute = name.partition(":")
    if not module or not attribute:
        raise ValueError(f"a task is named 'module:function', not {name!r}")
    task: Callable[[str, Chunk], Counts] = getattr(importlib.import_module(module), attribute)
    return task


_DATABASES: dict[tuple[int, str], Database] = {}


def database_for(url: str) -> Database:
    """This process's engine for ``url`` (a worker builds its own after it started, never inherits one)."""
    key = (os.getpid(), url)
    db = _DATABASES.get(key)
    if db is None:
        db = _DATABASES[key] = Database(url)
    return db


def dispose_databases() -> None:
    """Close this process's engines (a forked helper, before it exits)."""
    for (pid, url), db in list(_DATABASES.items()):
        if pid == os.getpid():
            db.dispose()
            del _DATABASES[(pid, url)]


def run_chunk(task: str, database_url: str, chunk: Chunk) -> tuple[Chunk, dict[str, int]]:
    """Run one chunk in this process (what a worker executes)."""
    return chunk, dict(resolve_task(task)(database_url, chunk))
