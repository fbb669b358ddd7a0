"""Reassignment runs started over the API on a backend other than ``inline`` answer 202 with the run's
status URL and finish without the request (the local pool here; Celery in
tests/integration/test_celery_faults.py); the finish behind each chunk is idempotent; the database
refuses a second history row of one lead and run; a revert's chunks stream the item ids. SQLite and
PostgreSQL."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.exc import IntegrityError

from common.audit import AuditEvent
from common.batch import Chunk, InlineBackend, backend_named
from common.clock import utcnow
from registration.reassignment import apply_service, run_service, service
from registration.reassignment.models import ReassignmentChunk, ReassignmentItem, ReassignmentRun
from registration.reassignment.schemas import RunCreate
from tests.api.approvals_support import ok
from tests.api.leads_support import Demo, load_demo
from tests.api.reassignment_support import draft_lead, jp_security_to_cam_jp, reassigned_rows


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _poll(client: Any, admin: dict[str, str], url: str, status: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = ok(client.get(url, headers=admin))
        if run["status"] == status:
            return run
        assert run["status"] in ("planning", "applying"), run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def test_plan_apply_and_revert_on_the_local_pool_answer_202_and_finish_in_the_background(
    client, db, demo, monkeypatch: pytest.MonkeyPatch
):
    admin = demo["admin"]
    leads = [draft_lead(client, demo) for _ in range(3)]
    model_id = jp_security_to_cam_jp(client, admin)
    monkeypatch.setenv("PRM_BATCH_BACKEND", "local")
    monkeypatch.setenv("PRM_BATCH_WORKERS", "1")
    try:
        started = client.post(
            "/v1/reassignment-runs", json={"territory_model_id": model_id, "chunk_size": 2}, headers=admin
        )
        assert started.status_code == 202, started.get_data(as_text=True)
        url = started.headers["Location"]
        assert url == f"/v1/reassignment-runs/{started.get_json()['id']}"
        assert started.get_json()["status"] == "planning"
        planned = _poll(client, admin, url, "planned")
        assert planned["moved"] == 3 and planned["content_hash"]

        applying = client.post(f"{url}/apply", headers=admin)
        assert applying.status_code == 202, applying.get_data(as_text=True)
        assert applying.headers["Location"] == url
        assert applying.get_json()["status"] == "applying"
        applied = _poll(client, admin, url, "applied")
        assert (applied["applied"], applied["skipped"]) == (3, 0)
        for lead in leads:
            assert len(reassigned_rows(db, lead)) == 1

        reverting = client.post(f"{url}/revert", headers=admin)
        assert reverting.status_code == 202, reverting.get_data(as_text=True)
        revert = _poll(client, admin, reverting.headers["Location"], "planned")
        assert (revert["kind"], revert["moved"], revert["evaluated"]) == ("revert", 3, 3)
    finally:
        run_service.wait_for_background(120)


def test_the_inline_backend_keeps_the_request_synchronous(client, demo, monkeypatch: pytest.MonkeyPatch):
    admin = demo["admin"]
    draft_lead(client, demo)
    model_id = jp_security_to_cam_jp(client, admin)
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    run = ok(client.post("/v1/reassignment-runs", json={"territory_model_id": model_id}, headers=admin), 201)
    assert run["status"] == "planned"
    assert ok(client.post(f"/v1/reassignment-runs/{run['id']}/apply", headers=admin))["status"] == "applied"


def _planned(client: Any, db, demo: Demo, leads: int) -> int:
    for _ in range(leads):
        draft_lead(client, demo)
    model_id = jp_security_to_cam_jp(client, demo["admin"])
    run = service.create_run(
        db, None, RunCreate(territory_model_id=model_id, chunk_size=1), backend=InlineBackend()
    )
    assert run.moved == leads
    return run.id


def _audit_actions(db, run_id: int) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.entity_type == "reassignment_run", AuditEvent.entity_id == run_id)
                .order_by(AuditEvent.id)
            )
        )


def test_the_finish_behind_each_chunk_finishes_an_apply_once_and_only_when_it_is_complete(client, db, demo):
    run_id = _planned(client, db, demo, 2)
    with db.transaction() as session:  # what apply does before it hands out the chunks
        run = session.get(ReassignmentRun, run_id)
        run.status, run.apply_started_at = "applying", utcnow()
        service._create_apply_chunks(session, run)
    chunks = run_service.pending_chunks(db, run_id, apply_service.PHASE)
    assert len(chunks) == 2

    apply_service.apply_chunk(db.url, chunks[0])
    run_service.finish_chunk(db.url, chunks[0])
    assert ok(client.get(f"/v1/reassignment-runs/{run_id}", headers=demo["admin"]))["status"] == "applying"
    apply_service.apply_chunk(db.url, chunks[1])
    for chunk in (chunks[1], chunks[0], chunks[1]):  # the last chunk's finish, then redeliveries
        run_service.finish_chunk(db.url, chunk)
    run = ok(client.get(f"/v1/reassignment-runs/{run_id}", headers=demo["admin"]))
    assert (run["status"], run["applied"], run["skipped"]) == ("applied", 2, 0)
    assert _audit_actions(db, run_id).count("applied") == 1


def test_the_finish_behind_each_chunk_finishes_a_plan_once_and_a_cancelled_apply_too(client, db, demo):
    admin = demo["admin"]
    for _ in range(2):
        draft_lead(client, demo)
    model_id = jp_security_to_cam_jp(client, admin)
    run = service.create_run(
        db, None, RunCreate(territory_model_id=model_id, chunk_size=1), backend=InlineBackend()
    )
    assert _audit_actions(db, run.id).count("planned") == 1
    run_service.finish_chunk(db.url, Chunk(run.id, "plan", 1, 0, 0))  # a late redelivery changes nothing
    assert _audit_actions(db, run.id).count("planned") == 1

    with db.transaction() as session:
        stored = session.get(ReassignmentRun, run.id)
        stored.status, stored.apply_started_at = "applying", utcnow()
        service._create_apply_chunks(session, stored)
    chunks = run_service.pending_chunks(db, run.id, apply_service.PHASE)
    apply_service.apply_chunk(db.url, chunks[0])
    ok(client.post(f"/v1/reassignment-runs/{run.id}/cancel", headers=admin))
    assert apply_service.apply_chunk(db.url, chunks[1]) == {}  # a chunk after the cancel does nothing
    run_service.finish_chunk(db.url, chunks[1])
    stored_run = ok(client.get(f"/v1/reassignment-runs/{run.id}", headers=admin))
    assert (stored_run["status"], stored_run["applied"]) == ("cancelled", 1)


def test_the_database_refuses_a_second_history_row_of_one_lead_and_run(client, db, demo):
    run_id = _planned(client, db, demo, 1)
    service.apply_run(db, None, run_id, backend=InlineBackend())
    (row,) = _lead_history(db)
    copy = {
        "occurred_at": utcnow(),
        "entity_type": "lead",
        "entity_id": row.entity_id,
        "action": "reassigned",
        "details": {"reassignment_run_id": run_id},
    }
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.execute(insert(AuditEvent), [copy])
    with db.transaction() as session:  # another run, or another kind of row, is fine
        session.execute(insert(AuditEvent), [{**copy, "details": {"reassignment_run_id": run_id + 1}}])
        session.execute(insert(AuditEvent), [{**copy, "action": "updated"}])


def _lead_history(db) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.entity_type == "lead", AuditEvent.action == "reassigned")
            )
        )


def test_a_revert_cuts_its_chunks_from_streamed_item_ids(client, db, demo):
    run_id = _planned(client, db, demo, 3)
    service.apply_run(db, None, run_id, backend=InlineBackend())
    streamed: list[bool] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        # the applied items' ids, read from the run's finished apply chunks
        if re.match(
            r"SELECT reassignment_items\.id\s+FROM reassignment_chunks JOIN reassignment_items\b", statement
        ):
            streamed.append(bool(context.execution_options.get("yield_per")))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        revert = service.revert_run(db, None, run_id, backend=InlineBackend())
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert streamed and all(streamed), streamed
    assert (revert.moved, revert.status) == (3, "planned")
    with db.transaction() as session:
        assert session.scalar(select(ReassignmentRun.chunk_size).where(ReassignmentRun.id == revert.id)) == 1
    assert run_service.pending_chunks(db, revert.id, "plan") == []


def test_the_celery_backend_is_chosen_by_its_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRM_BATCH_BACKEND", "celery")
    monkeypatch.setenv("PRM_CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    monkeypatch.setenv("PRM_CELERY_QUEUE", "prm-settings-test")
    monkeypatch.setenv("PRM_CELERY_VISIBILITY_TIMEOUT", "30")
    backend = backend_named()
    assert backend.name == "celery"
    conf = backend.app.conf  # type: ignore[attr-defined]
    assert (conf.broker_url, conf.task_default_queue) == ("redis://127.0.0.1:6379/14", "prm-settings-test")
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 30
    assert backend_named() is backend  # one per process and settings
    monkeypatch.setenv("PRM_BATCH_BACKEND", "elsewhere")
    with pytest.raises(ValueError, match="'local', 'inline' or 'celery'"):
        backend_named()


def test_an_unreachable_broker_answers_503_and_the_run_waits_for_resume(
    client, db, demo, monkeypatch: pytest.MonkeyPatch
):
    run_id = _planned(client, db, demo, 2)
    monkeypatch.setenv("PRM_BATCH_BACKEND", "celery")
    monkeypatch.setenv("PRM_CELERY_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    resp = client.post(f"/v1/reassignment-runs/{run_id}/apply", headers=demo["admin"])
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.content_type == "application/problem+json"
    problem = resp.get_json()
    assert problem["run_id"] == run_id and f"prm reassign resume {run_id}" in problem["detail"]
    with db.transaction() as session:
        stored = session.get(ReassignmentRun, run_id)
        assert stored.status == "applying" and "cannot be reached" in (stored.error or "")
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    resumed = service.resume_run(db, None, run_id, backend=InlineBackend())
    assert (resumed.status, resumed.applied) == ("applied", 2)


def test_an_apply_is_cut_into_chunks_of_the_runs_size_each_counting_its_moves(client, db, demo):
    for _ in range(5):
        draft_lead(client, demo)
    model_id = jp_security_to_cam_jp(client, demo["admin"])
    run = service.create_run(
        db, None, RunCreate(territory_model_id=model_id, chunk_size=2), backend=InlineBackend()
    )
    assert run.moved == 5
    service.apply_run(db, None, run.id, backend=InlineBackend())
    with db.transaction() as session:
        chunks = session.execute(
            select(ReassignmentChunk.number, ReassignmentChunk.size, ReassignmentChunk.first_id)
            .where(ReassignmentChunk.run_id == run.id, ReassignmentChunk.phase == apply_service.PHASE)
            .order_by(ReassignmentChunk.number)
        ).all()
        items = session.scalars(
            select(ReassignmentItem.id).where(ReassignmentItem.run_id == run.id).order_by(ReassignmentItem.id)
        ).all()
    assert [(n, size) for n, size, _ in chunks] == [(1, 2), (2, 2), (3, 1)]
    assert [first for _, _, first in chunks] == [items[0], items[2], items[4]]
