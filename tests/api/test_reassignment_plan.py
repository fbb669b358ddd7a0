"""Planning and reviewing batch reassignment runs (issue 9, DESIGN.md 2.7) over HTTP and the CLI, on
SQLite and PostgreSQL: the plan lists each lead that would move with before, after and why; kept leads
come with their reason; nothing but the plan is stored; the CLI exits 2 when something would change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.batch import ProcessPoolBackend
from registration.reassignment import schemas as rs
from registration.reassignment import service
from tests.api.approvals_support import ok
from tests.api.leads_support import Demo, load_demo
from tests.api.reassignment_support import (
    items,
    jp_security_to_cam_jp,
    lead_lock,
    pending_leads,
    plan,
    reassigned_rows,
)


@pytest.fixture
def demo(db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Demo:
    monkeypatch.setenv("PRM_BATCH_BACKEND", "inline")
    return load_demo(db, tmp_path)


def test_plan_lists_each_lead_that_would_move_with_before_after_and_why(client, db, demo):
    admin = demo["admin"]
    leads = pending_leads(client, demo, 3)
    model_id = jp_security_to_cam_jp(client, admin)

    run = plan(client, admin, territory_model_id=model_id, chunk_size=2)
    assert run["status"] == "planned" and run["kind"] == "plan"
    assert (run["moved"], run["kept"], run["total_leads"]) == (3, 0, 3)
    assert len(run["content_hash"]) == 64 and run["progress"] == 1.0
    assert run["by_cam"] == {
        "cam-jp": {"before": 0, "after": 3},
        "cam-jp-security": {"before": 3, "after": 0},
    }
    assert run["by_territory"] == {"JP-SEC-RESELL": {"before": 3, "after": 3}}

    found = items(client, admin, run["id"])  # two per page: the cursor is followed
    assert sorted(i["lead_id"] for i in found) == leads
    for item in found:
        assert item["outcome"] == "move" and item["action"] == "reroute" and item["result"] is None
        assert item["before"]["cam"] == "cam-jp-security" and item["after"]["cam"] == "cam-jp"
        assert item["before"]["approvers"] == ["cam-jp-security"] and item["after"]["approvers"] == ["cam-jp"]
        assert "CAM cam-jp-security -> cam-jp" in item["reason"]
        assert "approvers cam-jp-security -> cam-jp" in item["reason"]

    # nothing but the plan was stored: the leads are where they were
    assert all(reassigned_rows(db, lead_id) == [] for lead_id in leads)
    rounds = ok(client.get(f"/v1/leads/{leads[0]}/approval-rounds", headers=admin))["items"]
    assert [a["user"] for a in rounds[-1]["steps"][0]["approvers"]] == ["cam-jp-security"]
    # the plan stored the decisions it made, none in force before the apply: each lead keeps its own,
    # and a preview of the model still finds every lead moving (from the decision in force)
    decisions = {i["decision_id"] for i in found}
    assert None not in decisions and len(decisions) == 3
    assert all(ok(client.get(f"/v1/leads/{i}", headers=admin))["decision_id"] not in decisions for i in leads)
    preview = ok(client.post(f"/v1/territory-models/{model_id}/preview", json={"sample": 5}, headers=admin))
    assert preview["moved"] == 3 and preview["by_cam"]["cam-jp"] == {"before": 0, "after": 3}
    assert sorted(m["subject_id"] for m in preview["sample"]) == leads

    again = plan(client, admin, territory_model_id=model_id, chunk_size=1)
    assert again["content_hash"] == run["content_hash"] and again["id"] != run["id"]
    assert ok(client.get(f"/v1/reassignment-runs/{run['id']}", headers=admin))["moved"] == 3
    listed = ok(client.get("/v1/reassignment-runs", headers=demo["cam-jp"]))["items"]
    assert [r["id"] for r in listed] == [run["id"], again["id"]]


def test_plan_of_the_active_model_moves_nothing(client, demo):
    pending_leads(client, demo, 2)
    run = plan(client, demo["admin"])
    assert (run["moved"], run["kept"], run["evaluated"], run["total_leads"]) == (0, 0, 2, 2)
    assert run["by_cam"] == {} and run["by_territory"] == {}


def test_locked_lead_is_kept_with_the_reason_of_its_lock(client, demo):
    admin = demo["admin"]
    locked, free = pending_leads(client, demo, 2)
    assert lead_lock(client, demo["cam-jp"], locked, "key account, keep with Haruto").status_code == 200
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    assert (run["moved"], run["kept"]) == (1, 1)
    assert run["kept_by_reason"] == {"locked": 1}
    (kept,) = items(client, admin, run["id"], "outcome=keep")
    assert kept["lead_id"] == locked
    assert kept["reason"].startswith("locked: key account, keep with Haruto; ")
    (moved,) = items(client, admin, run["id"], "outcome=move")
    assert moved["lead_id"] == free


def test_items_filter_by_territory_and_refuse_a_forged_cursor(client, demo):
    admin = demo["admin"]
    pending_leads(client, demo, 2)
    run = plan(client, admin, territory_model_id=jp_security_to_cam_jp(client, admin))
    assert len(items(client, admin, run["id"], "territory=JP-SEC-RESELL")) == 2
    assert items(client, admin, run["id"], "territory=DE") == []
    resp = client.get(f"/v1/reassignment-runs/{run['id']}/items?cursor=bm9wZQ", headers=admin)
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert client.get("/v1/reassignment-runs/999999", headers=admin).status_code == 404


def test_plan_scope_narrows_by_status_partner_and_territory(client, demo):
    admin = demo["admin"]
    pending_leads(client, demo, 2)
    model_id = jp_security_to_cam_jp(client, admin)
    assert plan(client, admin, territory_model_id=model_id, where={"status": ["draft"]})["total_leads"] == 0
    assert plan(client, admin, territory_model_id=model_id, where={"partner": "northwind"})["moved"] == 2
    assert plan(client, admin, territory_model_id=model_id, where={"territory": "DE"})["moved"] == 0
    since = plan(client, admin, territory_model_id=model_id, where={"updated_since": "2000-01-01T00:00:00Z"})
    assert since["moved"] == 2
    resp = client.post("/v1/reassignment-runs", json={"territory_model_id": 2_000_000_000}, headers=admin)
    assert resp.status_code == 422
    resp = client.post("/v1/reassignment-runs", json={"where": {"status": ["nope"]}}, headers=admin)
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["pointer"].startswith("/where/status")


def test_a_local_process_pool_plans_the_same_as_one_process(client, db, demo):
    admin = demo["admin"]
    pending_leads(client, demo, 5)
    model_id = jp_security_to_cam_jp(client, admin)
    inline = plan(client, admin, territory_model_id=model_id, chunk_size=2)
    pooled = service.create_run(
        db,
        None,
        rs.RunCreate(territory_model_id=model_id, chunk_size=2),
        backend=ProcessPoolBackend(2, inline_up_to=0),
    )
    assert pooled.content_hash == inline["content_hash"] and pooled.moved == 5


def test_cli_plan_exits_2_when_something_would_change_and_0_when_nothing_would(app, client, demo):
    admin = demo["admin"]
    pending_leads(client, demo, 2)
    model_id = jp_security_to_cam_jp(client, admin)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reassign", "plan", "--model", str(model_id)])
    assert result.exit_code == 2, result.output
    assert "2 to move" in result.output and "cam-jp-security" in result.output
    result = runner.invoke(args=["reassign", "plan"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        args=["reassign", "plan", "--model", str(model_id), "--json", "--where", "partner=northwind"]
    )
    assert result.exit_code == 2
    body = json.loads(result.output)
    assert body["moved"] == 2 and body["scope"] == {"partner": "northwind"}
    result = runner.invoke(args=["reassign", "show", str(body["id"]), "--moved", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["items"]) == 2
    result = runner.invoke(args=["reassign", "show", str(body["id"]), "--kept"])
    assert result.exit_code == 0 and "Leads of run" in result.output
    result = runner.invoke(args=["reassign", "plan", "--where", "status"])
    assert result.exit_code != 0 and "NAME=VALUE" in result.output
    result = runner.invoke(args=["reassign", "show", "999999"])
    assert result.exit_code == 1 and "not found" in result.output
