"""In-process checks of two rules the end-to-end tests do not reach: the outbox message and the transfer
status exist exactly when the change commits, and a connection set to create leads turns an inbound
transfer into a draft lead of the partner's organization (owner and registration never taken from it)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from common.outbox import OutboxMessage
from directory.models import Product
from registration.leads.models import Lead, LeadNote
from registration.opportunities.models import Opportunity
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo, load_demo
from transfer import service
from transfer.models import OpportunityTransfer, PartnerCrmConnection
from transfer.profile import PROFILES_DIR
from transfer.signing import signature_headers

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INBOUND = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _connect(client, demo, **extra):
    body = {
        "organization_id": demo.ids["northwind"],
        "key": "northwind",
        "name": "Northwind CRM",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create", "update", "query"],
        "signing_secret": SIGNING,
        "inbound_secret": INBOUND,
        "profile": (PROFILES_DIR / "partner_lead.yaml").read_text(),
        **extra,
    }
    resp = client.post("/v1/partner-crm-connections", json=body, headers=demo["admin"])
    assert resp.status_code == 201, resp.get_data(as_text=True)


class Boom(Exception):
    pass


def test_an_exception_after_the_outbox_insert_leaves_no_message_and_no_status(client, db, demo):
    _connect(client, demo)
    lead = pending(client, demo)
    opp_id = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    with pytest.raises(Boom), db.transaction() as session:
        opp = session.get(Opportunity, opp_id)
        connection = session.scalars(select(PartnerCrmConnection)).one()
        service.request_transfer(session, None, opp, connection, now=opp.created_at, reason="test")
        assert (
            session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.channel == "partner_crm")
            )
            == 1
        )
        raise Boom
    with db.transaction() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.channel == "partner_crm")
            )
            == 0
        )
        assert session.scalar(select(func.count()).select_from(OpportunityTransfer)) == 0


def _signed(client, method, path, body=b""):
    headers = signature_headers(INBOUND, f"msg_{time.monotonic_ns()}", int(time.time()), body)
    return client.open(
        path, method=method, data=body or None, headers={**headers, "Content-Type": "application/json"}
    )


def test_an_inbound_transfer_to_a_lead_connection_creates_a_draft_lead_of_the_partner(client, db, demo):
    _connect(client, demo, inbound_creates="lead")
    with db.transaction() as session:
        product = session.scalars(select(Product.key).order_by(Product.id)).first()
    doc = {
        "id": "CRM-77",
        "name": "Their deal",
        "amount": "500.00",
        "currency": "EUR",
        "owner": "someone-else",
        "registration_number": "REG-HACKED",
        "contacts": [{"id": "c1", "name": "Pat Partner", "email": "pat@partner.example"}],
        "revenue_lines": [{"id": "r1", "product": product}],
        "notes": [{"id": "n1", "text": "from their CRM"}],
    }
    body = json.dumps(doc).encode()
    first = _signed(client, "POST", "/v1/partner-crm/northwind/opportunities", body)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = _signed(client, "POST", "/v1/partner-crm/northwind/opportunities", body)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    with db.transaction() as session:
        [lead] = session.scalars(select(Lead)).all()
        assert lead.id == int(first.get_json()["id"])
        assert (lead.organization_id, lead.status, lead.owner_user_id) == (
            demo.ids["northwind"],
            "draft",
            None,
        )
        assert lead.registration_number is None and lead.contact_name == "Pat Partner"
        assert [p.product_id for p in lead.products] and session.scalar(
            select(func.count()).select_from(LeadNote)
        ) == 1
        assert session.scalar(select(func.count()).select_from(Opportunity)) == 0
    answer = _signed(client, "GET", "/v1/partner-crm/northwind/opportunities/CRM-77")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["name"] == "Their deal" and answer.get_json()["amount"] == "500.00"
