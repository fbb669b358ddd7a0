"""Bad input over HTTP: whatever a client sends, it gets an RFC 9457 problem with the right status, never
Flask's HTML pages or a 500 (RELIABILITY.md "Bad input", "Traps already found")."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from common.settings import Settings

JSON = {"Content-Type": "application/json"}
SMALL_LIMIT = 2_000


def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    """The response is a problem+json document whose status matches the HTTP status."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json(force=True)
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert body["status"] == status
    return body


def pointers(body: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in body.get("errors", [])]


@pytest.fixture
def admin(world):
    return {**world["admin"].headers, **JSON}


def test_deeply_nested_json_is_refused_with_422(client, admin):
    body = assert_problem(client.post("/v1/programs", data="[" * 50 + "]" * 50, headers=admin), 422)
    assert "nested too deeply" in body["detail"]


def test_a_hundred_thousand_deep_body_is_refused_without_a_500(client, admin):
    assert_problem(client.post("/v1/programs", data="[" * 100_000, headers=admin), 422)
    assert_problem(client.post("/v1/programs", data='{"a":' * 50_000, headers=admin), 422)


def test_duplicate_keys_are_refused_and_nothing_is_created(client, admin):
    raw = '{"key": "dup", "name": "First", "name": "Second"}'
    body = assert_problem(client.post("/v1/programs", data=raw, headers=admin), 422)
    assert "duplicate key 'name'" in json.dumps(body)
    keys = [p["key"] for p in client.get("/v1/programs", headers=admin).get_json()["items"]]
    assert "dup" not in keys


def test_text_with_nul_is_refused_with_its_pointer_on_both_databases(client, admin):
    raw = '{"key": "p-nul", "name": "Pro\\u0000gram"}'
    body = assert_problem(client.post("/v1/programs", data=raw, headers=admin), 422)
    assert pointers(body) == ["/name"]
    raw = '{"key": "p-nul", "name": "Program", "extra": {"k\\u0000": 1}}'
    assert_problem(client.post("/v1/programs", data=raw, headers=admin), 422)
    keys = [p["key"] for p in client.get("/v1/programs", headers=admin).get_json()["items"]]
    assert "p-nul" not in keys


def test_a_query_with_nul_is_refused_not_a_500(client, admin):
    assert_problem(client.get("/v1/programs?q=a%00b", headers=admin), 422)
    assert_problem(client.get("/v1/leads?q=a%00b", headers=admin), 422)


def test_a_path_with_nul_is_refused_not_a_500(client, admin):
    assert_problem(client.get("/v1/territory-models/1/territories/a%00b", headers=admin), 422)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(client, admin, number):
    raw = f'{{"key": "p1", "name": "Program", "description": {number}}}'
    assert_problem(client.post("/v1/programs", data=raw, headers=admin), 422)


def test_malformed_json_is_refused_with_its_position(client, admin):
    body = assert_problem(client.post("/v1/programs", data='{"key": "p1",\n "name": }', headers=admin), 422)
    assert "line 2 column" in json.dumps(body)


def test_invalid_utf8_is_refused(client, admin):
    assert_problem(client.post("/v1/programs", data=b'{"key": "p1", "name": "\xff"}', headers=admin), 422)


@pytest.fixture
def small_app(db_url):
    from server import create_app

    application = create_app(
        Settings(database_url=db_url, log_json=False, max_body_bytes=SMALL_LIMIT), TESTING=True
    )
    yield application
    application.extensions["prm.db"].dispose()


def test_a_body_over_the_limit_is_refused_with_413(small_app):
    from tests.support import build_world

    world = build_world(small_app.extensions["prm.db"])
    client = small_app.test_client()
    headers = {**world["admin"].headers, **JSON}
    big = json.dumps({"key": "big", "name": "Big", "description": "x" * (SMALL_LIMIT * 2)})
    body = assert_problem(client.post("/v1/programs", data=big, headers=headers), 413)
    assert str(SMALL_LIMIT) in body["detail"]
    csv_headers = {**world["admin"].headers, "Content-Type": "text/csv"}
    rows = "key,name,country\n" + "".join(f"C{i},Customer {i},US\n" for i in range(500))
    # the imports have a limit of their own (PRM_MAX_IMPORT_BYTES, tests/api/test_import_limits.py)
    assert client.post("/v1/customers/import", data=rows, headers=csv_headers).status_code == 200
    # Just under the limit is fine.
    ok = json.dumps({"key": "ok", "name": "Ok", "description": "x" * (SMALL_LIMIT - 100)})
    assert client.post("/v1/programs", data=ok, headers=headers).status_code == 201


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("text/plain", '{"key": "p1", "name": "Program"}'),
        ("application/x-www-form-urlencoded", "key=p1&name=Program"),
        (
            "multipart/form-data; boundary=x",
            '--x\r\nContent-Disposition: form-data; name="key"\r\n\r\np1\r\n--x--',
        ),
        ("text/csv", "key,name\np1,Program\n"),  # CSV is only for the import endpoints
        (None, '{"key": "p1", "name": "Program"}'),
    ],
)
def test_a_body_that_is_not_json_is_refused_with_415(client, world, content_type, data):
    headers = dict(world["admin"].headers)
    if content_type:
        headers["Content-Type"] = content_type
    assert_problem(client.post("/v1/programs", data=data, headers=headers), 415)


def test_an_import_refuses_a_body_that_is_not_csv(client, world):
    headers = {**world["admin"].headers, **JSON}
    body = assert_problem(client.post("/v1/customers/import", data='{"key": "C1"}', headers=headers), 415)
    assert "text/csv" in body["detail"]


def test_unknown_fields_are_refused_with_their_json_pointer(client, admin):
    raw = {"key": "p1", "name": "Program", "colour": "red"}
    body = assert_problem(client.post("/v1/programs", json=raw, headers=admin), 422)
    assert pointers(body) == ["/colour"]


def test_unknown_nested_fields_are_refused_with_their_json_pointer(client, admin):
    org = {
        "key": "new-partner",
        "name": "New Partner",
        "partner_type": "reseller",
        "programs": [{"program": "resell", "tier": "gold", "valid_from": "2026-01-01", "extra": 1}],
    }
    body = assert_problem(client.post("/v1/organizations", json=org, headers=admin), 422)
    assert pointers(body) == ["/programs/0/extra"]


def test_protected_fields_on_a_patch_are_refused_and_the_record_is_unchanged(client, world, admin):
    path = f"/v1/organizations/{world.partner_a_id}"
    before = client.get(path, headers=admin)
    patch = {"name": "Renamed", "id": 999, "version": 42, "organization_id": world.partner_b_id}
    resp = client.patch(path, json=patch, headers={**admin, "If-Match": before.headers["ETag"]})
    body = assert_problem(resp, 422)
    assert sorted(pointers(body)) == ["/id", "/organization_id", "/version"]
    after = client.get(path, headers=admin)
    assert after.get_json() == before.get_json()


@pytest.mark.parametrize("field", ["Status", "STATUS", "status", "Version", "Organization_Id"])
def test_protected_fields_in_other_cases_are_refused(client, world, admin, field):
    path = f"/v1/users/{world['partner_user_a'].user_id}"
    etag = client.get(path, headers=admin).headers["ETag"]
    resp = client.patch(path, json={field: "approved"}, headers={**admin, "If-Match": etag})
    assert pointers(assert_problem(resp, 422)) == [f"/{field}"]
    assert client.get(path, headers=admin).headers["ETag"] == etag


def test_wrong_types_are_refused_with_every_pointer(client, admin):
    raw = {"key": 5, "name": ["x"], "allows_registration": "yes"}
    body = assert_problem(client.post("/v1/programs", json=raw, headers=admin), 422)
    assert sorted(pointers(body)) == ["/allows_registration", "/key", "/name"]


@pytest.mark.parametrize("raw", ["[1, 2]", '"a string"', "42", "null"])
def test_a_body_that_is_not_an_object_is_refused(client, admin, raw):
    assert_problem(client.post("/v1/programs", data=raw, headers=admin), 422)


def test_wrong_query_and_path_types_are_refused_with_their_pointer(client, admin):
    body = assert_problem(client.get("/v1/users?limit=many", headers=admin), 422)
    assert pointers(body) == ["/query/limit"]
    body = assert_problem(client.get("/v1/users?limit=5&sort=name", headers=admin), 422)
    assert pointers(body) == ["/query/sort"]
    body = assert_problem(client.get("/v1/opportunities?lead_id=2147483648", headers=admin), 422)
    assert pointers(body) == ["/query/lead_id"]


# --- ids from outside: ASCII digits within the integer columns' range (issue 10, points 8 and 12) ---------


def test_an_id_past_the_integer_columns_range_is_a_missing_record_not_a_500(client, world, admin):
    lead = client.post("/v1/leads", json={"name": "Lead"}, headers=admin).get_json()
    assert_problem(client.get(f"/v1/users/{2**40}", headers=admin), 404)
    assert_problem(client.get("/v1/leads/2147483648", headers=admin), 404)
    resp = client.patch("/v1/leads/2147483648", json={"name": "x"}, headers={**admin, "If-Match": '"1.1"'})
    assert_problem(resp, 404)  # not 405, though the URL has rules for other methods
    assert client.get(f"/v1/leads/{lead['id']}", headers=admin).status_code == 200


def test_the_tree_page_of_a_model_id_past_the_range_is_a_404_problem(client, world):
    resp = client.get("/territory-models/2147483648/tree.html", headers=world["admin"].headers)
    assert_problem(resp, 404)


@pytest.mark.parametrize("digit", ["\uff11", "\u0661", "\u0663", "\u0967", "\U0001d7cf"])
def test_ids_in_other_scripts_name_no_record(client, world, admin, digit):
    for n in range(3):
        client.post("/v1/leads", json={"name": f"Lead {n}"}, headers=admin)
    assert client.get("/v1/leads/1", headers=admin).status_code == 200
    assert_problem(client.get(f"/v1/leads/{digit}", headers=admin), 404)
    assert_problem(client.get(f"/v1/opportunities?lead_id={digit}", headers=admin), 422)


@pytest.mark.parametrize("value", ["2147483648", "-1", "0", "\uff11", "1_0", " 1", "+1", "1e3"])
def test_an_id_query_must_be_ascii_digits_within_range(client, admin, value):
    body = assert_problem(
        client.get("/v1/opportunities", query_string={"lead_id": value}, headers=admin), 422
    )
    assert pointers(body) == ["/query/lead_id"]


def test_a_forged_cursor_past_the_range_is_a_422_problem_on_every_database(client, admin):
    # base64 of "id:2147483648": was a 500 "integer out of range" on PostgreSQL
    body = assert_problem(client.get("/v1/leads?cursor=aWQ6MjE0NzQ4MzY0OA", headers=admin), 422)
    assert pointers(body) == ["/query/cursor"]


@pytest.mark.parametrize(
    "body, pointer",
    [
        ({"name": "L", "customer_id": 2147483648}, "/customer_id"),
        ({"name": "L", "primary_partner_id": 2**63}, "/primary_partner_id"),
        ({"name": "L", "products": [{"product_id": 2147483648, "primary": True}]}, "/products/0/product_id"),
        ({"name": "L", "customer_id": "\uff11"}, "/customer_id"),
        ({"name": "L", "customer_id": "\u0663"}, "/customer_id"),
        ({"name": "L", "customer_id": -1}, "/customer_id"),
    ],
)
def test_ids_in_a_body_are_checked_against_the_column_range(client, admin, body, pointer):
    assert pointers(assert_problem(client.post("/v1/leads", json=body, headers=admin), 422)) == [pointer]


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/users/abc", "/v1/programs/1/nope"])
def test_an_unknown_route_is_a_404_problem(client, world, path):
    assert_problem(client.get(path, headers=world["admin"].headers), 404)


def test_a_wrong_method_is_a_405_problem_with_allow(client, world):
    resp = client.put("/v1/programs", headers=world["admin"].headers)
    assert_problem(resp, 405)
    assert {"GET", "POST"} <= {m.strip() for m in resp.headers["Allow"].split(",")}
    resp = client.delete("/v1/users/1", headers=world["admin"].headers)
    assert_problem(resp, 405)
    assert "PATCH" in resp.headers["Allow"]


def test_a_wrong_route_or_method_wins_over_a_bad_body(client, world):
    headers = {**world["admin"].headers, "Content-Type": "text/plain"}
    assert_problem(client.post("/v1/nope", data="not json", headers=headers), 404)
    assert_problem(client.put("/v1/programs", data="not json", headers=headers), 405)


def test_an_unhandled_exception_is_a_generic_500_without_details(app, client):
    secret = "SELECT password FROM users WHERE /srv/prm/secret.py"

    def explode() -> None:
        raise RuntimeError(secret)

    explode.prm_public = True  # type: ignore[attr-defined]
    app.add_url_rule("/explode", "explode", explode)
    resp = client.get("/explode")
    body = assert_problem(resp, 500)
    text = resp.get_data(as_text=True)
    for leak in ("Traceback", "RuntimeError", "SELECT", "secret", ".py", "/srv", 'File "'):
        assert leak not in text
    assert set(body) <= {"type", "title", "status", "detail", "instance"}


def test_missing_or_bad_credentials_are_401_problems(client):
    assert_problem(client.get("/v1/users"), 401)
    assert_problem(client.get("/v1/users", headers={"Authorization": "Bearer prm_nope_nope"}), 401)
    assert_problem(client.get("/v1/users", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401)


def test_a_url_or_headers_past_the_apps_limits_are_414_and_431_problems(client, admin):
    body = assert_problem(client.get("/v1/programs?q=" + "a" * 9000, headers=admin), 414)
    assert "8192" in body["detail"]
    big = {f"X-Extra-{i}": "a" * 2000 for i in range(20)}
    assert_problem(client.get("/v1/leads", headers={**admin, **big}), 431)
    assert client.get("/v1/programs?q=" + "a" * 100, headers=admin).status_code == 200


def test_every_json_body_of_the_openapi_document_refuses_deep_nesting(client, admin):
    """Not one endpoint's body: every operation that takes JSON (the partner protocol's too), before
    its view or a signature check reads it."""
    spec = client.get("/docs/openapi.json").get_json()
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    assert len(operations) > 30
    for method, path in operations:
        for deep in ('{"a":' * 40 + "1" + "}" * 40, "[" * 100_000):
            resp = client.open(path, method=method, data=deep, headers=admin)
            if resp.status_code == 403:  # partners' own operations: the role is checked before the body
                assert_problem(resp, 403)
                continue
            body = assert_problem(resp, 422)
            assert "nested too deeply" in body["detail"], (method, path, body)
