"""Profiles travel as YAML files, never pasted into JSON: a YAML body (application/yaml) replaces a
connection's profile, a multipart upload creates a connection from its files, and their errors name the
file with line and column; the partner CRM protocol's request bodies are documented in the OpenAPI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.api.leads_support import Demo, load_demo
from transfer.profile import PROFILES_DIR

SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INBOUND = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
PARTNER_LEAD = (PROFILES_DIR / "partner_lead.yaml").read_text()
BRAND_OWNER = (PROFILES_DIR / "brand_owner.yaml").read_text()
BAD = PARTNER_LEAD.replace("  name: Title", "  nme: Title")


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


def _fields(organization_id: int) -> dict[str, Any]:
    return {
        "organization_id": organization_id,
        "key": "northwind",
        "name": "Northwind CRM",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create", "update", "query"],
        "signing_secret": SIGNING,
        "inbound_secret": INBOUND,
    }


def _upload(client, demo, fields: dict[str, Any], **files: tuple[str, str]):
    data: dict[str, Any] = {"connection": json.dumps(fields)}
    for name, (filename, text) in files.items():
        data[name] = (io.BytesIO(text.encode()), filename)
    return client.post(
        "/v1/partner-crm-connections/upload",
        data=data,
        content_type="multipart/form-data",
        headers=demo["admin"],
    )


def test_a_multipart_upload_creates_the_connection_from_its_yaml_files(client, demo):
    resp = _upload(
        client,
        demo,
        _fields(demo.ids["northwind"]),
        profile=("partner_lead.yaml", PARTNER_LEAD),
        inbound_profile=("brand_owner.yaml", BRAND_OWNER),
    )
    assert resp.status_code == 201, resp.get_json()
    out = resp.get_json()
    assert out["profile"] == PARTNER_LEAD and out["inbound_profile"] == BRAND_OWNER
    assert out["profile_name"] == "partner_lead" and resp.headers["ETag"]


def test_an_uploaded_profile_with_errors_names_the_file_and_nothing_is_stored(client, demo):
    resp = _upload(client, demo, _fields(demo.ids["northwind"]), profile=("mine.yaml", BAD))
    assert resp.status_code == 422
    assert resp.headers["Content-Type"] == "application/problem+json"
    [error] = resp.get_json()["errors"]
    assert error["pointer"].startswith("mine.yaml:8:") and "nme" in error["detail"]
    assert client.get("/v1/partner-crm-connections", headers=demo["admin"]).get_json()["items"] == []


@pytest.mark.parametrize(
    ("fields", "files", "pointer"),
    [
        (None, {}, "/profile"),  # no file
        ("not json", {"profile": ("p.yaml", PARTNER_LEAD)}, "/connection"),
        ({"profile": "pasted"}, {"profile": ("p.yaml", PARTNER_LEAD)}, "/connection/profile"),
    ],
)
def test_a_bad_upload_is_a_422_naming_the_part(client, demo, fields, files, pointer):
    if fields is None:
        fields = _fields(demo.ids["northwind"])
    data: dict[str, Any] = {"connection": fields if isinstance(fields, str) else json.dumps(fields)}
    for name, (filename, text) in files.items():
        data[name] = (io.BytesIO(text.encode()), filename)
    resp = client.post(
        "/v1/partner-crm-connections/upload",
        data=data,
        content_type="multipart/form-data",
        headers=demo["admin"],
    )
    assert resp.status_code == 422, resp.get_json()
    assert pointer in [e["pointer"] for e in resp.get_json()["errors"]]


def test_a_yaml_body_replaces_the_profile_with_if_match(client, demo):
    created = client.post(
        "/v1/partner-crm-connections",
        json={**_fields(demo.ids["northwind"]), "profile": PARTNER_LEAD},
        headers=demo["admin"],
    )
    assert created.status_code == 201
    url = f"/v1/partner-crm-connections/{created.get_json()['id']}/profile"
    yaml_headers = {**demo["admin"], "Content-Type": "application/yaml"}
    assert client.put(url, data=BRAND_OWNER, headers=yaml_headers).status_code == 428
    bad = client.put(
        url + "?filename=edited.yaml", data=BAD, headers={**yaml_headers, "If-Match": created.headers["ETag"]}
    )
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["pointer"].startswith("edited.yaml:8:")
    json_body = client.put(
        url, json={"profile": BRAND_OWNER}, headers={**demo["admin"], "If-Match": created.headers["ETag"]}
    )
    assert json_body.status_code == 415
    done = client.put(url, data=BRAND_OWNER, headers={**yaml_headers, "If-Match": created.headers["ETag"]})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["profile"] == BRAND_OWNER and done.get_json()["profile_name"] == "brand_owner"
    inbound = client.put(
        url.replace("/profile", "/inbound-profile"),
        data=PARTNER_LEAD,
        headers={**yaml_headers, "If-Match": done.headers["ETag"]},
    )
    assert inbound.status_code == 200 and inbound.get_json()["inbound_profile"] == PARTNER_LEAD


def test_the_partner_protocol_documents_its_request_bodies(client):
    spec = client.get("/docs/openapi.json").get_json()
    for path in (
        "/v1/partner-crm/{connection_key}/opportunities",
        "/v1/partner-crm/{connection_key}/opportunities/update",
    ):
        body = spec["paths"][path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/CanonicalOpportunity"
        }
    schemas = spec["components"]["schemas"]
    document = schemas["CanonicalOpportunity"]
    assert document["required"] == ["id"]
    assert {
        "name",
        "status",
        "amount",
        "close_date",
        "contacts",
        "revenue_lines",
        "notes",
        "activities",
    } <= set(document["properties"])
    assert document["properties"]["contacts"]["items"] == {"$ref": "#/components/schemas/CanonicalContact"}
    assert "email" in schemas["CanonicalContact"]["properties"]
    upload = spec["paths"]["/v1/partner-crm-connections/upload"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["required"] == ["connection", "profile"]
    put = spec["paths"]["/v1/partner-crm-connections/{id}/profile"]["put"]["requestBody"]["content"]
    assert "application/yaml" in put
