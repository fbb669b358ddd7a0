"""Fault tests of transfer delivery and of the inbound protocol, with real processes and real HTTP: a
fault-injecting proxy (a small real HTTP server in the test) in front of the partner instance answers 500,
stalls past the timeout, answers 502 after the partner applied the call, or is down; the deliverer is
SIGKILLed in the middle of 1,000 deliveries; inbound requests are tampered with, stale or replayed."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from common.outbox import OutboxMessage
from registration.opportunities.models import Opportunity
from tests.integration.transfer_support import (
    ROOT,
    SECRET_BRAND_SIGNS,
    Instance,
    profile_text,
    two_instances,
    wait_for,
)
from transfer import service
from transfer.models import InboundMessageId, OpportunityTransfer, PartnerCrmConnection


class FaultProxy:
    """Forwards to ``target``; the first requests meet the faults queued in ``faults``."""

    def __init__(self, target: str, faults: list[str], port: int = 0) -> None:
        self.target, self.faults = target, list(faults)
        self.seen: list[str] = []
        self.forwarded: list[tuple[str, bytes]] = []  # (path, body) of the calls the partner took (2xx)
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    fault = proxy.faults.pop(0) if proxy.faults else "ok"
                    proxy.seen.append(fault)
                if fault == "500":
                    return self._answer(500, b'{"detail": "internal error"}')
                if fault == "400":
                    return self._answer(400, b'{"detail": "we do not like it"}')
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                resp = httpx.request(
                    self.command, proxy.target + self.path, content=body or None, headers=headers, timeout=30
                )
                if fault == "stall":
                    time.sleep(3.0)  # past the connection's 2 s timeout; the partner has applied it
                if 200 <= resp.status_code < 300:
                    with proxy.lock:
                        proxy.forwarded.append((self.path, body))
                if fault == "502":
                    return self._answer(502, b"bad gateway")
                self._answer(resp.status_code, resp.content)

            def _answer(self, status: int, content: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:
                    pass  # the caller gave up (timeout)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _count(instance: Instance, model: Any, *where: Any) -> int:
    db = instance.db()
    try:
        with db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        db.dispose()


def _transfer_to_partner(brand: Instance, opp_id: int) -> dict[str, Any]:
    out: dict[str, Any] = brand.call(
        "POST",
        f"/v1/opportunities/{opp_id}/transfers",
        202,
        json={"partner_organization_id": brand.ids["other_org"]},
    ).json()
    return out


@pytest.mark.parametrize(
    "faults",
    [["500", "500", "500"], ["stall"], ["502", "502"], ["500", "stall", "502"]],
    ids=["answering-500", "timing-out-after-applying", "502-after-applying", "mixed"],
)
def test_partner_failures_are_retried_until_one_record_exists_there(
    tmp_path: Path, faults: list[str]
) -> None:
    port = _free_port()
    with two_instances(tmp_path, partner_url=f"http://127.0.0.1:{port}/v1/partner-crm/brand") as (
        brand,
        partner,
    ):
        proxy = FaultProxy(partner.url, faults, port=port)
        try:
            [opp_id] = brand.add_opportunity("Faulty")
            _transfer_to_partner(brand, opp_id)
            done = brand.deliver_until(
                lambda: (t := brand.transfers(opp_id)[0])["status"] == "successful" and t,
                "delivery after the faults",
            )
        finally:
            proxy.close()
        assert proxy.seen[: len(faults)] == faults
        assert done["attempts"] == len(faults) + 1
        assert _count(partner, Opportunity) == 1, "exactly one record on the partner side"
        assert _count(partner, OpportunityTransfer) == 1
        [theirs] = partner.get("/v1/opportunities")["items"]
        assert done["remote_id"] == str(theirs["id"])


def test_a_partner_that_is_down_gets_the_transfer_once_it_is_back(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there yet
    with two_instances(tmp_path, partner_url=f"http://127.0.0.1:{port}/v1/partner-crm/brand") as (
        brand,
        partner,
    ):
        [opp_id] = brand.add_opportunity("Down")
        _transfer_to_partner(brand, opp_id)
        failing = brand.deliver_until(
            lambda: (t := brand.transfers(opp_id)[0])["attempts"] >= 2 and t, "two failed attempts"
        )
        assert failing["status"] == "in_progress" and "connection" in failing["last_error"]
        proxy = FaultProxy(partner.url, [], port=port)
        try:
            brand.deliver_until(
                lambda: brand.transfers(opp_id)[0]["status"] == "successful", "delivery once back"
            )
        finally:
            proxy.close()
        assert _count(partner, Opportunity) == 1


def test_a_refused_call_is_dead_lettered_as_failed_and_an_admin_retry_delivers_it(tmp_path: Path) -> None:
    port = _free_port()
    with two_instances(tmp_path, partner_url=f"http://127.0.0.1:{port}/v1/partner-crm/brand") as (
        brand,
        partner,
    ):
        proxy = FaultProxy(partner.url, ["400"], port=port)
        try:
            [opp_id] = brand.add_opportunity("Refused")
            _transfer_to_partner(brand, opp_id)
            failed = brand.deliver_until(
                lambda: (t := brand.transfers(opp_id)[0])["status"] == "failed" and t, "the failure"
            )
            assert failed["attempts"] == 1 and "HTTP 400" in failed["last_error"]
            assert _count(brand, OutboxMessage, OutboxMessage.status == "dead") == 1
            retried = subprocess.run(
                [str(ROOT / ".venv/bin/prm"), "outbox", "retry", "--all-dead", "--channel", "partner_crm"],
                cwd=ROOT,
                env=brand.env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            assert "retried 1" in retried.stdout
            brand.deliver_until(
                lambda: brand.transfers(opp_id)[0]["status"] == "successful", "the admin retry"
            )
        finally:
            proxy.close()
        assert _count(partner, Opportunity) == 1


@pytest.mark.slow
@pytest.mark.timeout(1200)  # its own deadlines (300 + 300 + 600 s) govern; 1,000 deliveries on a busy machine
def test_deliverer_killed_in_the_middle_of_1000_deliveries_loses_and_doubles_nothing(tmp_path: Path) -> None:
    total = 1000
    with two_instances(tmp_path) as (brand, partner):
        ids = brand.add_opportunity("Bulk", contacts=1, rich=False, n=total)
        db = brand.db()
        try:
            with db.transaction() as session:
                connection = session.scalars(select(PartnerCrmConnection)).one()
                for opp in session.scalars(select(Opportunity).where(Opportunity.id.in_(ids))):
                    service.request_transfer(
                        session, None, opp, connection, now=opp.created_at, reason="bulk"
                    )
        finally:
            db.dispose()

        def worker() -> subprocess.Popen[str]:
            args = brand.deliver_args("--batch-size", "5", "--lease", "5", "--poll", "0.1", "--limit", "50")
            return subprocess.Popen(
                args,
                cwd=ROOT,
                env=brand.env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )

        def sent() -> int:
            return _count(brand, OutboxMessage, OutboxMessage.status == "sent")

        workers = [worker(), worker()]
        try:
            wait_for(lambda: sent() >= 200, "200 deliveries", deadline=300)
            workers[0].send_signal(signal.SIGKILL)  # mid-batch: its leased messages are due again later
            workers[0].wait()
            wait_for(lambda: sent() >= 500, "500 deliveries", deadline=300)
            workers[1].send_signal(signal.SIGKILL)
            workers[1].wait()
            workers = [worker()]
            wait_for(lambda: sent() == total, "every delivery", deadline=600, every=0.5)
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
                    w.wait(timeout=30)
        assert _count(partner, Opportunity) == total, "none created twice, none lost"
        assert _count(partner, OpportunityTransfer) == total
        assert _count(brand, OpportunityTransfer, OpportunityTransfer.status == "successful") == total
        assert _count(brand, OpportunityTransfer, OpportunityTransfer.remote_id.is_(None)) == 0


def test_updates_of_one_opportunity_reach_the_partner_in_order_with_concurrent_delivery(
    tmp_path: Path,
) -> None:
    """Five updates of each of 12 opportunities, queued one after the other, delivered by deliverers with
    8 calls in flight through a partner that fails a third of the calls: each opportunity's updates reach
    the partner in the order they were queued (a retry waiting out its backoff is never overtaken), and
    the partner ends with the last state of each."""
    port = _free_port()
    records, rounds = 12, 5
    with two_instances(tmp_path, partner_url=f"http://127.0.0.1:{port}/v1/partner-crm/brand") as (
        brand,
        partner,
    ):
        proxy = FaultProxy(partner.url, [], port=port)
        try:
            ids = brand.add_opportunity("Ordered", contacts=1, rich=False, n=records)
            for opp_id in ids:
                _transfer_to_partner(brand, opp_id)
            brand.deliver_until(
                lambda: all(brand.transfers(i)[0]["status"] == "successful" for i in ids), "the transfers"
            )
            db = brand.db()
            try:
                for round_ in range(rounds):
                    for opp_id in ids:
                        with db.transaction() as session:
                            session.get_one(Opportunity, opp_id).name = f"deal {opp_id} v{round_}"
                        brand.call(
                            "POST",
                            f"/v1/opportunities/{opp_id}/transfers/send-update",
                            202,
                            json={"partner_organization_id": brand.ids["other_org"]},
                        )
            finally:
                db.dispose()
            proxy.forwarded.clear()
            proxy.faults = (["500", "ok", "ok"] * records * rounds)[: records * rounds]
            brand.deliver_until(
                lambda: (
                    all(brand.transfers(i)[0]["status"] == "successful" for i in ids)
                    and _count(
                        brand,
                        OutboxMessage,
                        OutboxMessage.channel == "partner_crm",
                        OutboxMessage.status != "sent",
                    )
                    == 0
                ),
                "every update",
            )
        finally:
            proxy.close()
        assert "500" in proxy.seen, "the partner failed some calls"
        applied: dict[str, list[int]] = {}
        for path, body in proxy.forwarded:
            if path.endswith("/batch"):  # the calls due together, each item one update as signed
                calls = [json.loads(item["body"]) for item in json.loads(body)["items"]]
                assert all(item["operation"] == "update" for item in json.loads(body)["items"]), body
            else:
                assert path.endswith("/opportunities/update"), path
                calls = [json.loads(body)]
            for doc in calls:
                applied.setdefault(doc["ExternalId"], []).append(int(doc["Title"].rsplit(" v", 1)[1]))
        assert set(applied) == {str(i) for i in ids}
        for external_id, versions in applied.items():
            assert versions == sorted(versions), f"opportunity {external_id} got its updates as {versions}"
            assert versions[-1] == rounds - 1
        names = {o["name"] for o in partner.get("/v1/opportunities?limit=100")["items"]}
        assert names == {f"deal {i} v{rounds - 1}" for i in ids}


# --- inbound: tampered, stale and replayed requests -------------------------------------------------------


@pytest.fixture
def partner_only(tmp_path: Path) -> Iterator[Instance]:
    with two_instances(tmp_path) as (_, partner):
        yield partner


def _lead(external_id: str) -> bytes:
    doc = {
        "ExternalId": external_id,
        "Title": "Inbound deal",
        "LeadStatus": "Open",
        "EstimatedValue": "100.00",
        "People": [{"ExternalId": "p1", "FullName": "Pat"}],
    }
    return json.dumps(doc).encode()


def _written(partner: Instance) -> tuple[int, int, int]:
    return (
        _count(partner, Opportunity),
        _count(partner, OpportunityTransfer),
        _count(partner, InboundMessageId),
    )


CREATE = "/v1/partner-crm/brand/opportunities"


def _refused(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["status"] == 401 and body["type"] and body["title"]
    return body


def test_a_signed_inbound_create_is_applied_once_and_a_replay_is_refused(partner_only: Instance) -> None:
    partner = partner_only
    body = _lead("9001")
    first = partner.signed(
        "POST", CREATE, SECRET_BRAND_SIGNS, body, msg_id="msg_one", timestamp=int(time.time())
    )
    assert first.status_code == 201, first.text
    written = _written(partner)
    replay = httpx.post(
        partner.url + CREATE, content=body, headers={k: v for k, v in first.request.headers.items()}
    )
    assert _refused(replay)["type"].endswith("message-replayed")
    assert _written(partner) == written
    # the same transfer under a new message id (a retry) creates nothing and answers the same ids
    again = partner.signed("POST", CREATE, SECRET_BRAND_SIGNS, body)
    assert again.status_code == 200 and again.json() == first.json()
    assert _written(partner)[:2] == written[:2]


@pytest.mark.parametrize(
    "case",
    [
        "tampered",
        "stale",
        "future",
        "wrong-secret",
        "malformed-signature",
        "missing-headers",
        "unknown-connection",
    ],
)
def test_bad_inbound_requests_are_refused_with_401_and_nothing_written(
    partner_only: Instance, case: str
) -> None:
    partner = partner_only
    written = _written(partner)
    body, path, now = _lead("7007"), CREATE, int(time.time())
    if case == "tampered":
        signed = partner.signed("POST", path, SECRET_BRAND_SIGNS, body, msg_id="msg_t", timestamp=now)
        assert signed.status_code == 201  # the genuine one, to take its headers
        written = _written(partner)
        headers = dict(signed.request.headers)
        headers["webhook-id"] = "msg_t2"  # a fresh id, so only the changed byte can be the reason
        resp = httpx.post(partner.url + path, content=body.replace(b"Inbound", b"Imbound"), headers=headers)
    elif case == "stale":
        resp = partner.signed("POST", path, SECRET_BRAND_SIGNS, body, timestamp=now - 3600)
    elif case == "future":
        resp = partner.signed("POST", path, SECRET_BRAND_SIGNS, body, timestamp=now + 3600)
    elif case == "wrong-secret":
        resp = partner.signed("POST", path, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", body)
    elif case == "malformed-signature":
        resp = partner.signed(
            "POST", path, SECRET_BRAND_SIGNS, body, headers={"webhook-signature": "v1,not base64!"}
        )
    elif case == "missing-headers":
        resp = httpx.post(partner.url + path, content=body, headers={"Content-Type": "application/json"})
    else:
        resp = partner.signed("POST", "/v1/partner-crm/nobody/opportunities", SECRET_BRAND_SIGNS, body)
    _refused(resp)
    assert _written(partner) == written


def test_a_mapping_profile_with_errors_is_rejected_with_positions(partner_only: Instance) -> None:
    partner = partner_only
    bad = (
        profile_text("partner_lead")
        .replace("  name: Title", "  nme: Title")
        .replace("won: Converted", "wonn: Converted")
    )
    body = {
        "organization_id": partner.ids["own_org"],
        "key": "other",
        "name": "other",
        "base_url": "http://127.0.0.1:9/x",
        "operations": ["create"],
        "signing_secret": SECRET_BRAND_SIGNS,
        "inbound_secret": SECRET_BRAND_SIGNS,
        "profile": bad,
    }
    resp = partner.call("POST", "/v1/partner-crm-connections", 422, json=body)
    problem = resp.json()
    assert resp.headers["Content-Type"] == "application/problem+json"
    pointers = [e["pointer"] for e in problem["errors"]]
    assert any(p.startswith("profile:") and p.count(":") == 2 for p in pointers), pointers
    assert any("nme" in e["detail"] for e in problem["errors"]) and any(
        "wonn" in e["detail"] for e in problem["errors"]
    )
    assert partner.get("/v1/partner-crm-connections")["items"][0]["key"] == "brand"  # nothing stored
    assert len(partner.get("/v1/partner-crm-connections")["items"]) == 1
