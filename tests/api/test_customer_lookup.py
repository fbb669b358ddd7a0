"""Partners find customers and know their people (on the demo data, SQLite and PostgreSQL): a scoped
customer look-up by name, key or web domain; proposals of new customers that only the proposing
organization (and the brand owner) see until an admin takes them into the customer master; another
partner's proposal answers exactly like a missing customer; the names and e-mail addresses of the people
on a partner's own lead, never another organization's users."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from registration.leads.models import Lead, SalesTeamMember
from tests.api.approvals_support import ok, pending
from tests.api.leads_support import Demo, jp_security_lead, load_demo

FIELDS = {
    "id",
    "key",
    "name",
    "parent_key",
    "country",
    "subdivision",
    "postal_code",
    "region",
    "industry",
    "size",
    "domain",
    "proposed",
    "proposed_by_organization_id",
    "active",
    "version",
}


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _found(client, headers, q: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(client.get(f"/v1/customers?q={q}&limit=500", headers=headers))["items"]
    return items


def _set_domain(client, demo: Demo, customer_id: int, domain: str) -> None:
    admin = demo["admin"]
    etag = client.get(f"/v1/customers/{customer_id}", headers=admin).headers["ETag"]
    path = f"/v1/customers/{customer_id}"
    ok(client.patch(path, json={"domain": domain}, headers={**admin, "If-Match": etag}))


def test_a_partner_finds_customers_by_name_key_and_web_domain(client, demo):
    partner = demo["northwind-user"]
    _set_domain(client, demo, demo.ids["C-0002"], "Tanaka-Steel.example")  # stored in lower case
    by_key = _found(client, partner, "c-0002")
    assert demo.ids["C-0002"] in [c["id"] for c in by_key]
    by_domain = _found(client, partner, "tanaka-steel")
    assert [(c["id"], c["domain"]) for c in by_domain] == [(demo.ids["C-0002"], "tanaka-steel.example")]
    name = by_domain[0]["name"]
    assert demo.ids["C-0002"] in [c["id"] for c in _found(client, partner, name[:6])]
    assert set(by_domain[0]) == FIELDS  # reference data only: nothing of anyone's leads or deals
    got = ok(client.get(f"/v1/customers/{demo.ids['C-0002']}", headers=partner))
    assert got["key"] == "C-0002" and got["proposed"] is False
    # internal users search keys and domains too
    assert [c["id"] for c in _found(client, demo["cam-jp"], "tanaka-steel.")] == [demo.ids["C-0002"]]
    assert demo.ids["C-0002"] in [c["id"] for c in _found(client, demo["cam-jp"], "C-0002")]
    # bad domains are refused with a pointer
    admin = demo["admin"]
    etag = client.get(f"/v1/customers/{demo.ids['C-0002']}", headers=admin).headers["ETag"]
    bad = client.patch(
        f"/v1/customers/{demo.ids['C-0002']}",
        json={"domain": "not a domain"},
        headers={**admin, "If-Match": etag},
    )
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["pointer"] == "/domain"


def test_a_partners_proposal_is_its_own_until_an_admin_takes_it_into_the_master(client, demo):
    northwind, contoso, admin = demo["northwind-user"], demo["contoso-user"], demo["admin"]
    proposal = {"name": "Kobe Robotics", "country": "JP", "domain": "kobe-robotics.example"}
    created = client.post("/v1/customers/proposals", json=proposal, headers=northwind)
    customer = ok(created, 201)
    assert created.headers["Location"] == f"/v1/customers/{customer['id']}" and created.headers["ETag"]
    assert customer["proposed"] is True and customer["proposed_by_organization_id"] == demo.ids["northwind"]
    assert re.fullmatch(r"P-[0-9A-F]{12}", customer["key"])
    assert [c["id"] for c in _found(client, northwind, "kobe")] == [customer["id"]]
    assert [c["id"] for c in _found(client, demo["cam-jp"], "kobe")] == [customer["id"]]

    # another partner: not listed, and the record answers exactly like a missing one
    assert _found(client, contoso, "kobe") == []
    hidden = client.get(f"/v1/customers/{customer['id']}", headers=contoso)
    missing = client.get("/v1/customers/2000000000", headers=contoso)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json()["detail"].replace(str(customer["id"]), "N") == missing.get_json()[
        "detail"
    ].replace("2000000000", "N")

    # the proposing partner names it on a lead at once; another partner is told it does not exist
    lead = ok(
        client.post("/v1/leads", json=jp_security_lead(demo, customer_id=customer["id"]), headers=northwind),
        201,
    )
    assert lead["customer_id"] == customer["id"]
    other = client.post("/v1/leads", json=jp_security_lead(demo, customer_id=customer["id"]), headers=contoso)
    absent = client.post("/v1/leads", json=jp_security_lead(demo, customer_id=2000000000), headers=contoso)
    assert other.status_code == absent.status_code == 422
    assert other.get_json()["errors"][0]["detail"].replace(str(customer["id"]), "N") == absent.get_json()[
        "errors"
    ][0]["detail"].replace("2000000000", "N")

    # the same domain again: the partner is pointed at the customer it can see
    again = client.post("/v1/customers/proposals", json={**proposal, "name": "Kobe R."}, headers=northwind)
    assert again.status_code == 409 and again.get_json()["customer_id"] == customer["id"]
    # ...but another partner's hidden proposal is not revealed that way
    ok(client.post("/v1/customers/proposals", json=proposal, headers=contoso), 201)
    # the brand owner's people create customers directly
    assert client.post("/v1/customers/proposals", json=proposal, headers=demo["cam-jp"]).status_code == 403

    etag = client.get(f"/v1/customers/{customer['id']}", headers=admin).headers["ETag"]
    taken = client.patch(
        f"/v1/customers/{customer['id']}", json={"proposed": False}, headers={**admin, "If-Match": etag}
    )
    assert ok(taken)["proposed"] is False and ok(taken)["proposed_by_organization_id"] is None
    assert customer["id"] in [c["id"] for c in _found(client, contoso, "kobe")]
    etag = taken.headers["ETag"]
    again_proposed = client.patch(
        f"/v1/customers/{customer['id']}", json={"proposed": True}, headers={**admin, "If-Match": etag}
    )
    assert again_proposed.status_code == 422


def test_a_partner_learns_who_is_on_its_lead_but_not_another_organizations_users(client, db, demo):
    northwind = demo["northwind-user"]
    lead = pending(client, demo)
    with db.transaction() as session:  # another partner's user somehow on the team stays unnamed
        session.add(
            SalesTeamMember(
                lead_id=lead["id"], user_id=demo.ids["contoso-user"], role="partner_resource", source="test"
            )
        )
        assert session.get(Lead, lead["id"]) is not None
    people = ok(client.get(f"/v1/leads/{lead['id']}/people", headers=northwind))["items"]
    by_id = {p["user_id"]: p for p in people}
    cam = by_id[demo.ids["cam-jp-security"]]
    assert cam["name"] == "Haruto CAM (Japan, security)" and cam["email"] == "cam-jp-security@acme.example"
    assert cam["internal"] is True and {"approver", "channel_account_manager"} <= set(cam["roles"])
    assert {"owner", "submitter"} <= set(by_id[demo.ids["northwind-user"]]["roles"])
    assert demo.ids["contoso-user"] not in by_id
    # the brand owner's people see everyone on the lead; another partner sees no lead at all
    internal = ok(client.get(f"/v1/leads/{lead['id']}/people", headers=demo["cam-jp"]))["items"]
    assert demo.ids["contoso-user"] in [p["user_id"] for p in internal]
    assert client.get(f"/v1/leads/{lead['id']}/people", headers=demo["contoso-user"]).status_code == 404
