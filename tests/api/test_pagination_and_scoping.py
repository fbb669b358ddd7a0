"""Lists page with opaque cursors and return every row exactly once; a partner never sees another
organization's rows, whatever the filter or cursor, and another organization's record answers exactly
like a missing one."""

from __future__ import annotations

from typing import Any

import pytest

from common.pagination import encode_cursor
from common.principal import Role
from directory.enums import CustomerSize, ProductLevel
from directory.models import Customer, Product, User


@pytest.fixture
def many(world, db):
    """23 more users (spread over both partners), 37 customers and 29 products."""
    with db.transaction() as session:
        for i in range(23):
            org = world.partner_a_id if i % 2 else world.partner_b_id
            session.add(
                User(
                    organization_id=org,
                    key=f"user-{i}",
                    email=f"user-{i}@example.com",
                    name=f"Partner person {i}",
                    roles=[Role.PARTNER_USER.value],
                )
            )
        for i in range(37):
            session.add(Customer(key=f"C-{i}", name=f"Customer {i}", country="US", size=CustomerSize.SMALL))
        for i in range(29):
            session.add(Product(key=f"g-{i}", name=f"Group {i}", level=ProductLevel.GROUP))


def walk(client: Any, path: str, headers: dict[str, str], limit: int) -> tuple[list[int], int]:
    """Every id over all pages, and the number of pages."""
    ids: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = f"{path}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        resp = client.get(url, headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        page = resp.get_json()
        assert len(page["items"]) <= limit
        ids += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 100, "pagination does not end"


@pytest.mark.parametrize(("path", "total"), [("/v1/users", 30), ("/v1/customers", 37), ("/v1/products", 29)])
@pytest.mark.parametrize("limit", [1, 4, 7, 500])
def test_cursor_pagination_returns_every_row_exactly_once(client, world, many, path, total, limit):
    ids, pages = walk(client, path, world["admin"].headers, limit)
    assert len(ids) == total
    assert len(set(ids)) == total
    assert ids == sorted(ids)
    assert pages == max(1, -(-total // limit))


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "aWQ6eA", encode_cursor(1)[:-2] + "@@", "x" * 201])
def test_a_bad_cursor_is_a_422_problem(client, world, cursor):
    resp = client.get(f"/v1/users?cursor={cursor}", headers=world["admin"].headers)
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == 422 and body["type"] and body["title"]
    assert [e["pointer"] for e in body["errors"]] == ["/query/cursor"]


@pytest.mark.parametrize("q", [None, "", "Partner", "B", "partner-b", "%", "_", "person"])
def test_a_partner_never_sees_another_organizations_rows(client, world, many, q):
    user = world["partner_user_a"]
    starts: list[int | None] = [None, 0, 1, 2, 3, world.partner_b_id, world["partner_user_b"].user_id]
    cases = [
        (
            path,
            owner,
            "limit=2"
            + (f"&q={q}" if q is not None else "")
            + (f"&cursor={encode_cursor(s)}" if s is not None else ""),
        )
        for path, owner in (("/v1/organizations", "id"), ("/v1/users", "organization_id"))
        for s in starts
    ]
    for path, owner, params in cases:
        cursor_params = params
        for _ in range(50):
            resp = client.get(f"{path}?{cursor_params}", headers=user.headers)
            assert resp.status_code == 200, resp.get_data(as_text=True)
            page = resp.get_json()
            assert {item[owner] for item in page["items"]} <= {world.partner_a_id}
            if not page["next_cursor"]:
                break
            cursor_params = params.split("&cursor=")[0] + f"&cursor={page['next_cursor']}"


def test_a_partner_sees_all_of_its_own_users(client, world, many):
    ids, _ = walk(client, "/v1/users", world["partner_user_a"].headers, 3)
    # partner_admin_a, partner_user_a, and the 11 odd-numbered users of fixture `many`
    assert len(ids) == 13


def _same_shape(other: Any, missing: Any, other_id: int, missing_id: int) -> None:
    assert other.status_code == missing.status_code == 404
    assert other.mimetype == missing.mimetype == "application/problem+json"
    a, b = other.get_json(), missing.get_json()
    assert set(a) == set(b)
    for field in ("type", "title", "status"):
        assert a[field] == b[field]
    assert a["detail"].replace(str(other_id), "N") == b["detail"].replace(str(missing_id), "N")
    assert set(other.headers.keys()) - {"X-Request-Id"} == set(missing.headers.keys()) - {"X-Request-Id"}


@pytest.mark.parametrize("actor", ["partner_user_a", "partner_admin_a"])
def test_another_organizations_record_answers_like_a_missing_one(client, world, actor):
    h = world[actor].headers
    missing = 999_999
    other_org = world.partner_b_id
    _same_shape(
        client.get(f"/v1/organizations/{other_org}", headers=h),
        client.get(f"/v1/organizations/{missing}", headers=h),
        other_org,
        missing,
    )
    other_user = world["partner_user_b"].user_id
    _same_shape(
        client.get(f"/v1/users/{other_user}", headers=h),
        client.get(f"/v1/users/{missing}", headers=h),
        other_user,
        missing,
    )
    _same_shape(
        client.get(f"/v1/users/{other_user}/api-keys", headers=h),
        client.get(f"/v1/users/{missing}/api-keys", headers=h),
        other_user,
        missing,
    )
    brand_admin = world["admin"].user_id
    _same_shape(
        client.get(f"/v1/users/{brand_admin}", headers=h),
        client.get(f"/v1/users/{missing}", headers=h),
        brand_admin,
        missing,
    )


def test_another_organizations_api_key_cannot_be_revoked_or_seen(client, world):
    keys = client.get(f"/v1/users/{world['partner_user_b'].user_id}/api-keys", headers=world["admin"].headers)
    key = keys.get_json()["items"][0]
    etag = f'"{key["id"]}.{key["version"]}"'
    h = {**world["partner_admin_a"].headers, "If-Match": etag}
    other = client.delete(f"/v1/api-keys/{key['id']}", headers=h)
    missing = client.delete("/v1/api-keys/999999", headers=h)
    _same_shape(other, missing, key["id"], 999_999)
    # The key still works.
    assert client.get("/v1/users", headers=world["partner_user_b"].headers).status_code == 200
