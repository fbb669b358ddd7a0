"""Assignment decisions over HTTP on the demo data: what-if, stored decisions, why-not, preview."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo import seed_demo
from rules.service import active_rulesets
from tests.api.leads_support import created, jp_security_lead, load_demo, submit

JP_SECURITY_RESALE = {
    "customer": "C-0002",
    "product": "fw-1",
    "program": "resell",
    "partner": "northwind",
    "geography": "JP",
    "registration_type": "resale",
    "deal_size": 50000,
}


@pytest.fixture
def demo(db, tmp_path: Path):
    seed_demo(db, tmp_path / "keys.txt")
    keys = dict(line.split(" ", 1) for line in (tmp_path / "keys.txt").read_text().splitlines())
    return {user: {"Authorization": f"Bearer {key}"} for user, key in keys.items()}


def _what_if(client, headers, facts, **extra):
    return client.post("/v1/what-if", json={"facts": facts, **extra}, headers=headers)


def test_what_if_routes_to_the_cam_of_the_deepest_matching_territory(client, demo):
    resp = _what_if(client, demo["cam-jp"], JP_SECURITY_RESALE)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    result = body["result"]
    lowest = result["lowest_territories"]
    assert lowest == ["JP-SEC-RESELL"]
    # The deepest match has no CAM of its own: the approver is the CAM of its parent, JP-SEC.
    assert result["cam"] == "cam-jp-security"
    assert result["approval_steps"][0]["approvers"][0]["user"] == "cam-jp-security"
    assert body["trace"]["paths"]["JP-SEC-RESELL"] == ["WW", "APAC", "JP", "JP-SEC", "JP-SEC-RESELL"]
    assert body["id"] is None  # what-if stores nothing


def test_a_large_deal_adds_the_director_step(client, demo):
    body = _what_if(client, demo["admin"], {**JP_SECURITY_RESALE, "deal_size": 400000}).get_json()
    steps = body["result"]["approval_steps"]
    assert [s["approvers"][0]["user"] for s in steps] == ["cam-jp-security", "dir-global"]
    assert body["trace"]["rules"]["approval"]["fired"] == ["cam-approves", "large-deals-need-the-director"]


def test_facts_of_the_wrong_type_are_refused_with_their_pointer(client, demo):
    resp = _what_if(client, demo["admin"], {**JP_SECURITY_RESALE, "registration_type": "barter"})
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["errors"][0]["pointer"] == "/facts/registration_type"


def test_partners_cannot_ask_what_if(client, demo):
    assert _what_if(client, demo["northwind-user"], JP_SECURITY_RESALE).status_code == 403


def test_a_stored_decision_answers_why_not_a_territory_and_a_user(client, demo):
    created = client.post("/v1/decisions", json={"facts": JP_SECURITY_RESALE}, headers=demo["admin"])
    assert created.status_code == 201, created.get_json()
    decision_id = created.get_json()["id"]
    stored = client.get(f"/v1/decisions/{decision_id}", headers=demo["cam-de"]).get_json()
    assert stored["result"]["cam"] == "cam-jp-security"

    why = client.get(
        f"/v1/decisions/{decision_id}/why-not?territory=EMEA&user=cam-de", headers=demo["cam-de"]
    ).get_json()
    assert why["territory"]["reason"] == "dimension_not_covered"
    assert "JP" in why["territory"]["message"]
    assert why["user"]["approver"] is False
    assert why["user"]["territories"][0]["territory"] == "DE"

    parent = client.get(f"/v1/decisions/{decision_id}/why-not?territory=JP", headers=demo["admin"]).get_json()
    assert parent["territory"]["reason"] == "matched_not_lowest"

    missing = client.get(f"/v1/decisions/{decision_id + 1000}", headers=demo["admin"])
    assert missing.status_code == 404


def test_previewing_a_planning_model_reports_the_leads_that_would_move(client, db, demo):
    admin = demo["admin"]
    # Two leads decided under the active model, stored the way registrations store theirs.
    from rules import decision_service
    from territory.repository import active_snapshot

    snapshot = active_snapshot(db)
    for lead_id, facts in ((1, JP_SECURITY_RESALE), (2, {**JP_SECURITY_RESALE, "product": "sw-100"})):
        enriched, result = decision_service.decide_facts(db, facts, snapshot, active_rulesets(db))
        with db.transaction() as session:
            decision_service.record_decision(session, None, "lead", lead_id, None, snapshot, enriched, result)

    planning = client.post(
        "/v1/territory-models", json={"name": "next year", "clone_active": True}, headers=admin
    )
    assert planning.status_code == 201, planning.get_json()
    model_id = planning.get_json()["id"]
    unchanged = client.post(f"/v1/territory-models/{model_id}/preview", json={}, headers=admin).get_json()
    assert (unchanged["evaluated"], unchanged["moved"]) == (2, 0)

    # Narrow JP-SEC-RESELL to the co-sell program: the resale security lead moves up to JP-SEC.
    etag = client.get(f"/v1/territory-models/{model_id}", headers=admin).headers["ETag"]
    changed = client.put(
        f"/v1/territory-models/{model_id}/territories/JP-SEC-RESELL/coverage",
        json={
            "coverage": {
                "geography": {"include": ["JP"]},
                "product": {"include": ["security"]},
                "program": {"include": ["co-sell"]},
            }
        },
        headers={**admin, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.get_json()
    report = client.post(f"/v1/territory-models/{model_id}/preview", json={"sample": 5}, headers=admin)
    assert report.status_code == 200, report.get_json()
    body = report.get_json()
    assert body["evaluated"] == 2
    assert body["moved"] == 1
    assert body["by_territory"]["JP-SEC-RESELL"] == {"before": 1, "after": 0}
    moved = body["sample"][0]
    assert moved["subject_id"] == 1
    assert moved["before"]["lowest_territories"] == ["JP-SEC-RESELL"]
    assert "JP-SEC-RESELL" not in moved["after"]["lowest_territories"]
    # Preview stores nothing: the active model's decision for lead 1 is unchanged.
    assert client.get("/v1/decisions/1", headers=admin).get_json()["result"]["lowest_territories"] == [
        "JP-SEC-RESELL"
    ]


def test_a_submitted_registrations_decision_is_explained_when_read_as_it_was_decided(client, db, tmp_path):
    demo = load_demo(db, tmp_path / "leads")
    h, admin = demo["northwind-user"], demo["admin"]
    lead = created(client, h, jp_security_lead(demo, deal_size=400000)).get_json()
    submitted = submit(client, h, lead["id"])
    assert submitted.status_code == 200, submitted.get_json()
    decision_id = submitted.get_json()["decision_id"]
    decision = client.get(f"/v1/decisions/{decision_id}", headers=admin).get_json()
    # the trace a decision on the same facts, model and rulesets gives: every fired rule and the
    # candidates explained, the other rules and losers counted
    assert decision["trace"] == _what_if(client, admin, decision["facts"]).get_json()["trace"]
    approval = decision["trace"]["rules"]["approval"]
    assert approval["fired"] == ["cam-approves", "large-deals-need-the-director"]
    assert [r["rule_id"] for r in approval["results"]] == approval["fired"]
    assert decision["trace"]["candidates"]
    full = client.get(f"/v1/decisions/{decision_id}?detail=full", headers=admin).get_json()
    assert full["trace"]["rules"] == decision["trace"]["rules"]
    assert full["trace"]["candidates_omitted"]["count"] == 0
    assert full["trace"]["facts"] == decision["facts"]
    why = client.get(f"/v1/decisions/{decision_id}/why-not?territory=DE", headers=admin).get_json()
    assert why["territory_model_version"] == decision["trace"]["territory_model_version"]
    assert why["territory"]["territory"] == "DE"
