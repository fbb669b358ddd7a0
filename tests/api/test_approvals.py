"""The approval part of the registration workflow over HTTP on the demo data (DESIGN.md 1.1), one test
per path: approve -> opportunity; reject -> edit -> resubmit -> new round; request information -> answer
-> approve; withdraw -> resubmit; every wrong transition 409; who may act. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from directory.models import Customer
from registration.opportunities.models import Opportunity
from tests.api.approvals_support import act, actions, etag_of, ok, pending
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit

TWO_STEP_RULES = """\
kind: approval
hit_policy: collect
fallback_approver: dir-global
rules:
  - id: either-cam-then-both-managers
    when: always
    then:
      steps:
        - name: either cam
          users: [cam-jp-security, cam-jp]
          mode: parallel
        - name: both managers
          users: [mgr-apac, dir-global]
          mode: all
"""


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_approval_converts_the_lead_into_an_opportunity_owned_by_the_lowest_level_cam(client, db, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = created(client, partner, jp_security_lead(demo)).get_json()
    ok(client.post(f"/v1/leads/{lead['id']}/notes", json={"text": "Customer wants Q1"}, headers=partner), 201)
    assert ok(submit(client, partner, lead["id"]))["status"] == "pending_approval"

    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=partner))["items"]
    assert [(r["number"], r["status"], r["current_step"]) for r in rounds] == [(1, "open", 1)]
    assert [a["user"] for a in rounds[0]["steps"][0]["approvers"]] == ["cam-jp-security"]
    assert [i["lead_id"] for i in ok(client.get("/v1/worklist", headers=cam))["items"]] == [lead["id"]]
    assert ok(client.get("/v1/worklist", headers=demo["cam-jp"]))["items"] == []

    # the CAM one level up is not an approver of this registration; a partner never approves
    assert act(client, demo["cam-jp"], lead["id"], "approve").status_code == 403
    assert act(client, partner, lead["id"], "approve").status_code == 403

    before = datetime.now().astimezone()
    body = ok(act(client, cam, lead["id"], "approve", {"comment": "good deal"}))
    assert body["status"] == "approved" and body["lead_status"] == "converted"
    expires = _parse(body["expires_at"])
    assert (
        before + timedelta(days=90) - timedelta(minutes=1) < expires < before + timedelta(days=90, minutes=1)
    )
    opp_id = body["opportunity_id"]
    assert opp_id is not None

    opp = ok(client.get(f"/v1/opportunities/{opp_id}", headers=partner))
    assert opp["owner_user_id"] == demo.ids["cam-jp-security"]
    assert opp["status"] == "open" and opp["number"] == "OPP-000001"
    assert opp["customer_id"] == demo.ids["C-0002"]
    assert opp["registration"]["lead_id"] == lead["id"]
    assert opp["registration"]["registration_number"] == body["registration_number"]
    assert opp["registration"]["expires_at"] == body["expires_at"]
    assert [(r["product_id"], r["primary"], r["amount"], r["currency"]) for r in opp["revenue_lines"]] == [
        (demo.ids["fw-1"], True, 50000.0, "JPY"),
        (demo.ids["id-cloud"], False, None, "JPY"),
    ]
    assert [(c["name"], c["email"], c["primary"]) for c in opp["contacts"]] == [
        ("Aiko Tanaka", "aiko@example.jp", True)
    ]
    assert [n["text"] for n in opp["notes"]] == ["Customer wants Q1"]
    assert [a["kind"] for a in opp["activities"]] == ["registration_approved"]
    team = {(m["user_id"], m["role"]) for m in opp["sales_team"]}
    assert (demo.ids["cam-jp-security"], "opportunity_owner") in team
    assert (demo.ids["northwind-user"], "partner_reseller") in team

    # approved: no longer editable, and the history tells the story
    etag = etag_of(client, partner, lead["id"])
    patched = client.patch(
        f"/v1/leads/{lead['id']}", json={"name": "x"}, headers={**partner, "If-Match": etag}
    )
    assert patched.status_code == 409
    history = ok(client.get(f"/v1/leads/{lead['id']}/history", headers=partner))["items"]
    approved = next(i for i in history if i["action"] == "approved")
    assert (approved["from_status"], approved["to_status"]) == ("pending_approval", "approved")
    assert approved["actor_user_id"] == demo.ids["cam-jp-security"] and approved["reason"] == "good deal"
    assert "approval_round_started" in [i["action"] for i in history]
    assert "opportunity_created" in [i["action"] for i in history]
    # another partner sees neither the lead nor the opportunity
    other = demo["contoso-user"]
    assert client.get(f"/v1/opportunities/{opp_id}", headers=other).status_code == 404
    assert ok(client.get("/v1/opportunities", headers=other))["items"] == []
    assert [o["id"] for o in ok(client.get("/v1/opportunities", headers=partner))["items"]] == [opp_id]
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Opportunity)) == 1


def test_rejection_needs_a_comment_and_a_resubmission_starts_a_new_round(client, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = pending(client, demo)
    missing = act(client, cam, lead["id"], "reject", {})
    assert missing.status_code == 422 and missing.mimetype == "application/problem+json"
    assert missing.get_json()["errors"][0]["pointer"] == "/comment"
    assert act(client, cam, lead["id"], "reject", {"comment": "  "}).status_code == 422
    assert client.get(f"/v1/leads/{lead['id']}", headers=partner).get_json()["status"] == "pending_approval"

    body = ok(act(client, cam, lead["id"], "reject", {"comment": "duplicate of an open opportunity"}))
    assert body["status"] == "rejected" and body["lead_status"] == "open" and body["opportunity_id"] is None
    history = ok(client.get(f"/v1/leads/{lead['id']}/history", headers=partner))["items"]
    rejected = next(i for i in history if i["action"] == "rejected")
    assert rejected["reason"] == "duplicate of an open opportunity"
    assert (rejected["from_status"], rejected["to_status"]) == ("pending_approval", "rejected")

    etag = etag_of(client, partner, lead["id"])
    edited = client.patch(
        f"/v1/leads/{lead['id']}",
        json={"description": "not a duplicate"},
        headers={**partner, "If-Match": etag},
    )
    assert edited.status_code == 200
    assert ok(submit(client, partner, lead["id"]))["status"] == "pending_approval"
    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=partner))["items"]
    assert [(r["number"], r["status"]) for r in rounds] == [(1, "rejected"), (2, "open")]
    first = rounds[0]["steps"][0]["approvers"][0]
    assert (first["decision"], first["comment"]) == ("rejected", "duplicate of an open opportunity")
    assert ok(act(client, cam, lead["id"], "approve"))["status"] == "approved"
    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=partner))["items"]
    assert [(r["number"], r["status"]) for r in rounds] == [(1, "rejected"), (2, "approved")]


def test_request_for_information_is_a_task_the_submitter_answers_and_the_same_approvers_resume(client, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = pending(client, demo)
    assert act(client, cam, lead["id"], "request-info", {}).status_code == 422
    assert act(client, demo["cam-jp"], lead["id"], "request-info", {"question": "?"}).status_code == 403
    body = ok(act(client, cam, lead["id"], "request-info", {"question": "Which sites?"}))
    assert body["status"] == "info_requested"
    tasks = ok(client.get(f"/v1/leads/{lead['id']}/tasks", headers=partner))["items"]
    assert [(t["kind"], t["status"], t["question"], t["assignee_user_id"]) for t in tasks] == [
        ("provide_information", "open", "Which sites?", demo.ids["northwind-user"])
    ]
    refused = act(client, cam, lead["id"], "approve")
    assert refused.status_code == 409 and refused.get_json()["current_status"] == "info_requested"
    # only the submitter's side answers
    assert act(client, cam, lead["id"], "submit-info", {"text": "x"}).status_code == 403
    assert act(client, partner, lead["id"], "submit-info", {}).status_code == 422

    body = ok(act(client, partner, lead["id"], "submit-info", {"text": "Tokyo and Osaka"}))
    assert body["status"] == "pending_approval"
    tasks = ok(client.get(f"/v1/leads/{lead['id']}/tasks", headers=partner))["items"]
    assert [(t["status"], t["answer"], t["answered_by"]) for t in tasks] == [
        ("done", "Tokyo and Osaka", demo.ids["northwind-user"])
    ]
    notes = ok(client.get(f"/v1/leads/{lead['id']}/notes", headers=cam))["items"]
    assert [n["text"] for n in notes] == ["Tokyo and Osaka"]
    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=cam))["items"]
    assert [(r["number"], r["status"], r["current_step"]) for r in rounds] == [(1, "open", 1)]
    assert [i["lead_id"] for i in ok(client.get("/v1/worklist", headers=cam))["items"]] == [lead["id"]]

    body = ok(act(client, cam, lead["id"], "approve"))
    assert body["status"] == "approved"
    opp = ok(client.get(f"/v1/opportunities/{body['opportunity_id']}", headers=partner))
    assert [a["kind"] for a in opp["activities"]] == ["information_requested", "registration_approved"]
    assert [n["text"] for n in opp["notes"]] == ["Tokyo and Osaka"]
    history = ok(client.get(f"/v1/leads/{lead['id']}/history", headers=partner))["items"]
    moves = [(i["from_status"], i["to_status"]) for i in history if i["to_status"]]
    assert moves == [
        (None, "draft"),
        ("draft", "submitted"),
        ("submitted", "pending_approval"),
        ("pending_approval", "info_requested"),
        ("info_requested", "pending_approval"),
        ("pending_approval", "approved"),
    ]


def test_withdrawn_registration_can_be_submitted_again_in_a_new_round(client, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = pending(client, demo)
    assert act(client, cam, lead["id"], "withdraw").status_code == 403  # the CAM is not the submitter
    body = ok(act(client, partner, lead["id"], "withdraw", {"comment": "customer paused"}))
    assert body["status"] == "withdrawn"
    refused = act(client, cam, lead["id"], "approve")
    assert refused.status_code == 409 and refused.get_json()["current_status"] == "withdrawn"
    assert ok(client.get("/v1/worklist", headers=cam))["items"] == []
    assert ok(submit(client, partner, lead["id"]))["status"] == "pending_approval"
    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=partner))["items"]
    assert [(r["number"], r["status"]) for r in rounds] == [(1, "withdrawn"), (2, "open")]
    assert rounds[0]["steps"][0]["status"] == "cancelled"
    assert ok(act(client, cam, lead["id"], "approve"))["status"] == "approved"


WRONG = {
    "draft": ["approve", "reject", "request-info", "submit-info", "withdraw"],
    "pending_approval": ["submit-info"],
    "info_requested": ["approve", "reject", "request-info"],
    "approved": ["approve", "reject", "request-info", "submit-info", "withdraw"],
    "rejected": ["approve", "reject", "request-info", "submit-info", "withdraw"],
    "withdrawn": ["approve", "reject", "request-info", "submit-info", "withdraw"],
}
BODIES = {"reject": {"comment": "no"}, "request-info": {"question": "?"}, "submit-info": {"text": "x"}}


def _lead_in(client, demo, status: str) -> int:
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    if status == "draft":
        return int(created(client, partner, jp_security_lead(demo)).get_json()["id"])
    lead_id = int(pending(client, demo)["id"])
    steps = {
        "pending_approval": [],
        "info_requested": [(cam, "request-info")],
        "approved": [(cam, "approve")],
        "rejected": [(cam, "reject")],
        "withdrawn": [(partner, "withdraw")],
    }[status]
    for who, action in steps:
        ok(act(client, who, lead_id, action, BODIES.get(action)))
    return lead_id


@pytest.mark.parametrize("status", sorted(WRONG))
def test_every_wrong_transition_answers_409_with_the_current_status_and_changes_nothing(client, demo, status):
    lead_id = _lead_in(client, demo, status)
    admin = demo["admin"]  # may act as approver and as submitter: only the transition table refuses
    before = client.get(f"/v1/leads/{lead_id}", headers=admin)
    history = actions(client, admin, lead_id)
    for action in WRONG[status]:
        resp = act(client, admin, lead_id, action, BODIES.get(action))
        assert resp.status_code == 409, (action, resp.get_data(as_text=True))
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["current_status"] == status
    after = client.get(f"/v1/leads/{lead_id}", headers=admin)
    assert after.headers["ETag"] == before.headers["ETag"]
    assert actions(client, admin, lead_id) == history  # failed attempts write no history


def test_a_decision_needs_the_current_etag(client, demo):
    cam = demo["cam-jp-security"]
    lead = pending(client, demo)
    no_etag = client.post(f"/v1/leads/{lead['id']}/approve", json={}, headers=cam)
    assert no_etag.status_code == 428
    stale = act(client, cam, lead["id"], "approve", etag=f'"{lead["id"]}.{lead["version"] - 1}"')
    assert stale.status_code == 412
    assert client.get(f"/v1/leads/{lead['id']}", headers=cam).get_json()["status"] == "pending_approval"


def test_only_the_registrations_approvers_territory_staff_or_an_admin_change_the_expiry(client, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = pending(client, demo)
    new = (datetime.now().astimezone() + timedelta(days=200)).isoformat()

    def change(headers, when=new):
        etag = etag_of(client, demo["admin"], lead["id"])
        return client.patch(
            f"/v1/leads/{lead['id']}/expiry", json={"expires_at": when}, headers={**headers, "If-Match": etag}
        )

    refused = change(cam)
    assert refused.status_code == 409 and refused.get_json()["current_status"] == "pending_approval"
    approved = ok(act(client, cam, lead["id"], "approve"))
    # channel staff of other territories are refused like the roles that never change an expiry
    for who in ("northwind-user", "northwind-admin", "cam-us", "mgr-emea", "integration", "rep-us"):
        if who in demo.headers:
            resp = change(demo[who])
            assert resp.status_code == 403, (who, resp.get_data(as_text=True))
    assert change(cam, "2020-01-01T00:00:00+00:00").status_code == 422  # before the approval
    assert change(cam, "2030-01-01T00:00:00").status_code == 422  # no offset
    body = ok(change(demo["cam-jp"]))  # the CAM of JP, above the lead's territory
    assert _parse(body["expires_at"]) == _parse(new)
    later = (datetime.now().astimezone() + timedelta(days=300)).isoformat()
    assert _parse(ok(change(demo["admin"], later))["expires_at"]) == _parse(later)
    opp = ok(client.get(f"/v1/opportunities/{approved['opportunity_id']}", headers=partner))
    assert _parse(opp["registration"]["expires_at"]) == _parse(later)
    history = ok(client.get(f"/v1/leads/{lead['id']}/history", headers=partner))["items"]
    changes = [i for i in history if i["action"] == "expiry_changed"]
    assert [c["actor_user_id"] for c in changes] == [demo.ids["cam-jp"], demo.ids["admin"]]


def test_serial_steps_run_in_order_and_the_cam_owns_the_opportunity(client, demo):
    cam, director = demo["cam-jp-security"], demo["dir-global"]
    lead = pending(client, demo, deal_size=400000)  # the demo rules add the director as a second step
    assert act(client, director, lead["id"], "approve").status_code == 403  # not the director's turn yet
    assert ok(client.get("/v1/worklist", headers=director))["items"] == []
    body = ok(act(client, cam, lead["id"], "approve"))
    assert body["status"] == "pending_approval" and body["opportunity_id"] is None
    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=cam))["items"]
    assert rounds[0]["current_step"] == 2
    assert [s["status"] for s in rounds[0]["steps"]] == ["approved", "pending"]
    assert ok(client.get("/v1/worklist", headers=cam))["items"] == []
    assert [i["step"] for i in ok(client.get("/v1/worklist", headers=director))["items"]] == [
        "channel sales director"
    ]
    assert act(client, cam, lead["id"], "approve").status_code == 403  # step 1 is done
    body = ok(act(client, director, lead["id"], "approve"))
    assert body["status"] == "approved"
    opp = ok(client.get(f"/v1/opportunities/{body['opportunity_id']}", headers=director))
    assert opp["owner_user_id"] == demo.ids["cam-jp-security"]
    assert "step_approved" in actions(client, cam, lead["id"])


def _activate(client, admin, source: str) -> None:
    resp = client.post("/v1/rulesets", json={"name": "two-steps.yaml", "source": source}, headers=admin)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    rid = resp.get_json()["id"]
    etag = client.get(f"/v1/rulesets/{rid}", headers=admin).headers["ETag"]
    ok(client.post(f"/v1/rulesets/{rid}/activate", headers={**admin, "If-Match": etag}))


def test_a_parallel_step_is_decided_by_its_first_decision_and_an_all_step_by_everyone(client, demo):
    _activate(client, demo["admin"], TWO_STEP_RULES)
    cam_sec, cam_jp, mgr, director = (
        demo[k] for k in ("cam-jp-security", "cam-jp", "mgr-apac", "dir-global")
    )
    lead = pending(client, demo)
    for who in (cam_sec, cam_jp):  # both see it while the parallel step waits
        assert [i["lead_id"] for i in ok(client.get("/v1/worklist", headers=who))["items"]] == [lead["id"]]
    assert ok(act(client, cam_jp, lead["id"], "approve"))["status"] == "pending_approval"
    assert act(client, cam_sec, lead["id"], "approve").status_code == 403  # the step is decided
    assert ok(act(client, mgr, lead["id"], "approve"))["status"] == "pending_approval"  # all: one of two
    assert act(client, mgr, lead["id"], "approve").status_code == 409  # already decided
    body = ok(act(client, director, lead["id"], "approve"))
    assert body["status"] == "approved"
    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=cam_jp))["items"]
    decisions = [[a["decision"] for a in s["approvers"]] for s in rounds[0]["steps"]]
    assert decisions == [[None, "approved"], ["approved", "approved"]]
    opp = ok(client.get(f"/v1/opportunities/{body['opportunity_id']}", headers=cam_jp))
    assert opp["owner_user_id"] == demo.ids["cam-jp"]  # the approving CAM, not the managers

    # in a parallel step the first decision may also be a reject, which ends the round
    second = pending(client, demo)
    assert ok(act(client, cam_sec, second["id"], "reject", {"comment": "no"}))["status"] == "rejected"
    assert act(client, cam_jp, second["id"], "approve").status_code == 409
    # in an "all" step any reject rejects
    third = pending(client, demo)
    ok(act(client, cam_sec, third["id"], "approve"))
    ok(act(client, director, third["id"], "approve"))
    assert ok(act(client, mgr, third["id"], "reject", {"comment": "too big"}))["status"] == "rejected"


def test_an_admin_may_decide_any_step(client, demo):
    lead = pending(client, demo)
    body = ok(act(client, demo["admin"], lead["id"], "approve"))
    assert body["status"] == "approved"
    rounds = ok(client.get(f"/v1/leads/{lead['id']}/approval-rounds", headers=demo["admin"]))["items"]
    assert rounds[0]["steps"][0]["approvers"][-1]["role"] == "admin_override"
    opp = ok(client.get(f"/v1/opportunities/{body['opportunity_id']}", headers=demo["admin"]))
    assert opp["owner_user_id"] == demo.ids["admin"]


def _change_partner(client, demo: Demo, partner: str, body: dict[str, object]) -> None:
    path = f"/v1/organizations/{demo.ids[partner]}"
    etag = client.get(path, headers=demo["admin"]).headers["ETag"]
    ok(client.patch(path, json=body, headers={**demo["admin"], "If-Match": etag}))


def test_approval_checks_the_partner_agreement_and_membership_again(client, demo):
    cam = demo["cam-jp-security"]
    lead = pending(client, demo)
    _change_partner(client, demo, "northwind", {"can_register_leads": False})
    refused = act(client, cam, lead["id"], "approve")
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    problem = refused.get_json()
    assert problem["type"].endswith("registration-not-allowed")
    assert "partner agreement of northwind" in problem["detail"]
    assert "can no longer be approved" in problem["detail"]

    _change_partner(client, demo, "northwind", {"can_register_leads": True, "programs": []})
    refused = act(client, cam, lead["id"], "approve")
    assert refused.status_code == 409
    assert "northwind has no membership in program resell" in refused.get_json()["detail"]
    after = ok(client.get(f"/v1/leads/{lead['id']}", headers=demo["admin"]))
    assert after["status"] == "pending_approval" and after["opportunity_id"] is None
    assert after["version"] == lead["version"]
    assert "approved" not in actions(client, demo["admin"], lead["id"])

    membership = {"program": "resell", "tier": "gold", "valid_from": "2000-01-01"}
    _change_partner(client, demo, "northwind", {"programs": [membership]})
    assert ok(act(client, cam, lead["id"], "approve"))["status"] == "approved"


def _round_approvers(client, demo: Demo, lead_id: int) -> list[list[str]]:
    rounds = ok(client.get(f"/v1/leads/{lead_id}/approval-rounds", headers=demo["admin"]))["items"]
    return [[ap["user"] for st in r["steps"] for ap in st["approvers"]] for r in rounds]


def test_a_resubmitted_registration_goes_to_the_channel_roles_on_the_lead(client, db, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = pending(client, demo)
    assert [t["territory"] for t in lead["territory_team"]] == ["JP-SEC-RESELL"]
    assert _round_approvers(client, demo, lead["id"]) == [["cam-jp-security"]]
    ok(act(client, cam, lead["id"], "reject", {"comment": "wrong customer"}))

    with db.transaction() as session:  # an Australian customer: its own match would be another CAM's
        australian = session.scalar(select(Customer.id).where(Customer.country == "AU").limit(1))
    etag = etag_of(client, partner, lead["id"])
    edited = client.patch(
        f"/v1/leads/{lead['id']}", json={"customer_id": australian}, headers={**partner, "If-Match": etag}
    )
    assert edited.status_code == 200, edited.get_json()
    preview = ok(client.get(f"/v1/leads/{lead['id']}/approver-preview", headers=demo["admin"]))
    assert [a["user"] for a in preview["approvers"]] == ["cam-jp-security"]
    again = ok(submit(client, partner, lead["id"]))
    assert again["territory_team"] == lead["territory_team"]
    assert (cam_row := [m for m in again["sales_team"] if m["role"] == "channel_account_manager"])
    assert {m["user_id"] for m in cam_row} == {demo.ids["cam-jp-security"]}
    assert _round_approvers(client, demo, lead["id"]) == [["cam-jp-security"], ["cam-jp-security"]]
    decision = ok(client.get(f"/v1/decisions/{again['decision_id']}", headers=demo["admin"]))
    assert decision["result"]["lowest_territories"] == ["JP-SEC-RESELL"]
    assert decision["result"]["territories_from"] == "territory_team"
    assert act(client, demo["cam-jp"], lead["id"], "approve").status_code == 403
    assert ok(act(client, cam, lead["id"], "approve"))["status"] == "approved"


REASSIGNING_POLICY = """\
kind: policy
hit_policy: first
rules:
  - id: resubmissions-are-assigned-afresh
    when: always
    then:
      reassign_on_resubmit: true
"""


def test_with_the_policy_a_resubmitted_registration_is_assigned_afresh_team_and_approvers(client, db, demo):
    admin, partner, cam = demo["admin"], demo["northwind-user"], demo["cam-jp-security"]
    created_rs = ok(
        client.post("/v1/rulesets", json={"name": "p.yaml", "source": REASSIGNING_POLICY}, headers=admin), 201
    )
    etag = client.get(f"/v1/rulesets/{created_rs['id']}", headers=admin).headers["ETag"]
    ok(client.post(f"/v1/rulesets/{created_rs['id']}/activate", headers={**admin, "If-Match": etag}))
    lead = pending(client, demo)
    assert [t["territory"] for t in lead["territory_team"]] == ["JP-SEC-RESELL"]
    ok(act(client, cam, lead["id"], "reject", {"comment": "wrong customer"}))
    with db.transaction() as session:
        australian = session.scalar(select(Customer.id).where(Customer.country == "AU").limit(1))
    etag = etag_of(client, partner, lead["id"])
    ok(
        client.patch(
            f"/v1/leads/{lead['id']}", json={"customer_id": australian}, headers={**partner, "If-Match": etag}
        )
    )

    again = ok(submit(client, partner, lead["id"]))
    decision = ok(client.get(f"/v1/decisions/{again['decision_id']}", headers=admin))["result"]
    assert "territories_from" not in decision  # a fresh match
    assert (
        [t["territory"] for t in again["territory_team"]] == decision["territory_team"] != ["JP-SEC-RESELL"]
    )
    cams = {m["user_id"] for m in again["sales_team"] if m["role"] == "channel_account_manager"}
    assert cams == {demo.ids[decision["cam"]]} and demo.ids["cam-jp-security"] not in cams
    round_two = _round_approvers(client, demo, lead["id"])[1]
    assert round_two == [a["user"] for st in decision["approval_steps"] for a in st["approvers"]]
    assert round_two == [decision["cam"]]  # the new team's CAM: never the old team's beside it
    history = ok(client.get(f"/v1/leads/{lead['id']}/history", headers=admin))["items"]
    reassigned = [i for i in history if i["action"] == "assigned"][-1]["details"]
    assert reassigned["replaced_territories"] == ["JP-SEC-RESELL"]
    assert {"user_id": demo.ids["cam-jp-security"], "role": "channel_account_manager"} in reassigned[
        "replaced_resources"
    ]
