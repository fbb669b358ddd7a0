"""The retry policy: capped exponential backoff with full jitter, dead after N attempts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.retry import GiveUp, Retry, RetryPolicy

POLICY = RetryPolicy(base_seconds=10, cap_seconds=300, max_attempts=6)


def test_the_ceiling_doubles_per_failure_until_the_cap():
    assert [POLICY.ceiling(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


def test_a_huge_attempt_count_stays_at_the_cap():
    assert RetryPolicy(cap_seconds=3600).ceiling(10_000) == 3600


@given(attempts=st.integers(1, 200), rand=st.floats(0, 1, exclude_max=True))
def test_full_jitter_waits_between_zero_and_the_ceiling(attempts, rand):
    delay = POLICY.delay(attempts, rand)
    assert 0 <= delay < POLICY.ceiling(attempts) or delay == POLICY.ceiling(attempts) == 0
    assert delay <= POLICY.cap_seconds


def test_jitter_spreads_over_the_whole_range():
    assert POLICY.delay(3, 0.0) == 0
    assert POLICY.delay(3, 0.5) == 20
    assert POLICY.delay(3, 0.999) == pytest.approx(39.96)


@pytest.mark.parametrize("rand", [-0.1, 1.0, 2.0])
def test_rand_outside_the_unit_interval_is_refused(rand):
    with pytest.raises(ValueError):
        POLICY.delay(1, rand)


def test_retryable_failures_retry_until_the_last_attempt_then_give_up():
    steps = [POLICY.after_failure(n, retryable=True, rand=0.5) for n in range(1, 7)]
    assert all(isinstance(s, Retry) for s in steps[:5])
    assert steps[5] == GiveUp("failed 6 times (max_attempts=6)")


def test_a_permanent_failure_gives_up_at_once():
    assert POLICY.after_failure(1, retryable=False, rand=0.5) == GiveUp("permanent failure")


def test_retry_after_wins_when_longer_than_the_jittered_wait():
    assert POLICY.after_failure(1, retryable=True, rand=0.5, retry_after_seconds=120) == Retry(120)
    assert POLICY.after_failure(4, retryable=True, rand=0.5, retry_after_seconds=1) == Retry(40)


def test_retry_after_is_bounded():
    policy = RetryPolicy(max_retry_after_seconds=600)
    assert policy.after_failure(1, retryable=True, rand=0.0, retry_after_seconds=10**9) == Retry(600)


@pytest.mark.parametrize(
    "kwargs", [{"base_seconds": 0}, {"base_seconds": 10, "cap_seconds": 5}, {"max_attempts": 0}]
)
def test_nonsense_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
