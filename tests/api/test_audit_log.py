"""Every admin change leaves exactly one audit row (who, before, after) in the same transaction; a refused
change leaves none; and the database itself refuses to rewrite the log, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from common.audit import AuditEvent


def audit_rows(db: Any) -> list[AuditEvent]:
    with db.transaction() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def audit_count(db: Any) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)))


@pytest.fixture
def program(client, world):
    resp = client.post("/v1/programs", json={"key": "mssp", "name": "MSSP"}, headers=world["admin"].headers)
    assert resp.status_code == 201
    return resp


def test_an_admin_change_writes_exactly_one_row_with_actor_before_and_after(client, world, db, program):
    path = f"/v1/programs/{program.get_json()['id']}"
    seen = len(audit_rows(db))
    headers = {**world["admin"].headers, "If-Match": program.headers["ETag"]}
    resp = client.patch(path, json={"name": "Managed Security"}, headers=headers)
    assert resp.status_code == 200

    new = audit_rows(db)[seen:]
    assert len(new) == 1
    row = new[0]
    assert (row.entity_type, row.entity_id, row.action) == (
        "partner_program",
        program.get_json()["id"],
        "updated",
    )
    assert row.actor_user_id == world["admin"].user_id
    assert row.actor_organization_id == world.brand_id
    assert row.before is not None and row.after is not None
    assert (row.before["name"], row.after["name"]) == ("MSSP", "Managed Security")
    assert (row.before["version"], row.after["version"]) == (1, 2)
    assert row.occurred_at.tzinfo is not None


def test_creating_a_record_writes_one_row_with_its_state(client, world, db):
    seen = audit_count(db)
    body = {"key": "ACME", "name": "Acme", "country": "US"}
    resp = client.post("/v1/customers", json=body, headers=world["admin"].headers)
    assert resp.status_code == 201
    new = audit_rows(db)[seen:]
    assert [(r.entity_type, r.action, r.actor_user_id) for r in new] == [
        ("customer", "created", world["admin"].user_id)
    ]
    assert new[0].before is None and new[0].after is not None and new[0].after["key"] == "ACME"


def test_a_stale_change_writes_no_row(client, world, db, program):
    path = f"/v1/programs/{program.get_json()['id']}"
    etag = program.headers["ETag"]
    assert (
        client.patch(
            path, json={"name": "One"}, headers={**world["admin"].headers, "If-Match": etag}
        ).status_code
        == 200
    )
    seen = audit_count(db)
    resp = client.patch(path, json={"name": "Two"}, headers={**world["admin"].headers, "If-Match": etag})
    assert resp.status_code == 412
    assert audit_count(db) == seen


def test_a_change_without_if_match_writes_no_row(client, world, db, program):
    seen = audit_count(db)
    resp = client.patch(
        f"/v1/programs/{program.get_json()['id']}", json={"name": "X"}, headers=world["admin"].headers
    )
    assert resp.status_code == 428
    assert audit_count(db) == seen


def test_invalid_changes_write_no_row(client, world, db):
    path = f"/v1/organizations/{world.partner_a_id}"
    admin = world["admin"].headers
    etag = client.get(path, headers=admin).headers["ETag"]
    seen = audit_count(db)
    # Refused by the schema...
    resp = client.patch(path, json={"name": "X", "status": "gone"}, headers={**admin, "If-Match": etag})
    assert resp.status_code == 422
    # ...and by the service, after it has loaded the record.
    unknown = {"programs": [{"program": "no-such", "tier": "gold", "valid_from": "2026-01-01"}]}
    resp = client.patch(path, json=unknown, headers={**admin, "If-Match": etag})
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["pointer"] == "/programs/0/program"
    assert audit_count(db) == seen
    assert client.get(path, headers=admin).headers["ETag"] == etag


def test_forbidden_changes_write_no_row(client, world, db):
    seen = audit_count(db)
    # Refused by the endpoint's roles.
    path = f"/v1/organizations/{world.partner_a_id}"
    etag = client.get(path, headers=world["admin"].headers).headers["ETag"]
    headers = {**world["partner_admin_a"].headers, "If-Match": etag}
    assert client.patch(path, json={"name": "Mine now"}, headers=headers).status_code == 403
    # Refused by the service: the integration user may see but not revoke someone else's key.
    keys = client.get(f"/v1/users/{world['partner_user_a'].user_id}/api-keys", headers=world["admin"].headers)
    key = keys.get_json()["items"][0]
    headers = {**world["integration"].headers, "If-Match": f'"{key["id"]}.{key["version"]}"'}
    assert client.delete(f"/v1/api-keys/{key['id']}", headers=headers).status_code == 403
    assert audit_count(db) == seen


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'tampered'",
        "UPDATE audit_events SET actor_user_id = NULL WHERE id = 1",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE id = 1",
    ],
)
def test_the_database_refuses_to_rewrite_the_audit_log(world, db, statement):
    before = [(r.id, r.action, r.actor_user_id, r.after) for r in audit_rows(db)]
    assert before, "the world's key minting leaves audit rows"
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    assert [(r.id, r.action, r.actor_user_id, r.after) for r in audit_rows(db)] == before


def test_the_database_still_accepts_new_audit_rows(world, db):
    seen = audit_count(db)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (occurred_at, entity_type, entity_id, action) "
                "VALUES (CURRENT_TIMESTAMP, 'test', 1, 'appended')"
            )
        )
    assert audit_count(db) == seen + 1
