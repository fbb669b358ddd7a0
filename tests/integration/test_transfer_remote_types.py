"""A partner's leads and opportunities are separate id spaces, and every failure of a delivery, our own
bookkeeping's included, reaches the transfer status in plain words (two real instances, real HTTP, the
real deliverer; SQLite files and PostgreSQL databases)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import PG_ADMIN_URL
from tests.integration.transfer_support import ROOT, Instance, postgres_databases, two_instances


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    if request.param == "sqlite":
        with two_instances(tmp_path) as instances:
            yield instances
        return
    request.getfixturevalue("postgres_template")  # skips (or fails under PRM_REQUIRE_POSTGRES) without one
    with (
        postgres_databases(PG_ADMIN_URL, ("brand", "partner")) as urls,
        two_instances(tmp_path, database_urls=(urls[0], urls[1])) as instances,
    ):
        yield instances


def _transfer(brand: Instance, opp_id: int) -> dict[str, Any]:
    out: dict[str, Any] = brand.call(
        "POST",
        f"/v1/opportunities/{opp_id}/transfers",
        202,
        json={"partner_organization_id": brand.ids["other_org"]},
    ).json()
    return out


def _settled(brand: Instance, opp_id: int, deadline: float = 40) -> dict[str, Any]:
    """Deliver until the transfer of ``opp_id`` is no longer in progress."""
    out: dict[str, Any] = brand.deliver_until(
        lambda: (t := brand.transfers(opp_id)[0])["status"] != "in_progress" and t,
        f"the transfer of opportunity {opp_id} to settle",
        deadline=deadline,
    )
    return out


def set_inbound_creates(instance: Instance, value: str) -> None:
    [connection] = instance.get("/v1/partner-crm-connections")["items"]
    path = f"/v1/partner-crm-connections/{connection['id']}"
    etag = instance.call("GET", path, 200).headers["ETag"]
    instance.call("PATCH", path, 200, json={"inbound_creates": value}, headers={"If-Match": etag})


def test_the_partners_lead_and_opportunity_with_the_same_id_are_two_records(pair):
    brand, partner = pair
    first, second = brand.add_opportunity("Typed", n=2)
    set_inbound_creates(partner, "lead")
    _transfer(brand, first)
    as_lead = _settled(brand, first)
    set_inbound_creates(partner, "opportunity")
    _transfer(brand, second)
    as_opportunity = _settled(brand, second)

    assert as_lead["status"] == "successful", as_lead
    assert as_opportunity["status"] == "successful", as_opportunity
    [lead] = [x for x in partner.get("/v1/leads?limit=100")["items"] if x["name"] == "Typed 0"]
    [opp] = partner.get("/v1/opportunities")["items"]
    assert opp["name"] == "Typed 1"
    # the partner's numbering makes both its lead and its opportunity number 1: only the type tells them apart
    assert (as_lead["remote_type"], as_lead["remote_id"]) == ("lead", str(lead["id"]))
    assert (as_opportunity["remote_type"], as_opportunity["remote_id"]) == ("opportunity", str(opp["id"]))
    assert as_lead["remote_id"] == as_opportunity["remote_id"]


def _forbid_inserts(instance: Instance, table: str) -> None:
    """Make the brand owner's database refuse every insert into ``table`` (a real database failure)."""
    db = instance.db()
    try:
        with db.transaction() as session:
            if session.bind.dialect.name == "sqlite":
                session.execute(
                    text(
                        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                    )
                )
            else:
                session.execute(
                    text(
                        "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                    )
                )
                session.execute(
                    text(
                        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
                    )
                )
    finally:
        db.dispose()


def _allow_inserts(instance: Instance, table: str) -> None:
    db = instance.db()
    try:
        with db.transaction() as session:
            if session.bind.dialect.name == "sqlite":
                session.execute(text(f"DROP TRIGGER refuse_{table}"))
            else:
                session.execute(text(f"DROP TRIGGER refuse_{table} ON {table}"))
    finally:
        db.dispose()


def test_a_failure_of_our_own_bookkeeping_shows_in_the_status(pair):
    brand, partner = pair
    [opp_id] = brand.add_opportunity("Bookkeeping")
    _forbid_inserts(brand, "transfer_correlation_keys")
    _transfer(brand, opp_id)
    # the deliverer logs the failure with its traceback (for the operator), and carries on
    ran = subprocess.run(
        brand.deliver_args("--once"), cwd=ROOT, env=brand.env(), capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    [stuck] = brand.transfers(opp_id)
    assert stuck["attempts"] >= 1 and stuck["last_error"], stuck  # never "in_progress, attempts 0, null"
    assert "refused by the test" not in stuck["last_error"] and "INSERT" not in stuck["last_error"]
    assert len(partner.get("/v1/opportunities")["items"]) == 1  # the partner took it
