"""How many SQL statements an endpoint costs, counted, not timed: a page of leads costs the same whatever
its size (no query per lead), creating, submitting, approving and what-if stay within their budgets and
do not grow with the data, and a verified API key is not looked up again on every request (revocation
still counts). Answers that are not read back from the database still show the lead as stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update

from common.clock import utcnow
from common.database import Database
from directory.models import ApiKey
from directory.services import users
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo, submit

#: Statement budgets (both databases). A page: the leads with their program keys and opportunities (one
#: statement), their products, teams, contacts and activities (one statement).
PAGE_BUDGET = 2
WHAT_IF_BUDGET = 9
#: by database: PostgreSQL writes a new lead with its products, creator and audit row, a first
#: submission's number, decision and lead UPDATE, the territory and sales teams an assignment adds with
#: the approval round, its steps and approvers, and the mails queued with the audit rows recorded before
#: them, by one statement each
CREATE_BUDGET = {"postgresql": 2, "sqlite": 5}
SUBMIT_BUDGET = {"postgresql": 8, "sqlite": 16}
#: approving a step that is not the last; the last one (the lead converts into an opportunity)
APPROVE_STEP_BUDGET = 10
APPROVE_LAST_BUDGET = {"postgresql": 30, "sqlite": 34}

WHAT_IF = {
    "facts": {
        "customer": "C-0002",
        "product": "fw-1",
        "program": "resell",
        "partner": "northwind",
        "geography": "JP",
        "registration_type": "resale",
        "deal_size": 400000,
    }
}


class Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []


@contextmanager
def counted(db: Database) -> Iterator[Counter]:
    counter = Counter()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's explicit BEGIN IMMEDIATE; PostgreSQL's is implicit
            counter.statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield counter
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@pytest.fixture
def demo(db, tmp_path, monkeypatch) -> Demo:
    # counts must not depend on how slow the machine is: a key verified stays verified during a test
    monkeypatch.setattr(users, "KEY_CACHE_SECONDS", 3600.0)
    return load_demo(db, tmp_path)


def _page_statements(client, db, headers, limit: int) -> int:
    client.get(f"/v1/leads?limit={limit}", headers=headers)  # the key verified, caches warm
    with counted(db) as c:
        body = ok(client.get(f"/v1/leads?limit={limit}", headers=headers))
    assert len(body["items"]) == limit
    return len(c.statements)


def test_a_page_of_leads_costs_the_same_statements_whatever_its_size(client, db, demo):
    h = demo["northwind-user"]
    for _ in range(22):
        created(client, h, jp_security_lead(demo))
    # leads in every shape a page shows: submitted (territories, teams) and approved (an opportunity)
    for lead_id in (1, 2, 3):
        assert submit(client, h, lead_id).status_code == 200
    ok(act(client, demo["cam-jp-security"], 1, "approve", {"comment": "fine"}))
    ok(act(client, demo["cam-jp-security"], 2, "approve", {"comment": "fine"}))
    small = _page_statements(client, db, h, 2)
    five = _page_statements(client, db, h, 5)
    large = _page_statements(client, db, h, 20)
    assert small == five == large <= PAGE_BUDGET
    # internal users see every organization's leads: the same
    assert _page_statements(client, db, demo["admin"], 20) <= PAGE_BUDGET


def test_what_if_stays_within_its_budget(client, db, demo):
    h = demo["cam-jp"]
    ok(client.post("/v1/what-if", json=WHAT_IF, headers=h))
    with counted(db) as c:
        ok(client.post("/v1/what-if", json=WHAT_IF, headers=h))
    assert len(c.statements) <= WHAT_IF_BUDGET, c.statements
    # nothing re-reads the rulesets or rebuilds the territory snapshot per request
    assert not any("FROM territories" in s or "rulesets.ast" in s for s in c.statements), c.statements


def test_create_and_submit_stay_within_their_budgets_and_do_not_grow(client, db, demo):
    h = demo["northwind-user"]
    pending(client, demo)  # warm: the snapshot, the rulesets, the key
    counts = []
    for _ in range(3):
        with counted(db) as c:
            resp = created(client, h, jp_security_lead(demo))
        creating = len(c.statements)
        with counted(db) as c:
            assert submit(client, h, resp.get_json()["id"], resp.headers["ETag"]).status_code == 200
        counts.append((creating, len(c.statements)))
    assert counts[0] == counts[-1], counts
    database = db.engine.dialect.name
    assert counts[0][0] <= CREATE_BUDGET[database] and counts[0][1] <= SUBMIT_BUDGET[database], counts


def test_approving_stays_within_its_budget_and_does_not_grow(client, db, demo):
    cam, director = demo["cam-jp-security"], demo["dir-global"]
    for h in (cam, director):  # their keys verified
        ok(client.get("/v1/leads?limit=1", headers=h))
    counts = []
    for _ in range(2):
        lead = pending(client, demo, deal_size=400000)  # two steps: the CAM's, then the director's
        with counted(db) as step:
            body = ok(act(client, cam, lead["id"], "approve", {"comment": "fine"}, etag=_etag(lead)))
        assert body["status"] == "pending_approval"
        with counted(db) as last:
            assert ok(act(client, director, lead["id"], "approve", etag=_etag(body)))["status"] == "approved"
        counts.append((len(step.statements), len(last.statements)))
    assert counts[0] == counts[-1], counts
    assert (
        counts[0][0] <= APPROVE_STEP_BUDGET and counts[0][1] <= APPROVE_LAST_BUDGET[db.engine.dialect.name]
    ), counts


def _etag(lead: dict[str, Any]) -> str:
    return f'"{lead["id"]}.{lead["version"]}"'


def _as_stored(client, headers, answer: dict[str, Any]) -> None:
    """The lead an action answered with is the lead a fresh read shows (nothing stale, nothing missing)."""
    stored = ok(client.get(f"/v1/leads/{answer['id']}", headers=headers))

    def lead(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k != "warnings"}  # the decision's, said when submitting

    assert lead(answer) == lead(stored)


def test_what_submitting_creating_and_deciding_answer_is_the_lead_as_stored(client, db, demo):
    h, cam, director = demo["northwind-user"], demo["cam-jp-security"], demo["dir-global"]
    created_lead = created(client, h, jp_security_lead(demo, deal_size=400000)).get_json()
    _as_stored(client, h, created_lead)
    # an edit answers without reading the lead back: its fields and products as stored
    products = [{"product_id": demo.ids["fw-1"], "primary": True}, {"product_id": demo.ids["id-cloud"]}]
    created_lead = ok(
        client.patch(
            f"/v1/leads/{created_lead['id']}",
            json={"name": "Firewall refresh, three sites", "products": products[::-1]},
            headers={**h, "If-Match": _etag(created_lead)},
        )
    )
    _as_stored(client, h, created_lead)
    # in a page too
    page = ok(client.get("/v1/leads?limit=20", headers=h))["items"]
    assert [lead for lead in page if lead["id"] == created_lead["id"]] == [
        ok(client.get(f"/v1/leads/{created_lead['id']}", headers=h))
    ]
    submitted = ok(submit(client, h, created_lead["id"], _etag(created_lead)))
    _as_stored(client, h, submitted)
    rejected = ok(act(client, cam, submitted["id"], "reject", {"comment": "not yet"}, etag=_etag(submitted)))
    _as_stored(client, h, rejected)
    again = ok(submit(client, h, rejected["id"], _etag(rejected)))  # a new round on the lead's team
    _as_stored(client, h, again)
    step = ok(act(client, cam, again["id"], "approve", etag=_etag(again)))
    _as_stored(client, h, step)
    approved = ok(act(client, director, step["id"], "approve", etag=_etag(step)))
    assert approved["opportunity_id"] is not None and approved["lead_status"] == "converted"
    _as_stored(client, h, approved)
    page = ok(client.get("/v1/leads?limit=20", headers=h))["items"]
    assert [lead for lead in page if lead["id"] == approved["id"]] == [
        ok(client.get(f"/v1/leads/{approved['id']}", headers=h))
    ]


def test_a_verified_key_is_not_looked_up_again(client, db, demo):
    h = demo["northwind-user"]
    ok(client.get("/v1/leads?limit=1", headers=h))
    with counted(db) as c:
        ok(client.get("/v1/leads?limit=1", headers=h))
    assert not any("api_keys" in s for s in c.statements)
    # a wrong secret for the same public id is refused, never served from the cache
    public_id = h["Authorization"].split("_")[1]
    wrong = {"Authorization": f"Bearer prm_{public_id}_not-the-secret"}
    assert client.get("/v1/leads?limit=1", headers=wrong).status_code == 401


def test_a_key_revoked_in_this_process_stops_working_at_once(client, db, demo):
    admin = demo["northwind-admin"]
    user_id = demo.ids["northwind-user"]
    minted = ok(client.post(f"/v1/users/{user_id}/api-keys", json={"name": "laptop"}, headers=admin), 201)
    h = {"Authorization": f"Bearer {minted['key']}"}
    ok(client.get("/v1/leads?limit=1", headers=h))  # verified and remembered
    etag = f'"{minted["id"]}.{minted["version"]}"'
    ok(client.delete(f"/v1/api-keys/{minted['id']}", headers={**admin, "If-Match": etag}))
    assert client.get("/v1/leads?limit=1", headers=h).status_code == 401


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_time(client, db, demo, monkeypatch):
    monkeypatch.setattr(users, "KEY_CACHE_SECONDS", 0.5)
    h = demo["northwind-user"]
    ok(client.get("/v1/leads?limit=1", headers=h))
    public_id = h["Authorization"].split("_")[1]
    # another process revokes it: straight in the database, this process is not told
    other = Database(db.url)
    try:
        with other.engine.begin() as conn:
            conn.execute(update(ApiKey).where(ApiKey.public_id == public_id).values(revoked_at=utcnow()))
    finally:
        other.dispose()
    time.sleep(0.6)
    assert client.get("/v1/leads?limit=1", headers=h).status_code == 401
