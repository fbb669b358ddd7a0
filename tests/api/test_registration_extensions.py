"""Extending a registration's protection, on the demo data, on SQLite and PostgreSQL: a CAM (or admin)
gives an expired registration a later date and it is approved again (history, mail); the expiry refusal
tells the partner how to ask for an extension, and following that advice works; extension requests are
granted or refused like a registration, no more than the policy's ``max_extensions``; only the
registration's approvers, the channel staff of its territories (and their managers up the hierarchy) and
admins change its expiry or decide its requests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common import outbox
from common.mail import CHANNEL
from tests.api.approvals_support import act, etag_of, ok, pending
from tests.api.leads_support import Demo, load_demo

LATER = "2099-01-01T00:00:00+00:00"
# the partner's user on the lead's team, and the channel sales manager (APAC) and director (WW) of its
# territories (the acting CAM is not told of its own change)
TEAM_AND_MANAGERS = ["dir-global@acme.example", "mgr-apac@acme.example", "northwind-user@northwind.example"]


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _approved(client, demo: Demo) -> dict[str, Any]:
    return ok(act(client, demo["cam-jp-security"], pending(client, demo)["id"], "approve"))


def _sweep_after_expiry(app) -> None:
    as_of = (datetime.now().astimezone() + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S%z")
    out = app.test_cli_runner().invoke(args=["registrations", "expire", "--now", as_of])
    assert out.exit_code == 0, out.output


def _close(client, headers, opp_id: int):
    etag = client.get(f"/v1/opportunities/{opp_id}", headers=headers).headers["ETag"]
    return client.post(
        f"/v1/opportunities/{opp_id}/close", json={"status": "won"}, headers={**headers, "If-Match": etag}
    )


def _set_expiry(client, headers, lead_id: int, when: str = LATER):
    etag = etag_of(client, headers, lead_id)
    return client.patch(
        f"/v1/leads/{lead_id}/expiry", json={"expires_at": when}, headers={**headers, "If-Match": etag}
    )


def _mail(db, event: str, lead_id: int) -> list[str]:
    """Recipients (user keys' e-mail addresses) of the queued ``event`` mail about the lead."""
    return sorted(
        m.payload["to"]
        for m in outbox.list_messages(db, channel=CHANNEL, limit=1000)
        if m.payload.get("event") == event and m.payload.get("lead_id") == lead_id
    )


def _history(client, headers, lead_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(client.get(f"/v1/leads/{lead_id}/history", headers=headers))["items"]
    return items


# --- a CAM extends an expired registration --------------------------------------------------------------


def test_a_cam_gives_an_expired_registration_a_later_date_and_it_is_approved_again(app, client, db, demo):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = _approved(client, demo)
    _sweep_after_expiry(app)
    assert ok(client.get(f"/v1/leads/{lead['id']}", headers=partner))["status"] == "expired"
    assert _close(client, partner, lead["opportunity_id"]).status_code == 403

    # a date already past cannot protect the deal again
    past = _set_expiry(client, cam, lead["id"], (datetime.now().astimezone() - timedelta(days=1)).isoformat())
    assert past.status_code == 422 and past.get_json()["errors"][0]["pointer"] == "/expires_at"

    extended = ok(_set_expiry(client, cam, lead["id"]))
    assert extended["status"] == "approved" and extended["expires_at"].startswith("2099-01-01")
    reinstated = [i for i in _history(client, partner, lead["id"]) if i["action"] == "reinstated"]
    assert [(i["from_status"], i["to_status"]) for i in reinstated] == [("expired", "approved")]
    assert _mail(db, "extended", lead["id"]) == TEAM_AND_MANAGERS
    opportunity = ok(client.get(f"/v1/opportunities/{lead['opportunity_id']}", headers=partner))
    assert opportunity["registration"]["status"] == "approved"
    assert ok(_close(client, partner, lead["opportunity_id"]))["status"] == "won"


def test_the_expiry_refusal_names_the_extension_request_and_following_it_protects_the_deal_again(
    app, client, db, demo
):
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = _approved(client, demo)
    _sweep_after_expiry(app)
    refused = _close(client, partner, lead["opportunity_id"])
    assert refused.status_code == 403
    problem = refused.get_json()
    requests = f"/v1/leads/{lead['id']}/extension-requests"
    assert problem["extension_requests"] == requests and f"POST {requests}" in problem["detail"]

    asked = client.post(
        requests, json={"expires_at": LATER, "reason": "the customer signs in May"}, headers=partner
    )
    request = ok(asked, 201)
    assert request["status"] == "pending" and request["reason"] == "the customer signs in May"
    assert _mail(db, "extension_requested", lead["id"]) == ["cam-jp-security@acme.example"]
    again = client.post(requests, json={"expires_at": LATER, "reason": "again"}, headers=partner)
    assert again.status_code == 409 and again.get_json()["type"].endswith("extension-pending")

    grant = f"{requests}/{request['id']}/grant"
    # the partner does not decide its own request; the If-Match is the lead's ETag
    assert act_on(client, partner, lead["id"], grant, {}).status_code == 403
    assert client.post(grant, json={}, headers=cam).status_code == 428
    granted = ok(act_on(client, cam, lead["id"], grant, {"comment": "fine"}))
    assert granted["status"] == "approved" and granted["expires_at"].startswith("2099-01-01")
    assert act_on(client, cam, lead["id"], grant, {}).status_code == 409  # decided once
    listed = ok(client.get(requests, headers=partner))
    assert [i["status"] for i in listed["items"]] == ["granted"]
    assert listed["granted"] == 1 and listed["max_extensions"] is None and listed["remaining"] is None
    assert _mail(db, "extended", lead["id"]) == TEAM_AND_MANAGERS
    assert ok(_close(client, partner, lead["opportunity_id"]))["status"] == "won"


def act_on(client, headers, lead_id: int, path: str, body: dict[str, Any]):
    etag = client.get(f"/v1/leads/{lead_id}", headers=headers).headers["ETag"]
    return client.post(path, json=body, headers={**headers, "If-Match": etag})


# --- the policy's maximum number of extensions ---------------------------------------------------------

ONE_EXTENSION = """\
kind: policy
hit_policy: first
rules:
  - id: one-extension
    when: always
    then:
      expiry_days: 30
      max_extensions: 1
"""


def _activate(client, demo: Demo, name: str, source: str) -> None:
    admin = demo["admin"]
    ruleset_id = ok(client.post("/v1/rulesets", json={"name": name, "source": source}, headers=admin), 201)[
        "id"
    ]
    etag = client.get(f"/v1/rulesets/{ruleset_id}", headers=admin).headers["ETag"]
    ok(client.post(f"/v1/rulesets/{ruleset_id}/activate", headers={**admin, "If-Match": etag}))


def test_refused_requests_do_not_count_and_the_policy_caps_granted_extensions(client, db, demo):
    _activate(client, demo, "one-extension.yaml", ONE_EXTENSION)
    partner, cam = demo["northwind-user"], demo["cam-jp-security"]
    lead = _approved(client, demo)  # still protected: a partner may ask before the date too
    requests = f"/v1/leads/{lead['id']}/extension-requests"
    early = client.post(
        requests, json={"expires_at": lead["expires_at"], "reason": "same date"}, headers=partner
    )
    assert early.status_code == 422  # an extension moves the expiry later

    first = ok(client.post(requests, json={"expires_at": LATER, "reason": "slipped"}, headers=partner), 201)
    no_comment = act_on(client, cam, lead["id"], f"{requests}/{first['id']}/reject", {})
    assert no_comment.status_code == 422
    ok(act_on(client, cam, lead["id"], f"{requests}/{first['id']}/reject", {"comment": "close it first"}))
    assert _mail(db, "extension_rejected", lead["id"]) == ["northwind-user@northwind.example"]
    assert ok(client.get(f"/v1/leads/{lead['id']}", headers=partner))["expires_at"] == lead["expires_at"]

    second = ok(client.post(requests, json={"expires_at": LATER, "reason": "really"}, headers=partner), 201)
    ok(act_on(client, cam, lead["id"], f"{requests}/{second['id']}/grant", {}))
    listed = ok(client.get(requests, headers=partner))
    assert (listed["granted"], listed["max_extensions"], listed["remaining"]) == (1, 1, 0)
    third = client.post(
        requests, json={"expires_at": "2099-06-01T00:00:00+00:00", "reason": "more"}, headers=partner
    )
    assert third.status_code == 409 and third.get_json()["type"].endswith("extension-limit-reached")
    assert third.get_json()["max_extensions"] == 1
    history = [i["action"] for i in _history(client, partner, lead["id"])]
    assert history.count("extension_requested") == 2 and history.count("extension_rejected") == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "greater than or equal to 0"),
        ("'two'", "valid integer"),
        ("1.5", "valid integer"),
        ("true", "valid integer"),
    ],
)
def test_a_bad_max_extensions_is_refused_when_the_policy_is_loaded(client, world, value, message):
    source = ONE_EXTENSION.replace("max_extensions: 1", f"max_extensions: {value}")
    resp = client.post(
        "/v1/rulesets/validate", json={"name": "p.yaml", "source": source}, headers=world["admin"].headers
    )
    assert resp.status_code == 422, resp.get_data(as_text=True)
    [error] = resp.get_json()["errors"]
    assert error["pointer"] == "p.yaml:8:23"
    assert error["detail"].startswith("rules[0].then.max_extensions: ") and message in error["detail"]


# --- who may change a registration's expiry -------------------------------------------------------------


def test_only_the_registrations_approvers_territory_staff_and_admins_change_its_expiry(client, demo):
    lead = _approved(client, demo)  # JP-SEC-RESELL, under JP-SEC (cam-jp-security), JP, APAC, WW
    for outsider in ("cam-us", "cam-de", "mgr-emea", "mgr-amer"):
        refused = _set_expiry(client, demo[outsider], lead["id"])
        assert refused.status_code == 403, (outsider, refused.get_json())
        assert refused.get_json()["type"].endswith("not-responsible")
    for role_refused in ("rep-us", "integration", "northwind-user"):
        assert _set_expiry(client, demo[role_refused], lead["id"]).status_code == 403
    assert (
        ok(client.get(f"/v1/leads/{lead['id']}", headers=demo["admin"]))["expires_at"] == lead["expires_at"]
    )
    for insider, day in (
        ("cam-jp-security", 1),
        ("cam-jp", 2),
        ("mgr-apac", 3),
        ("dir-global", 4),
        ("admin", 5),
    ):
        changed = ok(_set_expiry(client, demo[insider], lead["id"], f"2099-01-0{day}T00:00:00+00:00"))
        assert changed["expires_at"].startswith(f"2099-01-0{day}"), insider


def test_an_outsider_cam_cannot_decide_an_extension_request(client, demo):
    partner = demo["northwind-user"]
    lead = _approved(client, demo)
    requests = f"/v1/leads/{lead['id']}/extension-requests"
    request = ok(client.post(requests, json={"expires_at": LATER, "reason": "slipped"}, headers=partner), 201)
    for action in ("grant", "reject"):
        refused = act_on(
            client, demo["cam-us"], lead["id"], f"{requests}/{request['id']}/{action}", {"comment": "x"}
        )
        assert refused.status_code == 403 and refused.get_json()["type"].endswith("not-responsible")
    # a CAM asks nobody: it changes the expiry itself
    assert (
        client.post(requests, json={"expires_at": LATER, "reason": "x"}, headers=demo["cam-jp"]).status_code
        == 403
    )
