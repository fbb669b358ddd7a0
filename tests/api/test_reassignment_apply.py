"""Applying reassignment plans (issue 9) on SQLite and PostgreSQL: exactly the planned leads move, each
with one history row naming the run; a lead changed since the plan is skipped with the reason; pending
rounds are re-routed and the new approvers told; one digest per CAM; cancel; revert restores every
lead's previous assignment; each transition policy for approved registrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from common.outbox import OutboxMessage
from registration.reassignment import service
from registration.reassignment.planning import RunStatus
from tests.api.approvals_support import act, ok
from tests.api.leads_support import Demo, load_demo
from tests.api.reassignment_support import (
    CAM,
    approved_lead,
    draft_lead,
    items,
    jp_security_to_cam_jp,
    lead_lock,
    pending_leads,
    plan,
    reassigned_rows,
    sales_team,
)


@pytest.fixture
def demo(db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Demo:
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    return load_demo(db, tmp_path)


def _apply(client: Any, admin: dict[str, str], run_id: int, status: int = 200) -> dict[str, Any]:
    return ok(client.post(f"/v1/reassignment-runs/{run_id}/apply", headers=admin), status)


def _round_approvers(client: Any, headers: dict[str, str], lead_id: int) -> list[tuple[str, list[str]]]:
    rounds = ok(client.get(f"/v1/leads/{lead_id}/approval-rounds", headers=headers))["items"]
    return [(r["status"], [a["user"] for a in r["steps"][0]["approvers"]]) for r in rounds]


def _digests(db) -> dict[str, dict[str, Any]]:
    with db.transaction() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "reassignment.digest")
        ).all()
        return {r.payload["to"]: r.payload for r in rows}


def test_apply_moves_exactly_the_planned_leads_reroutes_their_rounds_and_writes_history(client, db, demo):
    admin = demo["admin"]
    leads = pending_leads(client, demo, 3)
    withdrawn = draft_lead(client, demo)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin), chunk_size=2)
    assert run["moved"] == 4

    applied = _apply(client, admin, run["id"])
    assert (applied["status"], applied["applied"], applied["skipped"]) == ("applied", 4, 0)
    for lead_id in leads:
        (row,) = reassigned_rows(db, lead_id)
        assert row.details["reassignment_run_id"] == run["id"]
        assert (row.before["cam"], row.after["cam"]) == ("cam-jp-security", "cam-jp")
        # the old approver's open round is closed as reassigned; the new CAM approves now
        assert _round_approvers(client, admin, lead_id) == [
            ("reassigned", ["cam-jp-security"]),
            ("open", ["cam-jp"]),
        ]
        assert (demo.ids["cam-jp"], "channel_account_manager") in sales_team(client, admin, lead_id)
        assert (demo.ids["cam-jp-security"], "channel_account_manager") not in sales_team(
            client, admin, lead_id
        )
    worklist = ok(client.get("/v1/worklist", headers=demo["cam-jp"]))["items"]
    assert sorted(i["lead_id"] for i in worklist) == leads
    assert ok(client.get("/v1/worklist", headers=demo["cam-jp-security"]))["items"] == []
    # the drafts follow the new territory without a round
    assert len(reassigned_rows(db, withdrawn)) == 1
    assert _round_approvers(client, admin, withdrawn)[-1][0] == "withdrawn"
    # the new CAM can approve the re-routed registration
    assert ok(act(client, demo["cam-jp"], leads[0], "approve", {"comment": "ok"}))["status"] == "approved"

    # one digest per CAM who gains or loses leads, not one mail per lead
    digests = _digests(db)
    assert {p["user_id"] for p in digests.values()} == {demo.ids["cam-jp"], demo.ids["cam-jp-security"]}
    gained = next(p for p in digests.values() if p["user_id"] == demo.ids["cam-jp"])
    assert (gained["gained"], gained["lost"]) == (4, 0)
    # each re-routed registration told its new approver (not the old one), in the run's transaction
    with db.transaction() as session:
        told = session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"%:reassignment-{run['id']}:%"))
        ).all()
    approver_mails = sorted(m.payload["lead_id"] for m in told if m.payload["user_id"] == demo.ids["cam-jp"])
    assert approver_mails == leads
    assert not [m for m in told if m.payload["user_id"] == demo.ids["cam-jp-security"]]
    # the lead history shows the run; planning again finds nothing left to move
    history = ok(client.get(f"/v1/leads/{leads[1]}/history", headers=admin))["items"]
    assert "reassigned" in [h["action"] for h in history]
    assert plan(client, admin, territory_model_id=run["territory_model_id"])["moved"] == 0
    # a run is applied once
    assert client.post(f"/v1/reassignment-runs/{run['id']}/apply", headers=admin).status_code == 409


def test_an_apply_reads_back_only_the_ids_of_the_leads_it_moved(client, db, demo):
    # run by the session, a DELETE of a team's rows fetched every deleted row's id back (RETURNING) to
    # synchronize a session that held none of them: a third of the apply's own CPU at scale
    from common.batch import database_for

    admin = demo["admin"]
    pending_leads(client, demo, 2)
    draft_lead(client, demo)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin), chunk_size=2)
    engine = database_for(db.url).engine
    writes: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert _apply(client, admin, run["id"])["applied"] == 3
    finally:
        event.remove(engine, "before_cursor_execute", record)
    team_writes = [w for w in writes if "lead_territories" in w or "lead_sales_team" in w]
    assert team_writes, writes  # (the statements were seen)
    # what comes back is the leads moved (and those whose team was updated in place), no team row's id
    returned = {
        # (the table changed, the column returned, unqualified as SQLite writes it)
        (
            w.removeprefix("DELETE FROM ").split()[1 if w.startswith("UPDATE") else 0],
            w.split(" RETURNING ")[1],
        )
        for w in writes
        if " RETURNING " in w and not w.startswith("INSERT")
    }
    assert {(table, column.split(".")[-1]) for table, column in returned} == {
        ("leads", "id"),
        ("lead_territories", "lead_id"),
        ("lead_sales_team", "lead_id"),
    }, writes


def _team_rows(db, lead_id: int) -> tuple[list[tuple[int, int | None, str]], list[tuple[int, int, str, str]]]:
    """The lead's territory team and sales team rows, in their order (by id), with their ids."""
    from registration.leads.models import LeadTerritory, SalesTeamMember

    with db.transaction() as session:
        territories = session.execute(
            select(LeadTerritory.id, LeadTerritory.territory_model_id, LeadTerritory.territory_key)
            .where(LeadTerritory.lead_id == lead_id)
            .order_by(LeadTerritory.id)
        ).all()
        members = session.execute(
            select(SalesTeamMember.id, SalesTeamMember.user_id, SalesTeamMember.role, SalesTeamMember.source)
            .where(SalesTeamMember.lead_id == lead_id)
            .order_by(SalesTeamMember.id)
        ).all()
    return [tuple(t) for t in territories], [tuple(m) for m in members]


def test_teams_of_one_row_are_updated_in_place_and_any_other_team_replaced_in_one_chunk(client, db, demo):
    from registration.leads.models import LeadTerritory, SalesTeamMember
    from registration.reassignment.models import ReassignmentItem

    admin = demo["admin"]
    one, several, clash, wide = pending_leads(client, demo, 4)
    cam_jp, old_cam, overlay = demo.ids["cam-jp"], demo.ids["cam-jp-security"], demo.ids["cam-us"]
    active = _team_rows(db, one)[0][0][1]
    with db.transaction() as session:
        # a lead whose teams have two rows (a second territory, a second rule-assigned member) ...
        session.add(LeadTerritory(lead_id=several, territory_model_id=active, territory_key="JP"))
        session.add(SalesTeamMember(lead_id=several, user_id=overlay, role="overlay", source="assignment"))
        # ... and one whose team already holds the new CAM in that role, from another source
        session.add(SalesTeamMember(lead_id=clash, user_id=cam_jp, role=CAM, source="accepted"))
    before = {lead_id: _team_rows(db, lead_id) for lead_id in (one, several, clash, wide)}
    model_id = jp_security_to_cam_jp(client, admin)
    run = plan(client, admin, territory_model_id=model_id, chunk_size=10)
    assert run["moved"] == 4
    with db.transaction() as session:  # ... and one the plan gives teams of two (one row each now)
        item = session.scalars(
            select(ReassignmentItem).where(
                ReassignmentItem.run_id == run["id"], ReassignmentItem.lead_id == wide
            )
        ).one()
        item.after = {
            **item.after,
            "territory_team": ["JP-SEC-RESELL", "JP"],
            "resources": [{"user": "cam-jp", "role": CAM}, {"user": "cam-us", "role": "overlay"}],
        }

    assert _apply(client, admin, run["id"])["applied"] == 4
    after = {lead_id: _team_rows(db, lead_id) for lead_id in (one, several, clash, wide)}
    # one row each: the same rows (ids kept, so their places in the team), now the new territory and CAM
    (territory_id, _, key), *_ = before[one][0]
    assert after[one][0] == [(territory_id, model_id, key)]
    assert [(i, u, r, s) for i, u, r, s in after[one][1] if s == "assignment"] == [
        (i, cam_jp, CAM, "assignment") for i, u, r, s in before[one][1] if s == "assignment"
    ]
    # two rows each: replaced by the plan's team (one territory, the new CAM), the old rows gone
    assert [(m, k) for _, m, k in after[several][0]] == [(model_id, "JP-SEC-RESELL")]
    assert [(u, r) for _, u, r, s in after[several][1] if s == "assignment"] == [(cam_jp, CAM)]
    assert overlay not in [u for _, u, _, _ in after[several][1]]
    # the new CAM was a member already: kept once, from its own source; the old CAM gone
    assert [(u, r, s) for _, u, r, s in after[clash][1] if r == CAM] == [(cam_jp, CAM, "accepted")]
    assert old_cam not in [u for _, u, _, _ in after[clash][1]]
    # one row each becoming two: the plan's teams, in the plan's order
    assert [(m, k) for _, m, k in after[wide][0]] == [(model_id, "JP-SEC-RESELL"), (model_id, "JP")]
    assert [(u, r) for _, u, r, s in after[wide][1] if s == "assignment"] == [
        (cam_jp, CAM),
        (overlay, "overlay"),
    ]
    # and what the API shows agrees
    for lead_id in (one, several, clash, wide):
        assert (cam_jp, CAM) in sales_team(client, admin, lead_id)
        assert (old_cam, CAM) not in sales_team(client, admin, lead_id)


def test_a_lead_changed_or_locked_between_plan_and_apply_is_skipped_with_its_reason(client, db, demo):
    admin = demo["admin"]
    changed, locked, moved = pending_leads(client, demo, 3)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    ok(act(client, demo["northwind-user"], changed, "withdraw", {"comment": "not now"}))
    assert lead_lock(client, admin, locked, "customer escalation").status_code == 200

    applied = _apply(client, admin, run["id"])
    assert (applied["applied"], applied["skipped"]) == (1, 2)
    by_lead = {i["lead_id"]: i for i in items(client, admin, run["id"])}
    assert (by_lead[changed]["result"], by_lead[changed]["result_reason"]) == (
        "skipped",
        "changed since plan",
    )
    assert (by_lead[locked]["result"], by_lead[locked]["result_reason"]) == (
        "skipped",
        "locked since plan: customer escalation",
    )
    assert by_lead[moved]["result"] == "applied"
    assert reassigned_rows(db, changed) == [] and reassigned_rows(db, locked) == []
    assert _round_approvers(client, admin, locked) == [("open", ["cam-jp-security"])]
    assert ok(client.get(f"/v1/leads/{locked}/assignment-lock", headers=demo["cam-jp"]))["reason"] == (
        "customer escalation"
    )


def test_cancel_stops_an_applying_run_and_leaves_the_rest_untouched(client, db, demo):
    admin = demo["admin"]
    leads = pending_leads(client, demo, 3)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin), chunk_size=1)

    def cancel_after_first(done: int, total: int) -> None:
        if done == 1:
            service.cancel_run(db, None, run["id"])

    out = service.apply_run(db, None, run["id"], progress=cancel_after_first)
    assert (out.status, out.applied, out.cancel_requested) == (RunStatus.CANCELLED, 1, True)
    assert [len(reassigned_rows(db, lead_id)) for lead_id in leads] == [1, 0, 0]
    assert _round_approvers(client, admin, leads[2]) == [("open", ["cam-jp-security"])]
    # a planned run cancelled is never applied
    other = plan(client, admin, territory_model_id=run["territory_model_id"])
    assert (
        ok(client.post(f"/v1/reassignment-runs/{other['id']}/cancel", headers=admin))["status"] == "cancelled"
    )
    assert client.post(f"/v1/reassignment-runs/{other['id']}/apply", headers=admin).status_code == 409
    assert client.post(f"/v1/reassignment-runs/{other['id']}/cancel", headers=admin).status_code == 409


def test_revert_restores_every_leads_previous_assignment(client, db, demo):
    admin = demo["admin"]
    leads = pending_leads(client, demo, 2)
    withdrawn = draft_lead(client, demo)
    before = {
        lead_id: ok(client.get(f"/v1/leads/{lead_id}", headers=admin)) for lead_id in [*leads, withdrawn]
    }
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    _apply(client, admin, run["id"])

    revert = ok(client.post(f"/v1/reassignment-runs/{run['id']}/revert", headers=admin), 201)
    assert (revert["kind"], revert["reverts_run_id"], revert["moved"]) == ("revert", run["id"], 3)
    assert revert["by_cam"] == {
        "cam-jp": {"before": 3, "after": 0},
        "cam-jp-security": {"before": 0, "after": 3},
    }
    done = _apply(client, admin, revert["id"])
    assert done["applied"] == 3
    for lead_id, old in before.items():
        now = ok(client.get(f"/v1/leads/{lead_id}", headers=admin))
        assert now["territory_team"] == old["territory_team"]
        assert sales_team(client, admin, lead_id) == sorted(
            (m["user_id"], m["role"]) for m in old["sales_team"]
        )
        assert len(reassigned_rows(db, lead_id)) == 2
    for lead_id in leads:
        assert _round_approvers(client, admin, lead_id)[-1] == ("open", ["cam-jp-security"])
    # the active model again agrees with every lead
    assert plan(client, admin)["moved"] == 0


POLICY = """\
kind: policy
hit_policy: first
rules:
  - id: everything
    when: always
    then:
      expiry_days: 90
      reassignment: {{pending_approvals: {pending}, approved: {approved}}}
"""


def _activate_policy(client: Any, admin: dict[str, str], pending: str, approved: str) -> None:
    source = POLICY.format(pending=pending, approved=approved)
    ruleset = ok(
        client.post("/v1/rulesets", json={"name": "policy.yaml", "source": source}, headers=admin), 201
    )
    etag = client.get(f"/v1/rulesets/{ruleset['id']}", headers=admin).headers["ETag"]
    ok(client.post(f"/v1/rulesets/{ruleset['id']}/activate", headers={**admin, "If-Match": etag}))


@pytest.mark.parametrize(
    ("approved", "outcome", "owner"),
    [
        ("keep_owner", "keep", "cam-jp-security"),
        ("move_team", "move", "cam-jp-security"),
        ("move_owner", "move", "cam-jp"),
    ],
)
def test_approved_registrations_follow_the_policy(client, db, demo, approved, outcome, owner):
    admin = demo["admin"]
    lead = approved_lead(client, demo)
    _activate_policy(client, admin, "reroute", approved)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    (item,) = items(client, admin, run["id"])
    assert item["outcome"] == outcome
    if outcome == "keep":
        assert item["reason"].startswith(
            "policy: approved registrations keep their owner (approved: keep_owner)"
        )
    else:
        assert item["action"] == approved
    _apply(client, admin, run["id"])
    opportunity = ok(client.get(f"/v1/opportunities/{lead['opportunity_id']}", headers=admin))
    assert opportunity["owner_user_id"] == demo.ids[owner]
    moved_team = (demo.ids["cam-jp"], "channel_account_manager") in sales_team(client, admin, lead["id"])
    assert moved_team == (outcome == "move")


def test_pending_approvals_keep_their_approvers_when_the_policy_says_keep(client, demo):
    admin = demo["admin"]
    lead_id = pending_leads(client, demo, 1)[0]
    _activate_policy(client, admin, "keep", "keep_owner")
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    assert (run["moved"], run["kept"], run["kept_by_reason"]) == (0, 1, {"policy": 1})
    (item,) = items(client, admin, run["id"])
    assert item["lead_id"] == lead_id and "pending_approvals: keep" in item["reason"]


def test_a_policy_with_an_unknown_reassignment_choice_is_refused_at_load(client, demo):
    source = POLICY.format(pending="reroute", approved="give_away")
    resp = client.post("/v1/rulesets", json={"name": "policy.yaml", "source": source}, headers=demo["admin"])
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert "approved" in resp.get_data(as_text=True)


def test_a_chunk_delivered_twice_changes_nothing_the_second_time(client, db, demo):
    from common.batch import Chunk
    from registration.reassignment import apply_service, plan_service
    from registration.reassignment.models import ReassignmentChunk

    admin = demo["admin"]
    leads = pending_leads(client, demo, 2)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    _apply(client, admin, run["id"])
    with db.transaction() as session:
        chunks = [
            Chunk(c.run_id, c.phase, c.number, c.first_id, c.last_id)
            for c in session.scalars(select(ReassignmentChunk).where(ReassignmentChunk.run_id == run["id"]))
        ]
    for chunk in chunks:  # the same chunks again, as a redelivered task would run them
        task = apply_service.apply_chunk if chunk.phase == "apply" else plan_service.plan_chunk
        assert task(db.url, chunk) == {}
    assert [len(reassigned_rows(db, lead_id)) for lead_id in leads] == [1, 1]
    assert ok(client.get(f"/v1/reassignment-runs/{run['id']}", headers=admin))["applied"] == 2
    assert len(items(client, admin, run["id"])) == 2


def test_a_locked_opportunity_keeps_its_registration_where_it_is(client, demo):
    admin = demo["admin"]
    lead = approved_lead(client, demo)
    _activate_policy(client, admin, "reroute", "move_owner")
    path = f"/v1/opportunities/{lead['opportunity_id']}"
    etag = client.get(path, headers=admin).headers["ETag"]
    resp = client.put(
        f"{path}/assignment-lock", json={"reason": "renewal in flight"}, headers={**admin, "If-Match": etag}
    )
    assert resp.status_code == 200 and resp.get_json()["locked"] is True
    assert (
        client.put(
            f"{path}/assignment-lock",
            json={"reason": "x"},
            headers={**demo["northwind-user"], "If-Match": etag},
        ).status_code
        == 403
    )
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    (item,) = items(client, admin, run["id"])
    assert item["outcome"] == "keep" and item["reason"].startswith("locked: opportunity: renewal in flight")
    _apply(client, admin, run["id"])
    assert ok(client.get(path, headers=admin))["owner_user_id"] == demo.ids["cam-jp-security"]


def test_an_opportunity_locked_after_the_plan_is_skipped_at_apply_with_the_locks_reason(client, db, demo):
    admin = demo["admin"]
    lead = approved_lead(client, demo)
    other = approved_lead(client, demo)
    _activate_policy(client, admin, "reroute", "move_owner")
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    assert {i["lead_id"]: i["outcome"] for i in items(client, admin, run["id"])} == {
        lead["id"]: "move",
        other["id"]: "move",
    }
    # locked after the plan: the lock bumps the opportunity, not the lead, so only the re-check holds it
    path = f"/v1/opportunities/{lead['opportunity_id']}"
    etag = client.get(path, headers=admin).headers["ETag"]
    resp = client.put(
        f"{path}/assignment-lock",
        json={"reason": "renewal in flight"},
        headers={**demo["cam-jp-security"], "If-Match": etag},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    lead_version = ok(client.get(f"/v1/leads/{lead['id']}", headers=admin))["version"]

    applied = _apply(client, admin, run["id"])
    assert (applied["applied"], applied["skipped"]) == (1, 1)
    by_lead = {i["lead_id"]: i for i in items(client, admin, run["id"])}
    assert (by_lead[lead["id"]]["result"], by_lead[lead["id"]]["result_reason"]) == (
        "skipped",
        "locked since plan: opportunity: renewal in flight",
    )
    assert by_lead[other["id"]]["result"] == "applied"
    # the locked one is untouched: owner, team, version and history
    assert ok(client.get(path, headers=admin))["owner_user_id"] == demo.ids["cam-jp-security"]
    assert ok(client.get(f"/v1/leads/{lead['id']}", headers=admin))["version"] == lead_version
    assert reassigned_rows(db, lead["id"]) == []
    assert (demo.ids["cam-jp"], "channel_account_manager") not in sales_team(client, admin, lead["id"])
    moved = ok(client.get(f"/v1/opportunities/{other['opportunity_id']}", headers=admin))
    assert moved["owner_user_id"] == demo.ids["cam-jp"]
