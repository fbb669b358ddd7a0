"""A partner that keeps our transfer as a lead keeps the deal's stage and open/won/lost with it, and the
opportunity the lead converts into takes them over; while it holds the lead it sends updates and queries
from the lead, as it would from an opportunity (issue 11: the lead's stage and status, lead endpoints).
Two real instances in one process; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo
from tests.transfer.pair_support import Partner, approve_kept_lead, change, connect, deliver_to

KINDS = ("contacts", "revenue_lines", "notes", "activities")


def _only(items: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = items
    return found


def _brand_transfer(client, demo: Demo, opp_id: int) -> dict[str, Any]:
    return _only(ok(client.get(f"/v1/opportunities/{opp_id}/transfers", headers=demo["admin"]))["items"])


def _lead_transfer(partner: Partner, lead_id: int) -> dict[str, Any]:
    resp = partner.client.get(f"/v1/leads/{lead_id}/transfers", headers=partner.demo["admin"])
    return _only(ok(resp)["items"])


def _transferred_as_lead(client, db, settings, demo: Demo, partner: Partner) -> tuple[int, int]:
    """A brand opportunity at stage "Proposal", transferred to the partner, which keeps it as a lead."""
    connect(client, demo, partner, inbound_creates="lead")
    lead = pending(client, demo)
    opp_id = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    path = f"/v1/opportunities/{opp_id}"
    change(client, demo["admin"], "PATCH", path, {"stage": "Proposal"})
    body = {"partner_organization_id": demo.ids["northwind"]}
    ok(client.post(f"{path}/transfers", json=body, headers=demo["admin"]), 202)
    assert deliver_to(db, settings, partner.app).sent == 1
    sent = _brand_transfer(client, demo, opp_id)
    assert (sent["status"], sent["remote_type"]) == ("successful", "lead"), sent
    return opp_id, int(sent["remote_id"])


def _partner_delivers(client, partner: Partner) -> None:
    report = deliver_to(partner.db, partner.app.extensions["prm.settings"], client.application)
    assert (report.sent, report.retrying, report.dead) == (1, 0, 0), report


def test_a_lead_keeps_the_deals_stage_and_status_and_its_opportunity_takes_them_over(
    client, db, settings, demo, partner
):
    opp_id, lead_id = _transferred_as_lead(client, db, settings, demo, partner)
    their_admin = partner.demo["admin"]
    lead = ok(partner.client.get(f"/v1/leads/{lead_id}", headers=their_admin))
    assert (lead["stage"], lead["deal_status"], lead["status"]) == ("Proposal", "open", "draft")

    # the brand owner moves the deal on and wins it; the update reaches the lead
    path = f"/v1/opportunities/{opp_id}"
    change(client, demo["admin"], "PATCH", path, {"stage": "Negotiation"})
    change(client, demo["admin"], "POST", f"{path}/close", {"status": "won"}, record=path)
    body = {"partner_organization_id": demo.ids["northwind"]}
    ok(client.post(f"{path}/transfers/send-update", json=body, headers=demo["admin"]), 202)
    assert deliver_to(db, settings, partner.app).sent == 1
    lead = ok(partner.client.get(f"/v1/leads/{lead_id}", headers=their_admin))
    assert (lead["stage"], lead["deal_status"]) == ("Negotiation", "won")
    # a query of the lead answers with them
    answer = ok(partner.client.get(f"/v1/leads/{lead_id}/transfers", headers=their_admin))
    assert answer["items"][0]["status"] == "successful"

    # the partner approves the lead: its opportunity carries the stage and the status
    their_opp_id = approve_kept_lead(partner, lead_id)
    theirs = ok(partner.client.get(f"/v1/opportunities/{their_opp_id}", headers=their_admin))
    assert (theirs["stage"], theirs["status"]) == ("Negotiation", "won")
    assert theirs["closed_at"] is not None


def test_the_lead_shows_the_deals_stage_and_status_in_the_openapi(client):
    spec = client.get("/docs/openapi.json").get_json()
    lead = spec["components"]["schemas"]["LeadOut"]["properties"]
    assert {"stage", "deal_status"} <= set(lead)
    paths = spec["paths"]
    assert {"/v1/leads/{id}/transfers/send-update", "/v1/leads/{id}/transfers/receive-update"} <= set(paths)
    assert {"/v1/partner-crm/{connection_key}/leads/update"} <= set(paths)


def test_the_partner_sends_updates_and_queries_from_the_lead_it_keeps(client, db, settings, demo, partner):
    opp_id, lead_id = _transferred_as_lead(client, db, settings, demo, partner)
    their_admin, brand_admin = partner.demo["admin"], demo["admin"]
    acme = {"partner_organization_id": partner.demo.ids["acme"]}
    path = f"/v1/opportunities/{opp_id}"
    before = ok(client.get(path, headers=brand_admin))

    # the partner renames its lead and sends the update from it
    lead_path = f"/v1/leads/{lead_id}"
    change(partner.client, their_admin, "PATCH", lead_path, {"name": "Renamed at the partner"})
    queued = ok(
        partner.client.post(f"{lead_path}/transfers/send-update", json=acme, headers=their_admin), 202
    )
    assert queued["status"] == "update_pending" and queued["lead_id"] == lead_id
    _partner_delivers(client, partner)
    assert _lead_transfer(partner, lead_id)["status"] == "successful"
    mine = ok(client.get(path, headers=brand_admin))
    assert mine["name"] == "Renamed at the partner"
    assert {k: len(mine[k]) for k in KINDS} == {k: len(before[k]) for k in KINDS}  # nothing came back new
    received = _brand_transfer(client, demo, opp_id)
    assert "update" in (received["message"] or "").lower(), received

    # the brand owner adds a note and a contact; the partner queries from its lead and gets them once
    change(client, brand_admin, "POST", f"{path}/notes", {"text": "Seen by the brand owner"})
    change(client, brand_admin, "POST", f"{path}/contacts", {"name": "Ken Sato", "email": "ken@example.jp"})
    ok(partner.client.post(f"{lead_path}/transfers/receive-update", json=acme, headers=their_admin), 202)
    _partner_delivers(client, partner)
    lead = ok(partner.client.get(lead_path, headers=their_admin))
    notes = ok(partner.client.get(f"{lead_path}/notes", headers=their_admin))["items"]
    assert [n["text"] for n in notes].count("Seen by the brand owner") == 1
    assert [c["name"] for c in lead["contacts"]].count("Ken Sato") == 1
    mine = ok(client.get(path, headers=brand_admin))
    assert len(lead["contacts"]) == len(mine["contacts"]) and len(notes) == len(mine["notes"])

    # the update from the lead again, and a query: no child is duplicated on either side
    ok(partner.client.post(f"{lead_path}/transfers/send-update", json=acme, headers=their_admin), 202)
    _partner_delivers(client, partner)
    ok(partner.client.post(f"{lead_path}/transfers/receive-update", json=acme, headers=their_admin), 202)
    _partner_delivers(client, partner)
    again = ok(client.get(path, headers=brand_admin))
    assert {k: len(again[k]) for k in KINDS} == {k: len(mine[k]) for k in KINDS}
    lead = ok(partner.client.get(lead_path, headers=their_admin))
    assert len(lead["contacts"]) == len(mine["contacts"])
    assert _lead_transfer(partner, lead_id)["status"] == "successful"


def test_a_lead_not_kept_from_a_transfer_has_no_updates_to_send(client, db, settings, demo, partner):
    connect(client, demo, partner, inbound_creates="lead")
    own = pending(partner.client, partner.demo)["id"]  # the partner's own registration
    acme = {"partner_organization_id": partner.demo.ids["acme"]}
    resp = partner.client.post(
        f"/v1/leads/{own}/transfers/send-update", json=acme, headers=partner.demo["admin"]
    )
    assert resp.status_code == 409 and resp.headers["Content-Type"] == "application/problem+json"
    assert "not transferred" in resp.get_json()["detail"]
