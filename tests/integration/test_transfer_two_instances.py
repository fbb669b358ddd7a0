"""The acceptance test of opportunity transfer (issue 5): two instances of the service as real processes
on loopback, separate databases, each the other's CRM connection with a different mapping profile.

The brand owner's connection to the partner speaks the partner's model (``partner_lead``: a "Lead" with
People, LineItems, Comments, Tasks); the partner's connection to the brand owner speaks the brand owner's
own names (``brand_owner``), and says the brand owner calls the partner in the partner's model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.audit import AuditEvent
from tests.conftest import PG_ADMIN_URL
from tests.integration.transfer_support import (
    Instance,
    postgres_databases,
    two_instances,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    """The two instances, on SQLite files or on two PostgreSQL databases."""
    if request.param == "sqlite":
        with two_instances(tmp_path) as instances:
            yield instances
        return
    request.getfixturevalue(
        "postgres_template"
    )  # skips (or fails under PRM_REQUIRE_POSTGRES) without a server
    with (
        postgres_databases(PG_ADMIN_URL, ("brand", "partner")) as urls,
        two_instances(tmp_path, database_urls=(urls[0], urls[1])) as instances,
    ):
        yield instances


def _one(items: list[dict[str, Any]], **where: object) -> dict[str, Any]:
    found = [i for i in items if all(i.get(k) == v for k, v in where.items())]
    assert len(found) == 1, items
    return found[0]


def _keys(transfer: dict[str, Any], kind: str) -> dict[int, str]:
    return {k["local_id"]: k["remote_id"] for k in transfer["correlation_keys"] if k["kind"] == kind}


def test_transfer_receive_update_and_a_transfer_the_other_way(pair):
    brand, partner = pair
    [opp_id] = brand.add_opportunity("Acme firewall")
    before = brand.get(f"/v1/opportunities/{opp_id}")

    eligible = brand.get(f"/v1/opportunities/{opp_id}/transfer-partners")["items"]
    assert [(p["organization_id"], p["transfer"]) for p in eligible] == [(brand.ids["other_org"], None)]
    refused = brand.call(
        "POST",
        f"/v1/opportunities/{opp_id}/transfers/receive-update",
        409,
        json={"partner_organization_id": brand.ids["other_org"]},
    )
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "never transferred" in refused.json()["detail"]

    queued = brand.call(
        "POST",
        f"/v1/opportunities/{opp_id}/transfers",
        202,
        json={"partner_organization_id": brand.ids["other_org"]},
    ).json()
    assert queued["status"] == "in_progress" and queued["origin"] == "outbound"

    sent = brand.deliver_until(
        lambda: (
            _one(brand.transfers(opp_id), connection_id=queued["connection_id"])["status"] == "successful"
            and brand.transfers(opp_id)[0]
        ),
        "the transfer to succeed",
    )
    # the partner has it, with every child, and the correlation keys pair them up on both sides
    [theirs] = partner.get("/v1/opportunities")["items"]
    assert sent["remote_id"] == str(theirs["id"])
    assert theirs["name"] == "Acme firewall 0" and theirs["status"] == "open"
    assert sorted(c["name"] for c in theirs["contacts"]) == ["Contact 0", "Contact 1"]
    assert sorted(float(r["amount"]) for r in theirs["revenue_lines"]) == [5000.0, 10000.0]
    assert [n["text"] for n in theirs["notes"]] == ["Customer wants a PoC first"]
    assert [(a["kind"], a["subject"]) for a in theirs["activities"]] == [("call", "Kick-off call")]
    assert theirs["organization_id"] == partner.ids["other_org"]  # the connection's organization
    assert theirs["owner_user_id"] is None  # our owner never travels into their record
    [inbound] = partner.transfers(theirs["id"])
    assert inbound["origin"] == "inbound" and inbound["status"] == "successful"
    assert inbound["remote_id"] == str(opp_id)
    for kind in ("contacts", "revenue_lines", "notes", "activities"):
        ours = {str(r["id"]) for r in before[kind]}
        mine_to_theirs = _keys(sent, kind)
        assert {str(k) for k in mine_to_theirs} == ours, kind
        # the partner's keys are the mirror image
        assert {str(v) for v in _keys(inbound, kind).values()} == {str(k) for k in mine_to_theirs}
        assert {str(k) for k in _keys(inbound, kind)} == set(mine_to_theirs.values())

    # the partner's CRM shows a "Lead" in its own model
    lead = partner.signed_query_as_brand(opp_id)
    assert lead["Title"] == "Acme firewall 0" and lead["LeadStatus"] == "Open"
    assert len(lead["People"]) == 2 and len(lead["LineItems"]) == 2
    assert len(lead["Comments"]) == 1 and lead["Tasks"][0]["TaskType"] == "Call"

    # the partner closes it and changes a revenue line, both through its API
    etag = partner.call("GET", f"/v1/opportunities/{theirs['id']}", 200).headers["ETag"]
    closed = partner.call(
        "POST",
        f"/v1/opportunities/{theirs['id']}/close",
        200,
        json={"status": "won"},
        headers={"If-Match": etag},
    )
    suite_line = next(r for r in theirs["revenue_lines"] if float(r["amount"]) == 10000.0)
    edited = partner.call(
        "PATCH",
        f"/v1/opportunities/{theirs['id']}/revenue-lines/{suite_line['id']}",
        200,
        json={"amount": 12500},
        headers={"If-Match": closed.headers["ETag"]},
    )
    assert edited.headers["ETag"] != closed.headers["ETag"]
    assert {r["id"]: float(r["amount"]) for r in edited.json()["revenue_lines"]}[suite_line["id"]] == 12500.0

    # the brand owner receives the update: status and revenue applied, owner/organization/registration kept
    pending = brand.call(
        "POST",
        f"/v1/opportunities/{opp_id}/transfers/receive-update",
        202,
        json={"partner_organization_id": brand.ids["other_org"]},
    ).json()
    assert pending["status"] == "update_pending"
    brand.deliver_until(lambda: brand.transfers(opp_id)[0]["status"] == "successful", "the receive update")
    after = brand.get(f"/v1/opportunities/{opp_id}")
    assert after["status"] == "won"
    ours_suite = next(
        k for k, v in _keys(brand.transfers(opp_id)[0], "revenue_lines").items() if v == str(suite_line["id"])
    )
    assert {r["id"]: float(r["amount"]) for r in after["revenue_lines"]}[ours_suite] == 12500.0
    assert after["owner_user_id"] == before["owner_user_id"]
    assert after["organization_id"] == before["organization_id"]
    assert after["registration"] == before["registration"]
    assert len(after["contacts"]) == 2 and len(after["revenue_lines"]) == 2  # nothing duplicated

    # the partner transfers one of its own opportunities the other way
    [own_id] = partner.add_opportunity("Globex renewal", contacts=1)
    back = partner.call(
        "POST",
        f"/v1/opportunities/{own_id}/transfers",
        202,
        json={"partner_organization_id": partner.ids["other_org"]},
    ).json()
    partner.deliver_until(lambda: partner.transfers(own_id)[0]["status"] == "successful", "the transfer back")
    out = partner.transfers(own_id)[0]
    assert out["id"] == back["id"] and out["origin"] == "outbound"
    received = [o for o in brand.get("/v1/opportunities")["items"] if o["name"] == "Globex renewal 0"]
    assert len(received) == 1 and out["remote_id"] == str(received[0]["id"])
    assert received[0]["organization_id"] == brand.ids["other_org"]
    [at_brand] = brand.transfers(received[0]["id"])
    assert at_brand["origin"] == "inbound" and at_brand["remote_id"] == str(own_id)
    assert len(_keys(at_brand, "contacts")) == 1 and len(_keys(out, "revenue_lines")) == 2

    # every step is in the audit log of both sides
    for instance, expected in (
        (
            brand,
            {
                "transfer_requested",
                "transferred",
                "receive_requested",
                "update_received",
                "received_transfer",
            },
        ),
        (partner, {"received_transfer", "transfer_requested", "transferred"}),
    ):
        db = instance.db()
        try:
            with db.transaction() as session:
                actions = set(
                    session.scalars(
                        select(AuditEvent.action).where(AuditEvent.entity_type == "opportunity_transfer")
                    )
                )
        finally:
            db.dispose()
        assert expected <= actions, (instance.name, actions)
