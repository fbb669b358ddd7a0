"""Reassignment applies on the Celery backend, with real ``prm worker`` processes on the local Redis and
PostgreSQL: two workers, one SIGKILLed mid-run and started again, move every planned lead exactly once
(one history row per lead and run) and leave what the local pool leaves with the same plan; a chunk
task delivered twice changes nothing the second time; the API answers 202 and the workers finish the
run. Each test has a queue of its own (``celery_queue``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from common import chunks
from common.batch import Chunk, ProcessPoolBackend
from common.batch_celery import CeleryBackend
from common.database import Database
from registration.reassignment import service
from registration.reassignment.apply_service import APPLY_TASK
from registration.reassignment.models import ReassignmentChunk
from tests.api.approvals_support import ok
from tests.api.leads_support import load_demo
from tests.api.reassignment_support import jp_security_to_cam_jp
from tests.integration.celery_support import (
    PRM,
    Worker,
    done_chunks,
    draft_leads,
    history_counts,
    outcome,
    wait_status,
)

pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

LEADS = 300
CHUNK = 10


def _planned_run(client, db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[int]]:
    """``LEADS`` drafts and a stored plan (chunks of ``CHUNK``) that moves every one of them."""
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    demo = load_demo(db, tmp_path)
    leads = draft_leads(client, db, demo, LEADS)
    model_id = jp_security_to_cam_jp(client, demo["admin"])
    run = ok(
        client.post(
            "/v1/reassignment-runs",
            json={"territory_model_id": model_id, "chunk_size": CHUNK},
            headers=demo["admin"],
        ),
        201,
    )
    assert (run["status"], run["moved"]) == ("planned", LEADS)
    return int(run["id"]), leads


def _copy_database(db: Database, postgres_template) -> Database:
    """A copy of the test's PostgreSQL database as it is now (its engines are closed for the copy)."""
    db.dispose()
    postgres_template.engine.dispose()
    for other in chunks._DATABASES.values():
        other.dispose()
    name = f"{postgres_template.name}_copy"
    with postgres_template.admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template.name}"'))
    url = make_url(db.url).set(database=name).render_as_string(hide_password=False)
    return Database(url)


def _drop_copy(copy: Database, postgres_template) -> None:
    copy.dispose()
    name = make_url(copy.url).database
    with postgres_template.admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _admin(tmp_path: Path) -> dict[str, str]:
    keys = dict(line.split(" ", 1) for line in (tmp_path / "keys.txt").read_text().splitlines())
    return {"Authorization": f"Bearer {keys['admin']}"}


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_two_workers_one_killed_mid_apply_move_every_planned_lead_exactly_once(
    client, db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url, celery_queue, postgres_template
):
    run_id, leads = _planned_run(client, db, tmp_path, monkeypatch)
    # the same plan applied by the local pool, on a copy of the database
    reference = _copy_database(db, postgres_template)
    try:
        service.apply_run(reference, None, run_id, backend=ProcessPoolBackend(2, inline_up_to=0))
        expected = outcome(reference, run_id)
    finally:
        _drop_copy(reference, postgres_template)
    assert expected["run"][:3] == ("applied", LEADS, 0)

    workers = [Worker(name, redis_url, celery_queue, tmp_path / f"{name}.log") for name in ("a", "b")]
    try:
        for w in workers:
            w.wait_ready()
        monkeypatch.setenv("PRM_BATCH_BACKEND", "celery")
        monkeypatch.setenv("PRM_CELERY_BROKER_URL", redis_url)
        monkeypatch.setenv("PRM_CELERY_QUEUE", celery_queue)
        started = client.post(f"/v1/reassignment-runs/{run_id}/apply", headers=_admin(tmp_path))
        assert started.status_code == 202, started.get_data(as_text=True)
        assert started.headers["Location"] == f"/v1/reassignment-runs/{run_id}"
        assert started.get_json()["status"] == "applying"

        # mid-run, at a moment worker a's log shows it holding a chunk (received, not yet succeeded): on a
        # busy machine it may otherwise be killed between two chunks, and the kill would prove nothing
        _wait_for(lambda: done_chunks(db, run_id) >= 4 and bool(_held(tmp_path / "a.log")))
        workers[0].kill()  # its pool too; the chunk it held stays unacknowledged
        assert done_chunks(db, run_id) < LEADS // CHUNK, "the kill came mid-run"
        workers[0] = Worker("a", redis_url, celery_queue, tmp_path / "a-restarted.log")
        workers[0].wait_ready()
        wait_status(db, run_id, "applied", timeout=180)
        # the chunk the killed worker held is delivered again once its visibility timeout runs out and
        # finished by a live worker; the run may be applied before that (worker a can die after its
        # chunk committed and before it acknowledged), so wait for the redelivery too
        held = _held(tmp_path / "a.log")
        assert held, "the killed worker held no chunk"
        _wait_for(lambda: held <= _finished(tmp_path), timeout=120)
    finally:
        for w in workers:
            w.stop()

    assert history_counts(db, run_id) == [(lead, 1) for lead in leads]
    assert outcome(db, run_id) == expected
    assert _tasks(tmp_path / "b.log", "succeeded"), "both workers ran chunks"


def _tasks(log: Path, what: str) -> set[str]:
    """Ids of the chunk tasks a worker's log says were ``received`` or ``succeeded``."""
    return set(re.findall(rf"Task prm\.batch\.chunk\[([0-9a-f-]+)\] {what}", log.read_text()))


def _finished(folder: Path) -> set[str]:
    """The chunk tasks the live workers (b, and a once restarted) finished, by their logs."""
    return _tasks(folder / "b.log", "succeeded") | _tasks(folder / "a-restarted.log", "succeeded")


def _held(log: Path) -> set[str]:
    """The chunk tasks a worker received and has not (yet) finished, by its log."""
    return _tasks(log, "received") - _tasks(log, "succeeded")


@pytest.mark.slow
def test_a_chunk_task_delivered_twice_changes_nothing_the_second_time(
    client, db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url, celery_queue
):
    run_id, leads = _planned_run(client, db, tmp_path, monkeypatch)
    worker = Worker("twice", redis_url, celery_queue, tmp_path / "twice.log", concurrency=2)
    try:
        worker.wait_ready()
        backend = CeleryBackend(redis_url, celery_queue)
        service.apply_run(db, None, run_id, backend=backend, wait=False)  # sends every chunk once
        with db.transaction() as session:
            chunks = [
                Chunk(run_id, c.phase, c.number, c.first_id, c.last_id)
                for c in session.scalars(
                    select(ReassignmentChunk).where(
                        ReassignmentChunk.run_id == run_id, ReassignmentChunk.phase == "apply"
                    )
                )
            ]
        assert len(chunks) == LEADS // CHUNK
        # ... and each again right away: the two deliveries race on the worker's two processes
        duplicates = [backend.send(APPLY_TASK, db.url, c) for c in chunks]
        duplicate_counts = [r.get(timeout=120) for r in duplicates]
        wait_status(db, run_id, "applied", timeout=120)
        after = outcome(db, run_id)
        # and a third time once the run is applied: nothing to do
        again = [backend.send(APPLY_TASK, db.url, c) for c in chunks]
        assert [r.get(timeout=120) for r in again] == [{}] * len(chunks)
    finally:
        worker.stop()
    assert after["run"][:3] == ("applied", LEADS, 0)
    # a chunk is applied whole by whichever delivery locks it first; the other one finds it done
    assert all(c in ({}, {"applied": CHUNK, "skipped": 0}) for c in duplicate_counts), duplicate_counts
    assert outcome(db, run_id) == after
    assert history_counts(db, run_id) == [(lead, 1) for lead in leads]


def _prm(db_url: str, redis_url: str, queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
    env.update(
        PRM_DATABASE_URL=db_url,
        PRM_LOG_FORMAT="text",
        PRM_BATCH_BACKEND="celery",
        PRM_CELERY_BROKER_URL=redis_url,
        PRM_CELERY_QUEUE=queue,
    )
    return subprocess.run(
        [str(PRM), "reassign", *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.slow
def test_plans_over_the_api_and_the_cli_and_an_apply_by_the_cli_on_celery_workers(
    client, db, db_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url, celery_queue
):
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    demo = load_demo(db, tmp_path)
    leads = draft_leads(client, db, demo, 30)
    model_id = jp_security_to_cam_jp(client, demo["admin"])
    worker = Worker("cli", redis_url, celery_queue, tmp_path / "cli.log", concurrency=2)
    try:
        worker.wait_ready()
        # over the API: 202, and the worker that finishes the last chunk finishes the plan
        monkeypatch.setenv("PRM_BATCH_BACKEND", "celery")
        monkeypatch.setenv("PRM_CELERY_BROKER_URL", redis_url)
        monkeypatch.setenv("PRM_CELERY_QUEUE", celery_queue)
        started = client.post(
            "/v1/reassignment-runs",
            json={"territory_model_id": model_id, "chunk_size": 4},
            headers=demo["admin"],
        )
        assert started.status_code == 202, started.get_data(as_text=True)
        assert started.get_json()["status"] == "planning"
        wait_status(db, started.get_json()["id"], "planned", timeout=120)
        by_api = ok(client.get(started.headers["Location"], headers=demo["admin"]))
        assert (by_api["moved"], by_api["evaluated"]) == (30, 30)
        # the CLI waits for the workers and finishes the run itself
        planned = _prm(db_url, redis_url, celery_queue, "plan", "--model", str(model_id), "--json")
        assert planned.returncode == 2, planned.stderr  # something would change
        run = json.loads(planned.stdout)
        assert (run["status"], run["moved"]) == ("planned", 30)
        assert run["content_hash"] == by_api["content_hash"]  # the same plan, whoever finished it
        applied = _prm(db_url, redis_url, celery_queue, "apply", str(run["id"]), "--json")
        assert applied.returncode == 0, applied.stderr
        assert (json.loads(applied.stdout)["status"], json.loads(applied.stdout)["applied"]) == (
            "applied",
            30,
        )
    finally:
        worker.stop()
    assert "prm.batch.chunk" in (tmp_path / "cli.log").read_text()
    assert history_counts(db, run["id"]) == [(lead, 1) for lead in leads]
