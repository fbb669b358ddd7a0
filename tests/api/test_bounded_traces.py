"""Bounded decision traces over HTTP: a wide model's what-if explains the matches and the closest losers,
counts the rest, gives everything with ``?detail=full``, and a stored decision answers why-not for any
territory from its stored facts and model."""

from __future__ import annotations

import json

import pytest

from rules.decision import TRACE_CLOSEST_LOSERS
from territory.geography import countries
from tests.api.territory_support import add_reference_data, create_model

COUNTRIES = sorted(countries())


def _wide_model_files() -> dict[str, str]:
    """WW with every built-in country as a child; JP split into networking and security."""
    territories = ["key,parent_key,name,type", "WW,,Worldwide,global"]
    coverage = ["territory_key,dimension,member,mode"]
    for c in COUNTRIES:
        territories.append(f"T-{c},WW,{c},country")
        coverage.append(f"T-{c},geography,{c},include")
    # one territory listing every other country: its explanation must not list them all
    territories.append("T-REST,WW,Rest of the world,group")
    coverage += [f"T-REST,geography,{c},include" for c in COUNTRIES if c != "JP"]
    for line in ("networking", "security"):
        territories.append(f"T-JP-{line},T-JP,Japan {line},product_line")
        coverage += [f"T-JP-{line},geography,JP,include", f"T-JP-{line},product,{line},include"]
    members = [
        "territory_key,user,role",
        "T-JP,cam-1,channel_account_manager",
        "T-DE,cam-2,channel_account_manager",
    ]
    return {
        k: "\n".join(v) + "\n"
        for k, v in (("territories", territories), ("coverage", coverage), ("members", members))
    }


@pytest.fixture
def admin(world, db, client):
    add_reference_data(db)
    headers = world["admin"].headers
    model_id, etag = create_model(client, headers, "wide")
    imported = client.post(
        f"/v1/territory-models/{model_id}/import",
        json=_wide_model_files(),
        headers={**headers, "If-Match": etag},
    )
    assert imported.status_code == 200, imported.get_json()
    activated = client.post(
        f"/v1/territory-models/{model_id}/activate", headers={**headers, "If-Match": imported.headers["ETag"]}
    )
    assert activated.status_code == 200, activated.get_json()
    return headers


LEAD = {"geography": "JP", "product": "switches"}


def test_a_what_if_explains_the_matches_and_the_closest_losers_and_counts_the_rest(client, admin):
    assert len(COUNTRIES) > TRACE_CLOSEST_LOSERS + 10
    resp = client.post("/v1/what-if", json={"facts": LEAD}, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    trace = resp.get_json()["trace"]
    assert resp.get_json()["result"]["lowest_territories"] == ["T-JP-networking"]
    reasons = {c["territory"]: c["reason"] for c in trace["candidates"]}
    assert reasons["T-JP-networking"] == "matched"
    assert trace["paths"] == {"T-JP-networking": ["WW", "T-JP", "T-JP-networking"]}
    assert "T-JP" not in reasons and "WW" not in reasons  # the path's ancestors matched: ``paths`` says so
    losers = [c for c in trace["candidates"] if not c["reason"].startswith("matched")]
    assert len(losers) == TRACE_CLOSEST_LOSERS
    # The sibling product line meets geography (one dimension): closer than any other country.
    security = next(c for c in losers if c["territory"] == "T-JP-security")
    assert (security["dimensions_matched"], security["dimension"]) == (1, "product")
    others = len(COUNTRIES) - 1 + 2 - TRACE_CLOSEST_LOSERS  # other countries, T-REST, the sibling line
    assert trace["candidates_omitted"] == {"count": others, "reasons": {"dimension_not_covered": others}}

    full = client.post("/v1/what-if?detail=full", json={"facts": LEAD}, headers=admin).get_json()["trace"]
    assert len(resp.get_data()) < 4096
    assert len(full["candidates"]) == 3 + len(COUNTRIES) - 1 + 2
    assert {c["territory"]: c["reason"] for c in full["candidates"]}["T-JP"] == "matched_not_lowest"
    rest = next(c for c in full["candidates"] if c["territory"] == "T-REST")
    assert len(rest["territory_includes"]) == len(COUNTRIES) - 1
    assert rest["message"].endswith(f"and {len(COUNTRIES) - 1 - 5} more, not 'JP'")
    assert full["candidates_omitted"]["count"] == 0
    assert len(json.dumps(full)) > len(json.dumps(trace))
    assert full["facts"] == resp.get_json()["facts"] and "facts" not in trace


def test_an_unknown_detail_is_refused(client, admin):
    resp = client.post("/v1/what-if?detail=everything", json={"facts": LEAD}, headers=admin)
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"


def test_a_stored_decision_keeps_the_bounded_trace_and_answers_for_any_territory(client, admin):
    created = client.post("/v1/decisions", json={"facts": LEAD}, headers=admin)
    assert created.status_code == 201, created.get_json()
    decision = created.get_json()
    stored = {c["territory"] for c in decision["trace"]["candidates"]}
    left_out = next(f"T-{c}" for c in COUNTRIES if f"T-{c}" not in stored)

    why = client.get(f"/v1/decisions/{decision['id']}/why-not?territory={left_out}&user=cam-2", headers=admin)
    assert why.status_code == 200, why.get_json()
    body = why.get_json()
    assert body["territory_model_version"] == decision["trace"]["territory_model_version"]
    assert body["territory"]["territory"] == left_out
    assert body["territory"]["reason"] == "dimension_not_covered"
    assert body["territory"]["dimension"] == "geography"
    assert body["user"]["approver"] is False
    assert body["user"]["territories"][0]["territory"] == "T-DE"

    full = client.get(f"/v1/decisions/{decision['id']}?detail=full", headers=admin).get_json()
    assert left_out in {c["territory"] for c in full["trace"]["candidates"]}
    assert full["trace"]["candidates_omitted"]["count"] == 0
    assert full["trace"]["rules"] == decision["trace"]["rules"]
    summary = client.get(f"/v1/decisions/{decision['id']}", headers=admin).get_json()
    assert summary["trace"] == decision["trace"]
