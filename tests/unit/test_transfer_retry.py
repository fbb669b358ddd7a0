"""Outcomes of partner calls: which are delivered, which retried (honouring Retry-After), which dead."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.retry import GiveUp, Retry, RetryPolicy
from transfer.retry import Failure, Verdict, classify, parse_retry_after

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

RETRY = [408, 425, 429, 500, 502, 503, 504, 505, 507, 511, 599]
PERMANENT = [300, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 409, 410, 412, 413, 415, 422, 451, 501]
DELIVERED = [200, 201, 202, 204, 299]
INVALID = [0, 99, 600, 999, -1]


@pytest.mark.parametrize("status", RETRY)
def test_transient_statuses_are_retried(status):
    assert classify(status).verdict is Verdict.RETRY


@pytest.mark.parametrize("status", PERMANENT)
def test_statuses_that_say_the_request_is_wrong_are_permanent(status):
    outcome = classify(status)

    assert outcome.verdict is Verdict.PERMANENT
    assert not outcome.retryable


@pytest.mark.parametrize("status", DELIVERED)
def test_2xx_is_delivered(status):
    assert classify(status).verdict is Verdict.DELIVERED


@pytest.mark.parametrize("status", [*INVALID, 100, 101, 103])
def test_statuses_that_are_not_an_answer_are_permanent(status):
    assert classify(status).verdict is Verdict.PERMANENT


def test_every_status_has_exactly_one_verdict_and_only_the_listed_ones_retry():
    retried = {s for s in range(100, 600) if classify(s).retryable}

    assert retried == {408, 425, 429} | (set(range(500, 600)) - {501})


def test_redirects_are_not_followed():
    assert "redirects are not followed" in classify(302).reason


@pytest.mark.parametrize(
    ("failure", "verdict"),
    [
        (Failure.TIMEOUT, Verdict.RETRY),
        (Failure.CONNECTION, Verdict.RETRY),
        (Failure.INVALID_RESPONSE, Verdict.PERMANENT),
        (Failure.URL_REFUSED, Verdict.PERMANENT),
    ],
)
def test_failures_without_a_status(failure, verdict):
    assert classify(failure).verdict is verdict


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Sat, 01 Mar 2025 12:01:30 GMT", 90.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # a date in the past: no extra wait
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("Sat, 01 Mar 2025 12:01:30 -0000", None),
        ("Sat, 32 Mar 2025 12:01:30 GMT", None),
        ("\uff11\uff12\uff10", None),  # fullwidth digits: int() reads them, HTTP does not
    ],
)
def test_retry_after_as_seconds_or_http_date(header, seconds):
    assert parse_retry_after(header, NOW) == seconds


def test_a_retry_after_date_without_a_clock_says_nothing():
    assert parse_retry_after("Sat, 01 Mar 2025 12:01:30 GMT") is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_read_on_retryable_answers(status):
    assert classify(status, retry_after="3600", now=NOW).retry_after_seconds == 3600.0


def test_retry_after_is_ignored_on_permanent_answers():
    assert classify(400, retry_after="60").retry_after_seconds is None


def test_the_outcome_feeds_the_shared_backoff_policy():
    policy = RetryPolicy(base_seconds=10, cap_seconds=60, max_attempts=5)

    throttled = classify(429, retry_after="300")
    wrong = classify(422)

    assert policy.after_failure(
        1, retryable=throttled.retryable, rand=0.5, retry_after_seconds=throttled.retry_after_seconds
    ) == Retry(300.0)
    assert isinstance(policy.after_failure(1, retryable=wrong.retryable, rand=0.5), GiveUp)
