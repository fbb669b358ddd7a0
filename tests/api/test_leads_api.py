"""Leads over HTTP: create, read, list, update, notes; who sees what; protected fields; idempotent
create. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from registration.leads.models import LeadActivity, LeadContact
from tests.api.approvals_support import act, ok
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def test_a_partner_user_creates_an_accepted_lead_it_owns(client, demo):
    resp = created(client, demo["northwind-user"], jp_security_lead(demo))
    lead = resp.get_json()
    assert resp.headers["Location"] == f"/v1/leads/{lead['id']}"
    assert resp.headers["ETag"] == f'"{lead["id"]}.{lead["version"]}"'
    assert lead["status"] == "draft"
    assert lead["accepted"] is True
    assert lead["sales_channel"] == "partner"
    assert lead["owner_user_id"] == lead["created_by"] == demo.ids["northwind-user"]
    assert lead["organization_id"] == lead["primary_partner_id"] == demo.ids["northwind"]
    assert lead["partner_type"] == "reseller"  # taken from the partner organization
    assert lead["registration_number"] is None and lead["expires_at"] is None
    assert lead["products"] == [
        {"product_id": demo.ids["fw-1"], "primary": True, "amount": None, "currency": None},
        {"product_id": demo.ids["id-cloud"], "primary": False, "amount": None, "currency": None},
    ]
    assert lead["sales_team"] == [
        {"user_id": demo.ids["northwind-user"], "role": "lead_owner", "source": "creator"}
    ]
    assert lead["deal_size"] == 50000


def test_an_internal_user_creates_an_unaccepted_lead(client, demo):
    lead = created(
        client, demo["cam-jp"], {"name": "Campaign lead", "primary_partner_id": demo.ids["northwind"]}
    ).get_json()
    assert lead["accepted"] is False
    assert lead["owner_user_id"] == demo.ids["cam-jp"]
    assert lead["organization_id"] == demo.ids["northwind"]
    # the partner it is offered to sees it; another partner does not
    assert client.get(f"/v1/leads/{lead['id']}", headers=demo["northwind-user"]).status_code == 200
    assert client.get(f"/v1/leads/{lead['id']}", headers=demo["contoso-user"]).status_code == 404


def test_a_partner_whose_agreement_forbids_registration_cannot_create_leads(client, demo):
    resp = client.post("/v1/leads", json={"name": "Nope"}, headers=demo["tailspin-user"])
    assert resp.status_code == 403
    assert resp.mimetype == "application/problem+json"


def test_another_organizations_lead_answers_like_a_missing_one(client, demo):
    lead = created(client, demo["northwind-user"], jp_security_lead(demo)).get_json()
    other = client.get(f"/v1/leads/{lead['id']}", headers=demo["contoso-user"])
    missing = client.get("/v1/leads/999999", headers=demo["contoso-user"])
    assert other.status_code == missing.status_code == 404
    assert other.get_json()["detail"].replace(str(lead["id"]), "N") == missing.get_json()["detail"].replace(
        "999999", "N"
    )
    etag = client.get(f"/v1/leads/{lead['id']}", headers=demo["northwind-user"]).headers["ETag"]
    for method, path, body in (
        ("PATCH", f"/v1/leads/{lead['id']}", {"name": "mine now"}),
        ("POST", f"/v1/leads/{lead['id']}/submit", None),
        ("POST", f"/v1/leads/{lead['id']}/notes", {"text": "hello"}),
        ("GET", f"/v1/leads/{lead['id']}/notes", None),
        ("GET", f"/v1/leads/{lead['id']}/history", None),
        ("GET", f"/v1/leads/{lead['id']}/approver-preview", None),
    ):
        resp = client.open(path, method=method, json=body, headers={**demo["contoso-user"], "If-Match": etag})
        assert resp.status_code == 404, (method, path, resp.get_json())
    assert client.get(f"/v1/leads/{lead['id']}", headers=demo["northwind-user"]).get_json()["name"] == (
        "Firewall refresh"
    )


def test_a_partner_lists_only_its_organizations_leads_page_by_page(client, demo):
    mine = [created(client, demo["northwind-user"], {"name": f"NW {i}"}).get_json()["id"] for i in range(5)]
    theirs = [created(client, demo["contoso-user"], {"name": f"CO {i}"}).get_json()["id"] for i in range(3)]
    seen: list[int] = []
    cursor = None
    while True:
        url = "/v1/leads?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=demo["northwind-admin"]).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == mine
    everything = client.get("/v1/leads?limit=500", headers=demo["admin"]).get_json()["items"]
    assert [i["id"] for i in everything] == mine + theirs
    drafts = client.get("/v1/leads?status=draft", headers=demo["contoso-user"]).get_json()["items"]
    assert [i["id"] for i in drafts] == theirs
    assert client.get("/v1/leads?status=approved", headers=demo["admin"]).get_json()["items"] == []


def test_a_page_shows_each_lead_exactly_as_reading_it_alone_does(client, db, demo):
    """A page builds its leads from rows, one reading per lead from records: both must agree, for
    drafts, submitted and converted leads, and the contacts and activities a transfer brings."""
    h = demo["northwind-user"]
    ids = [created(client, h, jp_security_lead(demo, name=f"Lead {i}")).get_json()["id"] for i in range(4)]
    for lead_id in ids[:3]:
        assert submit(client, h, lead_id).status_code == 200
    ok(act(client, demo["cam-jp-security"], ids[0], "approve", {"comment": "fine"}))
    with db.transaction() as session:
        session.add_all(
            [
                LeadContact(
                    lead_id=ids[1], name="Aiko", email="aiko@example.jp", role="buyer", is_primary=True
                ),
                LeadContact(lead_id=ids[1], name="Ken", phone="+81 3 0000 0000"),
                LeadActivity(lead_id=ids[1], kind="call", subject="Kick-off"),
                LeadActivity(
                    lead_id=ids[3],
                    kind="task",
                    subject="Quote",
                    details={"due_date": "2027-01-15", "done": False},
                ),
                LeadContact(lead_id=ids[3], name="Mei", email="mei@example.jp"),
            ]
        )
    for who in ("northwind-user", "admin"):
        page = ok(client.get("/v1/leads?limit=500", headers=demo[who]))["items"]
        alone = [ok(client.get(f"/v1/leads/{item['id']}", headers=demo[who])) for item in page]
        assert page == alone
    shown = {item["id"]: item for item in page}
    assert shown[ids[0]]["opportunity_id"] is not None and shown[ids[0]]["sales_team"]
    assert [c["name"] for c in shown[ids[1]]["contacts"]] == ["Aiko", "Ken"]
    assert shown[ids[3]]["activities"][0]["due_date"] == "2027-01-15"
    assert shown[ids[1]]["created_at"].endswith("Z") and shown[ids[1]]["activities"][0][
        "occurred_at"
    ].endswith("Z")
    # an action reads the lead it locks in one statement of its own (`locked_lead`): the same contacts
    # and activities come back
    read = client.get(f"/v1/leads/{ids[3]}", headers=h)
    before = ok(read)
    changed = client.patch(
        f"/v1/leads/{ids[3]}", json={"description": "quoted"}, headers={**h, "If-Match": read.headers["ETag"]}
    )
    after = ok(changed)
    assert after["contacts"] == before["contacts"] and [c["name"] for c in after["contacts"]] == ["Mei"]
    assert after["activities"] == before["activities"] and after["description"] == "quoted"


def test_an_update_needs_the_current_etag_and_returns_a_new_one(client, demo):
    h = demo["northwind-user"]
    resp = created(client, h, {"name": "First"})
    lead_id, etag = resp.get_json()["id"], resp.headers["ETag"]
    assert client.patch(f"/v1/leads/{lead_id}", json={"name": "x"}, headers=h).status_code == 428
    changed = client.patch(
        f"/v1/leads/{lead_id}",
        json={"name": "Second", "products": [{"product_id": demo.ids["fw-5"], "primary": True}]},
        headers={**h, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.headers["ETag"] != etag
    assert changed.get_json()["products"] == [
        {"product_id": demo.ids["fw-5"], "primary": True, "amount": None, "currency": None}
    ]
    stale = client.patch(f"/v1/leads/{lead_id}", json={"name": "Stale"}, headers={**h, "If-Match": etag})
    assert stale.status_code == 412
    # swapping the primary product keeps one primary
    swapped = client.patch(
        f"/v1/leads/{lead_id}",
        json={
            "products": [
                {"product_id": demo.ids["fw-5"], "primary": False},
                {"product_id": demo.ids["fw-1"], "primary": True},
            ]
        },
        headers={**h, "If-Match": changed.headers["ETag"]},
    )
    assert swapped.status_code == 200, swapped.get_json()
    assert [p for p in swapped.get_json()["products"] if p["primary"]] == [
        {"product_id": demo.ids["fw-1"], "primary": True, "amount": None, "currency": None}
    ]
    assert client.get(f"/v1/leads/{lead_id}", headers=h).get_json()["name"] == "Second"


@pytest.mark.parametrize(
    "field",
    [
        {"status": "approved"},
        {"Status": "approved"},
        {"organization_id": 1},
        {"owner_user_id": 1},
        {"registration_number": "REG-000001"},
        {"expires_at": "2030-01-01T00:00:00Z"},
        {"version": 7},
        {"accepted": True},
        {"products": [{"product_id": 1, "primary": True, "status": "x"}]},
    ],
)
def test_protected_fields_are_refused_and_nothing_changes(client, demo, field):
    h = demo["northwind-user"]
    resp = created(client, h, {"name": "Protected"})
    lead_id, etag = resp.get_json()["id"], resp.headers["ETag"]
    before = client.get(f"/v1/leads/{lead_id}", headers=h).get_json()
    patched = client.patch(f"/v1/leads/{lead_id}", json=field, headers={**h, "If-Match": etag})
    assert patched.status_code == 422, patched.get_json()
    assert patched.mimetype == "application/problem+json"
    assert client.get(f"/v1/leads/{lead_id}", headers=h).get_json() == before
    assert client.post("/v1/leads", json={"name": "x", **field}, headers=h).status_code == 422


def test_references_to_unknown_records_are_all_reported(client, demo):
    resp = client.post(
        "/v1/leads",
        json={
            "name": "Bad refs",
            "customer_id": 999999,
            "program": "no-such-program",
            "products": [{"product_id": 999999, "primary": True}],
        },
        headers=demo["northwind-user"],
    )
    assert resp.status_code == 422
    pointers = {e["pointer"] for e in resp.get_json()["errors"]}
    assert pointers == {"/customer_id", "/program", "/products/0/product_id"}


def test_a_partner_cannot_register_for_another_partner(client, demo):
    body = {"name": "Not mine", "primary_partner_id": demo.ids["contoso"]}
    resp = client.post("/v1/leads", json=body, headers=demo["northwind-user"])
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["pointer"] == "/primary_partner_id"


def test_two_primary_products_are_refused(client, demo):
    products = [
        {"product_id": demo.ids["fw-1"], "primary": True},
        {"product_id": demo.ids["fw-5"], "primary": True},
    ]
    resp = client.post("/v1/leads", json={"name": "x", "products": products}, headers=demo["northwind-user"])
    assert resp.status_code == 422


def test_notes_are_added_and_listed_in_order(client, demo):
    h = demo["northwind-user"]
    lead_id = created(client, h, {"name": "Noted"}).get_json()["id"]
    first = client.post(f"/v1/leads/{lead_id}/notes", json={"text": "called the customer"}, headers=h)
    assert first.status_code == 201, first.get_json()
    client.post(f"/v1/leads/{lead_id}/notes", json={"text": "sent a quote"}, headers=demo["cam-jp"])
    notes = client.get(f"/v1/leads/{lead_id}/notes", headers=h).get_json()["items"]
    assert [n["text"] for n in notes] == ["called the customer", "sent a quote"]
    assert notes[0]["author_user_id"] == demo.ids["northwind-user"]
    assert client.post(f"/v1/leads/{lead_id}/notes", json={"text": ""}, headers=h).status_code == 422


# --- Idempotency-Key ----------------------------------------------------------------------------------


def test_the_same_key_and_body_replays_the_first_reply_and_creates_one_lead(client, demo):
    h = {**demo["northwind-user"], "Idempotency-Key": "crm-42"}
    first = client.post("/v1/leads", json=jp_security_lead(demo), headers=h)
    again = client.post("/v1/leads", json=jp_security_lead(demo), headers=h)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert first.headers["ETag"] == again.headers["ETag"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/v1/leads", headers=h).get_json()["items"]) == 1


def test_the_same_key_with_another_body_is_refused(client, demo):
    h = {**demo["northwind-user"], "Idempotency-Key": "crm-43"}
    assert client.post("/v1/leads", json={"name": "One"}, headers=h).status_code == 201
    other = client.post("/v1/leads", json={"name": "Two"}, headers=h)
    assert other.status_code == 422
    assert other.get_json()["errors"][0]["pointer"] == "/header/Idempotency-Key"
    assert len(client.get("/v1/leads", headers=h).get_json()["items"]) == 1


def test_keys_are_per_organization(client, demo):
    nw = created(client, {**demo["northwind-user"], "Idempotency-Key": "k1"}, {"name": "Same"}).get_json()
    co = created(client, {**demo["contoso-user"], "Idempotency-Key": "k1"}, {"name": "Same"}).get_json()
    assert nw["id"] != co["id"]
    assert co["organization_id"] == demo.ids["contoso"]


def test_a_malformed_key_is_refused_with_its_pointer(client, demo):
    h = {**demo["northwind-user"], "Idempotency-Key": "x" * 300}
    resp = client.post("/v1/leads", json={"name": "x"}, headers=h)
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["pointer"] == "/header/Idempotency-Key"
