"""The duplicate check over HTTP on the demo data: a registration's likely duplicates with score and
evidence, who sees which matches, the reviewers' search, and the policy option that refuses a submit
while an approved registration protects the same customer and product. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from common.clock import utcnow
from registration.leads.models import Lead
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _registered(client, demo: Demo, user: str, **fields: Any) -> dict[str, Any]:
    """A submitted (pending approval) registration of ``user``'s organization."""
    lead = created(client, demo[user], jp_security_lead(demo, **fields)).get_json()
    resp = submit(client, demo[user], lead["id"])
    assert resp.status_code == 200, resp.get_json()
    out: dict[str, Any] = resp.get_json()
    return out


def _contoso(demo: Demo, **fields: Any) -> dict[str, Any]:
    return {"registration_type": "co_sell", "program": "co-sell", **fields}


def _products(demo: Demo, primary: str, *others: str) -> list[dict[str, Any]]:
    return [{"product_id": demo.ids[primary], "primary": True}] + [
        {"product_id": demo.ids[o]} for o in others
    ]


@pytest.fixture
def deals(client, demo) -> dict[str, dict[str, Any]]:
    """Northwind's registration for C-0002 / fw-1 and the records around it."""
    return {
        "mine": _registered(client, demo, "northwind-user"),
        # contoso, same customer, same product, same contact: a strong duplicate
        "contoso_same": _registered(client, demo, "contoso-user", **_contoso(demo)),
        # contoso, a subsidiary of the customer, a sibling product: a weaker one
        "contoso_child": _registered(
            client,
            demo,
            "contoso-user",
            **_contoso(
                demo,
                customer_id=demo.ids["C-0002-1"],
                contact_name="Ken Sato",
                contact_email="ken@example.jp",
                products=_products(demo, "fw-5"),
            ),
        ),
        # northwind, a subsidiary, the identity subgroup of the same group
        "northwind_child": _registered(
            client,
            demo,
            "northwind-user",
            customer_id=demo.ids["C-0002-1"],
            contact_name="Mio Ito",
            contact_email="mio@example.jp",
            products=_products(demo, "id-cloud"),
        ),
        # same customer, the product on it but not primary: a duplicate
        "secondary_product": _registered(
            client, demo, "northwind-user", products=_products(demo, "sw-100", "fw-1")
        ),
        # same customer, another product group: not a duplicate
        "other_group": _registered(client, demo, "northwind-user", products=_products(demo, "sw-100")),
        # another account: not a duplicate
        "other_account": _registered(client, demo, "northwind-user", customer_id=demo.ids["C-0003"]),
        # a draft claims nothing yet: not a duplicate
        "draft": created(client, demo["contoso-user"], jp_security_lead(demo, **_contoso(demo))).get_json(),
    }


def test_a_reviewer_sees_open_registrations_of_the_same_account_and_product_group_with_evidence(
    client, demo, deals
):
    resp = client.get(f"/v1/leads/{deals['mine']['id']}/duplicates", headers=demo["cam-jp-security"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["lead_id"] == deals["mine"]["id"]
    assert "same sales account" in body["rule"]
    ids = [i["id"] for i in body["items"]]
    assert ids == [
        deals["contoso_same"]["id"],
        deals["secondary_product"]["id"],
        deals["contoso_child"]["id"],
        deals["northwind_child"]["id"],
    ]
    first, also, second, third = body["items"]
    assert also["score"] == 95  # a tie: the older record first
    assert also["evidence"] == [
        "same customer C-0002",
        "product fw-1 is also on it",
        "same contact e-mail",
        "same primary contact Aiko Tanaka",
        "same partner",
    ]
    assert first["score"] == 95
    assert first["evidence"] == [
        "same customer C-0002",
        "same primary product fw-1",
        "same contact e-mail",
        "same primary contact Aiko Tanaka",
    ]
    assert first["kind"] == "registration" and first["status"] == "pending_approval"
    assert first["number"] == deals["contoso_same"]["registration_number"]
    assert first["organization_id"] == demo.ids["contoso"]
    assert first["customer_id"] == demo.ids["C-0002"] and first["primary_product_id"] == demo.ids["fw-1"]
    assert second["score"] == 60
    assert second["evidence"] == [
        "customer C-0002-1 is in the same account hierarchy (child of C-0002)",
        "same product subgroup firewalls",
    ]
    assert third["score"] == 55
    assert third["evidence"] == [
        "customer C-0002-1 is in the same account hierarchy (child of C-0002)",
        "same product group security",
        "same partner",
    ]
    assert all(0 <= i["score"] <= 100 for i in body["items"])


def test_the_partner_of_the_lead_sees_only_its_own_organizations_matches(client, demo, deals):
    resp = client.get(f"/v1/leads/{deals['mine']['id']}/duplicates", headers=demo["northwind-user"])
    assert resp.status_code == 200, resp.get_json()
    items = resp.get_json()["items"]
    assert [i["id"] for i in items] == [deals["secondary_product"]["id"], deals["northwind_child"]["id"]]
    assert {i["organization_id"] for i in items} == {demo.ids["northwind"]}
    theirs = client.get(f"/v1/leads/{deals['contoso_same']['id']}/duplicates", headers=demo["contoso-user"])
    assert [i["id"] for i in theirs.get_json()["items"]] == [deals["contoso_child"]["id"]]
    # another organization's registration answers like a missing one
    other = client.get(f"/v1/leads/{deals['mine']['id']}/duplicates", headers=demo["contoso-user"])
    missing = client.get("/v1/leads/999999/duplicates", headers=demo["contoso-user"])
    assert other.status_code == missing.status_code == 404


def test_a_lead_without_customer_or_primary_product_has_no_duplicates(client, demo, deals):
    bare = created(client, demo["northwind-user"], {"name": "Early"}).get_json()
    resp = client.get(f"/v1/leads/{bare['id']}/duplicates", headers=demo["admin"])
    assert resp.status_code == 200
    assert resp.get_json()["items"] == []


def test_the_limit_keeps_the_strongest_matches(client, demo, deals):
    resp = client.get(f"/v1/leads/{deals['mine']['id']}/duplicates?limit=1", headers=demo["admin"])
    assert [i["id"] for i in resp.get_json()["items"]] == [deals["contoso_same"]["id"]]
    assert client.get(
        f"/v1/leads/{deals['mine']['id']}/duplicates?limit=0", headers=demo["admin"]
    ).status_code == (422)


# --- the search ---------------------------------------------------------------------------------------


def _search(client, demo: Demo, query: str, user: str = "cam-jp") -> Any:
    return client.get(f"/v1/duplicates/search?{query}", headers=demo[user])


def test_reviewers_search_by_customer_contact_and_product(client, demo, deals):
    by_customer = _search(client, demo, f"customer_id={demo.ids['C-0002-1']}")
    assert by_customer.status_code == 200, by_customer.get_json()
    body = by_customer.get_json()
    assert body["lead_id"] is None
    found = {i["id"]: i for i in body["items"]}
    hierarchy = {
        deals[k]["id"]
        for k in (
            "mine",
            "contoso_same",
            "contoso_child",
            "northwind_child",
            "secondary_product",
            "other_group",
        )
    }
    assert set(found) == hierarchy  # the whole account hierarchy, open registrations only
    assert found[deals["contoso_child"]["id"]]["evidence"] == ["same customer C-0002-1"]
    assert found[deals["mine"]["id"]]["evidence"] == [
        "customer C-0002 is in the same account hierarchy (parent of C-0002-1)"
    ]
    assert [i["score"] for i in body["items"]] == sorted((i["score"] for i in body["items"]), reverse=True)

    by_contact = _search(client, demo, "contact=AIKO@example.jp").get_json()["items"]
    assert {i["id"] for i in by_contact} == {
        deals[k]["id"] for k in ("mine", "contoso_same", "secondary_product", "other_group", "other_account")
    }
    assert all(i["evidence"] == ["same contact e-mail"] for i in by_contact)
    by_name = _search(client, demo, "contact=sato").get_json()["items"]
    assert [(i["id"], i["evidence"]) for i in by_name] == [
        (deals["contoso_child"]["id"], ["primary contact Ken Sato matches"])
    ]

    everything = _search(
        client, demo, f"customer_id={demo.ids['C-0002']}&product_id={demo.ids['fw-5']}&contact=ken@example.jp"
    ).get_json()["items"]
    assert [(i["id"], i["score"], i["evidence"]) for i in everything] == [
        (
            deals["contoso_child"]["id"],
            round(100 * (35 + 35 + 10) / 90),
            [
                "customer C-0002-1 is in the same account hierarchy (child of C-0002)",
                "same primary product fw-5",
                "same contact e-mail",
            ],
        )
    ]
    by_group = _search(client, demo, f"product_id={demo.ids['security']}").get_json()["items"]
    found_in_group = {i["id"] for i in by_group}
    assert deals["secondary_product"]["id"] in found_in_group  # fw-1 is on it, not primary
    assert deals["other_group"]["id"] not in found_in_group


def test_the_search_is_for_internal_users_and_needs_a_criterion(client, demo, deals):
    assert _search(client, demo, f"customer_id={demo.ids['C-0002']}", "northwind-user").status_code == 403
    empty = _search(client, demo, "")
    assert empty.status_code == 422
    assert empty.mimetype == "application/problem+json"
    unknown = _search(client, demo, "customer_id=999999&product_id=999998")
    assert unknown.status_code == 422
    assert [e["pointer"] for e in unknown.get_json()["errors"]] == ["/query/customer_id", "/query/product_id"]
    assert _search(client, demo, "contact=").status_code == 422
    assert _search(client, demo, "contact=a%00b").status_code == 422
    assert _search(client, demo, "customer_id=1&extra=1").status_code == 422


def test_a_search_term_with_like_wildcards_matches_them_literally(client, demo, deals):
    assert _search(client, demo, "contact=%25").get_json()["items"] == []
    assert _search(client, demo, "contact=_").get_json()["items"] == []


# --- the policy option: block overlapping registrations -----------------------------------------------

BLOCKING_POLICY = """\
kind: policy
hit_policy: first
rules:
  - id: one-registration-per-deal
    when: always
    then:
      expiry_days: 90
      block_overlapping_registrations: true
"""


def _activate_blocking_policy(client, demo: Demo) -> None:
    admin = demo["admin"]
    resp = client.post(
        "/v1/rulesets", json={"name": "blocking.yaml", "source": BLOCKING_POLICY}, headers=admin
    )
    assert resp.status_code == 201, resp.get_json()
    ruleset_id = resp.get_json()["id"]
    etag = client.get(f"/v1/rulesets/{ruleset_id}", headers=admin).headers["ETag"]
    activated = client.post(f"/v1/rulesets/{ruleset_id}/activate", headers={**admin, "If-Match": etag})
    assert activated.status_code == 200, activated.get_json()


def _approve_in_database(db, lead_id: int, expires_in: timedelta) -> None:
    """The approval path belongs to another module: here the registration is simply stored as approved."""
    with db.transaction() as session:
        lead = session.get(Lead, lead_id)
        lead.status = "approved"
        lead.expires_at = utcnow() + expires_in


def test_with_the_policy_an_approved_registration_blocks_a_second_one_for_the_same_deal(client, db, demo):
    _activate_blocking_policy(client, demo)
    protected = _registered(client, demo, "northwind-user")
    _approve_in_database(db, protected["id"], timedelta(days=30))
    second = created(client, demo["contoso-user"], jp_security_lead(demo, **_contoso(demo))).get_json()
    refused = submit(client, demo["contoso-user"], second["id"])
    assert refused.status_code == 409
    problem = refused.get_json()
    assert refused.mimetype == "application/problem+json"
    assert problem["type"].endswith("registration-overlaps")
    assert problem["blocking_registration_number"] == protected["registration_number"]
    assert protected["registration_number"] in problem["detail"]
    text = refused.get_data(as_text=True).lower()
    assert "northwind" not in text and "organization_id" not in problem  # the other partner stays unnamed
    after = client.get(f"/v1/leads/{second['id']}", headers=demo["contoso-user"]).get_json()
    assert after["status"] == "draft" and after["registration_number"] is None
    # another primary product, or another customer, is another deal
    other_product = created(
        client,
        demo["contoso-user"],
        jp_security_lead(demo, **_contoso(demo), products=_products(demo, "fw-5")),
    ).get_json()
    assert submit(client, demo["contoso-user"], other_product["id"]).status_code == 200


def test_an_expired_protection_or_a_pending_registration_does_not_block(client, db, demo):
    _activate_blocking_policy(client, demo)
    pending = _registered(client, demo, "northwind-user")
    lead = created(client, demo["contoso-user"], jp_security_lead(demo, **_contoso(demo))).get_json()
    assert submit(client, demo["contoso-user"], lead["id"]).status_code == 200  # pending only: allowed
    _approve_in_database(db, pending["id"], timedelta(days=-1))  # approved, but its protection ended
    again = created(client, demo["contoso-user"], jp_security_lead(demo, **_contoso(demo))).get_json()
    assert submit(client, demo["contoso-user"], again["id"]).status_code == 200


def test_without_the_policy_overlapping_registrations_are_allowed(client, db, demo):
    protected = _registered(client, demo, "northwind-user")
    _approve_in_database(db, protected["id"], timedelta(days=30))
    second = created(client, demo["contoso-user"], jp_security_lead(demo, **_contoso(demo))).get_json()
    assert submit(client, demo["contoso-user"], second["id"]).status_code == 200


# --- opportunities ------------------------------------------------------------------------------------


def _approved(client, demo: Demo, lead_id: int) -> dict[str, Any]:
    cam = demo["cam-jp-security"]
    etag = client.get(f"/v1/leads/{lead_id}", headers=cam).headers["ETag"]
    resp = client.post(f"/v1/leads/{lead_id}/approve", json={}, headers={**cam, "If-Match": etag})
    assert resp.status_code == 200, resp.get_json()
    out: dict[str, Any] = resp.get_json()
    return out


def test_an_opportunity_converted_from_an_approved_registration_is_found_once(client, demo):
    converted = _approved(client, demo, _registered(client, demo, "northwind-user")["id"])
    assert converted["opportunity_id"] is not None
    opportunity = client.get(
        f"/v1/opportunities/{converted['opportunity_id']}", headers=demo["admin"]
    ).get_json()
    theirs = _registered(
        client,
        demo,
        "contoso-user",
        **_contoso(demo, customer_id=demo.ids["C-0002-1"], contact_name="Aiko Tanaka"),
    )
    resp = client.get(f"/v1/leads/{theirs['id']}/duplicates", headers=demo["cam-jp"])
    assert resp.status_code == 200, resp.get_json()
    [match] = resp.get_json()["items"]  # the opportunity stands for its converted registration
    assert match["kind"] == "opportunity"
    assert match["id"] == opportunity["id"] and match["number"] == opportunity["number"]
    assert match["status"] == "open" and match["organization_id"] == demo.ids["northwind"]
    assert match["evidence"] == [
        "customer C-0002 is in the same account hierarchy (parent of C-0002-1)",
        "same primary product fw-1",
        "same contact e-mail",
        "same primary contact Aiko Tanaka",
    ]
    # the partner of the registration never sees another partner's opportunity
    mine = client.get(f"/v1/leads/{theirs['id']}/duplicates", headers=demo["contoso-user"]).get_json()
    assert mine["items"] == []
    # the northwind side sees its own opportunity for its next registration of the deal
    again = _registered(client, demo, "northwind-user")
    own = client.get(f"/v1/leads/{again['id']}/duplicates", headers=demo["northwind-user"]).get_json()[
        "items"
    ]
    assert [(i["kind"], i["id"]) for i in own] == [("opportunity", opportunity["id"])]
    # the search finds it by customer, contact and product
    found = _search(
        client,
        demo,
        f"customer_id={demo.ids['C-0002']}&contact=aiko&product_id={demo.ids['fw-1']}",
    ).get_json()["items"]
    assert ("opportunity", opportunity["id"]) in {(i["kind"], i["id"]) for i in found}
    assert (("registration", converted["id"])) not in {(i["kind"], i["id"]) for i in found}


def test_with_the_policy_the_second_of_two_pending_overlapping_registrations_cannot_be_approved(
    client, db, demo
):
    _activate_blocking_policy(client, demo)
    cam = demo["cam-jp-security"]
    first = _registered(client, demo, "northwind-user")
    second_lead = created(client, demo["contoso-user"], jp_security_lead(demo, **_contoso(demo))).get_json()
    second = submit(client, demo["contoso-user"], second_lead["id"]).get_json()
    assert first["status"] == second["status"] == "pending_approval"

    def approve(lead_id: int):
        etag = client.get(f"/v1/leads/{lead_id}", headers=cam).headers["ETag"]
        return client.post(f"/v1/leads/{lead_id}/approve", json={}, headers={**cam, "If-Match": etag})

    assert approve(first["id"]).status_code == 200
    refused = approve(second["id"])
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.get_json()["blocking_registration_number"] == first["registration_number"]
    after = client.get(f"/v1/leads/{second['id']}", headers=cam).get_json()
    assert after["status"] == "pending_approval" and after["opportunity_id"] is None
