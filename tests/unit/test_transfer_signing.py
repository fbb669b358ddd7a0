"""Signed partner requests: the Standard Webhooks vector, every way to fail is a 401, rotation, replay."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transfer.errors import (
    MessageReplayed,
    SecretInvalid,
    SignatureHeaderMalformed,
    SignatureHeadersMissing,
    SignatureMismatch,
    TimestampOutsideTolerance,
    WebhookRejected,
)
from transfer.signing import new_secret, sign, signature_headers, verify

# The published test vector: standard-webhooks/standard-webhooks,
# libraries/python/tests/test_webhooks.py::test_sign_function.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_NOW = datetime.fromtimestamp(SPEC_TIMESTAMP, UTC)
# int() reads these digits; a header must not pass with them.
FULLWIDTH_TIMESTAMP = "".join(chr(0xFF10 + int(d)) for d in str(SPEC_TIMESTAMP))


class SeenInMemory:
    """A fake of the replay store (the service backs it with a table)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def remember(self, msg_id: str, timestamp: int) -> bool:
        if msg_id in self.ids:
            return False
        self.ids.add(msg_id)
        return True


def spec_headers(**changes: str) -> dict[str, str]:
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    headers.update(changes)
    return {k: v for k, v in headers.items() if v != "<drop>"}


def test_signing_reproduces_the_standard_webhooks_vector():
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert (
        sign(SPEC_SECRET.removeprefix("whsec_"), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.decode())
        == SPEC_SIGNATURE
    )


def test_the_standard_webhooks_vector_verifies():
    message = verify(SPEC_SECRET, spec_headers(), SPEC_BODY, SPEC_NOW)

    assert (message.msg_id, message.timestamp) == (SPEC_ID, SPEC_TIMESTAMP)


def test_header_names_are_matched_without_regard_to_case():
    headers = {k.title(): v for k, v in spec_headers().items()}

    assert verify(SPEC_SECRET, headers, SPEC_BODY, SPEC_NOW).msg_id == SPEC_ID


@given(
    st.binary(max_size=200),
    st.integers(min_value=0, max_value=10**10),
    st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True),
)
def test_what_we_sign_we_verify(body, timestamp, msg_id):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    headers = signature_headers(secret, msg_id, timestamp, body)

    assert verify(secret, headers, body, datetime.fromtimestamp(timestamp, UTC)).msg_id == msg_id


@pytest.mark.parametrize(
    ("headers", "body", "error"),
    [
        (spec_headers(), SPEC_BODY + b" ", SignatureMismatch),
        (spec_headers(), b'{"test": 2432232315}', SignatureMismatch),
        (spec_headers(**{"webhook-id": "msg_other"}), SPEC_BODY, SignatureMismatch),
        (
            spec_headers(**{"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}),
            SPEC_BODY,
            SignatureMismatch,
        ),
        (
            spec_headers(
                **{
                    "webhook-signature": "v2,"
                    + SPEC_SIGNATURE[3:]
                    + " v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
                }
            ),
            SPEC_BODY,
            SignatureMismatch,
        ),
        (spec_headers(**{"webhook-id": "<drop>"}), SPEC_BODY, SignatureHeadersMissing),
        (spec_headers(**{"webhook-timestamp": "<drop>"}), SPEC_BODY, SignatureHeadersMissing),
        (spec_headers(**{"webhook-signature": "<drop>"}), SPEC_BODY, SignatureHeadersMissing),
        (spec_headers(**{"webhook-signature": ""}), SPEC_BODY, SignatureHeadersMissing),
        ({}, SPEC_BODY, SignatureHeadersMissing),
        (
            spec_headers(**{"webhook-signature": "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}),
            SPEC_BODY,
            SignatureHeaderMalformed,
        ),
        (spec_headers(**{"webhook-signature": "v1,not-base64!"}), SPEC_BODY, SignatureHeaderMalformed),
        (spec_headers(**{"webhook-signature": "v1,"}), SPEC_BODY, SignatureHeaderMalformed),
        (spec_headers(**{"webhook-signature": ",abc"}), SPEC_BODY, SignatureHeaderMalformed),
        (
            spec_headers(**{"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OÉ="}),
            SPEC_BODY,
            SignatureHeaderMalformed,
        ),
        (spec_headers(**{"webhook-signature": "v1a,abc"}), SPEC_BODY, SignatureHeaderMalformed),
        (
            spec_headers(**{"webhook-signature": SPEC_SIGNATURE + " " + "v1," * 1000}),
            SPEC_BODY,
            SignatureHeaderMalformed,
        ),
        (spec_headers(**{"webhook-timestamp": "hello"}), SPEC_BODY, SignatureHeaderMalformed),
        (spec_headers(**{"webhook-timestamp": "-1614265330"}), SPEC_BODY, SignatureHeaderMalformed),
        (spec_headers(**{"webhook-timestamp": "1614265330.0"}), SPEC_BODY, SignatureHeaderMalformed),
        (spec_headers(**{"webhook-timestamp": FULLWIDTH_TIMESTAMP}), SPEC_BODY, SignatureHeaderMalformed),
        (spec_headers(**{"webhook-id": "msg.1614265330"}), SPEC_BODY, SignatureHeaderMalformed),
    ],
)
def test_every_bad_request_is_a_401_saying_why(headers, body, error):
    with pytest.raises(error) as caught:
        verify(SPEC_SECRET, headers, body, SPEC_NOW)

    assert isinstance(caught.value, WebhookRejected)
    assert caught.value.to_problem()["status"] == 401


def test_a_wrong_secret_is_a_mismatch():
    with pytest.raises(SignatureMismatch):
        verify(new_secret(), spec_headers(), SPEC_BODY, SPEC_NOW)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-301, False), (-300, True), (0, True), (300, True), (301, False), (-86400, False), (86400, False)],
)
def test_the_timestamp_must_be_within_tolerance_both_ways(offset, accepted):
    now = SPEC_NOW - timedelta(seconds=offset)  # the message is `offset` seconds off our clock

    if accepted:
        assert verify(SPEC_SECRET, spec_headers(), SPEC_BODY, now).timestamp == SPEC_TIMESTAMP
    else:
        with pytest.raises(TimestampOutsideTolerance):
            verify(SPEC_SECRET, spec_headers(), SPEC_BODY, now)


def test_the_tolerance_is_a_parameter():
    later = SPEC_NOW + timedelta(seconds=30)

    verify(SPEC_SECRET, spec_headers(), SPEC_BODY, later, tolerance_s=30)
    with pytest.raises(TimestampOutsideTolerance):
        verify(SPEC_SECRET, spec_headers(), SPEC_BODY, later, tolerance_s=29)


def test_a_sender_rotating_its_key_signs_with_both_and_either_receiver_accepts():
    old, new = new_secret(), new_secret()
    headers = signature_headers([old, new], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)

    assert len(headers["webhook-signature"].split()) == 2
    verify(old, headers, SPEC_BODY, SPEC_NOW)
    verify(new, headers, SPEC_BODY, SPEC_NOW)


def test_a_receiver_rotating_its_key_accepts_either_secret():
    old, new = new_secret(), new_secret()

    for sender in (old, new):
        verify([old, new], signature_headers(sender, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_BODY, SPEC_NOW)


def test_a_replayed_id_is_refused_after_the_first():
    seen = SeenInMemory()

    verify(SPEC_SECRET, spec_headers(), SPEC_BODY, SPEC_NOW, seen=seen)
    with pytest.raises(MessageReplayed):
        verify(SPEC_SECRET, spec_headers(), SPEC_BODY, SPEC_NOW, seen=seen)


def test_a_forged_request_does_not_use_up_a_real_id():
    seen = SeenInMemory()

    with pytest.raises(SignatureMismatch):
        verify(SPEC_SECRET, spec_headers(), b"forged", SPEC_NOW, seen=seen)
    verify(SPEC_SECRET, spec_headers(), SPEC_BODY, SPEC_NOW, seen=seen)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "whsec_not base64",
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
)
def test_a_bad_secret_is_refused_when_used(secret):
    with pytest.raises(SecretInvalid):
        sign(secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)


def test_new_secrets_are_valid_and_different():
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_") and first != second
    assert sign(first, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) != sign(second, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)


def test_an_id_that_could_shift_the_signed_content_is_not_signed():
    with pytest.raises(ValueError):
        sign(SPEC_SECRET, "msg.1", SPEC_TIMESTAMP, SPEC_BODY)


def test_now_must_carry_a_timezone():
    with pytest.raises(ValueError):
        verify(SPEC_SECRET, spec_headers(), SPEC_BODY, datetime(2021, 2, 25, 15, 2, 10))
