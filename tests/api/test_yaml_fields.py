"""Every request field that carries a YAML document (the OpenAPI document marks it with
``contentMediaType: application/yaml``) refuses YAML bombs, tags and deep nesting with a 422 problem that
names the position (``field-or-file:line:column``), quickly, and stores nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.fields import YAML_MEDIA_TYPE
from tests.api import rulesets_files as files
from tests.support import World

PROFILE = (Path(__file__).parents[2] / "transfer/profiles/partner_lead.yaml").read_text()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in zip("abcde", "bcdef", strict=True)]
)
#: name -> (document, "line:column" of the problem, words of the message)
BAD_DOCUMENTS = {
    "billion-laughs": (_BOMB + "\n", "5:20", "values with aliases (*name) expanded"),
    "deep-brackets": ("x: " + "[" * 400 + "]" * 400 + "\n", "1:67", "nested more than 64 levels deep"),
    "deep-json": ('{"x": ' * 3000 + "1" + "}" * 3000, "1:385", "nested more than 64 levels deep"),
    "tag": ("x: !foo [1]\n", "1:4", "YAML tags (!foo) are not supported"),
    "python-tag": ("x: !!python/object/apply:os.system [ls]\n", "1:4", "YAML tags"),
    "alias-in-itself": ("x: &a [*a]\n", "1:8", "alias *a is used inside the value it names"),
}


def _connection(world: World) -> dict[str, Any]:
    return {
        "organization_id": world.partner_a_id,
        "key": "crm-a",
        "name": "CRM A",
        "base_url": "https://93.184.215.14/crm",
        "operations": ["create"],
        "signing_secret": SECRET,
        "inbound_secret": SECRET,
        "profile": PROFILE,
    }


Request = tuple[str, str, dict[str, str], dict[str, Any]]  # method, path, extra headers, body


def _ruleset_create(client: Any, world: World) -> Request:
    return "POST", "/v1/rulesets", {}, {"name": "policy.yaml", "source": files.POLICY}


def _ruleset_validate(client: Any, world: World) -> Request:
    return "POST", "/v1/rulesets/validate", {}, {"name": "policy.yaml", "source": files.POLICY}


def _ruleset_tests(client: Any, world: World) -> Request:
    body = {"name": "policy.yaml", "source": files.POLICY}
    ruleset_id = client.post("/v1/rulesets", json=body, headers=world["admin"].headers).get_json()["id"]
    return "POST", f"/v1/rulesets/{ruleset_id}/test", {}, {"name": "tests.yaml", "source": "cases: []\n"}


def _connection_create(client: Any, world: World) -> Request:
    return "POST", "/v1/partner-crm-connections", {}, _connection(world)


def _connection_update(client: Any, world: World) -> Request:
    admin = world["admin"].headers
    existing = client.get("/v1/partner-crm-connections", headers=admin).get_json()["items"]
    if not existing:
        created = client.post("/v1/partner-crm-connections", json=_connection(world), headers=admin)
        assert created.status_code == 201, created.get_data(as_text=True)
        existing = [created.get_json()]
    path = f"/v1/partner-crm-connections/{existing[0]['id']}"
    etag = client.get(path, headers=admin).headers["ETag"]
    return "PATCH", path, {"If-Match": etag}, {"profile": PROFILE}


#: operationId -> a valid request of it, as the admin
OPERATIONS: dict[str, Callable[[Any, World], Request]] = {
    "upload_ruleset": _ruleset_create,
    "validate_ruleset": _ruleset_validate,
    "test_ruleset": _ruleset_tests,
    "create_partner_crm_connection": _connection_create,
    "update_partner_crm_connection": _connection_update,
}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _is_yaml(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = _resolve(spec, schema)
    branches = [_resolve(spec, b) for b in schema.get("anyOf", [schema])]
    return any(b.get("contentMediaType") == YAML_MEDIA_TYPE for b in branches)


def yaml_fields(client: Any) -> set[tuple[str, str]]:
    """(operationId, field) of every JSON request body field the OpenAPI document marks as YAML."""
    spec = client.get("/docs/openapi.json").get_json()
    found = set()
    for item in spec["paths"].values():
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {})
            schema = _resolve(spec, content.get("application/json", {}).get("schema", {}))
            for name, prop in schema.get("properties", {}).items():
                if _is_yaml(spec, prop):
                    found.add((operation["operationId"], name))
    return found


def test_every_yaml_field_of_the_openapi_document_is_exercised(client):
    fields = yaml_fields(client)
    assert {op for op, _ in fields} == set(OPERATIONS), "teach this test the new or renamed operations"
    assert ("create_partner_crm_connection", "inbound_profile") in fields


def _stored(client: Any, world: World) -> tuple[Any, ...]:
    admin = world["admin"].headers
    return tuple(
        client.get(path, headers=admin).get_json() for path in ("/v1/rulesets", "/v1/partner-crm-connections")
    )


@pytest.mark.parametrize("bad", sorted(BAD_DOCUMENTS))
def test_every_yaml_field_refuses_bombs_tags_and_deep_nesting_with_the_position(client, world, bad):
    document, position, words = BAD_DOCUMENTS[bad]
    for operation_id, field in sorted(yaml_fields(client)):
        method, path, headers, body = OPERATIONS[operation_id](client, world)
        before = _stored(client, world)
        name = body.get("name") if "ruleset" in operation_id else field
        start = time.process_time()
        resp = client.open(
            path, method=method, json={**body, field: document}, headers={**world["admin"].headers, **headers}
        )
        took = time.process_time() - start  # CPU time: the machine may be busy
        where = f"{operation_id}.{field}"
        assert resp.status_code == 422, (where, resp.get_data(as_text=True))
        assert resp.mimetype == "application/problem+json", where
        errors = resp.get_json()["errors"]
        assert [e["pointer"] for e in errors] == [f"{name}:{position}"], (where, errors)
        assert words in errors[0]["detail"], (where, errors)
        assert took < 2, (where, took)
        assert _stored(client, world) == before, where
