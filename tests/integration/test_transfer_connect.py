"""``prm transfer connect`` between two real running instances: one command pairs them through their
admin APIs (URLs ending in the other side's key, signing secrets crossed), after which a transfer goes
through in both directions; running it again re-pairs; mistakes are one readable line and change
nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.transfer_support import PRM, Instance
from transfer.profile import PROFILES_DIR


@pytest.fixture
def unpaired(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    brand = Instance("brand", tmp_path / "brand", own_org_key="brand", other_org_key="northwind")
    partner = Instance("partner", tmp_path / "partner", own_org_key="northwind", other_org_key="brand")
    try:
        for instance in (brand, partner):
            instance.directory.mkdir()
            instance.seed()
            instance.start()
        yield brand, partner
    finally:
        brand.stop()
        partner.stop()


def connect(brand: Instance, partner: Instance, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
    env["PRM_CONNECT_ADMIN_KEY_B"] = partner.admin_key  # a key may come from the environment
    return subprocess.run(
        [
            str(PRM),
            "transfer",
            "connect",
            "--url-a",
            brand.url,
            "--admin-key-a",
            brand.admin_key,
            "--org-a",
            "northwind",
            "--url-b",
            partner.url,
            "--org-b",
            str(partner.ids["other_org"]),
            "--profile-a",
            str(PROFILES_DIR / "partner_lead.yaml"),
            "--inbound-profile-b",
            str(PROFILES_DIR / "partner_lead.yaml"),
            *extra,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _connections(instance: Instance) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = instance.get("/v1/partner-crm-connections")["items"]
    return items


def _transfer_and_deliver(brand: Instance, partner: Instance, name: str) -> dict[str, Any]:
    [opp_id] = brand.add_opportunity(name)
    brand.call(
        "POST",
        f"/v1/opportunities/{opp_id}/transfers",
        202,
        json={"partner_organization_id": brand.ids["other_org"]},
    )
    done: dict[str, Any] = brand.deliver_until(
        lambda: (t := brand.transfers(opp_id)[0])["status"] == "successful" and t, f"the transfer of {name}"
    )
    theirs = partner.get(f"/v1/opportunities/{done['remote_id']}")
    assert theirs["name"] == f"{name} 0"
    return done


def test_connect_pairs_two_running_instances_and_transfers_then_succeed(unpaired, tmp_path):
    brand, partner = unpaired
    result = connect(brand, partner, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"A ({brand.url}): created connection" in out and f"B ({partner.url}): created connection" in out
    assert "paired" in out
    [on_brand] = _connections(brand)
    [on_partner] = _connections(partner)
    # base URLs built from the other side's key; the secrets crossed (each verifies what the other signs)
    assert on_brand["base_url"] == f"{partner.url}/v1/partner-crm/{on_partner['key']}"
    assert on_partner["base_url"] == f"{brand.url}/v1/partner-crm/{on_brand['key']}"
    assert on_brand["key"] == "northwind" and on_partner["key"] == "brand"
    assert on_brand["signing_secret_last4"] == on_partner["inbound_secret_last4"]
    assert on_partner["signing_secret_last4"] == on_brand["inbound_secret_last4"]
    assert on_brand["profile_name"] == "partner_lead" and on_partner["inbound_profile"] is not None
    for secret_end in (on_brand["signing_secret_last4"], on_partner["signing_secret_last4"]):
        assert secret_end in out  # the last four only
    assert "whsec_" not in out

    first = _transfer_and_deliver(brand, partner, "Paired deal")
    # and back: the partner sends an update of the record it received
    theirs_id = first["remote_id"]
    partner.call(
        "POST",
        f"/v1/opportunities/{theirs_id}/transfers/send-update",
        202,
        json={"partner_organization_id": partner.ids["other_org"]},
    )
    partner.deliver_until(
        lambda: partner.transfers(int(theirs_id))[0]["status"] == "successful", "the update back"
    )

    # again: the same connections are updated with fresh secrets, and transfers still go through
    again = connect(brand, partner, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "updated connection" in again.stdout and "created" not in again.stdout
    [renewed] = _connections(brand)
    assert renewed["id"] == on_brand["id"] and renewed["version"] > on_brand["version"]
    assert len(_connections(partner)) == 1
    _transfer_and_deliver(brand, partner, "Deal after re-pairing")


def test_connect_mistakes_are_one_readable_line_and_change_nothing(unpaired, tmp_path):
    brand, partner = unpaired
    bad_key = connect(brand, partner, tmp_path, "--admin-key-a", "prm_nope_nope")
    assert bad_key.returncode != 0 and "Traceback" not in bad_key.stderr
    assert f"{brand.url}" in bad_key.stderr and "HTTP 401" in bad_key.stderr

    bad_profile = tmp_path / "bad.yaml"
    bad_profile.write_text(
        (PROFILES_DIR / "partner_lead.yaml").read_text().replace("  name: Title", "  nme: Title")
    )
    result = connect(brand, partner, tmp_path, "--profile-a", str(bad_profile))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{bad_profile}:" in result.stderr and "nme" in result.stderr

    unknown = connect(brand, partner, tmp_path, "--org-a", "nobody")
    assert unknown.returncode != 0 and "no organization 'nobody'" in unknown.stderr
    assert _connections(brand) == [] and _connections(partner) == []
