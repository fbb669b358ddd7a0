"""Editing an opportunity over HTTP: its fields (PATCH /v1/opportunities/{id}) and its contacts, notes and
activities (POST to add, PATCH and DELETE one). The rules of the revenue lines hold for each: the
opportunity's ETag (428 without, 412 when stale), one audit row with before and after, the partner's team
refused once the registration expired (and under a referral), the brand owner's users allowed, 422 for a
bad change with nothing stored. A change of a transferred opportunity queues its update (status
``update_pending``) when the connection or the registration's policy says updates go out automatically,
and the update carries the new fields and children. On SQLite and PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.audit import AuditEvent
from common.outbox import OutboxMessage
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo, load_demo
from transfer.models import OpportunityTransfer
from transfer.profile import PROFILES_DIR


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


@pytest.fixture
def opportunity(client, demo) -> dict[str, Any]:
    """The open opportunity of an approved resale registration of Northwind."""
    approved = ok(act(client, demo["cam-jp-security"], pending(client, demo)["id"], "approve"))
    return _read(client, demo["northwind-user"], approved["opportunity_id"])[1]


def _read(client, headers: dict[str, str], opp_id: int) -> tuple[str, dict[str, Any]]:
    resp = client.get(f"/v1/opportunities/{opp_id}", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.headers["ETag"]), resp.get_json()


def _send(
    client, method: str, headers: dict[str, str], path: str, body: Any = None, etag: str | None = "read"
) -> Any:
    """A change with the opportunity's current ETag (``etag="read"``), a given one, or none (None)."""
    opp_path = "/".join(path.split("/")[:4])
    if etag == "read":
        etag = _read(client, headers, int(opp_path.rsplit("/", 1)[1]))[0]
    hdrs = {**headers, "If-Match": etag} if etag else dict(headers)
    kwargs = {} if body is None else {"json": body}
    return client.open(path, method=method, headers=hdrs, **kwargs)


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json()
    return body


EDITS = ["updated"] + [
    f"{kind}_{what}" for kind in ("contact", "note", "activity") for what in ("added", "updated", "deleted")
]


def _audit(db, opp_id: int) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.entity_type == "opportunity", AuditEvent.entity_id == opp_id)
                .where(AuditEvent.action.in_(EDITS))
                .order_by(AuditEvent.id)
            )
        )


def test_the_partner_edits_the_opportunitys_fields_and_its_version_moves(client, db, demo, opportunity):
    partner = demo["northwind-user"]
    opp_id = opportunity["id"]
    etag, _ = _read(client, partner, opp_id)
    change = {
        "name": "Firewall refresh, both sites",
        "stage": "Negotiation",
        "expected_close_date": "2027-06-30",
        "description": "Now with the Osaka office",
    }
    resp = _send(client, "PATCH", partner, f"/v1/opportunities/{opp_id}", change, etag)
    out = ok(resp)
    assert {k: out[k] for k in change} == change
    assert out["version"] == opportunity["version"] + 1
    assert resp.headers["ETag"] == f'"{opp_id}.{out["version"]}"' != etag
    assert _read(client, partner, opp_id) == (resp.headers["ETag"], out)

    # one field at a time; null clears a nullable one
    out = ok(_send(client, "PATCH", partner, f"/v1/opportunities/{opp_id}", {"stage": None}))
    assert out["stage"] is None and out["name"] == change["name"]

    [first, second] = _audit(db, opp_id)
    assert first.action == "updated" and first.actor_user_id == demo.ids["northwind-user"]
    assert first.before == {
        "name": opportunity["name"],
        "stage": None,
        "expected_close_date": opportunity["expected_close_date"],
        "description": opportunity["description"],
    }
    assert first.after == change
    assert (second.before, second.after) == ({"stage": "Negotiation"}, {"stage": None})


def test_contacts_notes_and_activities_are_added_changed_and_deleted(client, db, demo, opportunity):
    partner = demo["northwind-user"]
    opp_id = opportunity["id"]
    base = f"/v1/opportunities/{opp_id}"
    existing = {c["id"] for c in opportunity["contacts"]}

    first = ok(
        _send(client, "POST", partner, f"{base}/contacts", {"name": "Ken Sato", "role": "IT lead"}), 201
    )
    out = ok(
        _send(
            client,
            "POST",
            partner,
            f"{base}/contacts",
            {"name": "Mei Ito", "email": "mei@example.jp", "phone": "+81 3 1234", "primary": True},
        ),
        201,
    )
    added = [c for c in out["contacts"] if c["id"] not in existing]
    assert [(c["name"], c["role"], c["primary"]) for c in added] == [
        ("Ken Sato", "IT lead", False),
        ("Mei Ito", None, True),
    ]
    assert [c["primary"] for c in out["contacts"]].count(True) == 1  # one primary contact
    assert out["version"] == first["version"] + 1
    ken, mei = added
    out = ok(
        _send(client, "PATCH", partner, f"{base}/contacts/{ken['id']}", {"primary": True, "phone": None})
    )
    assert {c["id"]: c["primary"] for c in out["contacts"]}[ken["id"]] is True
    assert {c["id"]: c["primary"] for c in out["contacts"]}[mei["id"]] is False
    out = ok(_send(client, "DELETE", partner, f"{base}/contacts/{mei['id']}"))
    assert mei["id"] not in {c["id"] for c in out["contacts"]}

    out = ok(_send(client, "POST", partner, f"{base}/notes", {"text": "PoC agreed"}), 201)
    note = out["notes"][-1]
    assert (note["text"], note["author_user_id"]) == ("PoC agreed", demo.ids["northwind-user"])
    out = ok(_send(client, "PATCH", partner, f"{base}/notes/{note['id']}", {"text": "PoC in May"}))
    assert out["notes"][-1]["text"] == "PoC in May"
    out = ok(_send(client, "DELETE", partner, f"{base}/notes/{note['id']}"))
    assert note["id"] not in {n["id"] for n in out["notes"]}

    body = {"kind": "call", "subject": "Pricing call", "due_date": "2027-01-15"}
    out = ok(_send(client, "POST", partner, f"{base}/activities", body), 201)
    call = out["activities"][-1]
    assert (call["kind"], call["subject"], call["due_date"], call["done"]) == (
        "call",
        "Pricing call",
        "2027-01-15",
        False,
    )
    out = ok(_send(client, "PATCH", partner, f"{base}/activities/{call['id']}", {"done": True}))
    assert out["activities"][-1]["done"] is True and out["activities"][-1]["due_date"] == "2027-01-15"
    out = ok(_send(client, "DELETE", partner, f"{base}/activities/{call['id']}"))
    assert call["id"] not in {a["id"] for a in out["activities"]}
    assert out["version"] == opportunity["version"] + 10

    rows = _audit(db, opp_id)
    assert [r.action for r in rows] == [
        "contact_added",
        "contact_added",
        "contact_updated",
        "contact_deleted",
        "note_added",
        "note_updated",
        "note_deleted",
        "activity_added",
        "activity_updated",
        "activity_deleted",
    ]
    assert rows[2].before["primary"] is False and rows[2].after["primary"] is True
    assert rows[2].before["phone"] is None and rows[3].after is None
    assert rows[5].before == {"text": "PoC agreed"} and rows[5].after == {"text": "PoC in May"}
    assert rows[8].details["activity_id"] == call["id"] and rows[8].after["done"] is True


OPERATIONS = [
    ("PATCH", "", {"stage": "Won soon"}),
    ("POST", "/contacts", {"name": "Ken Sato"}),
    ("PATCH", "/contacts/{contact}", {"role": "buyer"}),
    ("DELETE", "/contacts/{contact}", None),
    ("POST", "/notes", {"text": "a note"}),
    ("PATCH", "/notes/{note}", {"text": "changed"}),
    ("DELETE", "/notes/{note}", None),
    ("POST", "/activities", {"subject": "Call back"}),
    ("PATCH", "/activities/{activity}", {"done": True}),
    ("DELETE", "/activities/{activity}", None),
]


def _children(client, demo: Demo, opp_id: int) -> dict[str, int]:
    """A contact, a note and an activity to address (added by the CAM)."""
    cam, base = demo["cam-jp-security"], f"/v1/opportunities/{opp_id}"
    ok(_send(client, "POST", cam, f"{base}/contacts", {"name": "Ken Sato"}), 201)
    ok(_send(client, "POST", cam, f"{base}/notes", {"text": "first"}), 201)
    out = ok(_send(client, "POST", cam, f"{base}/activities", {"subject": "Kick-off"}), 201)
    return {
        "contact": out["contacts"][-1]["id"],
        "note": out["notes"][-1]["id"],
        "activity": out["activities"][-1]["id"],
    }


@pytest.mark.parametrize(("method", "suffix", "body"), OPERATIONS)
def test_every_change_needs_the_opportunitys_current_etag(
    client, db, demo, opportunity, method, suffix, body
):
    partner, opp_id = demo["northwind-user"], opportunity["id"]
    path = f"/v1/opportunities/{opp_id}{suffix}".format(**_children(client, demo, opp_id))
    etag, before = _read(client, partner, opp_id)
    count = len(_audit(db, opp_id))
    assert _problem(_send(client, method, partner, path, body, None), 428)
    stale = f'"{opp_id}.{before["version"] - 1}"'
    assert _problem(_send(client, method, partner, path, body, stale), 412)["current_etag"] == etag
    assert _read(client, partner, opp_id) == (etag, before)
    assert len(_audit(db, opp_id)) == count


@pytest.mark.parametrize(("method", "suffix", "body"), OPERATIONS)
def test_after_the_registration_expired_the_partner_is_refused_and_the_cam_may(
    app, client, db, demo, opportunity, method, suffix, body
):
    partner, cam, opp_id = demo["northwind-user"], demo["cam-jp-security"], opportunity["id"]
    path = f"/v1/opportunities/{opp_id}{suffix}".format(**_children(client, demo, opp_id))
    as_of = (datetime.now().astimezone() + timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%S%z")
    out = app.test_cli_runner().invoke(args=["registrations", "expire", "--now", as_of])
    assert out.exit_code == 0, out.output
    etag, before = _read(client, partner, opp_id)
    count = len(_audit(db, opp_id))

    problem = _problem(_send(client, method, partner, path, body, etag), 403)
    assert problem["type"].endswith("registration-expired")
    assert opportunity["registration"]["registration_number"] in problem["detail"]
    assert _read(client, partner, opp_id) == (etag, before)
    assert len(_audit(db, opp_id)) == count

    resp = _send(client, method, cam, path, body, etag)
    assert resp.status_code == (201 if method == "POST" else 200), resp.get_data(as_text=True)
    assert _audit(db, opp_id)[-1].actor_user_id == demo.ids["cam-jp-security"]


def test_a_referral_partner_may_not_edit(client, demo):
    lead = pending(client, demo, registration_type="referral")
    opp_id = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    resp = _send(client, "PATCH", demo["northwind-user"], f"/v1/opportunities/{opp_id}", {"stage": "x"})
    assert _problem(resp, 403)["type"].endswith("partner-may-not-close")


def test_a_child_of_another_opportunity_or_another_organizations_opportunity_is_404(
    client, demo, opportunity
):
    partner, opp_id = demo["northwind-user"], opportunity["id"]
    second = ok(act(client, demo["cam-jp-security"], pending(client, demo)["id"], "approve"))
    theirs = _children(client, demo, second["opportunity_id"])
    for kind in ("contact", "note", "activity"):
        path = (
            f"/v1/opportunities/{opp_id}/{'activities' if kind == 'activity' else kind + 's'}/{theirs[kind]}"
        )
        problem = _problem(_send(client, "DELETE", partner, path), 404)
        assert f"{kind} {theirs[kind]} not found" in problem["detail"]
    other = _send(
        client, "PATCH", demo["contoso-user"], f"/v1/opportunities/{opp_id}", {"stage": "x"}, '"1.1"'
    )
    assert _problem(other, 404)["detail"] == f"opportunity {opp_id} not found"


@pytest.mark.parametrize(
    ("suffix", "body", "pointer"),
    [
        ("", {}, ""),
        ("", {"name": None}, "/name"),
        ("", {"name": "   "}, "/name"),
        ("", {"stage": "x" * 101}, "/stage"),
        ("", {"status": "won"}, "/status"),
        ("", {"owner_user_id": 1}, "/owner_user_id"),
        ("", {"expected_close_date": "soon"}, "/expected_close_date"),
        ("/contacts", {"phone": "+81 3 1234"}, ""),
        ("/contacts", {"name": "A", "email": "not-an-address"}, "/email"),
        ("/notes", {"text": ""}, "/text"),
        ("/activities", {"subject": "Call", "kind": "Phone Call"}, "/kind"),
        ("/activities", {"kind": "call"}, "/subject"),
    ],
)
def test_a_bad_change_is_422_and_stores_nothing(client, db, demo, opportunity, suffix, body, pointer):
    partner, opp_id = demo["northwind-user"], opportunity["id"]
    method = "PATCH" if not suffix else "POST"
    etag, before = _read(client, partner, opp_id)
    problem = _problem(_send(client, method, partner, f"/v1/opportunities/{opp_id}{suffix}", body, etag), 422)
    assert pointer in [e["pointer"] for e in problem["errors"]], problem
    assert _read(client, partner, opp_id) == (etag, before)
    assert _audit(db, opp_id) == []


def test_a_contact_keeps_a_name_or_an_email(client, demo, opportunity):
    partner, opp_id = demo["northwind-user"], opportunity["id"]
    out = ok(_send(client, "POST", partner, f"/v1/opportunities/{opp_id}/contacts", {"name": "Ken"}), 201)
    ken = out["contacts"][-1]["id"]
    problem = _problem(
        _send(client, "PATCH", partner, f"/v1/opportunities/{opp_id}/contacts/{ken}", {"name": None}), 422
    )
    assert "name or an e-mail" in problem["detail"]


# --- automatic updates to a partner's CRM ---------------------------------------------------------------

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _connect(client, demo, opportunity, **extra: Any) -> int:
    connection = {
        "organization_id": opportunity["organization_id"],
        "key": "crm-northwind",
        "name": "Northwind CRM",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create", "update", "query"],
        "signing_secret": SECRET,
        "inbound_secret": SECRET,
        "profile": (PROFILES_DIR / "partner_lead.yaml").read_text(),
        **extra,
    }
    resp = client.post("/v1/partner-crm-connections", json=connection, headers=demo["admin"])
    connection_id: int = ok(resp, 201)["id"]
    return connection_id


def _transferred(db, connection_id: int, opp_id: int) -> None:
    """The opportunity went to the partner before (the partner knows it as R-<id>)."""
    with db.transaction() as session:
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


def _updates(db) -> list[dict[str, Any]]:
    with db.transaction() as session:
        return [
            m.payload
            for m in session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.channel == "partner_crm", OutboxMessage.topic == "update")
                .order_by(OutboxMessage.id)
            )
        ]


def _transfer_status(client, demo, opp_id: int) -> dict[str, Any]:
    [status] = ok(client.get(f"/v1/opportunities/{opp_id}/transfers", headers=demo["admin"]))["items"]
    found: dict[str, Any] = status
    return found


def test_a_change_queues_the_update_when_the_connection_sends_updates_automatically(
    client, db, demo, opportunity
):
    partner, opp_id = demo["northwind-user"], opportunity["id"]
    connection_id = _connect(client, demo, opportunity, send_updates_automatically=True)
    _transferred(db, connection_id, opp_id)

    ok(_send(client, "PATCH", partner, f"/v1/opportunities/{opp_id}", {"stage": "Negotiation"}))
    status = _transfer_status(client, demo, opp_id)
    assert status["status"] == "update_pending" and status["last_operation"] == "update"
    assert status["message"] == (
        "Queued: the changes will be sent to Northwind CRM (automatic, after a change here)"
    )
    [update] = _updates(db)
    assert update["body"]["ExternalId"] == str(opp_id) and update["body"]["Phase"] == "Negotiation"

    # children travel too: the contact's role, the activity's due date
    path = f"/v1/opportunities/{opp_id}/contacts"
    ok(_send(client, "POST", partner, path, {"name": "Ken Sato", "role": "IT lead"}), 201)
    body = {"kind": "call", "subject": "Pricing", "due_date": "2027-01-15"}
    ok(_send(client, "POST", partner, f"/v1/opportunities/{opp_id}/activities", body), 201)
    last = _updates(db)[-1]["body"]
    assert {"FullName": "Ken Sato", "JobRole": "IT lead"}.items() <= last["People"][-1].items()
    assert (last["Tasks"][-1]["TaskType"], last["Tasks"][-1]["DueOn"]) == ("Call", "2027-01-15")
    assert len(_updates(db)) == 3


def test_without_the_setting_a_change_queues_nothing(client, db, demo, opportunity):
    opp_id = opportunity["id"]
    _transferred(db, _connect(client, demo, opportunity), opp_id)
    ok(_send(client, "PATCH", demo["northwind-user"], f"/v1/opportunities/{opp_id}", {"stage": "x"}))
    assert _transfer_status(client, demo, opp_id)["status"] == "successful"
    assert _updates(db) == []


def test_revenue_lines_and_closing_queue_the_update_too(client, db, demo, opportunity):
    partner, opp_id = demo["northwind-user"], opportunity["id"]
    _transferred(db, _connect(client, demo, opportunity, send_updates_automatically=True), opp_id)
    line = opportunity["revenue_lines"][1]["id"]
    ok(_send(client, "PATCH", partner, f"/v1/opportunities/{opp_id}/revenue-lines/{line}", {"amount": 5}))
    ok(_send(client, "POST", partner, f"/v1/opportunities/{opp_id}/close", {"status": "won"}))
    assert [u["body"]["LeadStatus"] for u in _updates(db)] == ["Open", "Converted"]


UPDATES_POLICY = """\
kind: policy
hit_policy: first
rules:
  - id: resale-deals-keep-the-partners-crm-current
    when: {fact: registration_type, op: eq, value: resale}
    then: {transfer_updates: automatic}
  - id: otherwise
    when: always
"""


def test_a_change_queues_the_update_when_the_registrations_policy_says_so(client, db, demo):
    admin = demo["admin"]
    uploaded = ok(
        client.post("/v1/rulesets", json={"name": "updates.yaml", "source": UPDATES_POLICY}, headers=admin),
        201,
    )
    etag = client.get(f"/v1/rulesets/{uploaded['id']}", headers=admin).headers["ETag"]
    ok(client.post(f"/v1/rulesets/{uploaded['id']}/activate", headers={**admin, "If-Match": etag}))
    approved = ok(act(client, demo["cam-jp-security"], pending(client, demo)["id"], "approve"))
    opp_id = approved["opportunity_id"]
    _, opportunity = _read(client, admin, opp_id)
    _transferred(db, _connect(client, demo, opportunity), opp_id)  # the connection does not ask for it

    path = f"/v1/opportunities/{opp_id}/notes"
    ok(_send(client, "POST", demo["northwind-user"], path, {"text": "Budget approved"}), 201)
    assert _transfer_status(client, demo, opp_id)["status"] == "update_pending"
    [update] = _updates(db)
    assert update["body"]["Comments"][-1]["Body"] == "Budget approved"
