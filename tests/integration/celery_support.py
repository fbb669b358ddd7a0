"""Helpers of the Celery tests: many leads made quickly (one through the API, the rest copied row by
row in SQL), real ``prm worker`` processes on a queue of the test's own, and the state a reassignment
apply leaves, in a form two databases can be compared by."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select

from common.audit import AuditEvent
from common.database import Database
from registration.leads.models import Lead, LeadProduct, LeadTerritory, SalesTeamMember
from registration.reassignment.apply_service import applied_items
from registration.reassignment.models import ReassignmentChunk, ReassignmentItem, ReassignmentRun
from rules.models import StoredDecision
from tests.api.leads_support import Demo
from tests.api.reassignment_support import draft_lead

PRM = Path(sys.executable).parent / "prm"


def draft_leads(client: Any, db: Database, demo: Demo, n: int) -> list[int]:
    """``n`` withdrawn JP security leads (assigned once, so a plan re-decides them): the first made
    through the API, the others copies of it (same facts, decision, territories and sales team)."""
    template = draft_lead(client, demo)
    leads = Lead.__table__
    assert isinstance(leads, Table)
    with db.transaction() as session:
        row = dict(session.execute(select(leads).where(leads.c.id == template)).mappings().one())
        products = [
            {"product_id": p.product_id, "is_primary": p.is_primary}
            for p in session.scalars(select(LeadProduct).where(LeadProduct.lead_id == template))
        ]
        territories = [
            {"territory_key": t.territory_key, "territory_model_id": t.territory_model_id}
            for t in session.scalars(select(LeadTerritory).where(LeadTerritory.lead_id == template))
        ]
        team = [
            {"user_id": m.user_id, "role": m.role, "source": m.source}
            for m in session.scalars(select(SalesTeamMember).where(SalesTeamMember.lead_id == template))
        ]
        del row["id"]
        ids = [template]
        for i in range(1, n):
            copy = {**row, "name": f"Copy {i}", "registration_number": None}
            ids.append(int(session.execute(insert(leads).values(copy).returning(leads.c.id)).scalar_one()))
        session.execute(insert(LeadProduct), [{"lead_id": i, **p} for i in ids[1:] for p in products])
        if territories:
            session.execute(
                insert(LeadTerritory), [{"lead_id": i, **t} for i in ids[1:] for t in territories]
            )
        if team:
            session.execute(insert(SalesTeamMember), [{"lead_id": i, **m} for i in ids[1:] for m in team])
    return ids


class Worker:
    """One ``prm worker`` process (in a process group of its own, so a kill takes its pool too)."""

    def __init__(
        self,
        name: str,
        broker: str,
        queue: str,
        log: Path,
        *,
        concurrency: int = 1,
        visibility: int = 4,
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
        env.update(
            PRM_LOG_FORMAT="text",
            PRM_CELERY_BROKER_URL=broker,
            PRM_CELERY_QUEUE=queue,
            PRM_CELERY_VISIBILITY_TIMEOUT=str(visibility),
        )
        self.name = name
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            [str(PRM), "worker", "--concurrency", str(concurrency), "--hostname", f"{name}@%h"],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log.read_bytes():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"worker {self.name} not ready:\n{self.log.read_text()}"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._out.close()

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._out.close()


def done_chunks(db: Database, run_id: int, phase: str = "apply") -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    ReassignmentChunk.run_id == run_id,
                    ReassignmentChunk.phase == phase,
                    ReassignmentChunk.done_at.is_not(None),
                )
            )
            or 0
        )


def wait_status(db: Database, run_id: int, status: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with db.transaction() as session:
            current = session.scalar(select(ReassignmentRun.status).where(ReassignmentRun.id == run_id))
        if current == status:
            return
        assert time.monotonic() < deadline, f"run {run_id} is {current}, not {status}"
        time.sleep(0.1)


def outcome(db: Database, run_id: int) -> dict[str, Any]:
    """What the apply of ``run_id`` left, without ids that depend on the order chunks ran in."""
    with db.transaction() as session:
        run = session.get(ReassignmentRun, run_id)
        assert run is not None
        decisions: dict[int, Any] = dict(
            session.execute(
                select(Lead.id, StoredDecision.result).join(
                    StoredDecision, StoredDecision.id == Lead.decision_id
                )
            ).all()
        )
        return {
            "run": (run.status, run.applied, run.skipped, run.moved, run.kept),
            "leads": sorted(session.execute(select(Lead.id, Lead.version, Lead.status)).all()),
            "decisions": sorted(decisions.items()),
            "territories": sorted(
                session.execute(
                    select(
                        LeadTerritory.lead_id, LeadTerritory.territory_key, LeadTerritory.territory_model_id
                    )
                ).all()
            ),
            "sales_team": sorted(
                session.execute(
                    select(
                        SalesTeamMember.lead_id,
                        SalesTeamMember.user_id,
                        SalesTeamMember.role,
                        SalesTeamMember.source,
                    )
                ).all()
            ),
            "items": sorted(
                session.execute(
                    select(
                        ReassignmentItem.lead_id, ReassignmentItem.result, ReassignmentItem.result_reason
                    ).where(ReassignmentItem.run_id == run_id)
                ).all()
            ),
            "applied": sorted(session.scalars(applied_items(run_id, ReassignmentItem.lead_id))),
            "history": sorted(
                (e.entity_id, repr(e.before), repr(e.after), e.reason, e.details.get("reassignment_run_id"))
                for e in session.scalars(
                    select(AuditEvent).where(
                        AuditEvent.entity_type == "lead", AuditEvent.action == "reassigned"
                    )
                )
            ),
        }


def history_counts(db: Database, run_id: int) -> list[tuple[int, int]]:
    """(lead, history rows naming the run) for every lead the run moved."""
    with db.transaction() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.entity_type == "lead", AuditEvent.action == "reassigned")
        ).all()
        counts: dict[int, int] = {}
        for e in rows:
            if (e.details or {}).get("reassignment_run_id") == run_id:
                counts[e.entity_id] = counts.get(e.entity_id, 0) + 1
        return sorted(counts.items())
