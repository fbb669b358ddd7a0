"""Territory dimensions over HTTP: ISO 3166 geography with subdivisions and imported postal codes, a
declared dimension (industry) declared, imported, covered and matched end to end, and warnings for
values the model does not know (what-if, decisions, submit; refused when the policy says so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit
from tests.api.territory_support import add_territory, create_model


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _etag(client: Any, h: dict[str, str], model_id: int) -> str:
    return str(client.get(f"/v1/territory-models/{model_id}", headers=h).headers["ETag"])


def _activate(client: Any, h: dict[str, str], model_id: int) -> None:
    resp = client.post(
        f"/v1/territory-models/{model_id}/activate", headers={**h, "If-Match": _etag(client, h, model_id)}
    )
    assert resp.status_code == 200, resp.get_json()


def _import_members(client: Any, h: dict[str, str], model_id: int, dim: str, text: str) -> Any:
    return client.post(
        f"/v1/territory-models/{model_id}/dimensions/{dim}/members/import",
        json={"members": text, "filename": f"{dim}.csv"},
        headers={**h, "If-Match": _etag(client, h, model_id)},
    )


def _customer(client: Any, h: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = client.post("/v1/customers", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def test_subdivisions_and_imported_postal_codes_route_to_the_deepest_territory(client, demo):
    admin = demo["admin"]
    model_id, etag = create_model(client, admin, "ISO")
    resp = _import_members(
        client, admin, model_id, "geography", "key,parent,name\nFR-75001,FR-75C,Paris 1er\n"
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["members"] == 1
    etag = resp.headers["ETag"]
    for key, parent, member in (
        ("WW", None, None),
        ("FR", "WW", "FR"),
        ("FR-ARA", "FR", "FR-ARA"),
        ("FR-PARIS", "FR", "FR-75C"),
        ("FR-PARIS-1", "FR-PARIS", "FR-75001"),
        ("US-CA", "WW", "US-CA"),
    ):
        body: dict[str, Any] = {"key": key, "name": key}
        if parent:
            body["parent_key"] = parent
            body["coverage"] = {"geography": {"include": [member]}}
            body["team"] = [{"user": "cam-jp", "role": "channel_account_manager"}]
        etag = add_territory(client, admin, model_id, etag, body)
    members = client.get(
        f"/v1/territory-models/{model_id}/dimensions/geography/members?parent=FR-ARA", headers=admin
    ).get_json()["items"]
    assert {"key": "FR-69", "parent": "FR-ARA", "name": "Rhône", "depth": 4, "imported": False} in members
    _activate(client, admin, model_id)

    lyon = _customer(client, admin, key="C-LYON", name="Lyon SA", country="FR", subdivision="FR-69")
    paris = _customer(
        client, admin, key="C-PARIS", name="Paris SA", country="FR", subdivision="FR-75C", postal_code="75001"
    )
    assert (lyon["subdivision"], paris["postal_code"]) == ("FR-69", "75001")
    for customer, lowest, geography in (
        ("C-LYON", ["FR-ARA"], "FR-69"),
        ("C-PARIS", ["FR-PARIS-1"], "FR-75001"),
        ("C-0002", ["WW"], "JP"),  # the demo's two-letter countries stay valid members
    ):
        body = client.post("/v1/what-if", json={"facts": {"customer": customer}}, headers=admin).get_json()
        assert body["result"]["lowest_territories"] == lowest, body
        assert body["facts"]["geography"] == geography
        assert body["warnings"] == []
    assert body["facts"]["region"] == "APAC"
    # a subdivision outside the customer's country is refused
    resp = client.post(
        "/v1/customers",
        json={"key": "C-BAD", "name": "Bad", "country": "DE", "subdivision": "FR-69"},
        headers=admin,
    )
    assert resp.status_code == 422


def test_member_file_problems_come_back_positioned_and_nothing_is_written(client, demo):
    admin = demo["admin"]
    model_id, _ = create_model(client, admin, "bad members")
    version = _etag(client, admin, model_id)
    resp = _import_members(client, admin, model_id, "geography", "key,parent,name\nP1,FR-7X,\nJP,FR,\n")
    assert resp.status_code == 422
    pointers = [e["pointer"] for e in resp.get_json()["errors"]]
    assert pointers == ["geography.csv:2:2", "geography.csv:3:2"], resp.get_json()
    assert _etag(client, admin, model_id) == version
    missing = _import_members(client, admin, model_id, "industry", "key,parent,name\nx,,\n")
    assert missing.status_code == 404


INDUSTRIES = "key,parent,name\nmanufacturing,,Manufacturing\nautomotive,manufacturing,Automotive\nfinance,,Finance\nbanking,finance,Banking\n"


def test_a_declared_industry_dimension_end_to_end(client, demo):
    admin = demo["admin"]
    model_id, etag = create_model(client, admin, "industries", clone_active=True)
    resp = client.post(
        f"/v1/territory-models/{model_id}/dimensions",
        json={"name": "industry", "source": "customer_industry", "description": "customer's industry"},
        headers={**admin, "If-Match": etag},
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["dimension"]["source"] == "customer_industry"
    assert _import_members(client, admin, model_id, "industry", INDUSTRIES).status_code == 200
    listed = client.get(f"/v1/territory-models/{model_id}/dimensions", headers=admin).get_json()["items"]
    assert [d["name"] for d in listed] == [
        "customer",
        "program",
        "product",
        "geography",
        "partner",
        "industry",
    ]
    assert listed[-1]["members"] == 4 and not listed[-1]["built_in"]
    etag = add_territory(
        client,
        admin,
        model_id,
        _etag(client, admin, model_id),
        {
            "key": "JP-AUTO",
            "parent_key": "JP",
            "name": "Japan automotive",
            "coverage": {"geography": {"include": ["JP"]}, "industry": {"include": ["manufacturing"]}},
            "team": [{"user": "cam-jp", "role": "channel_account_manager"}],
        },
    )
    _activate(client, admin, model_id)
    _customer(client, admin, key="C-TOYO", name="Toyo Motors", country="JP", industry="automotive")
    _customer(client, admin, key="C-BANK", name="Tokyo Bank", country="JP", industry="banking")
    auto = client.post("/v1/what-if", json={"facts": {"customer": "C-TOYO"}}, headers=admin).get_json()
    assert auto["result"]["lowest_territories"] == ["JP-AUTO"], auto
    assert auto["facts"]["customer_industry"] == "automotive"  # the source fact feeding industry
    bank = client.post("/v1/what-if", json={"facts": {"customer": "C-BANK"}}, headers=admin).get_json()
    assert "JP-AUTO" not in bank["result"]["matched_territories"]
    # the fact named like the dimension wins over its source; a typo is flagged
    typo = client.post(
        "/v1/what-if", json={"facts": {"geography": "JP", "industry": "automotiv"}}, headers=admin
    ).get_json()
    assert typo["warnings"][0]["field"] == "industry"
    assert typo["warnings"][0]["did_you_mean"] == ["automotive"]
    # rules files test the declared dimension once they list it
    rules = (
        "kind: assignment\nhit_policy: first\ndimensions: [industry]\nrules:\n"
        "  - id: banks\n    when: {fact: industry, op: eq, value: banking}\n"
        "    then: {add_resources: [{user: cam-de, role: channel_account_manager}]}\n"
        "  - id: rest\n    when: always\n"
    )
    resp = client.post("/v1/rulesets", json={"name": "a.yaml", "source": rules}, headers=admin)
    assert resp.status_code == 201, resp.get_json()
    ruleset_id = resp.get_json()["id"]
    bank = client.post(
        "/v1/what-if", json={"facts": {"customer": "C-BANK"}, "ruleset_ids": [ruleset_id]}, headers=admin
    ).get_json()
    assert {"user": "cam-de", "role": "channel_account_manager"} in bank["result"]["resources"], bank
    undeclared = rules.replace("[industry]", "[industri]")
    resp = client.post("/v1/rulesets/validate", json={"name": "a.yaml", "source": undeclared}, headers=admin)
    assert "did you mean 'industry'" in resp.get_data(as_text=True)


def test_unknown_values_are_flagged_in_what_if_and_decisions(client, demo):
    admin = demo["admin"]
    facts = {"product": "fw-l", "geography": "JPN", "program": "resell"}
    body = client.post("/v1/what-if", json={"facts": facts}, headers=admin).get_json()
    warnings = {w["field"]: w for w in body["warnings"]}
    assert set(warnings) == {"product", "geography"}
    assert "fw-1" in warnings["product"]["did_you_mean"]
    assert warnings["geography"]["value"] == "JPN" and "JP" in warnings["geography"]["did_you_mean"]
    stored = client.post("/v1/decisions", json={"facts": facts}, headers=admin)
    assert stored.status_code == 201, stored.get_json()
    again = client.get(f"/v1/decisions/{stored.get_json()['id']}", headers=admin).get_json()
    assert [w["field"] for w in again["warnings"]] == [w["field"] for w in body["warnings"]]
    clean = client.post("/v1/what-if", json={"facts": {"geography": "JP"}}, headers=admin).get_json()
    assert clean["warnings"] == []


REFUSE = "kind: policy\nhit_policy: first\nrules:\n  - id: all\n    when: always\n    then: {unknown_values: refuse}\n"


def test_submit_warns_about_unknown_values_or_refuses_them_when_the_policy_says_so(client, demo):
    admin, partner = demo["admin"], demo["northwind-user"]
    kosovo = _customer(client, admin, key="C-XK", name="Prishtina Trade", country="XK")
    lead = created(client, partner, jp_security_lead(demo, customer_id=kosovo["id"])).get_json()
    preview = client.get(f"/v1/leads/{lead['id']}/approver-preview", headers=partner).get_json()
    assert preview["warnings"][0]["field"] == "geography" and preview["submittable"] is True
    resp = submit(client, partner, lead["id"])
    assert resp.status_code == 200, resp.get_json()
    assert [w["field"] for w in resp.get_json()["warnings"]] == ["geography"]

    uploaded = client.post("/v1/rulesets", json={"name": "refuse.yaml", "source": REFUSE}, headers=admin)
    assert uploaded.status_code == 201, uploaded.get_json()
    rid = uploaded.get_json()["id"]
    etag = client.get(f"/v1/rulesets/{rid}", headers=admin).headers["ETag"]
    assert client.post(f"/v1/rulesets/{rid}/activate", headers={**admin, "If-Match": etag}).status_code == 200
    second = created(client, partner, jp_security_lead(demo, customer_id=kosovo["id"])).get_json()
    preview = client.get(f"/v1/leads/{second['id']}/approver-preview", headers=partner).get_json()
    assert preview["submittable"] is False and preview["warnings"][0]["value"] == "XK"
    refused = submit(client, partner, second["id"])
    assert refused.status_code == 422
    problem = refused.get_json()
    assert refused.mimetype == "application/problem+json"
    assert problem["errors"][0]["pointer"] == "/facts/geography"
    assert problem["warnings"][0]["value"] == "XK"
    after = client.get(f"/v1/leads/{second['id']}", headers=partner).get_json()
    assert after["status"] == "draft" and after["registration_number"] is None
    # a lead with known values still goes through under that policy
    fine = created(client, partner, jp_security_lead(demo)).get_json()
    assert submit(client, partner, fine["id"]).status_code == 200


def test_cli_declares_imports_and_lists_dimensions(app, client, demo, tmp_path):
    model_id, _ = create_model(client, demo["admin"], "cli")
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["territories", "declare-dimension", str(model_id), "industry", "--source", "customer_industry"]
    )
    assert result.exit_code == 0, result.output
    good = tmp_path / "industry.csv"
    good.write_text(INDUSTRIES)
    result = runner.invoke(args=["territories", "import-members", str(model_id), "industry", str(good)])
    assert result.exit_code == 0, result.output
    assert "4 industry members (0 moved)" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("key,parent,name\nfinance,,Finance\nretail,finanse,Retail\n")  # replaces the import
    result = runner.invoke(args=["territories", "import-members", str(model_id), "industry", str(bad)])
    assert result.exit_code != 0
    assert f"{bad}:3:2: parent: unknown industry member 'finanse'; did you mean 'finance'?" in result.output
    result = runner.invoke(args=["territories", "dimensions", str(model_id)])
    assert "industry\tdeclared (from customer_industry)\t4 members\t4 imported" in result.output
    assert "geography\tbuilt-in\t" in result.output
