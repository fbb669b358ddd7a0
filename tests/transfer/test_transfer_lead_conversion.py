"""A transfer the partner kept as a lead follows that lead when it is approved there: the opportunity it
converts into takes every child (contacts, priced revenue lines, notes, activities) and their pairs, so
the brand owner's next update reaches the opportunity, changes its children in place, and updates and
queries go both ways without duplicates (issue 11, point 3). Two real instances in one process, the
partner's approval through its own API; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.api.approvals_support import act, ok, pending
from tests.transfer.pair_support import approve_kept_lead, change, connect, deliver_to

KINDS = ("contacts", "revenue_lines", "notes", "activities")


def _transfer(client, headers: dict[str, str], opp_id: int) -> dict[str, Any]:
    """The opportunity's one transfer, as its transfer status shows it."""
    [found] = ok(client.get(f"/v1/opportunities/{opp_id}/transfers", headers=headers))["items"]
    t: dict[str, Any] = found
    return t


def _queue(client, headers: dict[str, str], opp_id: int, org_id: int, what: str) -> None:
    suffix = {"create": "", "update": "/send-update", "query": "/receive-update"}[what]
    body = {"partner_organization_id": org_id}
    ok(client.post(f"/v1/opportunities/{opp_id}/transfers{suffix}", json=body, headers=headers), 202)


def _counts(opp: dict[str, Any]) -> dict[str, int]:
    return {k: len(opp[k]) for k in KINDS}


def test_updates_follow_a_lead_kept_by_the_partner_into_the_opportunity_it_converted_into(
    client, db, settings, demo, partner
):
    connect(client, demo, partner, inbound_creates="lead")
    # the partner has a deal of its own already: its opportunities' children and its lead's are numbered
    # apart, so only the pairs the conversion carries over can match them
    their_own = pending(partner.client, partner.demo)
    ok(act(partner.client, partner.demo["cam-jp-security"], their_own["id"], "approve"))
    brand_admin, their_admin = demo["admin"], partner.demo["admin"]
    lead = pending(client, demo)
    opp_id = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    path = f"/v1/opportunities/{opp_id}"
    change(client, brand_admin, "POST", f"{path}/contacts", {"name": "Ken Sato", "email": "ken@example.jp"})
    change(client, brand_admin, "POST", f"{path}/notes", {"text": "Two sites, one PoC"})
    change(client, brand_admin, "POST", f"{path}/activities", {"kind": "call", "subject": "Kick-off"})
    change(client, brand_admin, "POST", f"{path}/activities", {"kind": "meeting", "subject": "Demo"})
    ours = ok(client.get(path, headers=brand_admin))
    priced = [r for r in ours["revenue_lines"] if r["amount"] is not None]
    line = next(r for r in ours["revenue_lines"] if r["amount"] is None)
    change(client, brand_admin, "PATCH", f"{path}/revenue-lines/{line['id']}", {"amount": 1200})
    ours = ok(client.get(path, headers=brand_admin))
    assert priced and _counts(ours)["contacts"] == 2 and _counts(ours)["revenue_lines"] == 2

    org = demo.ids["northwind"]
    _queue(client, brand_admin, opp_id, org, "create")
    assert deliver_to(db, settings, partner.app).sent == 1
    sent = _transfer(client, brand_admin, opp_id)
    assert (sent["status"], sent["remote_type"]) == ("successful", "lead"), sent
    lead_id = int(sent["remote_id"])
    kept = ok(partner.client.get(f"/v1/leads/{lead_id}", headers=their_admin))
    assert len(kept["contacts"]) == 2 and len(kept["activities"]) == len(ours["activities"])
    assert sorted(p["amount"] for p in kept["products"]) == sorted(r["amount"] for r in ours["revenue_lines"])

    # the partner makes the lead a registration of its own and approves it, through its API
    their_opp_id = approve_kept_lead(partner, lead_id)
    theirs = ok(partner.client.get(f"/v1/opportunities/{their_opp_id}", headers=their_admin))
    assert _counts(theirs) == {
        "contacts": 2,
        "revenue_lines": 2,
        "notes": _counts(ours)["notes"],
        "activities": _counts(ours)["activities"] + 1,  # and "registration approved"
    }
    assert sorted(r["amount"] for r in theirs["revenue_lines"]) == sorted(
        r["amount"] for r in ours["revenue_lines"]
    )
    # the partner's transfer goes on with the opportunity; it does not send it back to us as new
    inbound = _transfer(partner.client, their_admin, their_opp_id)
    assert inbound["origin"] == "inbound" and inbound["lead_id"] == lead_id
    assert {k["kind"] for k in inbound["correlation_keys"]} <= {"lead", "opportunity", *KINDS}

    # the partner speaks first: its approved opportunity's update reaches us under its new id, and our
    # children keep their pairs with the ones the lead carried over (nothing of ours comes back as new)
    their_org = partner.demo.ids["acme"]
    change(
        partner.client, their_admin, "POST", f"/v1/opportunities/{their_opp_id}/notes", {"text": "Ours now"}
    )
    _queue(partner.client, their_admin, their_opp_id, their_org, "update")
    back = deliver_to(partner.db, partner.app.extensions["prm.settings"], client.application)
    assert (back.sent, back.retrying, back.dead) == (1, 0, 0), back
    sent = _transfer(client, brand_admin, opp_id)
    assert (sent["remote_type"], sent["remote_id"]) == ("opportunity", str(their_opp_id)), sent
    mine = ok(client.get(path, headers=brand_admin))
    assert _counts(mine) == {
        **_counts(ours),
        "notes": _counts(ours)["notes"] + 1,  # "Ours now"
        "activities": _counts(ours)["activities"] + 1,  # their "registration approved"
    }

    # the brand owner changes a contact and a line, adds an activity, and sends the update
    ken = next(c for c in ours["contacts"] if c["name"] == "Ken Sato")
    change(client, brand_admin, "PATCH", f"{path}/contacts/{ken['id']}", {"phone": "+81 3 1234 5678"})
    change(client, brand_admin, "PATCH", f"{path}/revenue-lines/{line['id']}", {"amount": 1500})
    change(client, brand_admin, "POST", f"{path}/activities", {"kind": "email", "subject": "Quote sent"})
    _queue(client, brand_admin, opp_id, org, "update")
    assert deliver_to(db, settings, partner.app).sent == 1
    sent = _transfer(client, brand_admin, opp_id)
    assert sent["status"] == "successful", sent

    theirs = ok(partner.client.get(f"/v1/opportunities/{their_opp_id}", headers=their_admin))
    their_ken = [c for c in theirs["contacts"] if c["name"] == "Ken Sato"]
    assert [c["phone"] for c in their_ken] == ["+81 3 1234 5678"]
    assert 1500.0 in [r["amount"] for r in theirs["revenue_lines"]]
    assert [a["subject"] for a in theirs["activities"]].count("Quote sent") == 1
    expected = {
        "contacts": 2,
        "revenue_lines": 2,
        "notes": _counts(ours)["notes"] + 1,
        "activities": _counts(ours)["activities"] + 2,  # "registration approved", "Quote sent"
    }
    assert _counts(theirs) == expected

    # queries both ways and the partner's update again: no child is duplicated on either side
    _queue(client, brand_admin, opp_id, org, "query")
    assert deliver_to(db, settings, partner.app).sent == 1
    _queue(partner.client, their_admin, their_opp_id, their_org, "update")
    _queue(partner.client, their_admin, their_opp_id, their_org, "query")
    back = deliver_to(partner.db, partner.app.extensions["prm.settings"], client.application)
    assert (back.sent, back.retrying, back.dead) == (2, 0, 0), back
    assert _transfer(partner.client, their_admin, their_opp_id)["status"] == "successful"
    assert _transfer(client, brand_admin, opp_id)["status"] == "successful"
    theirs = ok(partner.client.get(f"/v1/opportunities/{their_opp_id}", headers=their_admin))
    mine = ok(client.get(path, headers=brand_admin))
    assert _counts(theirs) == expected
    assert _counts(mine) == expected
    assert [a["kind"] for a in mine["activities"]].count("registration_approved") == 2  # ours and theirs
