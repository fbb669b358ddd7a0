"""Changing an opportunity's revenue line over HTTP (PATCH /v1/opportunities/{id}/revenue-lines/{line_id}):
against the opportunity's ETag (428 without, 412 when stale), 422 for a bad or empty change, 404 for a
line of another opportunity, the partner's team refused once the registration expired (as for closing),
one audit row with before and after, and the next send-update carries the changed line. On SQLite and
PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.audit import AuditEvent
from common.outbox import OutboxMessage
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo, load_demo
from transfer.models import OpportunityTransfer


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


@pytest.fixture
def opportunity(client, demo) -> dict[str, Any]:
    """The open opportunity of an approved resale registration of Northwind: two revenue lines, the
    primary (firewall) priced at the deal size, the other unpriced."""
    approved = ok(act(client, demo["cam-jp-security"], pending(client, demo)["id"], "approve"))
    return _read(client, demo["northwind-user"], approved["opportunity_id"])[1]


def _read(client, headers: dict[str, str], opp_id: int) -> tuple[str, dict[str, Any]]:
    resp = client.get(f"/v1/opportunities/{opp_id}", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.headers["ETag"]), resp.get_json()


def _patch(client, headers: dict[str, str], opp_id: int, line_id: int, body: Any, etag: str | None) -> Any:
    hdrs = {**headers, "If-Match": etag} if etag else dict(headers)
    return client.patch(f"/v1/opportunities/{opp_id}/revenue-lines/{line_id}", json=body, headers=hdrs)


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json()
    assert body["status"] == status
    return body


def _lines(opp: dict[str, Any]) -> dict[int, tuple[float | None, str | None]]:
    return {r["id"]: (r["amount"], r["currency"]) for r in opp["revenue_lines"]}


def _audit(db, opp_id: int) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.entity_type == "opportunity",
                    AuditEvent.entity_id == opp_id,
                    AuditEvent.action == "revenue_line_updated",
                )
                .order_by(AuditEvent.id)
            )
        )


def test_the_partner_prices_a_line_and_the_opportunity_moves_to_a_new_version(client, db, demo, opportunity):
    partner = demo["northwind-user"]
    opp_id = opportunity["id"]
    primary, other = opportunity["revenue_lines"]
    assert primary["primary"] and not other["primary"] and other["amount"] is None
    etag, _ = _read(client, partner, opp_id)

    resp = _patch(client, partner, opp_id, other["id"], {"amount": 1234.5, "currency": "USD"}, etag)
    out = ok(resp)
    assert _lines(out) == {primary["id"]: (primary["amount"], "JPY"), other["id"]: (1234.5, "USD")}
    assert out["version"] == opportunity["version"] + 1
    assert resp.headers["ETag"] == f'"{opp_id}.{out["version"]}"' != etag
    assert _read(client, partner, opp_id) == (resp.headers["ETag"], out)

    # one field at a time; null clears the price
    out = ok(_patch(client, partner, opp_id, other["id"], {"amount": None}, resp.headers["ETag"]))
    assert _lines(out)[other["id"]] == (None, "USD") and out["version"] == opportunity["version"] + 2

    rows = _audit(db, opp_id)
    assert [(r.before, r.after) for r in rows] == [
        ({"amount": None, "currency": "JPY"}, {"amount": "1234.50", "currency": "USD"}),
        ({"amount": "1234.50", "currency": "USD"}, {"amount": None, "currency": "USD"}),
    ]
    assert rows[0].actor_user_id == demo.ids["northwind-user"]
    assert rows[0].details == {
        "revenue_line_id": other["id"],
        "product_id": other["product_id"],
        "version": opportunity["version"] + 1,
    }


def test_a_change_needs_the_opportunitys_current_etag(client, db, demo, opportunity):
    partner = demo["northwind-user"]
    opp_id, line_id = opportunity["id"], opportunity["revenue_lines"][0]["id"]
    etag, before = _read(client, partner, opp_id)

    assert _problem(_patch(client, partner, opp_id, line_id, {"amount": 1}, None), 428)
    stale = f'"{opp_id}.{before["version"] + 1}"'
    problem = _problem(_patch(client, partner, opp_id, line_id, {"amount": 1}, stale), 412)
    assert problem["current_etag"] == etag
    # an ETag naming the line's id instead of the opportunity's is no ETag of the opportunity
    other_line = next(r["id"] for r in before["revenue_lines"] if r["id"] != opp_id)
    _problem(_patch(client, partner, opp_id, other_line, {"amount": 1}, f'"{other_line}.1"'), 412)
    assert _read(client, partner, opp_id) == (etag, before)
    assert _audit(db, opp_id) == []


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, ""),
        ({"amount": -1}, "/amount"),
        ({"amount": 1.005}, "/amount"),
        ({"amount": "lots"}, "/amount"),
        ({"currency": "eur"}, "/currency"),
        ({"currency": "EURO"}, "/currency"),
        ({"currency": 978}, "/currency"),
        ({"quantity": 2}, "/quantity"),
        ({"amount": 10, "product_id": 1}, "/product_id"),
    ],
)
def test_a_bad_or_empty_change_is_422_and_changes_nothing(client, db, demo, opportunity, body, pointer):
    partner = demo["northwind-user"]
    opp_id, line_id = opportunity["id"], opportunity["revenue_lines"][0]["id"]
    etag, before = _read(client, partner, opp_id)
    problem = _problem(_patch(client, partner, opp_id, line_id, body, etag), 422)
    assert pointer in [e["pointer"] for e in problem["errors"]], problem
    assert _read(client, partner, opp_id) == (etag, before)
    assert _audit(db, opp_id) == []


def test_a_line_not_on_the_opportunity_is_404(client, db, demo, opportunity):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    opp_id = opportunity["id"]
    approved = ok(act(client, cam, pending(client, demo)["id"], "approve"))
    _, second = _read(client, partner, approved["opportunity_id"])
    etag, before = _read(client, partner, opp_id)
    for line_id in (second["revenue_lines"][0]["id"], 2_000_000_000):
        problem = _problem(_patch(client, partner, opp_id, line_id, {"amount": 5}, etag), 404)
        assert str(line_id) in problem["detail"]
    assert _read(client, partner, opp_id) == (etag, before)
    # another organization's opportunity answers like a missing one
    other = _patch(
        client, demo["contoso-user"], opp_id, before["revenue_lines"][0]["id"], {"amount": 5}, etag
    )
    assert _problem(other, 404)["detail"] == f"opportunity {opp_id} not found"


def test_after_the_registration_expired_the_partner_is_refused_and_the_cam_may(
    app, client, db, demo, opportunity
):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    opp_id, line_id = opportunity["id"], opportunity["revenue_lines"][0]["id"]
    as_of = (datetime.now().astimezone() + timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%S%z")
    out = app.test_cli_runner().invoke(args=["registrations", "expire", "--now", as_of])
    assert out.exit_code == 0, out.output

    etag, before = _read(client, partner, opp_id)
    problem = _problem(_patch(client, partner, opp_id, line_id, {"amount": 1}, etag), 403)
    assert problem["type"].endswith("registration-expired")
    assert opportunity["registration"]["registration_number"] in problem["detail"]
    assert "revenue lines" in problem["detail"]
    assert _read(client, partner, opp_id) == (etag, before)
    assert _audit(db, opp_id) == []

    out_cam = ok(_patch(client, cam, opp_id, line_id, {"amount": 42}, etag))
    assert _lines(out_cam)[line_id][0] == 42.0
    [row] = _audit(db, opp_id)
    assert row.actor_user_id == demo.ids["cam-jp-security"]
    assert row.after == {"amount": "42.00", "currency": "JPY"}


def test_a_closed_opportunitys_line_may_still_be_corrected(client, demo, opportunity):
    partner = demo["northwind-user"]
    opp_id, line_id = opportunity["id"], opportunity["revenue_lines"][0]["id"]
    etag, _ = _read(client, partner, opp_id)
    closed = client.post(
        f"/v1/opportunities/{opp_id}/close", json={"status": "won"}, headers={**partner, "If-Match": etag}
    )
    out = ok(_patch(client, partner, opp_id, line_id, {"amount": 60000}, closed.headers["ETag"]))
    assert out["status"] == "won" and _lines(out)[line_id] == (60000.0, "JPY")


PROFILE = (Path(__file__).parents[2] / "transfer/profiles/partner_lead.yaml").read_text()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_next_send_update_carries_the_changed_line(client, db, demo, opportunity):
    admin, cam = demo["admin"], demo["cam-jp-security"]
    opp_id, line = opportunity["id"], opportunity["revenue_lines"][1]
    connection = {
        "organization_id": opportunity["organization_id"],
        "key": "crm-northwind",
        "name": "Northwind CRM",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create", "update", "query"],
        "signing_secret": SECRET,
        "inbound_secret": SECRET,
        "profile": PROFILE,
    }
    connection_id = ok(client.post("/v1/partner-crm-connections", json=connection, headers=admin), 201)["id"]
    with db.transaction() as session:  # transferred before (the partner knows it as R-<id>)
        session.add(
            OpportunityTransfer(
                connection_id=connection_id,
                opportunity_id=opp_id,
                remote_id=f"R-{opp_id}",
                origin="outbound",
                status="successful",
                attempts=1,
            )
        )
    etag, _ = _read(client, cam, opp_id)
    ok(_patch(client, cam, opp_id, line["id"], {"amount": 777.25, "currency": "USD"}, etag))

    body = {"partner_organization_id": opportunity["organization_id"]}
    sent = client.post(f"/v1/opportunities/{opp_id}/transfers/send-update", json=body, headers=cam)
    assert ok(sent, 202)["status"] == "update_pending"
    with db.transaction() as session:
        [message] = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.channel == "partner_crm", OutboxMessage.topic == "update"
            )
        )
        payload = message.payload
    [item] = [i for i in payload["body"]["LineItems"] if i["ExternalId"] == str(line["id"])]
    assert Decimal(str(item["Value"])) == Decimal("777.25") and item["Currency"] == "USD"
