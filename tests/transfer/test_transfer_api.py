"""The transfer API in-process (Flask test client, both databases): connections keep their secrets to
themselves and refuse private URLs outside the test setting; outbound operations are refused with clear
problems; an approval queues the transfer in its own transaction when the partner's connection says so;
the CLI reports profile errors with their positions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.audit import AuditEvent
from common.outbox import OutboxMessage
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo, load_demo
from transfer.models import OpportunityTransfer, PartnerCrmConnection
from transfer.profile import PROFILES_DIR

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INBOUND = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _connection(organization_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "organization_id": organization_id,
        "key": "northwind",
        "name": "Northwind CRM",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create", "update", "query"],
        "signing_secret": SIGNING,
        "inbound_secret": INBOUND,
        "profile": (PROFILES_DIR / "partner_lead.yaml").read_text(),
        **extra,
    }


def test_a_connection_never_shows_its_secrets_and_stores_them_encrypted(client, db, demo):
    admin = demo["admin"]
    resp = client.post("/v1/partner-crm-connections", json=_connection(demo.ids["northwind"]), headers=admin)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["signing_secret_last4"] == SIGNING[-4:] and body["inbound_secret_last4"] == INBOUND[-4:]
    assert body["profile_name"] == "partner_lead" and body["inbound_creates"] == "opportunity"
    for text in (
        resp.get_data(as_text=True),
        client.get("/v1/partner-crm-connections", headers=admin).get_data(as_text=True),
    ):
        assert SIGNING not in text and INBOUND not in text and "encrypted" not in text
    with db.transaction() as session:
        stored = session.scalars(select(PartnerCrmConnection)).one()
        assert (
            SIGNING not in stored.signing_secret_encrypted and INBOUND not in stored.inbound_secret_encrypted
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/crm",
        "http://10.1.2.3/crm",
        "http://169.254.169.254/latest",
        "http://2130706433/",
        "ftp://93.184.215.14/",
    ],
)
def test_partner_urls_to_private_or_loopback_addresses_are_refused_outside_the_test_setting(
    client, demo, url
):
    resp = client.post(
        "/v1/partner-crm-connections",
        json=_connection(demo.ids["northwind"], base_url=url),
        headers=demo["admin"],
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.get_json()["type"].endswith("partner-url-refused")
    assert client.get("/v1/partner-crm-connections", headers=demo["admin"]).get_json()["items"] == []


def test_a_profile_with_errors_is_a_422_listing_each_position(client, demo):
    bad = "profile: p\nobject: Lead\nfields: {name: Title, nme: X}\nchildren: {contacts: {as: People, fields: {emial: E}}}\n"
    resp = client.post(
        "/v1/partner-crm-connections",
        json=_connection(demo.ids["northwind"], profile=bad),
        headers=demo["admin"],
    )
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]
    assert [e["pointer"] for e in errors] == ["profile:3:23", "profile:4:44"], errors
    assert "did you mean 'name'" in errors[0]["detail"] and "emial" in errors[1]["detail"]


def _approved(client, demo) -> int:
    lead = pending(client, demo)
    body = ok(act(client, demo["cam-jp-security"], lead["id"], "approve", {"comment": "fine"}))
    opportunity_id: int = body["opportunity_id"]
    return opportunity_id


def test_transfer_operations_are_refused_with_clear_problems(client, demo):
    admin = demo["admin"]
    opp = _approved(client, demo)
    partner = {"partner_organization_id": demo.ids["northwind"]}
    resp = client.post(f"/v1/opportunities/{opp}/transfers", json=partner, headers=admin)
    assert resp.status_code == 409 and resp.get_json()["type"].endswith("transfer-not-set-up")
    client.post(
        "/v1/partner-crm-connections",
        json=_connection(demo.ids["northwind"], operations=["create"]),
        headers=admin,
    )
    for action in ("send-update", "receive-update"):
        resp = client.post(f"/v1/opportunities/{opp}/transfers/{action}", json=partner, headers=admin)
        assert resp.status_code == 409 and resp.mimetype == "application/problem+json"
        assert resp.get_json()["type"].endswith("transfer-not-set-up")  # the connection offers create only
    resp = client.post(f"/v1/opportunities/{opp}/transfers", json=partner, headers=admin)
    assert resp.status_code == 202 and resp.get_json()["status"] == "in_progress"
    again = client.post(f"/v1/opportunities/{opp}/transfers", json=partner, headers=admin)
    assert again.status_code == 409 and "send an update" in again.get_json()["detail"]
    assert (
        client.post(
            f"/v1/opportunities/{opp}/transfers", json=partner, headers=demo["northwind-user"]
        ).status_code
        == 403
    )


def test_approval_queues_the_transfer_in_its_transaction_when_the_connection_says_so(client, db, demo):
    admin = demo["admin"]
    resp = client.post(
        "/v1/partner-crm-connections",
        json=_connection(demo.ids["northwind"], transfer_on_approval=True),
        headers=admin,
    )
    assert resp.status_code == 201
    opp = _approved(client, demo)
    with db.transaction() as session:
        [t] = session.scalars(select(OpportunityTransfer)).all()
        [message] = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "partner_crm")).all()
    assert (t.opportunity_id, t.status, t.origin) == (opp, "in_progress", "outbound")
    assert message.payload["transfer_id"] == t.id and message.payload["body"]["Title"] == "Firewall refresh"
    assert message.payload["body"]["LeadStatus"] == "Open"
    [status] = client.get(f"/v1/opportunities/{opp}/transfers", headers=admin).get_json()["items"]
    assert status["status"] == "in_progress" and status["attempts"] == 0
    with db.transaction() as session:
        actions = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "opportunity_transfer"))
        )
    assert actions == ["transfer_requested"]
    listed = client.application.test_cli_runner().invoke(args=["outbox", "list", "--channel", "partner_crm"])
    assert listed.exit_code == 0, listed.output
    [line] = [row for row in listed.output.splitlines() if row.startswith(f"{message.id}\t")]
    lead_id = client.get(f"/v1/opportunities/{opp}", headers=admin).get_json()["registration"]["lead_id"]
    assert line.split("\t")[6:8] == [str(lead_id), "partner-crm:northwind"]


TRANSFER_POLICY = """\
kind: policy
hit_policy: first
rules:
  - id: resale-deals-go-to-the-partners-crm
    when: {fact: registration_type, op: eq, value: resale}
    then: {transfer: on_approval}
  - id: otherwise
    when: always
"""


def test_approval_queues_the_transfer_when_the_decisions_policy_says_so(client, db, demo):
    admin = demo["admin"]
    uploaded = client.post(
        "/v1/rulesets", json={"name": "transfer.yaml", "source": TRANSFER_POLICY}, headers=admin
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    ruleset = uploaded.get_json()["id"]
    etag = client.get(f"/v1/rulesets/{ruleset}", headers=admin).headers["ETag"]
    activated = client.post(f"/v1/rulesets/{ruleset}/activate", headers={**admin, "If-Match": etag})
    assert activated.status_code == 200, activated.get_json()
    # the connection itself does not ask for transfers on approval: the policy does
    client.post("/v1/partner-crm-connections", json=_connection(demo.ids["northwind"]), headers=admin)
    opp = _approved(client, demo)  # a resale registration
    with db.transaction() as session:
        [t] = session.scalars(select(OpportunityTransfer)).all()
    assert (t.opportunity_id, t.status) == (opp, "in_progress")


def test_without_the_flag_an_approval_transfers_nothing(client, db, demo):
    client.post("/v1/partner-crm-connections", json=_connection(demo.ids["northwind"]), headers=demo["admin"])
    _approved(client, demo)
    with db.transaction() as session:
        assert session.scalars(select(OpportunityTransfer)).all() == []


def test_the_cli_reports_profile_errors_with_their_positions(app, demo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: p\nobject: Lead\nfields: {name: Title, nme: X}\n")
    result = app.test_cli_runner().invoke(
        args=[
            "transfer",
            "connections",
            "create",
            "--organization-id",
            str(demo.ids["northwind"]),
            "--key",
            "nw",
            "--name",
            "NW",
            "--url",
            "https://93.184.215.14/crm",
            "--profile",
            str(bad),
        ]
    )
    assert result.exit_code != 0
    assert "profile:3:23" in result.output and "nme" in result.output


def test_ids_a_partner_echoes_are_ascii_digits_within_the_columns_range(client, db, demo):
    """A partner's reply lists {our id: their id}: an id past 2^31-1 was an 'integer out of range' on
    PostgreSQL in the deliverer, and a non-ASCII digit named one of our records."""
    from transfer import repository

    resp = client.post(
        "/v1/partner-crm-connections",
        json=_connection(demo.ids["northwind"], transfer_on_approval=True),
        headers=demo["admin"],
    )
    assert resp.status_code == 201
    _approved(client, demo)
    with db.transaction() as session:
        [t] = session.scalars(select(OpportunityTransfer)).all()
        [contact] = repository.child_ids(session, t, "contacts")
    reply = {
        "contacts": {
            "2147483648": "huge",
            "\u0661": "arabic",
            "\uff12": "fullwidth",
            "+3": "sign",
            str(contact + 1000): "not a contact of this opportunity",
            str(contact): "ok",
        }
    }
    with db.transaction() as session:
        [t] = session.scalars(select(OpportunityTransfer)).all()
        repository.remember_reply(session, t, reply)
    with db.transaction() as session:
        [t] = session.scalars(select(OpportunityTransfer)).all()
        assert repository.correlation_map(session, t, "contacts") == {"ok": contact}
