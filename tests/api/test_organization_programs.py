"""Changing an organization's program memberships: the list sent becomes the memberships, whatever the
organization held before (kept, changed, dropped or new), and sending the same list again changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from common.audit import AuditEvent


def _patch_programs(client: Any, world: Any, programs: list[dict[str, Any]]) -> Any:
    path = f"/v1/organizations/{world.partner_a_id}"
    admin = world["admin"].headers
    etag = client.get(path, headers=admin).headers["ETag"]
    return client.patch(path, json={"programs": programs}, headers={**admin, "If-Match": etag})


@pytest.fixture
def mssp(client, world) -> str:
    resp = client.post("/v1/programs", json={"key": "mssp", "name": "MSSP"}, headers=world["admin"].headers)
    assert resp.status_code == 201
    return "mssp"


GOLD = {"program": "resell", "tier": "gold", "valid_from": "2026-01-01", "valid_to": None}


def test_sending_the_programs_an_organization_already_has_keeps_them(client, world):
    resp = _patch_programs(client, world, [GOLD])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["programs"] == [GOLD]
    again = _patch_programs(client, world, [GOLD])
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["programs"] == [GOLD]


def test_changing_only_the_tier_of_a_program_changes_it_and_audits_before_and_after(client, world, db):
    platinum = {**GOLD, "tier": "platinum", "valid_to": "2027-12-31"}
    resp = _patch_programs(client, world, [platinum])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["programs"] == [platinum]
    with db.transaction() as session:
        row = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "organization", AuditEvent.entity_id == world.partner_a_id)
            .order_by(AuditEvent.id.desc())
        ).first()
        assert row is not None and row.before is not None and row.after is not None
        assert (row.before["programs"], row.after["programs"]) == ([GOLD], [platinum])
    shown = client.get(f"/v1/organizations/{world.partner_a_id}", headers=world["admin"].headers)
    assert shown.get_json()["programs"] == [platinum]


def test_a_programs_list_is_applied_as_sent_whatever_was_kept_added_or_dropped(client, world, mssp):
    silver = {"program": mssp, "tier": "silver", "valid_from": "2026-03-01", "valid_to": None}
    both = _patch_programs(client, world, [{**GOLD, "tier": "bronze"}, silver])
    assert both.status_code == 200, both.get_json()
    assert both.get_json()["programs"] == [{**GOLD, "tier": "bronze"}, silver]
    only_mssp = _patch_programs(client, world, [silver])
    assert only_mssp.status_code == 200, only_mssp.get_json()
    assert only_mssp.get_json()["programs"] == [silver]
    back = _patch_programs(client, world, [GOLD, silver])
    assert back.status_code == 200, back.get_json()
    assert back.get_json()["programs"] == [silver, GOLD]  # kept memberships first, in the order made
    none = _patch_programs(client, world, [])
    assert none.status_code == 200, none.get_json()
    assert none.get_json()["programs"] == []
    # The other organization's membership of the same program is untouched.
    other = client.get(f"/v1/organizations/{world.partner_b_id}", headers=world["admin"].headers)
    assert other.get_json()["programs"] == [GOLD]
