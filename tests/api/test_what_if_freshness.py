"""A what-if reads the database once when what it needs is held, and still sees at once what another
process changed: the active territory model, the active rulesets, a customer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, update

from common.database import Database
from directory.models import Customer
from rules.models import RulesetStatus, StoredRuleset
from territory.models import ModelStatus, TerritoryModel
from tests.api.leads_support import Demo, load_demo

FACTS = {
    "customer": "C-0002",
    "product": "fw-1",
    "program": "resell",
    "partner": "northwind",
    "registration_type": "resale",
    "deal_size": 50000,
}


@pytest.fixture
def demo(db, tmp_path) -> Demo:
    return load_demo(db, tmp_path)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's explicit BEGIN IMMEDIATE
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@contextmanager
def another_process(db: Database) -> Iterator[Database]:
    """A second engine on the same database: what this process holds learns nothing from its commits."""
    other = Database(db.url)
    try:
        yield other
    finally:
        other.dispose()


def what_if(client, headers, facts=FACTS) -> dict[str, Any]:
    resp = client.post("/v1/what-if", json={"facts": facts}, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    return body


def test_a_warm_what_if_reads_the_database_once(client, db, demo):
    h = demo["cam-jp"]
    first = what_if(client, h)
    with statements(db) as seen:
        again = what_if(client, h)
    assert len(seen) == 1, seen  # the active model, the rulesets and the reference fingerprint at once
    assert again["result"] == first["result"] and again["facts"] == first["facts"]
    # a customer not asked about before is read once, then held like the first
    other = {**FACTS, "customer": "C-0001"}
    with statements(db) as seen:
        what_if(client, h, other)
    assert len(seen) == 2, seen
    with statements(db) as seen:
        what_if(client, h, other)
    assert len(seen) == 1, seen


def test_a_model_activated_by_another_process_is_seen_by_the_next_what_if(client, db, demo):
    admin = demo["admin"]
    before = what_if(client, admin)
    assert before["result"]["lowest_territories"] == ["JP-SEC-RESELL"]
    planning = client.post("/v1/territory-models", json={"name": "next", "clone_active": True}, headers=admin)
    assert planning.status_code == 201, planning.get_json()
    model_id = planning.get_json()["id"]
    etag = client.get(f"/v1/territory-models/{model_id}", headers=admin).headers["ETag"]
    narrowed = client.put(
        f"/v1/territory-models/{model_id}/territories/JP-SEC-RESELL/coverage",
        json={
            "coverage": {
                "geography": {"include": ["JP"]},
                "product": {"include": ["security"]},
                "program": {"include": ["co-sell"]},
            }
        },
        headers={**admin, "If-Match": etag},
    )
    assert narrowed.status_code == 200, narrowed.get_json()
    assert what_if(client, admin)["territory_model_id"] == before["territory_model_id"]
    with another_process(db) as other, other.transaction() as session:
        active = TerritoryModel.status == ModelStatus.ACTIVE
        session.execute(update(TerritoryModel).where(active).values(status=ModelStatus.ARCHIVED))
        session.execute(
            update(TerritoryModel).where(TerritoryModel.id == model_id).values(status=ModelStatus.ACTIVE)
        )
    after = what_if(client, admin)
    assert after["territory_model_id"] == model_id
    assert "JP-SEC-RESELL" not in after["result"]["lowest_territories"]
    assert "JP-SEC" in after["result"]["lowest_territories"]


def test_a_ruleset_archived_by_another_process_is_no_longer_evaluated(client, db, demo):
    admin = demo["admin"]
    assert "policy" in what_if(client, admin)["trace"]["rulesets"]
    with another_process(db) as other, other.transaction() as session:
        session.execute(
            update(StoredRuleset)
            .where(StoredRuleset.kind == "policy", StoredRuleset.status == RulesetStatus.ACTIVE)
            .values(status=RulesetStatus.ARCHIVED)
        )
    assert "policy" not in what_if(client, admin)["trace"]["rulesets"]


def test_a_customer_changed_by_another_process_is_seen_by_the_next_what_if(client, db, demo):
    admin = demo["admin"]
    before = what_if(client, admin)
    assert before["facts"]["geography"] == "JP"
    with another_process(db) as other, other.transaction() as session:
        customer = session.scalars(select(Customer).where(Customer.key == "C-0002")).one()
        customer.country, customer.subdivision, customer.postal_code = "DE", None, None
    after = what_if(client, admin)
    assert after["facts"]["geography"] == "DE"
    assert after["result"]["lowest_territories"] != before["result"]["lowest_territories"]
