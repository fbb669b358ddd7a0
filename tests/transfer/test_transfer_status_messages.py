"""A transfer's status says what happened last, in plain words, for every status: queued, created at the
partner (with the partner's id and the type of record it keeps), updated, received, retrying, failed.
Failures are described, never shown as an exception's text (that goes to the log). Two real instances in
one process (tests.transfer.pair_support), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from common.retry import RetryPolicy
from tests.api.approvals_support import act, ok, pending
from tests.api.leads_support import Demo
from tests.transfer.pair_support import Partner, connect, deliver_to
from transfer import status_messages
from transfer.client import PartnerCrmClient
from transfer.retry import Failure, classify


def _opportunity(client, demo: Demo) -> int:
    lead = pending(client, demo)
    opp_id: int = ok(act(client, demo["cam-jp-security"], lead["id"], "approve"))["opportunity_id"]
    return opp_id


def _status(client, demo: Demo, opp_id: int) -> dict[str, Any]:
    [status] = ok(client.get(f"/v1/opportunities/{opp_id}/transfers", headers=demo["admin"]))["items"]
    found: dict[str, Any] = status
    return found


def _post(client, demo: Demo, opp_id: int, action: str = "") -> dict[str, Any]:
    path = f"/v1/opportunities/{opp_id}/transfers" + (f"/{action}" if action else "")
    body = {"partner_organization_id": demo.ids["northwind"]}
    return ok(client.post(path, json=body, headers=demo["admin"]), 202)


def test_every_successful_step_says_what_it_did_with_the_partners_id_and_record_type(
    client, db, settings, demo, partner
):
    connect(client, demo, partner)
    opp_id = _opportunity(client, demo)

    queued = _post(client, demo, opp_id)
    assert queued["status"] == "in_progress"
    assert queued["message"] == "Queued: the opportunity will be created on Northwind CRM"

    report = deliver_to(db, settings, partner.app)
    assert report.sent == 1, report
    status = _status(client, demo, opp_id)
    [their_opp] = ok(partner.client.get("/v1/opportunities", headers=partner.demo["admin"]))["items"]
    assert (status["status"], status["remote_id"], status["remote_type"]) == (
        "successful",
        str(their_opp["id"]),
        "opportunity",
    )
    assert status["message"] == f"Created as opportunity {their_opp['id']} on Northwind CRM"
    assert status["last_error"] is None

    assert _post(client, demo, opp_id, "send-update")["message"] == (
        "Queued: the changes will be sent to Northwind CRM"
    )
    deliver_to(db, settings, partner.app)
    assert _status(client, demo, opp_id)["message"] == (
        f"Update sent: opportunity {their_opp['id']} on Northwind CRM is up to date"
    )

    _post(client, demo, opp_id, "receive-update")
    deliver_to(db, settings, partner.app)
    status = _status(client, demo, opp_id)
    assert status["status"] == "successful"
    assert status["message"].startswith(
        f"Received Northwind CRM's version of opportunity {their_opp['id']}: "
    ), status["message"]

    # the partner's side of the same transfer says what it keeps, and whose record it is
    [theirs] = ok(
        partner.client.get(f"/v1/opportunities/{their_opp['id']}/transfers", headers=partner.demo["admin"])
    )["items"]
    assert (theirs["origin"], theirs["remote_id"], theirs["remote_type"]) == (
        "inbound",
        str(opp_id),
        "Lead",
    )
    assert theirs["message"].startswith("Update received from Acme PRM (Lead "), theirs["message"]


def test_a_partner_keeping_leads_is_named_so(client, db, settings, demo, partner):
    connect(client, demo, partner, inbound_creates="lead")
    opp_id = _opportunity(client, demo)
    _post(client, demo, opp_id)
    deliver_to(db, settings, partner.app)
    status = _status(client, demo, opp_id)
    [lead] = [
        item
        for item in ok(partner.client.get("/v1/leads", headers=partner.demo["admin"]))["items"]
        if item["name"] == "Firewall refresh" and item["organization_id"] == partner.demo.ids["acme"]
    ]
    assert (status["remote_type"], status["remote_id"]) == ("lead", str(lead["id"]))
    assert status["message"] == f"Created as lead {lead['id']} on Northwind CRM"


def test_a_partner_that_cannot_be_reached_is_said_so_in_plain_words_and_logged_raw(
    client, db, settings, demo, caplog
):
    connect(client, demo, Partner(client.application, db, demo), inbound_creates="opportunity")
    opp_id = _opportunity(client, demo)
    _post(client, demo, opp_id)
    with caplog.at_level(logging.WARNING, logger="transfer.delivery_service"):
        deliver_to(db, settings, None, base_url="http://127.0.0.1:9/crm")  # discard port: refused
    status = _status(client, demo, opp_id)
    assert status["status"] == "in_progress" and status["attempts"] == 1
    assert status["last_error"] == (
        "Northwind CRM could not be reached: the connection was refused (is the service running at that "
        "address?)"
    )
    assert status["message"] == f"Attempt 1 failed, trying again later: {status['last_error']}"
    assert "Errno" not in status["message"] and "ConnectError" not in status["message"]
    assert any("ConnectError" in r.getMessage() for r in caplog.records), caplog.text


def test_a_wrong_signing_secret_fails_with_what_to_check(client, db, settings, demo, partner):
    connect(client, demo, partner)
    # the partner holds another secret for us: every call is refused as unsigned
    etag = partner.client.get("/v1/partner-crm-connections/1", headers=partner.demo["admin"]).headers["ETag"]
    patched = partner.client.patch(
        "/v1/partner-crm-connections/1",
        json={"inbound_secret": "whsec_" + "A" * 40},
        headers={**partner.demo["admin"], "If-Match": etag},
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    opp_id = _opportunity(client, demo)
    _post(client, demo, opp_id)
    deliver_to(db, settings, partner.app, policy=RetryPolicy(max_attempts=1))
    status = _status(client, demo, opp_id)
    assert status["status"] == "failed"
    assert status["message"] == (
        "Failed: Northwind CRM did not accept our signature (HTTP 401): no signature matches the body. "
        "Check that both sides hold the same signing secret and that their clocks agree"
    )
    assert status["remote_id"] is None and status["remote_type"] is None


# --- the wording, without a database --------------------------------------------------------------------


def _refused() -> httpx.ConnectError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise httpx.ConnectError("[Errno 111] Connection refused") from inner
    except httpx.ConnectError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (_refused(), "the connection was refused"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "host name does not resolve"),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "TLS"),
        (httpx.ReadTimeout("timed out"), "did not answer in time"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "closed the connection",
        ),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), "broke off"),
        (KeyError("transfer_id"), "unexpected error on our side"),
    ],
)
def test_known_exceptions_are_worded_by_their_class_never_their_text(exc, words):
    said = status_messages.cause_of(exc)
    assert words in said
    assert str(exc) not in said and type(exc).__name__ not in said


def test_each_kind_of_failure_is_a_sentence_naming_the_partner():
    partner = "Northwind CRM"
    assert status_messages.failure(classify(Failure.TIMEOUT), partner, timeout_seconds=2.5) == (
        "Northwind CRM did not answer within 2.5 seconds"
    )
    assert status_messages.failure(classify(302), partner).startswith(
        "Northwind CRM answered with a redirect, which is not followed"
    )
    assert status_messages.failure(classify(418), partner) == "Northwind CRM refused the request (HTTP 418)"
    assert status_messages.failure(classify(500).explained(detail="db\n down"), partner) == (
        "Northwind CRM had an internal error (HTTP 500): db down"
    )


def test_the_client_describes_what_went_wrong_and_keeps_the_raw_reason_for_the_log():
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    client = PartnerCrmClient(
        "https://93.184.215.14/crm",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        5,
        transport=httpx.MockTransport(boom),
    )
    from datetime import UTC, datetime

    result = client.create("msg_1", "idem", {"id": "1"}, lambda: datetime(2026, 1, 1, tzinfo=UTC))
    assert result.outcome.retryable and "Server disconnected" in result.outcome.reason
    assert status_messages.failure(result.outcome, "Northwind CRM") == (
        "Northwind CRM could not be reached: it closed the connection without a valid answer"
    )
