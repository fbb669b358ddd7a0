"""Accepting leads over HTTP on the demo data (DESIGN.md 1.1 "accept"): the explicit accept, the
implicit one of every action on an unaccepted lead, owner and sales-team changes, the partner's accept
that prunes other partners' resources and territories, offers to several partners. On SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from registration.leads.models import Lead, LeadTerritory, SalesTeamMember
from territory.models import TerritoryModel
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _etag(client, demo: Demo, lead_id: int, user: str = "admin") -> str:
    resp = client.get(f"/v1/leads/{lead_id}", headers=demo[user])
    assert resp.status_code == 200, resp.get_json()
    return str(resp.headers["ETag"])


def _accept(client, demo: Demo, lead_id: int, user: str, etag: str | None = None) -> Any:
    etag = etag or _etag(client, demo, lead_id)
    return client.post(f"/v1/leads/{lead_id}/accept", headers={**demo[user], "If-Match": etag})


def _offer(client, demo: Demo, lead_id: int, partners: list[str], user: str = "cam-jp") -> Any:
    body = {"organization_ids": [demo.ids[p] for p in partners]}
    headers = {**demo[user], "If-Match": _etag(client, demo, lead_id)}
    return client.post(f"/v1/leads/{lead_id}/offers", json=body, headers=headers)


def _team(lead: dict[str, Any]) -> set[tuple[int, str]]:
    return {(m["user_id"], m["role"]) for m in lead["sales_team"]}


def _history(client, demo: Demo, lead_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(
        f"/v1/leads/{lead_id}/history", headers=demo["admin"]
    ).get_json()["items"]
    return items


def test_a_partner_accepts_a_cam_lead_becomes_owner_and_the_cam_stays_on_the_team(client, demo):
    lead = created(
        client, demo["cam-jp"], {"name": "From the CAM", "primary_partner_id": demo.ids["northwind"]}
    ).get_json()
    assert lead["accepted"] is False and lead["owner_user_id"] == demo.ids["cam-jp"]
    resp = _accept(client, demo, lead["id"], "northwind-user")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert resp.headers["ETag"] == f'"{body["id"]}.{body["version"]}"'
    assert body["accepted"] is True
    assert body["owner_user_id"] == demo.ids["northwind-user"]
    assert body["primary_partner_id"] == body["organization_id"] == demo.ids["northwind"]
    assert _team(body) == {
        (demo.ids["cam-jp"], "sales_team_member"),
        (demo.ids["northwind-user"], "lead_owner"),
    }
    accepted = [i for i in _history(client, demo, lead["id"]) if i["action"] == "accepted"]
    assert len(accepted) == 1
    assert accepted[0]["actor_user_id"] == demo.ids["northwind-user"]
    assert accepted[0]["details"]["via"] == "accept"
    assert accepted[0]["details"]["previous_owner_id"] == demo.ids["cam-jp"]


def test_an_accepted_lead_cannot_be_accepted_again(client, demo):
    lead = created(
        client, demo["cam-jp"], {"name": "Twice", "primary_partner_id": demo.ids["northwind"]}
    ).get_json()
    first = _accept(client, demo, lead["id"], "northwind-user")
    assert first.status_code == 200
    again = _accept(client, demo, lead["id"], "northwind-admin", first.headers["ETag"])
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"
    assert again.get_json()["type"].endswith("lead-already-accepted")
    assert (
        client.get(f"/v1/leads/{lead['id']}", headers=demo["admin"]).headers["ETag"] == first.headers["ETag"]
    )
    # a partner's own lead is accepted from the start
    own = created(client, demo["northwind-user"], {"name": "Mine"}).get_json()
    assert _accept(client, demo, own["id"], "northwind-admin").status_code == 409
    assert [i["action"] for i in _history(client, demo, own["id"])] == ["created"]


def test_accept_needs_the_current_etag(client, demo):
    lead = created(client, demo["cam-jp"], {"name": "Etag", "primary_partner_id": demo.ids["northwind"]})
    lead_id, etag = lead.get_json()["id"], lead.headers["ETag"]
    no_header = client.post(f"/v1/leads/{lead_id}/accept", headers=demo["northwind-user"])
    assert no_header.status_code == 428
    assert (
        client.patch(
            f"/v1/leads/{lead_id}", json={"name": "Edited"}, headers={**demo["cam-jp"], "If-Match": etag}
        )
    ).status_code == 200
    assert _accept(client, demo, lead_id, "northwind-user", etag).status_code == 412
    assert client.get(f"/v1/leads/{lead_id}", headers=demo["admin"]).get_json()["accepted"] is False


def test_an_internal_user_accepting_takes_ownership_without_touching_the_partner(client, demo):
    lead = created(
        client, demo["cam-jp"], {"name": "Internal", "primary_partner_id": demo.ids["northwind"]}
    ).get_json()
    body = _accept(client, demo, lead["id"], "cam-jp-security").get_json()
    assert body["accepted"] is True and body["owner_user_id"] == demo.ids["cam-jp-security"]
    assert body["primary_partner_id"] == demo.ids["northwind"]
    assert _team(body) == {
        (demo.ids["cam-jp"], "sales_team_member"),
        (demo.ids["cam-jp-security"], "lead_owner"),
    }


def _active_model_id(db) -> int:
    with db.transaction() as session:
        model_id = session.scalar(select(TerritoryModel.id).where(TerritoryModel.status == "active"))
    assert model_id is not None
    return int(model_id)


def _staff_the_lead(db, demo: Demo, lead_id: int) -> None:
    """Resources and territories of several partners on the lead, as assignment or a CAM leaves them."""
    model_id = _active_model_id(db)
    with db.transaction() as session:
        lead = session.get(Lead, lead_id)
        for user, role in (
            ("cam-jp-security", "channel_account_manager"),
            ("northwind-admin", "partner_sales_rep"),
            ("contoso-user", "partner_sales_rep"),
            ("fabrikam-admin", "partner_sales_rep"),
        ):
            lead.sales_team.append(SalesTeamMember(user_id=demo.ids[user], role=role, source="assignment"))
        for key in ("JP", "JP-NORTHWIND", "US-REFERRAL-FABRIKAM"):
            lead.territory_team.append(LeadTerritory(territory_key=key, territory_model_id=model_id))


def test_a_partner_accepting_an_offered_lead_becomes_primary_partner_and_other_partners_leave(
    client, db, demo
):
    lead = created(client, demo["cam-jp"], jp_security_lead(demo, name="Offered")).get_json()
    assert lead["organization_id"] is None and lead["primary_partner_id"] is None
    offered = _offer(client, demo, lead["id"], ["northwind", "contoso"])
    assert offered.status_code == 200, offered.get_json()
    assert offered.get_json()["organization_ids"] == sorted([demo.ids["northwind"], demo.ids["contoso"]])
    _staff_the_lead(db, demo, lead["id"])
    # both offered partners see it; a partner it was not offered to does not
    assert client.get(f"/v1/leads/{lead['id']}", headers=demo["contoso-user"]).status_code == 200
    assert client.get(f"/v1/leads/{lead['id']}", headers=demo["fabrikam-user"]).status_code == 404
    listed = client.get("/v1/leads", headers=demo["contoso-user"]).get_json()["items"]
    assert [i["id"] for i in listed] == [lead["id"]]
    # a partner sees only its own organization among the offers
    mine = client.get(f"/v1/leads/{lead['id']}/offers", headers=demo["contoso-user"]).get_json()
    assert mine["organization_ids"] == [demo.ids["contoso"]]

    resp = _accept(client, demo, lead["id"], "northwind-user")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["primary_partner_id"] == body["organization_id"] == demo.ids["northwind"]
    assert body["owner_user_id"] == demo.ids["northwind-user"]
    assert _team(body) == {
        (demo.ids["cam-jp"], "sales_team_member"),  # the previous owner stays
        (demo.ids["cam-jp-security"], "channel_account_manager"),  # internal resources stay
        (demo.ids["northwind-admin"], "partner_sales_rep"),  # the accepting partner's own stay
        (demo.ids["northwind-user"], "lead_owner"),
    }
    assert sorted(t["territory"] for t in body["territory_team"]) == ["JP", "JP-NORTHWIND"]
    # the other partner no longer sees the lead; the offers ended
    assert client.get(f"/v1/leads/{lead['id']}", headers=demo["contoso-user"]).status_code == 404
    assert client.get("/v1/leads", headers=demo["contoso-user"]).get_json()["items"] == []
    assert (
        client.get(f"/v1/leads/{lead['id']}/offers", headers=demo["admin"]).get_json()["organization_ids"]
        == []
    )
    [row] = [i for i in _history(client, demo, lead["id"]) if i["action"] == "accepted"]
    assert row["details"]["removed_territories"] == ["US-REFERRAL-FABRIKAM"]
    assert {m["user_id"] for m in row["details"]["removed_members"]} == {
        demo.ids["contoso-user"],
        demo.ids["fabrikam-admin"],
    }
    # and the accepting partner can now submit it (the lead names the primary partner acceptance set)
    done = submit(client, demo["northwind-user"], lead["id"])
    assert done.status_code == 200, done.get_json()


def test_offers_are_made_by_internal_users_to_partners_of_unaccepted_leads(client, demo):
    lead = created(client, demo["cam-jp"], {"name": "To offer"}).get_json()
    not_partner = _offer(client, demo, lead["id"], ["acme"])
    assert not_partner.status_code == 422
    assert not_partner.get_json()["errors"][0]["pointer"] == "/organization_ids/0"
    headers = {**demo["northwind-user"], "If-Match": _etag(client, demo, lead["id"])}
    refused = client.post(
        f"/v1/leads/{lead['id']}/offers", json={"organization_ids": [demo.ids["northwind"]]}, headers=headers
    )
    assert refused.status_code == 403
    no_etag = client.post(
        f"/v1/leads/{lead['id']}/offers", json={"organization_ids": []}, headers=demo["cam-jp"]
    )
    assert no_etag.status_code == 428
    assert _offer(client, demo, lead["id"], ["contoso"]).status_code == 200
    assert [i["action"] for i in _history(client, demo, lead["id"])] == ["created", "offered"]
    assert _accept(client, demo, lead["id"], "contoso-user").status_code == 200
    accepted = _offer(client, demo, lead["id"], ["northwind"])
    assert accepted.status_code == 409
    assert accepted.get_json()["type"].endswith("lead-already-accepted")


# --- any action on an unaccepted lead accepts it ------------------------------------------------------


def test_a_partners_update_accepts_the_lead(client, demo):
    lead = created(
        client, demo["cam-jp"], {"name": "Implicit", "primary_partner_id": demo.ids["northwind"]}
    ).get_json()
    etag = _etag(client, demo, lead["id"], "northwind-user")
    resp = client.patch(
        f"/v1/leads/{lead['id']}",
        json={"description": "called"},
        headers={**demo["northwind-user"], "If-Match": etag},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["accepted"] is True and body["owner_user_id"] == demo.ids["northwind-user"]
    assert (demo.ids["cam-jp"], "sales_team_member") in _team(body)
    history = _history(client, demo, lead["id"])
    assert [i["action"] for i in history] == ["created", "accepted", "updated"]
    assert history[1]["details"]["via"] == "update"


def test_a_partners_submit_accepts_the_lead(client, demo):
    body = jp_security_lead(demo, primary_partner_id=demo.ids["northwind"])
    lead = created(client, demo["cam-jp"], body).get_json()
    resp = submit(client, demo["northwind-user"], lead["id"])
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["accepted"] is True and out["owner_user_id"] == demo.ids["northwind-user"]
    assert out["status"] == "pending_approval"
    actions = [i["action"] for i in _history(client, demo, lead["id"])]
    assert actions[:3] == ["created", "accepted", "submitted"]


def test_a_partner_submitting_an_offered_lead_decides_as_its_primary_partner(client, db, demo):
    lead = created(client, demo["cam-jp"], jp_security_lead(demo)).get_json()
    assert _offer(client, demo, lead["id"], ["northwind", "contoso"]).status_code == 200
    resp = submit(client, demo["northwind-user"], lead["id"])
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["primary_partner_id"] == demo.ids["northwind"]
    decision = client.get(f"/v1/decisions/{out['decision_id']}", headers=demo["admin"]).get_json()
    assert decision["facts"]["partner"] == "northwind"
    assert client.get(f"/v1/leads/{lead['id']}", headers=demo["contoso-user"]).status_code == 404


def test_a_partners_note_accepts_the_lead(client, demo):
    lead = created(
        client, demo["cam-jp"], {"name": "Noted", "primary_partner_id": demo.ids["northwind"]}
    ).get_json()
    resp = client.post(
        f"/v1/leads/{lead['id']}/notes", json={"text": "we take it"}, headers=demo["northwind-user"]
    )
    assert resp.status_code == 201
    after = client.get(f"/v1/leads/{lead['id']}", headers=demo["admin"]).get_json()
    assert after["accepted"] is True and after["owner_user_id"] == demo.ids["northwind-user"]


def test_the_owners_own_actions_and_failed_actions_do_not_accept(client, demo):
    lead = created(
        client, demo["cam-jp"], {"name": "Prepared", "primary_partner_id": demo.ids["northwind"]}
    ).get_json()
    etag = _etag(client, demo, lead["id"])
    own = client.patch(
        f"/v1/leads/{lead['id']}", json={"description": "ready"}, headers={**demo["cam-jp"], "If-Match": etag}
    )
    assert own.status_code == 200 and own.get_json()["accepted"] is False
    bad = client.patch(
        f"/v1/leads/{lead['id']}",
        json={"customer_id": 999999},
        headers={**demo["northwind-user"], "If-Match": own.headers["ETag"]},
    )
    assert bad.status_code == 422
    incomplete = submit(client, demo["northwind-user"], lead["id"])
    assert incomplete.status_code == 422
    after = client.get(f"/v1/leads/{lead['id']}", headers=demo["admin"])
    assert after.get_json()["accepted"] is False and after.headers["ETag"] == own.headers["ETag"]
    assert [i["action"] for i in _history(client, demo, lead["id"])] == ["created", "updated"]


# --- a waiting registration is read-only except notes: it is neither offered nor accepted -------------


def _hands(lead: dict[str, Any]) -> dict[str, Any]:
    keys = ("accepted", "owner_user_id", "organization_id", "primary_partner_id", "status", "version")
    return {**{k: lead[k] for k in keys}, "team": _team(lead), "territories": lead["territory_team"]}


def test_a_pending_registration_is_neither_offered_nor_accepted_and_a_note_changes_no_hands(client, demo):
    body = jp_security_lead(demo, primary_partner_id=demo.ids["northwind"])
    lead = created(client, demo["cam-jp"], body).get_json()
    assert _offer(client, demo, lead["id"], ["contoso"]).status_code == 200  # offered while a draft
    done = submit(client, demo["cam-jp"], lead["id"])  # the owner's own submit does not accept it
    assert done.status_code == 200, done.get_json()
    before = done.get_json()
    assert before["status"] == "pending_approval" and before["accepted"] is False
    assert before["territory_team"]

    offered = _offer(client, demo, lead["id"], ["fabrikam"])
    assert offered.status_code == 409
    assert offered.get_json()["type"].endswith("registration-read-only")
    assert "pending_approval" in offered.get_json()["detail"]
    for user in ("contoso-user", "northwind-user"):
        accepted = _accept(client, demo, lead["id"], user)
        assert accepted.status_code == 409, accepted.get_json()
        assert accepted.get_json()["type"].endswith("registration-read-only")
        note = client.post(f"/v1/leads/{lead['id']}/notes", json={"text": "hello"}, headers=demo[user])
        assert note.status_code == 201, note.get_json()

    after = client.get(f"/v1/leads/{lead['id']}", headers=demo["admin"]).get_json()
    assert _hands(after) == _hands(before)
    offers = client.get(f"/v1/leads/{lead['id']}/offers", headers=demo["admin"]).get_json()
    assert offers["organization_ids"] == [demo.ids["contoso"]]
    actions = [i["action"] for i in _history(client, demo, lead["id"])]
    assert "accepted" not in actions and actions.count("offered") == 1
