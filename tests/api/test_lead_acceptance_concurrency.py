"""Accepting under concurrent requests against a real threaded server (PostgreSQL only: SQLite
serialises writers anyway): a lead offered to two partners, accepted and noted by both at once, is
accepted once, by one partner, and the other partner's late actions answer 404 like a missing lead."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from common.database import Database
from common.principal import Principal, Role
from registration.acceptance.team_service import accept
from registration.leads.models import Lead
from tests.api.leads_support import Demo, created, jp_security_lead, load_demo

pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
THREADS = 32


@pytest.fixture
def demo(db, tmp_path: Path) -> Demo:
    return load_demo(db, tmp_path)


@pytest.fixture
def base_url(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _call(method: str, url: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _offered_lead(client, demo: Demo) -> tuple[int, str]:
    lead_id = created(client, demo["cam-jp"], jp_security_lead(demo)).get_json()["id"]
    etag = client.get(f"/v1/leads/{lead_id}", headers=demo["cam-jp"]).headers["ETag"]
    body = {"organization_ids": [demo.ids["northwind"], demo.ids["contoso"]]}
    resp = client.post(f"/v1/leads/{lead_id}/offers", json=body, headers={**demo["cam-jp"], "If-Match": etag})
    assert resp.status_code == 200, resp.get_json()
    return lead_id, resp.headers["ETag"]


def _accepted_rows(client, demo: Demo, lead_id: int) -> list[dict[str, Any]]:
    items = client.get(f"/v1/leads/{lead_id}/history", headers=demo["admin"]).get_json()["items"]
    return [i for i in items if i["action"] == "accepted"]


def test_two_partners_accepting_at_once_with_one_etag_accept_once(base_url, client, demo):
    lead_id, etag = _offered_lead(client, demo)
    users = ["northwind-user", "northwind-admin", "contoso-user", "contoso-admin"] * 10

    def accept(user: str) -> int:
        headers = {**demo[user], "If-Match": etag}
        return _call("POST", f"{base_url}/v1/leads/{lead_id}/accept", headers)[0]

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(accept, users))
    assert statuses.count(200) == 1
    assert set(statuses) <= {200, 404, 409, 412}
    [row] = _accepted_rows(client, demo, lead_id)
    lead = client.get(f"/v1/leads/{lead_id}", headers=demo["admin"]).get_json()
    assert lead["accepted"] is True and lead["owner_user_id"] == row["actor_user_id"]
    assert lead["organization_id"] == lead["primary_partner_id"] == row["actor_organization_id"]


def test_notes_of_two_partners_at_once_accept_the_lead_once_for_one_of_them(base_url, client, demo):
    lead_id, _ = _offered_lead(client, demo)
    users = ["northwind-user", "contoso-user"] * 15

    def note(user: str) -> tuple[str, int]:
        status, _ = _call(
            "POST", f"{base_url}/v1/leads/{lead_id}/notes", demo[user], {"text": f"{user} here"}
        )
        return user, status

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(note, users))
    [row] = _accepted_rows(client, demo, lead_id)
    winner = "northwind" if row["actor_organization_id"] == demo.ids["northwind"] else "contoso"
    assert {status for user, status in results if user.startswith(winner)} == {201}
    # the first note accepted the lead for its partner: every note of the other partner came after
    # and answers like a missing lead
    assert {status for user, status in results if not user.startswith(winner)} == {404}
    notes = client.get(f"/v1/leads/{lead_id}/notes", headers=demo["admin"]).get_json()["items"]
    assert [n["author_user_id"] for n in notes] == [row["actor_user_id"]] * 15


def _wait_until_a_request_waits_for_a_lock(db: Database) -> None:
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 60
    with db.engine.connect() as conn:
        while True:
            found = conn.execute(waiting).scalar_one()
            conn.rollback()  # the activity view is a snapshot kept until the transaction ends
            if found:
                return
            assert time.monotonic() < deadline, "the request never reached the offers"
            time.sleep(0.02)


def test_a_note_whose_partner_accepts_the_lead_while_it_reads_finds_the_lead(base_url, client, demo, db):
    """The window the note of the winning partner once fell into: its request has read the lead as
    offered and not yet accepted; its partner's accept commits (taking the lead and ending the offers)
    before the request looks at the offers. Holding the offers table locked pins the request there."""
    lead_id, _ = _offered_lead(client, demo)
    northwind = Principal(
        demo.ids["northwind-admin"], demo.ids["northwind"], frozenset({Role.PARTNER_ADMIN}), False
    )
    url = f"{base_url}/v1/leads/{lead_id}/notes"
    with db.engine.connect() as conn, ThreadPoolExecutor(1) as pool:
        transaction = conn.begin()
        conn.execute(text("LOCK TABLE lead_offers IN ACCESS EXCLUSIVE MODE"))
        note = pool.submit(_call, "POST", url, demo["northwind-user"], {"text": "ours now"})
        _wait_until_a_request_waits_for_a_lock(db)
        session = Session(bind=conn)
        lead = session.get(Lead, lead_id)
        assert lead is not None
        accept(session, lead, northwind, "accept")
        session.flush()
        transaction.commit()
        status, body = note.result(timeout=60)
    assert status == 201, body
    [row] = _accepted_rows(client, demo, lead_id)
    assert row["actor_user_id"] == demo.ids["northwind-admin"]
