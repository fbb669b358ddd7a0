"""When to try a failed delivery again: capped exponential backoff with full jitter (pure).

After the ``n``-th failed attempt the next one waits a random time in ``[0, min(cap, base * 2**(n-1)))``
("full jitter"), so deliverers that failed together do not retry together. A sender may ask for more
(``Retry-After``); that wins when longer, up to ``max_retry_after``. After ``max_attempts`` failures, or
one failure the sender says is permanent, the message is dead until an admin retries it.

Randomness is a parameter (``rand`` in ``[0, 1)``), like ``now`` elsewhere, so the rule is testable.

>>> policy = RetryPolicy(base_seconds=10, cap_seconds=60, max_attempts=3)
>>> policy.after_failure(1, retryable=True, rand=0.5)
Retry(delay_seconds=5.0)
>>> policy.after_failure(3, retryable=True, rand=0.5)
GiveUp(reason='failed 3 times (max_attempts=3)')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    """Try again after this many seconds."""

    delay_seconds: float


@dataclass(frozen=True)
class GiveUp:
    """Stop trying: the message goes to the dead letters."""

    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters; the defaults suit e-mail and partner CRM calls (minutes to an hour)."""

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    max_attempts: int = 8
    max_retry_after_seconds: float = 6 * 3600.0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("need 0 < base_seconds <= cap_seconds")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def ceiling(self, attempts: int) -> float:
        """The upper bound of the wait after ``attempts`` failed attempts (1 = the first failure)."""
        if attempts < 1:
            raise ValueError("attempts counts failures and starts at 1")
        # 2**attempts overflows a float long before it matters; the cap is reached by then anyway.
        exponent = min(attempts - 1, 62)
        return float(min(self.cap_seconds, self.base_seconds * 2**exponent))

    def delay(self, attempts: int, rand: float) -> float:
        """Full jitter: a uniform pick in ``[0, ceiling(attempts))`` given ``rand`` in ``[0, 1)``."""
        if not 0.0 <= rand < 1.0:
            raise ValueError("rand must be in [0, 1)")
        return self.ceiling(attempts) * rand

    def after_failure(
        self,
        attempts: int,
        *,
        retryable: bool,
        rand: float,
        retry_after_seconds: float | None = None,
    ) -> Retry | GiveUp:
        """What to do once the ``attempts``-th attempt (counting this one) has failed."""
        if not retryable:
            return GiveUp("permanent failure")
        if attempts >= self.max_attempts:
            return GiveUp(f"failed {attempts} times (max_attempts={self.max_attempts})")
        wait = self.delay(attempts, rand)
        if retry_after_seconds is not None and retry_after_seconds > wait:
            wait = min(float(retry_after_seconds), self.max_retry_after_seconds)
        return Retry(wait)
