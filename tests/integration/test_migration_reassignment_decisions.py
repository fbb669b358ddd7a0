"""Migration 0025 on a database with reassignment runs, both ways, on SQLite and PostgreSQL: an applied
run keeps its applied items (read from its chunks once the per-item mark is gone), and a plan not yet
applied gets the decisions its items carried stored, so applying it after the upgrade moves its leads
with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text

from common import migrate
from registration.leads.models import Lead
from registration.reassignment.apply_service import applied_items
from registration.reassignment.models import ReassignmentItem
from rules.models import StoredDecision
from tests.api.approvals_support import ok
from tests.api.leads_support import load_demo
from tests.api.reassignment_support import jp_security_to_cam_jp, pending_leads, plan


@pytest.mark.slow
def test_0025_keeps_applied_runs_and_stores_the_decisions_of_plans_not_applied(
    client, db, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    demo = load_demo(db, tmp_path)
    admin = demo["admin"]
    model_id = jp_security_to_cam_jp(client, admin)
    applied_leads = pending_leads(client, demo, 2)
    applied_run = plan(client, admin, territory_model_id=model_id)
    ok(client.post(f"/v1/reassignment-runs/{applied_run['id']}/apply", headers=admin))
    planned_leads = pending_leads(client, demo, 2)
    planned_run = plan(client, admin, territory_model_id=model_id)
    assert planned_run["moved"] == 2

    db.engine.dispose()
    command.downgrade(migrate.alembic_config(db_url), "0024")
    with db.engine.connect() as conn:
        old = {
            lead: (result, result_json is not None, decision_id)
            for lead, result, result_json, decision_id in conn.execute(
                text("SELECT lead_id, result, result_json, decision_id FROM reassignment_items")
            )
        }
    # the earlier form: the applied items marked, the pending ones carrying their decision's result
    assert {lead: old[lead][0] for lead in applied_leads} == dict.fromkeys(applied_leads, "applied")
    assert {lead: old[lead] for lead in planned_leads} == dict.fromkeys(planned_leads, (None, True, None))

    db.engine.dispose()
    migrate.upgrade(db_url)
    with db.transaction() as session:
        assert (
            sorted(session.scalars(applied_items(applied_run["id"], ReassignmentItem.lead_id)))
            == applied_leads
        )
        stored = {
            item.lead_id: session.get(StoredDecision, item.decision_id)
            for item in session.scalars(
                select(ReassignmentItem).where(ReassignmentItem.run_id == planned_run["id"])
            )
        }
        assert sorted(stored) == planned_leads
        for lead_id, decision in stored.items():
            lead = session.get(Lead, lead_id)
            assert decision is not None and decision.subject_id == lead_id
            assert decision.territory_model_id == model_id and decision.result["cam"] == "cam-jp"
            assert decision.trace["reassignment_run_id"] == planned_run["id"]
            assert decision.id != lead.decision_id  # not in force before the apply

    applied = ok(client.post(f"/v1/reassignment-runs/{planned_run['id']}/apply", headers=admin))
    assert (applied["status"], applied["applied"]) == ("applied", 2)
    with db.transaction() as session:
        for lead_id, decision in stored.items():
            assert session.get(Lead, lead_id).decision_id == decision.id
