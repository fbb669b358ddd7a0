"""Expiry of approved registrations over HTTP and the CLI on the demo data: the sweep (``prm
registrations expire`` and POST /v1/registrations/expire) moves registrations past their date to
expired, idempotently; afterwards the partner's team can no longer close the opportunity; the list of
registrations expiring soon; the worklist's filters. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.api.approvals_support import act, etag_of, ok, pending
from tests.api.leads_support import Demo, load_demo


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _close(client, headers, opp_id: int, status: str = "won"):
    etag = client.get(f"/v1/opportunities/{opp_id}", headers=headers).headers.get("ETag", '"0.0"')
    return client.post(
        f"/v1/opportunities/{opp_id}/close", json={"status": status}, headers={**headers, "If-Match": etag}
    )


def test_expired_registrations_are_swept_by_the_cli_and_the_api_and_the_partner_can_no_longer_close(
    app, client, demo
):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    first = ok(act(client, cam, pending(client, demo)["id"], "approve"))
    second = ok(act(client, cam, pending(client, demo)["id"], "approve"))
    third = ok(act(client, cam, pending(client, demo)["id"], "approve"))

    # while protected, the partner's team may close its resale opportunity
    assert ok(_close(client, partner, third["opportunity_id"], "lost"))["status"] == "lost"
    again = _close(client, partner, third["opportunity_id"])
    assert again.status_code == 409 and again.get_json()["type"].endswith("opportunity-closed")

    # CLI: as of the day after the 90 days, both approved registrations expire; a second run changes nothing
    runner = app.test_cli_runner()
    as_of = (datetime.now().astimezone() + timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%S%z")
    out = runner.invoke(args=["registrations", "expire", "--now", as_of])
    assert out.exit_code == 0, out.output
    assert f"expired 3 registration(s): {first['registration_number']}" in out.output
    again_out = runner.invoke(args=["registrations", "expire", "--now", as_of])
    assert again_out.exit_code == 0 and "expired 0 registration(s);" in again_out.output
    assert "3 expired in total" in again_out.output
    lead = ok(client.get(f"/v1/leads/{first['id']}", headers=partner))
    assert lead["status"] == "expired" and lead["lead_status"] == "converted"
    history = ok(client.get(f"/v1/leads/{first['id']}/history", headers=partner))["items"]
    expired = [i for i in history if i["action"] == "expired"]
    assert [(i["from_status"], i["to_status"]) for i in expired] == [("approved", "expired")]

    # after expiry the partner's team may not close; the problem names the expiry; the CAM still may
    refused = _close(client, partner, first["opportunity_id"])
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    problem = refused.get_json()
    assert problem["type"].endswith("registration-expired")
    assert first["registration_number"] in problem["detail"] and "expired on" in problem["detail"]
    assert problem["expires_at"][:10] == first["expires_at"][:10]
    assert ok(_close(client, cam, first["opportunity_id"]))["status"] == "won"
    assert (
        ok(client.get(f"/v1/opportunities/{second['opportunity_id']}", headers=partner))["registration"][
            "status"
        ]
        == "expired"
    )


def test_the_scheduler_endpoint_expires_what_is_past_its_date_once(client, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = ok(act(client, cam, pending(client, demo)["id"], "approve"))
    at = datetime.now().astimezone() + timedelta(seconds=3)  # (the change must reach the server before it)
    soon = at.isoformat()
    etag = etag_of(client, cam, lead["id"])
    ok(
        client.patch(
            f"/v1/leads/{lead['id']}/expiry", json={"expires_at": soon}, headers={**cam, "If-Match": etag}
        )
    )
    # not yet past its date: the sweep leaves it (as of a moment before, whatever the machine's load)
    before = {"as_of": (at - timedelta(milliseconds=1)).isoformat()}
    assert (
        client.post("/v1/registrations/expire", json=before, headers=demo["admin"]).get_json()["expired"] == 0
    )
    time.sleep(max(0.0, (at - datetime.now().astimezone()).total_seconds()) + 0.2)
    # past its date but not yet swept: the partner's team is refused all the same
    assert _close(client, partner, lead["opportunity_id"]).status_code == 403
    assert client.post("/v1/registrations/expire", headers=partner).status_code == 403
    swept = ok(client.post("/v1/registrations/expire", headers=demo["integration"]))
    assert swept["expired"] == 1 and swept["registration_numbers"] == [lead["registration_number"]]
    assert ok(client.post("/v1/registrations/expire", headers=demo["admin"]))["expired"] == 0
    assert client.get(f"/v1/leads/{lead['id']}", headers=partner).get_json()["status"] == "expired"
    # a date already past does not protect an expired registration again (a later one does: see
    # test_registration_extensions.py); a registration still waiting for approval has no expiry to change
    refused = client.patch(
        f"/v1/leads/{lead['id']}/expiry",
        json={"expires_at": soon},
        headers={**cam, "If-Match": etag_of(client, cam, lead["id"])},
    )
    assert refused.status_code == 422
    assert client.get(f"/v1/leads/{lead['id']}", headers=partner).get_json()["status"] == "expired"
    waiting = pending(client, demo)
    refused = client.patch(
        f"/v1/leads/{waiting['id']}/expiry",
        json={"expires_at": "2099-01-01T00:00:00+00:00"},
        headers={**cam, "If-Match": etag_of(client, cam, waiting["id"])},
    )
    assert refused.status_code == 409 and refused.get_json()["current_status"] == "pending_approval"


def test_the_scheduler_endpoint_expires_as_of_a_given_time(client, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = ok(act(client, cam, pending(client, demo)["id"], "approve"))
    expires_at = datetime.fromisoformat(lead["expires_at"])
    sweep = "/v1/registrations/expire"
    before = {"as_of": (expires_at - timedelta(seconds=1)).isoformat()}
    assert ok(client.post(sweep, json=before, headers=demo["admin"]))["expired"] == 0
    assert client.get(f"/v1/leads/{lead['id']}", headers=partner).get_json()["status"] == "approved"

    # the same roles as a sweep as of now: a partner or a CAM may not choose the time either
    at = {"as_of": expires_at.isoformat()}
    for refused in (partner, cam):
        assert client.post(sweep, json=at, headers=refused).status_code == 403
    swept = ok(client.post(sweep, json=at, headers=demo["integration"]))
    assert swept["expired"] == 1 and swept["registration_numbers"] == [lead["registration_number"]]
    assert datetime.fromisoformat(swept["checked_at"]) == expires_at
    assert client.get(f"/v1/leads/{lead['id']}", headers=partner).get_json()["status"] == "expired"
    assert ok(client.post(sweep, json=at, headers=demo["admin"]))["expired"] == 0

    # a time without its UTC offset is ambiguous
    naive = client.post(sweep, json={"as_of": "2027-01-01T00:00:00"}, headers=demo["admin"])
    assert naive.status_code == 422 and naive.get_json()["errors"][0]["pointer"] == "/as_of"


def test_registrations_expiring_within_n_days_are_listed_for_their_partner(client, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = ok(act(client, cam, pending(client, demo)["id"], "approve"))
    assert ok(client.get("/v1/registrations/expiring?within_days=30", headers=partner))["items"] == []
    items = ok(client.get("/v1/registrations/expiring?within_days=100", headers=partner))["items"]
    assert [(i["lead_id"], i["opportunity_id"]) for i in items] == [(lead["id"], lead["opportunity_id"])]
    assert items[0]["days_left"] in (89, 90)
    assert (
        ok(client.get("/v1/registrations/expiring?within_days=100", headers=demo["contoso-user"]))["items"]
        == []
    )
    assert client.get("/v1/registrations/expiring?within_days=-1", headers=partner).status_code == 422


def test_the_worklist_filters_by_status_territory_and_age_and_pages_oldest_first(client, demo):
    cam = demo["cam-jp-security"]
    ids = [pending(client, demo)["id"] for _ in range(3)]
    ok(act(client, cam, ids[1], "request-info", {"question": "?"}))

    def listed(query: str) -> list[int]:
        return [i["lead_id"] for i in ok(client.get(f"/v1/worklist{query}", headers=cam))["items"]]

    assert listed("") == ids
    assert listed("?sort=newest") == ids[::-1]
    assert listed("?status=info_requested") == [ids[1]]
    assert listed("?status=pending_approval") == [ids[0], ids[2]]
    assert listed("?territory=JP-SEC-RESELL") == ids
    assert listed("?territory=DE") == []
    assert listed("?min_age_days=0") == ids and listed("?min_age_days=1") == []
    pages, cursor = [], None
    while True:
        page = ok(client.get("/v1/worklist?limit=1" + (f"&cursor={cursor}" if cursor else ""), headers=cam))
        pages += [i["lead_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == ids
    assert client.get("/v1/worklist?sort=sideways", headers=cam).status_code == 422
    assert client.get("/v1/worklist", headers=demo["northwind-user"]).status_code == 403
