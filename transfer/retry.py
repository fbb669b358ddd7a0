"""What the outcome of one call to a partner CRM means for its outbox message: done, retry, or give up.

Retryable: timeouts, connection failures, 408, 425, 429 and every 5xx except 501 (the partner may answer
502 from a proxy even though the request went through: the idempotency key makes the retry harmless).
Permanent: other 4xx (the request itself is wrong), 501, redirects (never followed: a moved endpoint is a
configuration change for an admin, and following it could lead past the URL policy), and responses that
are not HTTP or not what the protocol promises. A ``Retry-After`` header is read on retryable answers, as
seconds or an HTTP date; `common.retry.RetryPolicy` decides the wait from it and the backoff.

>>> classify(503, retry_after="120")
Outcome(verdict=<Verdict.RETRY: 'retry'>, reason='HTTP 503', retry_after_seconds=120.0)
>>> classify(Failure.TIMEOUT).retryable
True
>>> classify(404).verdict
<Verdict.PERMANENT: 'permanent'>
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


class Failure(StrEnum):
    """A call that ended without an HTTP status we can use."""

    TIMEOUT = "timeout"  # connect, read, write or total deadline passed
    CONNECTION = "connection"  # refused, reset, DNS failure, the peer closed before answering
    INVALID_RESPONSE = "invalid_response"  # a status, body or content type the protocol does not allow
    URL_REFUSED = "url_refused"  # the URL policy refused the endpoint at connect time


@dataclass(frozen=True)
class Outcome:
    """The verdict on one attempt, why, and how long the partner asked us to wait (if it did)."""

    verdict: Verdict
    reason: str
    retry_after_seconds: float | None = None
    # What `transfer.status_messages` words for people: the HTTP status or the failure, the cause of a
    # failure in plain words (never an exception's text), and the detail of the partner's problem answer.
    status: int | None = field(default=None, repr=False)
    failure: Failure | None = field(default=None, repr=False)
    cause: str | None = field(default=None, repr=False)
    detail: str | None = field(default=None, repr=False)

    def explained(self, *, cause: str | None = None, detail: str | None = None) -> Outcome:
        """The same verdict with the plain cause of a failure, or the partner's detail, attached."""
        return replace(self, cause=cause or self.cause, detail=detail or self.detail)

    @property
    def retryable(self) -> bool:
        return self.verdict is Verdict.RETRY


RETRYABLE_4XX = frozenset({408, 425, 429})
_RETRYABLE_FAILURES = frozenset({Failure.TIMEOUT, Failure.CONNECTION})


def classify(
    result: int | Failure, *, retry_after: str | None = None, now: datetime | None = None
) -> Outcome:
    """The verdict on an attempt that got HTTP status `result`, or failed with `result`.

    `retry_after` is the response's ``Retry-After`` header; an HTTP date in it needs `now`.
    """
    if isinstance(result, Failure):
        verdict = Verdict.RETRY if result in _RETRYABLE_FAILURES else Verdict.PERMANENT
        return Outcome(verdict, result.value.replace("_", " "), failure=result)
    status = result
    if not 100 <= status <= 599:
        return Outcome(Verdict.PERMANENT, f"invalid HTTP status {status}", failure=Failure.INVALID_RESPONSE)
    reason = f"HTTP {status}"
    if 200 <= status <= 299:
        return Outcome(Verdict.DELIVERED, reason, status=status)
    if 300 <= status <= 399:
        return Outcome(Verdict.PERMANENT, f"{reason}: redirects are not followed", status=status)
    if status in RETRYABLE_4XX or (500 <= status <= 599 and status != 501):
        wait = parse_retry_after(retry_after, now) if retry_after is not None else None
        return Outcome(Verdict.RETRY, reason, wait, status=status)
    if status < 200:
        return Outcome(Verdict.PERMANENT, f"{reason}: an interim response is not an answer", status=status)
    return Outcome(Verdict.PERMANENT, reason, status=status)


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 10.2.3), or ``None`` if it says nothing usable.

    >>> parse_retry_after("30"), parse_retry_after("soon")
    (30.0, None)
    """
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    if now is None or not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always GMT
        return None
    return max(0.0, (when - now).total_seconds())
