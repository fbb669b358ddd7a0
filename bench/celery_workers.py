"""Apply throughput of a reassignment run on the Celery backend: one ``prm worker`` against two.

On PostgreSQL and the local Redis: a database with ``--leads`` leads (one made through the API, the
rest copied in SQL) and a plan that moves all of them is made once, then copied (``CREATE DATABASE ...
TEMPLATE``) for each worker count, so every variant applies the same plan from the same state. A
variant starts its workers (``prm worker --concurrency 1`` each, a queue of its own), sends the chunks
as the API does, and is timed until the run is ``applied``. Before the clock starts, PostgreSQL writes out
the copy (``CHECKPOINT``: otherwise a checkpoint of the copies' WAL falls inside a later variant) and the
sender connects to the broker (its one-time import of the Redis transport, ~0.5 s, is the client's, not
the workers'). Prints one JSON object.

    .venv/bin/python -m bench.celery_workers --leads 4000 --chunk-size 100 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from common import chunks, migrate
from common.batch import InlineBackend
from common.batch_celery import CeleryBackend
from common.database import Database
from common.settings import Settings
from registration.reassignment import service
from registration.reassignment.schemas import RunCreate
from server import create_app
from tests.api.leads_support import load_demo
from tests.api.reassignment_support import jp_security_to_cam_jp
from tests.integration.celery_support import Worker, draft_leads, wait_status

ADMIN_URL = os.environ.get("PRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _url(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _prepare(admin: Any, name: str, leads: int, chunk_size: int, work: Path) -> int:
    """The database ``name`` with ``leads`` drafts and a planned run moving them; the run's id."""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = _url(name)
    migrate.upgrade(url)
    app = create_app(Settings(database_url=url, log_json=False), TESTING=True)
    db: Database = app.extensions["prm.db"]
    client = app.test_client()
    os.environ["PRM_BATCH_BACKEND"] = "inline"
    demo = load_demo(db, work)
    draft_leads(client, db, demo, leads)
    model_id = jp_security_to_cam_jp(client, demo["admin"])
    run = service.create_run(
        db, None, RunCreate(territory_model_id=model_id, chunk_size=chunk_size), backend=InlineBackend()
    )
    assert run.moved == leads, run
    db.dispose()
    for other in chunks._DATABASES.values():
        other.dispose()
    return run.id


def _variant(admin: Any, template: str, run_id: int, workers: int, leads: int, work: Path) -> dict[str, Any]:
    name = f"{template}_w{workers}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        # the copy's WAL written out now, not by a checkpoint inside the next variant's clock
        conn.execute(text("CHECKPOINT"))
    db = Database(_url(name))
    queue = f"prm-bench-{uuid.uuid4().hex[:8]}"
    started = [Worker(f"bench{i}", REDIS_URL, queue, work / f"w{workers}-{i}.log") for i in range(workers)]
    try:
        for w in started:
            w.wait_ready()
        backend = CeleryBackend(REDIS_URL, queue)
        with backend.app.connection_for_write() as conn:  # the sender's one-time import and connection
            conn.ensure_connection(max_retries=1)  # (the workers' scaling is measured, not the client)
        t0 = time.perf_counter()
        service.apply_run(db, None, run_id, backend=backend, wait=False)
        wait_status(db, run_id, "applied", timeout=3600)
        seconds = time.perf_counter() - t0
    finally:
        for w in started:
            w.stop()
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return {"workers": workers, "seconds": round(seconds, 2), "leads_per_s": round(leads / seconds, 1)}


def measure(leads: int, chunk_size: int, workers: Sequence[int]) -> dict[str, Any]:
    """Apply one plan of ``leads`` drafts on each worker count in turn; speedups against the latest
    one-worker variant before each (``workers=[1, 2, 1, 2]`` measures each pair side by side)."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    template = f"prm_bench_celery_{os.getpid()}"
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            t0 = time.perf_counter()
            run_id = _prepare(admin, template, leads, chunk_size, work)
            prepared = time.perf_counter() - t0
            for n in workers:
                results.append(_variant(admin, template, run_id, n, leads, work))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
            admin.dispose()
    base = None
    for r in results:
        if r["workers"] == 1:
            base = r["seconds"]
        r["speedup_vs_1"] = round(base / r["seconds"], 2) if base else None
    return {
        "leads": leads,
        "chunk_size": chunk_size,
        "cpus": os.cpu_count(),
        "prepare_seconds": round(prepared, 1),
        "results": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=4000)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    json.dump(measure(args.leads, args.chunk_size, args.workers), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
