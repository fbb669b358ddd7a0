"""Submitting a registration over HTTP on the demo data: required fields, the partner's agreement,
the registration number, assignment to the lowest-level CAM of the demo territory model, routing,
history and the approver preview. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from common.audit import AuditEvent
from directory.models import Organization, ProgramMembership
from registration.leads.models import RegistrationCounter
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def test_submit_routes_to_the_lowest_level_cam_of_the_demo_territory_model(client, demo):
    h = demo["northwind-user"]
    lead = created(client, h, jp_security_lead(demo)).get_json()
    resp = submit(client, h, lead["id"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "pending_approval"
    assert body["registration_number"] == "REG-000001"
    assert body["submitted_at"] is not None
    assert resp.headers["ETag"] == f'"{body["id"]}.{body["version"]}"'
    assert body["territory_team"] == [
        {"territory": "JP-SEC-RESELL", "territory_model_id": body["territory_team"][0]["territory_model_id"]}
    ]
    assert {
        "user_id": demo.ids["cam-jp-security"],
        "role": "channel_account_manager",
        "source": "assignment",
    } in (body["sales_team"])
    decision = client.get(f"/v1/decisions/{body['decision_id']}", headers=demo["admin"]).get_json()
    assert decision["result"]["cam"] == "cam-jp-security"
    assert decision["result"]["approval_steps"][0]["approvers"][0]["user"] == "cam-jp-security"
    assert decision["facts"]["customer"] == "C-0002" and decision["facts"]["product"] == "fw-1"


def test_submit_writes_history_for_submit_assignment_and_routing_with_ruleset_versions(client, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, jp_security_lead(demo)).get_json()["id"]
    assert submit(client, h, lead_id).status_code == 200
    items = client.get(f"/v1/leads/{lead_id}/history", headers=h).get_json()["items"]
    assert [i["action"] for i in items] == [
        "created",
        "submitted",
        "assigned",
        "routed",
        "approval_round_started",
    ]
    assert [(i["from_status"], i["to_status"]) for i in items] == [
        (None, "draft"),
        ("draft", "submitted"),
        (None, None),
        ("submitted", "pending_approval"),
        (None, None),
    ]
    assert all(i["actor_user_id"] == demo.ids["northwind-user"] for i in items)
    for item in items[1:4]:
        assert set(item["details"]["rulesets"]) == {"assignment", "approval", "policy"}
    assert items[1]["details"]["registration_number"] == "REG-000001"
    assert items[2]["details"]["territories"] == ["JP-SEC-RESELL"]
    assert items[3]["details"]["approvers"] == ["cam-jp-security"]
    assert items[4]["details"]["steps"][0]["approvers"] == ["cam-jp-security"]


def test_submit_reports_every_missing_field_at_once_and_changes_nothing(client, db, demo):
    h = demo["cam-jp"]
    resp = created(client, h, {"name": "Bare"})
    lead_id = resp.get_json()["id"]
    refused = submit(client, h, lead_id, resp.headers["ETag"])
    assert refused.status_code == 422
    problem = refused.get_json()
    assert refused.mimetype == "application/problem+json"
    assert [e["pointer"] for e in problem["errors"]] == [
        "/customer_id",
        "/products",
        "/partner_type",
        "/program",
        "/primary_partner_id",
        "/registration_type",
    ]
    after = client.get(f"/v1/leads/{lead_id}", headers=h)
    assert after.headers["ETag"] == resp.headers["ETag"]
    assert after.get_json()["status"] == "draft" and after.get_json()["registration_number"] is None
    # a failed attempt writes no history and no decision
    actions = [i["action"] for i in client.get(f"/v1/leads/{lead_id}/history", headers=h).get_json()["items"]]
    assert actions == ["created"]
    with db.transaction() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.entity_type == "decision")
            )
            == 0
        )


def test_registration_numbers_are_unique_and_kept_on_failed_attempts(client, demo):
    h = demo["northwind-user"]
    bare = created(client, h, {"name": "Incomplete"}).get_json()["id"]
    assert submit(client, h, bare).status_code == 422  # takes no number
    numbers = []
    for _ in range(3):
        lead_id = created(client, h, jp_security_lead(demo)).get_json()["id"]
        resp = submit(client, h, lead_id)
        assert resp.status_code == 200, resp.get_json()
        numbers.append(resp.get_json()["registration_number"])
    assert numbers == ["REG-000001", "REG-000002", "REG-000003"]


def _numbers_continue_after(db, last_value: int) -> None:
    """Set the registration numbers' series (PostgreSQL's sequence, SQLite's counter row)."""
    with db.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT setval('registration_numbers', :value)"), {"value": last_value})
        else:
            session.execute(update(RegistrationCounter).values(last_value=last_value))


def test_registration_numbers_start_a_missing_counter_and_grow_past_six_digits(client, db, demo):
    h = demo["northwind-user"]
    with db.transaction() as session:
        session.execute(delete(RegistrationCounter))  # SQLite creates it again; PostgreSQL never reads it
    numbers = []
    for last_value in (None, 999_998):
        if last_value is not None:
            _numbers_continue_after(db, last_value)
        for _ in range(2):
            lead_id = created(client, h, jp_security_lead(demo)).get_json()["id"]
            resp = submit(client, h, lead_id)
            assert resp.status_code == 200, resp.get_json()
            numbers.append(resp.get_json()["registration_number"])
    assert numbers == ["REG-000001", "REG-000002", "REG-999999", "REG-1000000"]


def test_submitting_twice_answers_409_with_the_current_status(client, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, jp_security_lead(demo)).get_json()["id"]
    first = submit(client, h, lead_id)
    assert first.status_code == 200
    again = submit(client, h, lead_id, first.headers["ETag"])
    assert again.status_code == 409
    assert again.get_json()["current_status"] == "pending_approval"
    assert again.get_json()["type"].endswith("invalid-transition")


def test_submit_needs_the_current_etag(client, demo):
    h = demo["northwind-user"]
    resp = created(client, h, jp_security_lead(demo))
    lead_id, etag = resp.get_json()["id"], resp.headers["ETag"]
    assert client.post(f"/v1/leads/{lead_id}/submit", headers=h).status_code == 428
    patched = client.patch(f"/v1/leads/{lead_id}", json={"name": "Renamed"}, headers={**h, "If-Match": etag})
    assert patched.status_code == 200
    stale = submit(client, h, lead_id, etag)
    assert stale.status_code == 412
    assert client.get(f"/v1/leads/{lead_id}", headers=h).get_json()["status"] == "draft"


def test_a_pending_registration_is_read_only_except_notes(client, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, jp_security_lead(demo)).get_json()["id"]
    submitted = submit(client, h, lead_id)
    etag = submitted.headers["ETag"]
    refused = client.patch(f"/v1/leads/{lead_id}", json={"name": "Changed"}, headers={**h, "If-Match": etag})
    assert refused.status_code == 409
    assert refused.get_json()["current_status"] == "pending_approval"
    assert client.post(f"/v1/leads/{lead_id}/notes", json={"text": "any news?"}, headers=h).status_code == 201
    assert client.get(f"/v1/leads/{lead_id}", headers=h).headers["ETag"] == etag


def test_a_partner_whose_agreement_no_longer_allows_registration_cannot_submit(client, db, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, jp_security_lead(demo)).get_json()["id"]
    with db.transaction() as session:
        org = session.get(Organization, demo.ids["northwind"])
        org.can_register_leads = False
    resp = submit(client, h, lead_id)
    assert resp.status_code == 409
    problem = resp.get_json()
    assert problem["type"].endswith("registration-not-allowed")
    assert "northwind" in problem["detail"]
    assert client.get(f"/v1/leads/{lead_id}", headers=h).get_json()["registration_number"] is None


def test_a_program_the_partner_is_not_a_member_of_cannot_be_registered_under(client, db, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, jp_security_lead(demo, program="co-sell")).get_json()["id"]
    resp = submit(client, h, lead_id)
    assert resp.status_code == 409
    assert "no membership in program co-sell" in resp.get_json()["detail"]
    with db.transaction() as session:  # an expired membership does not count either
        membership = session.scalar(
            select(ProgramMembership).where(ProgramMembership.organization_id == demo.ids["northwind"])
        )
        membership.valid_to = membership.valid_from
    lead_id = created(client, h, jp_security_lead(demo)).get_json()["id"]
    assert submit(client, h, lead_id).status_code == 409


def test_the_approver_preview_says_who_would_approve_and_why_without_storing(client, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, jp_security_lead(demo, deal_size=400000)).get_json()["id"]
    preview = client.get(f"/v1/leads/{lead_id}/approver-preview", headers=h)
    assert preview.status_code == 200, preview.get_json()
    body = preview.get_json()
    assert body["submittable"] is True and body["missing_fields"] == [] and body["blockers"] == []
    assert [(a["step"], a["user"]) for a in body["approvers"]] == [
        ("channel account manager", "cam-jp-security"),
        ("channel sales director", "dir-global"),
    ]
    assert "JP-SEC" in body["approvers"][0]["why"]
    assert body["lowest_territories"] == ["JP-SEC-RESELL"]
    assert body["trace"] is None  # partners see the result, not the internal trace
    assert client.get(f"/v1/leads/{lead_id}/approver-preview", headers=demo["admin"]).get_json()["trace"]
    lead = client.get(f"/v1/leads/{lead_id}", headers=h).get_json()
    assert lead["decision_id"] is None and lead["territory_team"] == []
    assert [
        i["action"] for i in client.get(f"/v1/leads/{lead_id}/history", headers=h).get_json()["items"]
    ] == ["created"]


def test_the_approver_preview_lists_what_is_missing(client, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, {"name": "Early"}).get_json()["id"]
    body = client.get(f"/v1/leads/{lead_id}/approver-preview", headers=h).get_json()
    assert body["submittable"] is False
    assert [m["field"] for m in body["missing_fields"]] == [
        "customer",
        "primary_product",
        "partner_program",
        "registration_type",
    ]
    assert body["blockers"] == ["the lead names no partner program"]
