"""Edits of a transferred opportunity reach the partner by themselves where updates go out automatically,
including a change made while the create was still on its way, and the partner's instance stores the new
fields and children (stage, a contact's role). Two real instances in one process, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo
from tests.transfer.pair_support import change, connect, deliver_to


def _status(client, demo: Demo, opp_id: int) -> dict[str, Any]:
    [status] = ok(client.get(f"/v1/opportunities/{opp_id}/transfers", headers=demo["admin"]))["items"]
    found: dict[str, Any] = status
    return found


def test_a_change_made_while_the_create_travels_follows_it_and_the_partner_stores_it(
    client, db, settings, demo, partner
):
    connect(client, demo, partner, send_updates_automatically=True)
    seller = demo["northwind-user"]
    lead = pending(client, demo)
    opp_id = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    body = {"partner_organization_id": demo.ids["northwind"]}
    ok(client.post(f"/v1/opportunities/{opp_id}/transfers", json=body, headers=demo["admin"]), 202)

    # edited before the create reached the partner: nothing to update there yet
    change(client, seller, "PATCH", f"/v1/opportunities/{opp_id}", {"stage": "Negotiation"})
    path = f"/v1/opportunities/{opp_id}/contacts"
    change(client, seller, "POST", path, {"name": "Ken Sato", "role": "IT lead"})
    assert _status(client, demo, opp_id)["status"] == "in_progress"

    assert deliver_to(db, settings, partner.app, limit=1).sent == 1  # the create, as queued
    status = _status(client, demo, opp_id)
    assert status["status"] == "update_pending", status
    [theirs] = ok(partner.client.get("/v1/opportunities", headers=partner.demo["admin"]))["items"]
    assert theirs["stage"] is None  # the create carried the opportunity as it was when queued
    assert status["message"] == (
        f"Created as opportunity {theirs['id']} on Northwind CRM. Queued: the changes will be sent to "
        "Northwind CRM (automatic, after a change here)"
    )

    assert deliver_to(db, settings, partner.app).sent == 1  # the follow-up update
    assert _status(client, demo, opp_id)["status"] == "successful"
    their_opp = ok(partner.client.get(f"/v1/opportunities/{theirs['id']}", headers=partner.demo["admin"]))
    assert their_opp["stage"] == "Negotiation"
    assert ("Ken Sato", "IT lead") in [(c["name"], c["role"]) for c in their_opp["contacts"]]

    # later edits go out on their own; the partner's copy follows each
    change(client, seller, "PATCH", f"/v1/opportunities/{opp_id}", {"stage": "Closing"})
    assert _status(client, demo, opp_id)["status"] == "update_pending"
    deliver_to(db, settings, partner.app)
    their_opp = ok(partner.client.get(f"/v1/opportunities/{theirs['id']}", headers=partner.demo["admin"]))
    assert their_opp["stage"] == "Closing"
    assert [c["name"] for c in their_opp["contacts"]].count("Ken Sato") == 1
