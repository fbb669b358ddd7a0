"""The partner CRM protocol's batch call (issue 11, point 7: throughput): the deliverer sends the calls due
for one partner together, ``POST {base}/batch``, each item signed on its own, and applies the answers in
one transaction; an item that fails fails alone; a partner without the batch call (404) gets single calls.
Two real instances in one process; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx

from common.clock import utcnow
from common.outbox import OutboxMessage
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo
from tests.api.test_statement_counts import counted
from tests.transfer.pair_support import BRAND_SIGNS, PARTNER_HOST, connect
from transfer import delivery_service
from transfer.client import PartnerCrmClient
from transfer.models import CorrelationKey, OpportunityTransfer, PartnerCrmConnection
from transfer.signing import signature_headers


class Recorded(httpx.BaseTransport):
    """The partner's app over WSGI, with the paths called; ``no_batch``: the partner knows no batch call."""

    def __init__(self, app: Any, *, no_batch: bool = False) -> None:
        self.inner, self.no_batch = httpx.WSGITransport(app=app), no_batch
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path.rsplit("/", 1)[-1])
        if self.no_batch and request.url.path.endswith("/batch"):
            return httpx.Response(404, json={"title": "Not found", "status": 404})
        return self.inner.handle_request(request)


def _deliver(db, settings, transport: Recorded, **options: Any) -> Any:
    def factory(c: PartnerCrmConnection, secret: str) -> PartnerCrmClient:
        return PartnerCrmClient(
            c.base_url,
            secret,
            c.timeout_seconds,
            resolve=lambda host, port: [PARTNER_HOST],
            transport=transport,
        )

    return delivery_service.deliver(db, settings, client_factory=factory, **options)


def _opportunities(client, demo: Demo, n: int) -> list[int]:
    out = []
    for _ in range(n):
        lead = pending(client, demo)
        out.append(ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"])
    return out


def _queue(client, demo: Demo, opp_id: int, what: str = "") -> None:
    body = {"partner_organization_id": demo.ids["northwind"]}
    ok(client.post(f"/v1/opportunities/{opp_id}/transfers{what}", json=body, headers=demo["admin"]), 202)


def _transfer(client, demo: Demo, opp_id: int) -> dict[str, Any]:
    [t] = ok(client.get(f"/v1/opportunities/{opp_id}/transfers", headers=demo["admin"]))["items"]
    found: dict[str, Any] = t
    return found


def test_the_calls_due_for_a_partner_go_in_one_request_and_one_that_fails_fails_alone(
    client, db, settings, demo, partner
):
    connect(client, demo, partner)
    first, *others = _opportunities(client, demo, 4)
    _queue(client, demo, first)
    assert _deliver(db, settings, Recorded(partner.app)).sent == 1
    # a transfer the partner never heard of: a query of it answers 404
    ghost = _opportunities(client, demo, 1)[0]
    with db.transaction() as session:
        connection_id = session.query(PartnerCrmConnection.id).scalar()
        session.add(
            OpportunityTransfer(
                connection_id=connection_id,
                opportunity_id=ghost,
                remote_id="999999",
                remote_type="opportunity",
                origin="outbound",
                status="successful",
                attempts=1,
            )
        )
    for opp_id in others:
        _queue(client, demo, opp_id)
    _queue(client, demo, first, "/send-update")
    _queue(client, demo, ghost, "/receive-update")

    transport = Recorded(partner.app)
    report = _deliver(db, settings, transport)
    assert transport.paths == ["batch"], transport.paths  # five calls, one request
    assert (report.claimed, report.sent, report.dead) == (5, 4, 1), report
    for opp_id in [first, *others]:
        t = _transfer(client, demo, opp_id)
        assert t["status"] == "successful" and t["remote_id"], t
    failed = _transfer(client, demo, ghost)
    assert failed["status"] == "failed" and "no opportunity was transferred" in failed["message"], failed
    theirs = ok(partner.client.get("/v1/opportunities?limit=50", headers=partner.demo["admin"]))["items"]
    assert len(theirs) == 4  # each create once

    # delivered again as single calls, the same creates change nothing (idempotent by our id)
    for opp_id in others:
        _queue(client, demo, opp_id, "/send-update")
    transport = Recorded(partner.app)
    assert _deliver(db, settings, transport, batch_calls=1).sent == 3
    assert sorted(transport.paths) == ["update"] * 3


class UnknownProductInQueries(Recorded):
    """The partner's batch answers, with a line of a product we do not have added to each query's document
    (its answer cannot be applied here)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.paths.append(request.url.path.rsplit("/", 1)[-1])
        if not request.url.path.endswith("/batch"):
            return response
        answer = json.loads(response.read())
        for item in answer["items"]:
            if item["status"] == 200 and "LineItems" in item["body"]:
                item["body"]["LineItems"].append({"ExternalId": "x-1", "ItemName": "no-such-product"})
        return httpx.Response(response.status_code, json=answer)


def test_an_answer_that_cannot_be_applied_fails_alone_and_the_others_of_its_batch_are_kept(
    client, db, settings, demo, partner
):
    connect(client, demo, partner)
    first, *others = _opportunities(client, demo, 3)
    _queue(client, demo, first)
    assert _deliver(db, settings, Recorded(partner.app)).sent == 1
    for opp_id in others:
        _queue(client, demo, opp_id)
    _queue(client, demo, first, "/receive-update")

    transport = UnknownProductInQueries(partner.app)
    report = _deliver(db, settings, transport)
    assert transport.paths == ["batch"], transport.paths  # three calls, one request
    assert (report.claimed, report.sent, report.dead) == (3, 2, 1), report
    for opp_id in others:
        t = _transfer(client, demo, opp_id)
        assert t["status"] == "successful" and t["remote_id"], t
        opp = ok(client.get(f"/v1/opportunities/{opp_id}", headers=demo["admin"]))
        with db.transaction() as session:
            keys = session.query(CorrelationKey).filter(CorrelationKey.transfer_id == t["id"]).count()
        # the record's key and one per child, once each (the answers applied once)
        assert keys == 1 + sum(len(opp[k]) for k in ("contacts", "revenue_lines", "notes", "activities"))
    failed = _transfer(client, demo, first)
    assert failed["status"] == "failed" and "no-such-product" in failed["message"], failed
    lines = ok(client.get(f"/v1/opportunities/{first}", headers=demo["admin"]))["revenue_lines"]
    assert all(line.get("product") != "no-such-product" for line in lines)


class LeaseTakenOver(Recorded):
    """The partner's app; while it answers the batch, another deliverer takes over the lease of the
    message of one transfer (``taken``)."""

    def __init__(self, app: Any, db: Any, taken: int) -> None:
        super().__init__(app)
        self.db, self.taken = db, taken

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.db.transaction() as session:
            for message in session.query(OutboxMessage).filter(OutboxMessage.status == "sending"):
                if message.payload.get("transfer_id") == self.taken:
                    message.lease_token = "another deliverer's"
        return super().handle_request(request)


def test_an_answer_whose_lease_was_taken_over_is_not_applied_and_the_others_of_its_batch_are(
    client, db, settings, demo, partner
):
    connect(client, demo, partner)
    taken, *others = _opportunities(client, demo, 3)
    for opp_id in (taken, *others):
        _queue(client, demo, opp_id)
    taken_transfer = _transfer(client, demo, taken)["id"]

    report = _deliver(db, settings, LeaseTakenOver(partner.app, db, taken_transfer))
    assert (report.claimed, report.sent, report.lease_lost) == (3, 2, 1), report
    for opp_id in others:
        assert _transfer(client, demo, opp_id)["status"] == "successful"
    # its new owner applies the partner's answer: nothing of it here yet
    t = _transfer(client, demo, taken)
    assert t["status"] == "in_progress" and t["remote_id"] is None, t
    with db.transaction() as session:
        assert session.query(CorrelationKey).filter(CorrelationKey.transfer_id == t["id"]).count() == 0


def test_a_partner_without_the_batch_call_gets_single_calls(client, db, settings, demo, partner):
    connect(client, demo, partner)
    for opp_id in _opportunities(client, demo, 3):
        _queue(client, demo, opp_id)
    transport = Recorded(partner.app, no_batch=True)
    report = _deliver(db, settings, transport)
    assert (report.sent, report.retrying, report.dead) == (3, 0, 0), report
    assert transport.paths == ["batch", "opportunities", "opportunities", "opportunities"], transport.paths


def _statements_of_a_batch(client, db, settings, demo, partner, n: int) -> tuple[int, int]:
    for opp_id in _opportunities(client, demo, n):
        _queue(client, demo, opp_id)
    with counted(db) as ours, counted(partner.db) as theirs:
        assert _deliver(db, settings, Recorded(partner.app)).sent == n
    return len(ours.statements), len(theirs.statements)


def test_a_batch_costs_the_deliverer_a_fixed_number_of_statements_per_call(
    client, db, settings, demo, partner
):
    """A batch of N: the claim, the preparation and the commit of the answers are shared; per call a
    fixed number more (its transfer read and updated, its keys stored, its mail, its message settled),
    fewer than a single call costs; the partner's cost per call is the same as a single call's."""
    connect(client, demo, partner)
    _statements_of_a_batch(client, db, settings, demo, partner, 2)  # caches warm
    two = _statements_of_a_batch(client, db, settings, demo, partner, 2)
    six = _statements_of_a_batch(client, db, settings, demo, partner, 6)
    ten = _statements_of_a_batch(client, db, settings, demo, partner, 10)
    per_call = (six[0] - two[0]) / 4
    assert per_call == (ten[0] - six[0]) / 4, (two, six, ten)  # a constant cost per call
    assert six[0] < 6 * per_call + 20, (two, six, ten)  # and a constant cost per batch
    from tests.transfer.test_transfer_statement_counts import (
        BATCHED_DELIVERER_BUDGET,
        BATCHED_PARTNER_BUDGET,
        DELIVERER_BUDGET,
    )

    assert per_call < DELIVERER_BUDGET, (per_call, DELIVERER_BUDGET)
    assert per_call <= BATCHED_DELIVERER_BUDGET, (two, six, ten)
    if settings.database_url.startswith("postgresql"):
        assert (six[1] - two[1]) / 4 == (ten[1] - six[1]) / 4, (two, six, ten)
        assert (six[1] - two[1]) / 4 <= BATCHED_PARTNER_BUDGET, (two, six, ten)


def test_each_item_of_a_batch_is_verified_and_remembered_on_its_own(client, db, settings, demo, partner):
    connect(client, demo, partner)
    now = int(utcnow().timestamp())

    def item(msg_id: str, doc: dict[str, Any], secret: str = BRAND_SIGNS) -> dict[str, Any]:
        content = json.dumps(doc)
        return {
            "operation": "create",
            "idempotency_key": msg_id,
            "headers": signature_headers(secret, msg_id, now, content),
            "body": content,
        }

    def post(msg_id: str, items: list[dict[str, Any]]) -> Any:
        content = json.dumps({"items": items})
        headers = {**signature_headers(BRAND_SIGNS, msg_id, now, content), "Content-Type": "application/json"}
        return partner.client.post("/v1/partner-crm/acme/batch", data=content, headers=headers)

    good = item("m-1", {"ExternalId": "B-1", "Title": "Batched deal"})
    forged = item("m-2", {"ExternalId": "B-2", "Title": "Forged"}, secret="whsec_" + "A" * 32)
    resp = post("batch-1", [good, forged])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    first, second = resp.get_json()["items"]
    assert first["status"] == 201 and first["body"]["type"] == "opportunity", first
    assert second["status"] == 401 and second["body"]["status"] == 401, second

    # the same item again in another batch: its message id was seen (replay); a new signature of the
    # same document is the same create again (idempotent: the same record)
    again = post("batch-2", [good, item("m-3", {"ExternalId": "B-1", "Title": "Batched deal"})]).get_json()[
        "items"
    ]
    assert again[0]["status"] == 401 and "already received" in again[0]["body"]["detail"], again
    assert again[1]["status"] == 200 and again[1]["body"]["id"] == first["body"]["id"], again
    # the batch's own signature: a replayed or unsigned batch is refused whole
    assert post("batch-2", [item("m-4", {"ExternalId": "B-4"})]).status_code == 401
    unsigned = partner.client.post("/v1/partner-crm/acme/batch", json={"items": [good]})
    assert unsigned.status_code == 401
