"""Signing and verifying partner requests, Standard Webhooks style (HMAC-SHA256 over id, time and body).

Three headers travel with every request: ``webhook-id`` (unique per message, the same on every retry),
``webhook-timestamp`` (integer seconds since the epoch, fresh on every attempt) and ``webhook-signature``,
a space-separated list of ``v1,<base64 HMAC-SHA256>`` entries over ``{id}.{timestamp}.{body}``. Several
entries let a sender sign with an old and a new secret while a key is being rotated; a receiver may
likewise accept several secrets. Secrets are ``whsec_`` followed by 24 to 64 base64-encoded random bytes
(the prefix may be left out, as the reference libraries allow).

`verify` turns every way a request can fail into a `WebhookRejected` subclass (HTTP 401), never a bare
`ValueError` (RELIABILITY.md: the reference verifier's malformed-header `ValueError` became a 500).

>>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
>>> sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as random_bytes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from transfer.errors import (
    MessageReplayed,
    SecretInvalid,
    SignatureHeaderMalformed,
    SignatureHeadersMissing,
    SignatureMismatch,
    TimestampOutsideTolerance,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300

# No '.' in an id: the signed content joins id, timestamp and body with dots, and an id holding one
# could make two different (id, timestamp, body) triples sign the same bytes.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_\-:]{1,256}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")  # base64 of the 32 bytes of a SHA-256 HMAC
_MAX_SIGNATURE_HEADER = 2048


class SeenIds(Protocol):
    """Storage for replay protection: which message ids have been accepted.

    `remember` records `msg_id` and answers ``True`` the first time, ``False`` for an id already seen.
    It must be atomic (two concurrent calls with one id: exactly one ``True``), e.g. an insert into a
    table with a unique key. Ids whose timestamp is older than the verification tolerance may be forgotten:
    `verify` refuses those messages by their timestamp alone.
    """

    def remember(self, msg_id: str, timestamp: int) -> bool: ...


@dataclass(frozen=True)
class VerifiedMessage:
    """What a verified request proved: its id and the time the sender signed it."""

    msg_id: str
    timestamp: int


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(random_bytes.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside `secret`; `SecretInvalid` unless it is 24 to 64 bytes of base64."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SecretInvalid("a signing secret is 'whsec_' followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise SecretInvalid(f"a signing secret holds 24 to 64 bytes, this one {len(key)}")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``v1,<base64>`` signature of one message."""
    if not _MESSAGE_ID.fullmatch(msg_id):
        raise ValueError(f"message id {msg_id!r}: use 1 to 256 of letters, digits, '_', '-', ':'")
    if timestamp < 0:
        raise ValueError("timestamp must not be negative")
    return "v1," + _digest(secret_key(secret), msg_id, timestamp, _bytes(body))


def signature_headers(
    secrets: str | Sequence[str], msg_id: str, timestamp: int, body: bytes | str
) -> dict[str, str]:
    """The three headers of a signed request, signed with each of `secrets` (several while rotating)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("need at least one secret")
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(sign(s, msg_id, timestamp, body) for s in keys),
    }


def verify(
    secrets: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes | str,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    *,
    seen: SeenIds | None = None,
) -> VerifiedMessage:
    """Check that `body` and `headers` were signed with one of `secrets` within `tolerance_s` of `now`.

    Raises a `WebhookRejected` subclass (HTTP 401) saying which check failed: `SignatureHeadersMissing`,
    `SignatureHeaderMalformed`, `TimestampOutsideTolerance` (too old or too far in the future),
    `SignatureMismatch`, and, when `seen` is given, `MessageReplayed` for an id it already holds. The
    signature is checked before the id is remembered, so a forged request cannot burn a real id.
    Header names are matched without regard to case.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    keys = [secret_key(s) for s in ([secrets] if isinstance(secrets, str) else secrets)]
    if not keys:
        raise ValueError("need at least one secret")
    msg_id, raw_timestamp, raw_signatures = _headers(headers)
    if not _MESSAGE_ID.fullmatch(msg_id):
        raise SignatureHeaderMalformed(f"malformed {ID_HEADER} header")
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise SignatureHeaderMalformed(
            f"malformed {TIMESTAMP_HEADER} header: expected seconds since the epoch"
        )
    timestamp = int(raw_timestamp)
    candidates = _signatures(raw_signatures)

    current = int(now.timestamp())
    if timestamp < current - tolerance_s:
        raise TimestampOutsideTolerance(f"the request was signed more than {tolerance_s} s ago")
    if timestamp > current + tolerance_s:
        raise TimestampOutsideTolerance(f"the request is signed more than {tolerance_s} s in the future")

    content = _bytes(body)
    expected = [_digest(key, msg_id, timestamp, content).encode("ascii") for key in keys]
    matched = False
    for candidate in candidates:
        for digest in expected:
            # Compare all of them, so the time taken does not tell which entry came close.
            matched |= hmac.compare_digest(digest, candidate)
    if not matched:
        raise SignatureMismatch("no signature matches the body")
    if seen is not None and not seen.remember(msg_id, timestamp):
        raise MessageReplayed(f"message {msg_id} was already received")
    return VerifiedMessage(msg_id, timestamp)


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    wanted = {ID_HEADER: "", TIMESTAMP_HEADER: "", SIGNATURE_HEADER: ""}
    found = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in wanted:
            found[lowered] = value
    missing = [name for name in wanted if not found.get(name)]
    if missing:
        raise SignatureHeadersMissing(f"missing {', '.join(missing)} header{'s' if len(missing) > 1 else ''}")
    return found[ID_HEADER], found[TIMESTAMP_HEADER], found[SIGNATURE_HEADER]


def _signatures(header: str) -> list[bytes]:
    """The ``v1`` signatures in a header; entries of other versions are skipped, as the spec says."""
    if len(header) > _MAX_SIGNATURE_HEADER or not header.isascii():
        raise SignatureHeaderMalformed(f"malformed {SIGNATURE_HEADER} header")
    out = []
    for entry in header.split():
        version, comma, signature = entry.partition(",")
        if not comma or not version:
            raise SignatureHeaderMalformed(
                f"malformed {SIGNATURE_HEADER} header: expected 'v1,<base64>' entries"
            )
        if version != "v1":
            continue
        if not _SIGNATURE.fullmatch(signature):
            raise SignatureHeaderMalformed(
                f"malformed {SIGNATURE_HEADER} header: a v1 signature is 44 base64 characters"
            )
        out.append(signature.encode("ascii"))
    if not out:
        raise SignatureHeaderMalformed(f"no v1 signature in the {SIGNATURE_HEADER} header")
    return out


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def _bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body
