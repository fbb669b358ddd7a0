"""A partner's answer is read strictly and with bounds: JSON nested deeper than we accept, non-finite
numbers or duplicate keys make an invalid answer (a verdict), never an exception in the deliverer."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from transfer.client import MAX_RESPONSE_DEPTH, PartnerCrmClient

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _client(answer: bytes) -> PartnerCrmClient:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer, headers={"Content-Type": "application/json"})

    return PartnerCrmClient(
        base_url="https://93.184.215.14/crm",
        signing_secret=SECRET,
        timeout_seconds=5,
        transport=httpx.MockTransport(reply),
    )


def _now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "answer",
    [
        b"[" * 100_000 + b"]" * 100_000,  # json.loads: RecursionError
        b'{"id": ' * (MAX_RESPONSE_DEPTH + 1) + b"1" + b"}" * (MAX_RESPONSE_DEPTH + 1),
        b'{"id": "1", "id": "2"}',
        b'{"id": NaN}',
    ],
    ids=["deep-100000", "deeper-than-accepted", "duplicate-key", "nan"],
)
def test_a_malformed_or_too_deep_answer_is_an_invalid_answer(answer):
    result = _client(answer).create("msg_1", "idem-1", {"id": "1"}, _now)
    assert result.status == 200
    assert result.body is None
    assert "without a JSON object" in result.outcome.reason


def test_a_well_formed_answer_is_read():
    result = _client(b'{"id": "R-1", "correlations": {}}').create("msg_1", "idem-1", {"id": "1"}, _now)
    assert result.body == {"id": "R-1", "correlations": {}}
