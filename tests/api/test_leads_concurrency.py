"""Leads under concurrent requests against a real threaded server (PostgreSQL only: SQLite serialises
writers anyway): one Idempotency-Key sent 100 times at once makes one lead and identical replies; 200
submits at once get 200 distinct registration numbers (RELIABILITY.md, "Concurrency and integrity"); a
submit does not wait for another transaction holding a number it has not committed yet."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from registration.leads.models import IdempotencyKey, Lead
from registration.leads.submission_service import next_registration_value
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


def _call(
    method: str, url: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def test_one_idempotency_key_sent_100_times_at_once_makes_one_lead(base_url, db, demo):
    headers = {**demo["northwind-user"], "Idempotency-Key": "crm-retry-storm"}
    body = jp_security_lead(demo)

    def create(_: int) -> tuple[int, dict[str, str], Any]:
        return _call("POST", f"{base_url}/v1/leads", headers, body)

    with ThreadPoolExecutor(THREADS) as pool:
        replies = list(pool.map(create, range(100)))
    assert {status for status, _, _ in replies} == {201}, [r[2] for r in replies if r[0] != 201][:3]
    bodies = {json.dumps(b, sort_keys=True) for _, _, b in replies}
    assert len(bodies) == 1
    assert {h["ETag"] for _, h, _ in replies} == {replies[0][1]["ETag"]}
    assert sum(h.get("Idempotent-Replayed") == "true" for _, h, _ in replies) == 99
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_200_concurrent_submits_get_200_distinct_registration_numbers(client, base_url, db, demo):
    h = demo["northwind-user"]
    leads = []
    for _ in range(200):
        resp = created(client, h, jp_security_lead(demo))
        leads.append((resp.get_json()["id"], resp.headers["ETag"]))

    def submit(lead: tuple[int, str]) -> tuple[int, dict[str, str], Any]:
        lead_id, etag = lead
        return _call("POST", f"{base_url}/v1/leads/{lead_id}/submit", {**h, "If-Match": etag})

    with ThreadPoolExecutor(THREADS) as pool:
        replies = list(pool.map(submit, leads))
    assert [status for status, _, _ in replies] == [200] * 200, [r[2] for r in replies if r[0] != 200][:3]
    numbers = [body["registration_number"] for _, _, body in replies]
    assert len(set(numbers)) == 200
    assert sorted(numbers) == [f"REG-{i:06d}" for i in range(1, 201)]
    with db.transaction() as session:
        stored = list(session.scalars(select(Lead.registration_number)))
    assert sorted(n for n in stored if n) == sorted(numbers)


def test_concurrent_submits_of_one_lead_with_one_etag_succeed_once(base_url, client, db, demo):
    h = demo["northwind-user"]
    resp = created(client, h, jp_security_lead(demo))
    lead_id, etag = resp.get_json()["id"], resp.headers["ETag"]

    def submit(_: int) -> int:
        return _call("POST", f"{base_url}/v1/leads/{lead_id}/submit", {**h, "If-Match": etag})[0]

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(submit, range(40)))
    assert statuses.count(200) == 1
    assert set(statuses) <= {200, 409, 412}
    history = client.get(f"/v1/leads/{lead_id}/history", headers=h).get_json()["items"]
    assert [i["action"] for i in history] == [
        "created",
        "submitted",
        "assigned",
        "routed",
        "approval_round_started",
    ]


def test_a_submit_does_not_wait_for_a_number_another_transaction_has_not_committed(
    base_url, client, db, demo
):
    """A number taken by a transaction still open (another submit, not committed yet) holds up no other
    submit: the numbers come from a sequence, not from a row locked until commit (which made every
    submit wait for the one before it)."""
    h = demo["northwind-user"]
    resp = created(client, h, jp_security_lead(demo))
    lead_id, etag = resp.get_json()["id"], resp.headers["ETag"]
    taken, release = threading.Event(), threading.Event()
    held: list[int] = []
    outcome: dict[str, bool] = {}

    def hold() -> None:
        with db.transaction() as session:
            held.append(next_registration_value(session))
            taken.set()
            # released by the test once the submit is answered; a submit waiting for this transaction
            # is answered only after this times out
            outcome["released"] = release.wait(15)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(15)
        status, _, body = _call("POST", f"{base_url}/v1/leads/{lead_id}/submit", {**h, "If-Match": etag})
    finally:
        release.set()
        holder.join(30)
    assert outcome == {"released": True}, "the submit waited for the transaction holding a number"
    assert status == 200, body
    assert held == [1]
    assert body["registration_number"] == "REG-000002"
