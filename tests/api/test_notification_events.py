"""Every notification event a policy may name is sent (on the demo data, SQLite and PostgreSQL): each
event of the rules vocabulary is queued by the flow that causes it, through the API; approvers hear when
information is submitted or a registration withdrawn; the channel sales manager and director of the
lead's territories hear what its team hears; a policy naming an event nobody sends is refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

from common import outbox
from common.clock import utcnow
from common.mail import CHANNEL
from common.settings import Settings
from registration.notifications import service as notifications_service
from registration.notifications.notifications import NotificationEvent
from rules.spec import EventName
from rules.vocabulary import EVENTS
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo, load_demo
from transfer import delivery_service
from transfer.client import PartnerCrmClient
from transfer.profile import PROFILES_DIR

MANAGERS = ["dir-global@acme.example", "mgr-apac@acme.example"]
PARTNER = "northwind-user@northwind.example"
CAM = "cam-jp-security@acme.example"
LATER = "2099-01-01T00:00:00+00:00"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def test_the_policy_vocabulary_names_exactly_the_events_the_service_sends() -> None:
    assert set(get_args(EventName)) == EVENTS == {e.value for e in NotificationEvent}


def _queued(db) -> dict[tuple[str, int], list[str]]:
    """(event, lead id) -> recipients' addresses of every queued mail."""
    out: dict[tuple[str, int], list[str]] = {}
    for m in outbox.list_messages(db, channel=CHANNEL, limit=2000):
        out.setdefault((m.payload["event"], m.payload["lead_id"]), []).append(m.payload["to"])
    return {k: sorted(v) for k, v in out.items()}


def _post(client, headers, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    lead_id = int(path.split("/")[3])
    etag = client.get(f"/v1/leads/{lead_id}", headers=headers).headers["ETag"]
    return ok(client.post(path, json=body, headers={**headers, "If-Match": etag}), status)


def _transfer_to_partner_crm(client, db, demo: Demo, settings: Settings, lead: dict[str, Any]) -> None:
    body = {
        "organization_id": demo.ids["northwind"],
        "key": "northwind",
        "name": "Northwind CRM",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create", "update", "query"],
        "signing_secret": SECRET,
        "inbound_secret": SECRET,
        "profile": (PROFILES_DIR / "partner_lead.yaml").read_text(),
    }
    ok(client.post("/v1/partner-crm-connections", json=body, headers=demo["admin"]), 201)
    ok(
        client.post(
            f"/v1/opportunities/{lead['opportunity_id']}/transfers",
            json={"partner_organization_id": demo.ids["northwind"]},
            headers=demo["cam-jp-security"],
        ),
        202,
    )
    crm = httpx.MockTransport(lambda request: httpx.Response(201, json={"id": "NW-1"}))

    def client_factory(connection: Any, secret: str) -> PartnerCrmClient:
        return PartnerCrmClient(
            connection.base_url, secret, 5, resolve=lambda host, port: ["93.184.215.14"], transport=crm
        )

    report = delivery_service.deliver(db, settings, client_factory=client_factory)
    assert report.sent == 1, report


def test_every_event_of_the_vocabulary_is_sent_by_the_flow_that_causes_it(app, client, db, demo, settings):
    partner, cam, admin = demo["northwind-user"], demo["cam-jp-security"], demo["admin"]
    leads: dict[Callable[[], int], int] = {}

    def submitted() -> int:
        return int(pending(client, demo)["id"])

    def asked_and_answered() -> int:
        lead_id = submitted()
        ok(act(client, cam, lead_id, "request-info", {"question": "Which sites?"}))
        ok(act(client, partner, lead_id, "submit-info", {"text": "Osaka and Kobe"}))
        return lead_id

    def withdrawn() -> int:
        lead_id = submitted()
        ok(act(client, partner, lead_id, "withdraw", {"comment": "customer paused"}))
        return lead_id

    def rejected() -> int:
        lead_id = submitted()
        ok(act(client, cam, lead_id, "reject", {"comment": "duplicate"}))
        return lead_id

    def approved() -> int:
        return int(ok(act(client, cam, submitted(), "approve"))["id"])

    def extension_asked_refused_and_granted() -> int:
        lead_id = approved()
        requests = f"/v1/leads/{lead_id}/extension-requests"
        body = {"expires_at": LATER, "reason": "slipped"}
        first = ok(client.post(requests, json=body, headers=partner), 201)
        _post(client, cam, f"{requests}/{first['id']}/reject", {"comment": "no"})
        second = ok(client.post(requests, json={**body, "reason": "really"}, headers=partner), 201)
        _post(client, cam, f"{requests}/{second['id']}/grant", {})
        return lead_id

    def expiring_then_expired() -> int:
        lead = ok(act(client, cam, submitted(), "approve"))
        soon = (utcnow() + timedelta(days=2)).isoformat()
        etag = client.get(f"/v1/leads/{lead['id']}", headers=cam).headers["ETag"]
        path = f"/v1/leads/{lead['id']}/expiry"
        ok(client.patch(path, json={"expires_at": soon}, headers={**cam, "If-Match": etag}))
        assert notifications_service.queue_expiry_reminders(db, within_days=7) >= 1
        ok(client.post("/v1/registrations/expire", headers=admin))  # not yet: nothing moves
        later = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S%z")
        out = app.test_cli_runner().invoke(args=["registrations", "expire", "--now", later])
        assert out.exit_code == 0, out.output
        return int(lead["id"])

    def accepted() -> int:
        offered = {"name": "Offered lead", "primary_partner_id": demo.ids["northwind"]}
        lead = ok(client.post("/v1/leads", json=offered, headers=cam), 201)
        etag = client.get(f"/v1/leads/{lead['id']}", headers=partner).headers["ETag"]
        ok(client.post(f"/v1/leads/{lead['id']}/accept", headers={**partner, "If-Match": etag}))
        return int(lead["id"])

    def transferred() -> int:
        lead = ok(act(client, cam, submitted(), "approve"))
        _transfer_to_partner_crm(client, db, demo, settings, lead)
        return int(lead["id"])

    # event -> (the flow that causes it, who hears of it by default)
    expected: dict[str, tuple[Callable[[], int], list[str]]] = {
        "submitted": (submitted, sorted([CAM, *MANAGERS])),
        "info_requested": (asked_and_answered, [PARTNER]),
        "info_submitted": (asked_and_answered, [CAM]),
        "withdrawn": (withdrawn, sorted([CAM, *MANAGERS])),
        "rejected": (rejected, sorted([*MANAGERS, PARTNER])),
        "approved": (approved, sorted([*MANAGERS, PARTNER])),
        "extension_requested": (extension_asked_refused_and_granted, [CAM, CAM]),  # two requests
        "extension_rejected": (extension_asked_refused_and_granted, [PARTNER]),
        "extended": (extension_asked_refused_and_granted, sorted([*MANAGERS, PARTNER])),
        "expiring": (expiring_then_expired, sorted([*MANAGERS, PARTNER, CAM])),
        "expired": (expiring_then_expired, sorted([*MANAGERS, PARTNER, CAM])),
        "accepted": (accepted, [CAM]),
        "transferred": (transferred, sorted([*MANAGERS, PARTNER, CAM])),
    }
    assert set(expected) == EVENTS, "every event of the vocabulary needs its flow here"
    for event, (flow, recipients) in expected.items():
        if flow not in leads:  # one run per flow, however many events it causes
            leads[flow] = flow()
        assert _queued(db).get((event, leads[flow])) == recipients, (event, _queued(db))


def test_a_policy_naming_an_event_nobody_sends_is_refused_when_loaded(client, world):
    source = (
        "kind: policy\nhit_policy: first\nrules:\n  - id: tell\n    when: always\n"
        "    then:\n      notify:\n        closed: {roles: [channel_account_manager]}\n"
    )
    resp = client.post(
        "/v1/rulesets/validate", json={"name": "p.yaml", "source": source}, headers=world["admin"].headers
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)
    [error] = resp.get_json()["errors"]
    assert error["pointer"].startswith("p.yaml:8:") and "closed" in error["detail"], error
