"""What every request pays, counted rather than timed: a JSON body is parsed once, a request without
cookies builds no session signer, and the endpoints that only read (what-if, a page of leads, one lead,
the API key check) begin no transaction: no write lock on SQLite, no BEGIN or COMMIT on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from common import jsonbody
from common.database import Database
from common.pages import PageSessionInterface
from directory.services import users
from tests.api.approvals_support import ok
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo
from tests.api.test_statement_counts import WHAT_IF


@pytest.fixture
def demo(db, tmp_path) -> Demo:
    return load_demo(db, tmp_path)


@contextmanager
def transactions(db: Database) -> Iterator[list[str]]:
    """Every BEGIN (SQLite's, explicit) and COMMIT the database is sent, and the driver's commits."""
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        if text.startswith(("BEGIN", "COMMIT")):
            seen.append(text)

    def begin(conn: Any) -> None:
        if not conn.get_execution_options().get("prm_read_only"):
            seen.append("begin")

    event.listen(db.engine, "before_cursor_execute", statement)
    event.listen(db.engine, "begin", begin)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
        event.remove(db.engine, "begin", begin)


def test_a_json_body_is_parsed_once_per_request(client, demo, monkeypatch):
    calls: list[int] = []
    real = jsonbody.parse_strict

    def counted(raw: Any, max_depth: int) -> Any:
        calls.append(1)
        return real(raw, max_depth)

    monkeypatch.setattr(jsonbody, "parse_strict", counted)
    resp = client.post("/v1/what-if", json=WHAT_IF, headers=demo["cam-jp"])
    assert calls == [1]  # (reading the answer below parses again, on the client's side)
    ok(resp)
    # and a bad one is still refused before any view (duplicate keys, NaN)
    for raw in ('{"facts": {}, "facts": {}}', '{"facts": {"deal_size": NaN}}'):
        resp = client.post(
            "/v1/what-if", data=raw, headers={**demo["cam-jp"], "Content-Type": "application/json"}
        )
        assert resp.status_code == 422 and resp.mimetype == "application/problem+json"


def test_a_request_without_cookies_builds_no_session_signer(client, demo, monkeypatch):
    built: list[int] = []
    real = PageSessionInterface.get_signing_serializer

    def counted(self: PageSessionInterface, app: Any) -> Any:
        built.append(1)
        return real(self, app)

    monkeypatch.setattr(PageSessionInterface, "get_signing_serializer", counted)
    ok(client.get("/v1/leads?limit=2", headers=demo["northwind-user"]))
    assert client.get("/livez").status_code == 200
    assert built == []


def test_reading_endpoints_begin_no_transaction(client, db, demo, monkeypatch):
    h = demo["northwind-user"]
    lead = created(client, h, jp_security_lead(demo)).get_json()["id"]
    ok(client.post("/v1/what-if", json=WHAT_IF, headers=demo["cam-jp"]))  # caches warm
    monkeypatch.setattr(users, "KEY_CACHE_SECONDS", 0.0)  # every request checks its key again
    for path, headers in (
        ("/v1/leads?limit=20", h),
        (f"/v1/leads/{lead}", h),
    ):
        with transactions(db) as seen:
            ok(client.get(path, headers=headers))
        assert seen == [], (path, seen)
    with transactions(db) as seen:
        ok(client.post("/v1/what-if", json=WHAT_IF, headers=demo["cam-jp"]))
    assert seen == []
    # a write still runs in a transaction (a create on PostgreSQL is its statements alone: below)
    with transactions(db) as seen:
        created(client, h, jp_security_lead(demo))
    assert seen


def test_a_create_is_one_transaction_except_its_statements_alone_on_postgresql(client, db, demo):
    """On PostgreSQL a create without an Idempotency-Key is a read and one writing statement, each
    committing on its own (no BEGIN or COMMIT sent); with a key (a row claimed, the reply stored) and on
    SQLite it is one transaction."""
    h = demo["northwind-user"]
    created(client, h, jp_security_lead(demo))  # the key verified
    autocommit: list[bool] = []

    def statement(conn: Any, *_: Any) -> None:
        driver = conn.connection.driver_connection
        autocommit.append(bool(getattr(driver, "autocommit", False)))

    event.listen(db.engine, "before_cursor_execute", statement)
    try:
        lead = created(client, h, jp_security_lead(demo)).get_json()
        alone = list(autocommit)
        autocommit.clear()
        created(client, {**h, "Idempotency-Key": "k-1"}, jp_security_lead(demo))
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
    assert autocommit and not any(autocommit)
    assert alone == ([True, True] if db.is_postgresql else [False] * len(alone))
    # the lead, its product, its creator on the sales team and its audit row are all there
    shown = ok(client.get(f"/v1/leads/{lead['id']}", headers=h))
    assert shown == lead
    assert [m["role"] for m in shown["sales_team"]] == ["lead_owner"]
    history = ok(client.get(f"/v1/leads/{lead['id']}/history", headers=h))
    assert [e["action"] for e in history["items"]] == ["created"]


def test_a_what_if_on_a_named_model_costs_one_statement_like_one_on_the_active_model(client, db, demo):
    from sqlalchemy import select

    from territory.models import TerritoryModel

    with db.read() as session:
        model_id = session.scalar(select(TerritoryModel.id).where(TerritoryModel.status == "active"))
    named = {**WHAT_IF, "territory_model_id": model_id}
    h = demo["cam-jp"]
    ok(client.post("/v1/what-if", json=named, headers=h))  # the key verified, the snapshot held
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        answer = ok(client.post("/v1/what-if", json=named, headers=h))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert answer["territory_model_id"] == model_id
    assert len(seen) == 1, seen  # the freshness statement, naming the model: nothing loads it
    # a model that does not exist is still a 404
    resp = client.post("/v1/what-if", json={**WHAT_IF, "territory_model_id": 999_999}, headers=h)
    assert resp.status_code == 404
