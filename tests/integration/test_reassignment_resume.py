"""A reassignment apply killed with SIGKILL (the ``prm`` process and its pool of workers) and resumed
with ``prm reassign resume``: every planned lead moved exactly once (one history row per lead and run,
one re-routed round each), the same result as the plan applied without a kill. Real processes, on
PostgreSQL (and on SQLite)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from common.audit import AuditEvent
from registration.approval.models import ApprovalRound
from registration.reassignment.apply_service import applied_items
from registration.reassignment.models import ReassignmentChunk, ReassignmentItem, ReassignmentRun
from tests.api.leads_support import load_demo
from tests.api.reassignment_support import jp_security_to_cam_jp, pending_leads, plan

PRM = Path(sys.executable).parent / "prm"
LEADS = 40


def _prm(database: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
    env.update(
        PRM_DATABASE_URL=database, PRM_LOG_FORMAT="text", PRM_BATCH_BACKEND="local", PRM_BATCH_WORKERS="2"
    )
    return subprocess.Popen(
        [str(PRM), "reassign", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes the workers too
    )


def _done_chunks(db, run_id: int) -> int:
    # A read takes no write lock: on SQLite a transaction begins IMMEDIATE, and a poller queueing for
    # the write lock behind the apply's chunks could first get it after the last chunk.
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    ReassignmentChunk.run_id == run_id,
                    ReassignmentChunk.phase == "apply",
                    ReassignmentChunk.done_at.is_not(None),
                )
            )
            or 0
        )


@pytest.mark.slow
def test_an_apply_killed_mid_run_resumes_and_moves_every_planned_lead_exactly_once(
    client, db, db_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    demo = load_demo(db, tmp_path)
    admin = demo["admin"]
    leads = pending_leads(client, demo, LEADS)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin), chunk_size=1)
    assert run["moved"] == LEADS

    applying = _prm(db_url, "apply", str(run["id"]))
    deadline = time.monotonic() + 120
    while _done_chunks(db, run["id"]) < 3:
        assert applying.poll() is None, applying.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(applying.pid, signal.SIGKILL)
    applying.communicate(timeout=30)  # reaped, its pipes closed
    killed_at = _done_chunks(db, run["id"])
    assert 3 <= killed_at < LEADS, "the kill came mid-run"
    with db.transaction() as session:
        assert session.get(ReassignmentRun, run["id"]).status == "applying"

    resumed = _prm(db_url, "resume", str(run["id"]))
    out, err = resumed.communicate(timeout=240)
    assert "applied" in out
    assert resumed.returncode == 0, err

    with db.transaction() as session:
        stored = session.get(ReassignmentRun, run["id"])
        assert (stored.status, stored.applied, stored.skipped) == ("applied", LEADS, 0)
        applied = session.scalars(applied_items(run["id"], ReassignmentItem.lead_id)).all()
        assert sorted(applied) == sorted(leads)
        assert (
            session.scalar(
                select(func.count()).where(
                    ReassignmentItem.run_id == run["id"], ReassignmentItem.result.is_not(None)
                )
            )
            == 0
        )
        history = session.execute(
            select(AuditEvent.entity_id, func.count())
            .where(AuditEvent.entity_type == "lead", AuditEvent.action == "reassigned")
            .group_by(AuditEvent.entity_id)
        ).all()
        assert sorted(history) == [(lead_id, 1) for lead_id in leads]
        rounds = session.execute(
            select(ApprovalRound.lead_id, ApprovalRound.status, func.count()).group_by(
                ApprovalRound.lead_id, ApprovalRound.status
            )
        ).all()
        assert sorted(rounds) == sorted(
            [(lead_id, status, 1) for lead_id in leads for status in ("open", "reassigned")]
        )
    # the same result as a plan applied without a kill: nothing is left to move
    assert plan(client, admin, territory_model_id=run["territory_model_id"])["moved"] == 0
