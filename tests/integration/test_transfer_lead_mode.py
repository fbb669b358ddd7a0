"""A partner that keeps our opportunities as leads (its connection's ``inbound_creates: lead``) gets all of
them, and takes updates (issue 11, point 3): two real instances over HTTP, the real deliverer, SQLite
files and PostgreSQL databases.

The lead holds every child the document carries (contacts, revenue lines with their amounts, notes,
activities), each paired with the sender's by a correlation key, so an update changes the lead's
children in place and adds only what is new; a query of the lead answers with them and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from registration.leads.models import LeadActivity, LeadContact, LeadNote, LeadProduct
from tests.conftest import PG_ADMIN_URL
from tests.integration.test_transfer_remote_types import set_inbound_creates
from tests.integration.transfer_support import Instance, postgres_databases, two_instances

KINDS = ("contacts", "revenue_lines", "notes", "activities")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    if request.param == "sqlite":
        with two_instances(tmp_path) as instances:
            yield instances
        return
    request.getfixturevalue("postgres_template")  # skips (or fails under PRM_REQUIRE_POSTGRES) without one
    with (
        postgres_databases(PG_ADMIN_URL, ("brand", "partner")) as urls,
        two_instances(tmp_path, database_urls=(urls[0], urls[1])) as instances,
    ):
        yield instances


def _edit(brand: Instance, opp_id: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One change of the brand owner's opportunity through its API, with the current ETag."""
    etag = brand.call("GET", f"/v1/opportunities/{opp_id}", 200).headers["ETag"]
    expect = 201 if method == "POST" else 200
    return brand.call(
        method, f"/v1/opportunities/{opp_id}{path}", expect, json=body, headers={"If-Match": etag}
    ).json()


def _queue(brand: Instance, opp_id: int, what: str) -> None:
    suffix = {"create": "", "update": "/send-update", "query": "/receive-update"}[what]
    brand.call(
        "POST",
        f"/v1/opportunities/{opp_id}/transfers{suffix}",
        202,
        json={"partner_organization_id": brand.ids["other_org"]},
    )


def _settled(brand: Instance, opp_id: int, what: str) -> dict[str, Any]:
    out: dict[str, Any] = brand.deliver_until(
        lambda: (t := brand.transfers(opp_id)[0])["status"] in ("successful", "failed") and t,
        f"the {what} to settle",
    )
    assert out["status"] == "successful", out
    return out


def _lead_rows(partner: Instance, lead_id: int) -> dict[str, int]:
    """How many child rows of each kind the partner's database holds for its lead."""
    db = partner.db()
    try:
        with db.transaction() as session:
            tables: tuple[Any, ...] = (LeadContact, LeadProduct, LeadNote, LeadActivity)
            return {
                kind: session.scalar(select(func.count()).select_from(table).where(table.lead_id == lead_id))
                or 0
                for kind, table in zip(KINDS, tables, strict=True)
            }
    finally:
        db.dispose()


def _pairs(transfer: dict[str, Any], kind: str) -> dict[int, str]:
    return {k["local_id"]: k["remote_id"] for k in transfer["correlation_keys"] if k["kind"] == kind}


def test_a_transfer_kept_as_a_lead_arrives_whole_and_takes_updates_without_duplicates(pair):
    brand, partner = pair
    [opp_id] = brand.add_opportunity("Lead mode")  # 2 contacts, 2 priced revenue lines, a note, a call
    _edit(brand, opp_id, "POST", "/activities", {"kind": "meeting", "subject": "Site visit"})
    _edit(brand, opp_id, "POST", "/notes", {"text": "Budget approved in Q1"})
    set_inbound_creates(partner, "lead")

    _queue(brand, opp_id, "create")
    sent = _settled(brand, opp_id, "create")
    assert sent["remote_type"] == "lead", sent
    lead_id = int(sent["remote_id"])

    # the partner's lead holds all of it, as its API shows it and as it answers a query
    lead = partner.get(f"/v1/leads/{lead_id}")
    assert lead["name"] == "Lead mode 0" and lead["status"] == "draft"
    assert sorted(c["name"] for c in lead["contacts"]) == ["Contact 0", "Contact 1"]
    assert (lead["contact_name"], lead["contact_email"]) == ("Contact 0", "c0@acme.example")  # the primary
    assert sorted(p["amount"] for p in lead["products"]) == [5000.0, 10000.0]
    assert sorted((a["kind"], a["subject"]) for a in lead["activities"]) == [
        ("call", "Kick-off call"),
        ("meeting", "Site visit"),
    ]
    assert sorted(n["text"] for n in partner.get(f"/v1/leads/{lead_id}/notes")["items"]) == [
        "Budget approved in Q1",
        "Customer wants a PoC first",
    ]
    theirs = partner.signed_query_as_brand(opp_id)
    assert sorted(x["Value"] for x in theirs["LineItems"]) == ["10000.00", "5000.00"]
    assert (len(theirs["People"]), len(theirs["Comments"]), len(theirs["Tasks"])) == (2, 2, 2)
    for kind in KINDS:  # every child of ours is paired with the lead's
        assert len(_pairs(sent, kind)) == len(brand.get(f"/v1/opportunities/{opp_id}")[kind]), kind

    # the brand owner changes the opportunity and its children, and sends the update
    opp = brand.get(f"/v1/opportunities/{opp_id}")
    contact = next(c for c in opp["contacts"] if c["name"] == "Contact 1")
    line = next(r for r in opp["revenue_lines"] if r["amount"] == 5000.0)
    call = next(a for a in opp["activities"] if a["kind"] == "call")
    _edit(brand, opp_id, "PATCH", "", {"name": "Lead mode, bigger", "description": "Three sites"})
    _edit(brand, opp_id, "PATCH", f"/contacts/{contact['id']}", {"email": "pat@acme.example"})
    _edit(brand, opp_id, "POST", "/contacts", {"name": "Contact 2", "email": "c2@acme.example"})
    _edit(brand, opp_id, "PATCH", f"/revenue-lines/{line['id']}", {"amount": 7500})
    _edit(brand, opp_id, "PATCH", f"/activities/{call['id']}", {"done": True})
    _edit(brand, opp_id, "POST", "/activities", {"kind": "call", "subject": "Pricing call"})
    _queue(brand, opp_id, "update")
    updated = _settled(brand, opp_id, "update")
    assert "failed" not in (updated["message"] or ""), updated

    lead = partner.get(f"/v1/leads/{lead_id}")
    assert lead["name"] == "Lead mode, bigger" and lead["description"] == "Three sites"
    assert sorted((c["name"], c["email"]) for c in lead["contacts"]) == [
        ("Contact 0", "c0@acme.example"),
        ("Contact 1", "pat@acme.example"),
        ("Contact 2", "c2@acme.example"),
    ]
    assert sorted(p["amount"] for p in lead["products"]) == [7500.0, 10000.0]
    assert sorted((a["subject"], a["done"]) for a in lead["activities"]) == [
        ("Kick-off call", True),
        ("Pricing call", False),
        ("Site visit", False),
    ]
    assert _lead_rows(partner, lead_id) == {"contacts": 3, "revenue_lines": 2, "notes": 2, "activities": 3}

    # the same update again, then a query the other way: nothing is duplicated on either side
    _queue(brand, opp_id, "update")
    _settled(brand, opp_id, "update")
    _queue(brand, opp_id, "query")
    queried = _settled(brand, opp_id, "query")
    assert _lead_rows(partner, lead_id) == {"contacts": 3, "revenue_lines": 2, "notes": 2, "activities": 3}
    opp = brand.get(f"/v1/opportunities/{opp_id}")
    assert {k: len(opp[k]) for k in KINDS} == {"contacts": 3, "revenue_lines": 2, "notes": 2, "activities": 3}
    assert opp["name"] == "Lead mode, bigger"
    for kind in KINDS:  # each child paired once, with one of the lead's
        assert sorted(_pairs(queried, kind)) == sorted(r["id"] for r in opp[kind]), kind
        assert len(set(_pairs(queried, kind).values())) == len(opp[kind]), kind
