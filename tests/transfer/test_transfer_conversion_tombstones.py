"""A child deleted while the partner keeps our transfer as a lead stays deleted after that lead converts
into an opportunity (issue 11: the conversion dropped the lead children's tombstones).

The partner's tombstone pairs our id with its *lead* child's id. Once the lead converted, our next
document still carries the deletion ({our id: its lead child's id}); without the tombstone the partner
read that id as one of its opportunity's children and deleted whichever child had the same number. Two
real instances in one process; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from registration.opportunities.models import OpportunityNote
from tests.api.approvals_support import act, ok, pending
from tests.transfer.pair_support import Partner, approve_kept_lead, change, connect, deliver_to


def _transfer(client, headers: dict[str, str], path: str) -> dict[str, Any]:
    [found] = ok(client.get(f"{path}/transfers", headers=headers))["items"]
    out: dict[str, Any] = found
    return out


def _tombstones(transfer: dict[str, Any]) -> set[tuple[str, str]]:
    return {(k["kind"], k["remote_id"]) for k in transfer["correlation_keys"] if k["deleted_at"]}


def _next_note_id(partner: Partner) -> int:
    with partner.db.read() as session:
        return int(session.scalar(select(func.max(OpportunityNote.id))) or 0) + 1


def test_a_deletion_before_the_partners_lead_converts_stays_a_deletion_after(
    client, db, settings, demo, partner
):
    brand_admin, their_admin = demo["admin"], partner.demo["admin"]
    connect(client, demo, partner, inbound_creates="lead")
    # notes on a lead of the partner's own first: its lead notes are numbered beyond its opportunities'
    own = pending(partner.client, partner.demo)["id"]
    for i in range(4):
        change(partner.client, their_admin, "POST", f"/v1/leads/{own}/notes", {"text": f"Own {i}"})
    org = {"partner_organization_id": demo.ids["northwind"]}
    lead = pending(client, demo)
    opp_id = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    path = f"/v1/opportunities/{opp_id}"
    for text in ("Two sites", "One PoC", "Workshop"):
        change(client, brand_admin, "POST", f"{path}/notes", {"text": text})
    ok(client.post(f"{path}/transfers", json=org, headers=brand_admin), 202)
    assert deliver_to(db, settings, partner.app).sent == 1
    lead_id = int(_transfer(client, brand_admin, path)["remote_id"])
    their_lead = f"/v1/leads/{lead_id}"

    # we delete the workshop; the update deletes the partner's copy of it, on its lead
    workshop = next(a for a in ok(client.get(path, headers=brand_admin))["notes"] if a["text"] == "Workshop")
    change(client, brand_admin, "DELETE", f"{path}/notes/{workshop['id']}")
    ok(client.post(f"{path}/transfers/send-update", json=org, headers=brand_admin), 202)
    assert deliver_to(db, settings, partner.app).sent == 1
    kept = ok(partner.client.get(f"{their_lead}/notes", headers=their_admin))["items"]
    assert "Workshop" not in [n["text"] for n in kept]
    buried = _tombstones(_transfer(partner.client, their_admin, their_lead))
    assert buried == {("lead_notes", str(workshop["id"]))}, buried
    their_workshop_id = next(
        k["local_id"]
        for k in _transfer(partner.client, their_admin, their_lead)["correlation_keys"]
        if k["deleted_at"]
    )

    # the partner completes the lead and approves it: an opportunity with the lead's children
    their_opp = approve_kept_lead(partner, lead_id)
    their_path = f"/v1/opportunities/{their_opp}"
    # the tombstone goes on with the transfer
    assert ("lead_notes", str(workshop["id"])) in _tombstones(
        _transfer(partner.client, their_admin, their_path)
    )

    # notes of the partner's own on its opportunity, until one has the number its lead's workshop note
    # had (the two are numbered apart): our deletion must not reach it
    assert _next_note_id(partner) <= their_workshop_id, "the partner's numbers passed the lead's"
    while _next_note_id(partner) <= their_workshop_id:
        change(partner.client, their_admin, "POST", f"{their_path}/notes", {"text": "Ours"})
    before = ok(partner.client.get(their_path, headers=their_admin))
    assert their_workshop_id in [n["id"] for n in before["notes"]]

    # our next update carries the deletion again (our tombstone), and a change
    change(client, brand_admin, "POST", f"{path}/notes", {"text": "Quote sent"})
    ok(client.post(f"{path}/transfers/send-update", json=org, headers=brand_admin), 202)
    assert deliver_to(db, settings, partner.app).sent == 1
    after = ok(partner.client.get(their_path, headers=their_admin))
    assert [n["id"] for n in after["notes"] if n["text"] != "Quote sent"] == [
        n["id"] for n in before["notes"]
    ]
    assert [n["text"] for n in after["notes"]].count("Quote sent") == 1
    assert "Workshop" not in [n["text"] for n in after["notes"]]
    assert _transfer(client, brand_admin, path)["status"] == "successful"
