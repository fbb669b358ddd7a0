"""The deliver loop over the outbox: claim due messages, send each with a sender callable, record the
outcome; ``concurrency`` messages in flight on a thread pool when the sender waits on the network.

Delivery is at least once, so the receiver should deduplicate on ``dedupe_key`` (an e-mail's Message-ID,
a CRM call's Idempotency-Key). What a message's retries look like is ``common.outbox.mark_failed``'s.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.clock import utcnow
from common.database import Database
from common.outbox import OutboxItem, OutboxStatus, claim, mark_failed, mark_sent
from common.retry import RetryPolicy

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """A sender's way to say how a failure should be treated.

    ``retryable=False`` sends the message straight to the dead letters (e.g. a 4xx other than 408/425/429,
    a mailbox the server refuses); ``retry_after_seconds`` asks for at least that long a wait. Any other
    exception a sender raises counts as a retryable failure.
    """

    def __init__(self, message: str, *, retryable: bool = True, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds


class LeaseLost(Exception):
    """A sender's way to say the message's lease was lost before it could record the outcome (another
    deliverer owns the message now): nothing is recorded, the new owner delivers it."""


#: Sends one message; raises on failure. Returns True when it recorded the delivery itself
#: (``outbox.mark_sent_in``, in the transaction that applied the answer: one commit, not two);
#: otherwise the deliver loop records it.
Sender = Callable[[OutboxItem], bool | None]


@dataclass
class DeliveryReport:
    """What one ``deliver`` call did."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    # Messages whose lease ran out (or was taken over) before they were settled; they are due again.
    lease_lost: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retrying += other.retrying
        self.dead += other.dead
        self.lease_lost += other.lease_lost
        self.errors.extend(other.errors)


def deliver(
    db: Database,
    channel: str,
    send: Sender,
    *,
    limit: int = 100,
    batch_size: int = 10,
    lease_seconds: float = 300.0,
    policy: RetryPolicy | None = None,
    clock: Callable[[], datetime] = utcnow,
    rand: Callable[[], float] = random.random,
    concurrency: int = 1,
) -> DeliveryReport:
    """Send due messages of ``channel`` with ``send`` until none is due or ``limit`` were claimed.

    ``send`` raises on failure (``DeliveryFailed`` to say whether and when to retry). With
    ``concurrency`` > 1, that many sends run at once on a thread pool (``send`` must be thread-safe);
    claims of up to ``batch_size`` keep at most twice that many messages claimed and unsettled. The lease
    must outlast a message's wait in that window and its own send: ``lease_seconds`` >= (``batch_size`` /
    ``concurrency`` + 1) x the sender's own timeout.
    """
    if concurrency < 1 or batch_size < 1:
        raise ValueError("concurrency and batch_size are at least 1")
    policy = policy or RetryPolicy()

    def settle(item: OutboxItem) -> DeliveryReport:
        return _send_one(db, channel, send, item, policy=policy, clock=clock, rand=rand)

    report = DeliveryReport()
    if concurrency == 1:
        while report.claimed < limit:
            batch = claim(
                db,
                channel,
                limit=min(batch_size, limit - report.claimed),
                lease_seconds=lease_seconds,
                policy=policy,
                now=clock(),
            )
            if not batch:
                break
            report.claimed += len(batch)
            for item in batch:
                report.add(settle(item))
        return report
    window = 2 * concurrency
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"outbox-{channel}") as pool:
        in_flight: set[Future[DeliveryReport]] = set()
        idle = False  # the last claim found nothing; claim again once something settles
        while True:
            room = min(batch_size, limit - report.claimed, window - len(in_flight))
            if not idle and room > 0 and len(in_flight) <= concurrency:
                batch = claim(
                    db, channel, limit=room, lease_seconds=lease_seconds, policy=policy, now=clock()
                )
                report.claimed += len(batch)
                in_flight.update(pool.submit(settle, item) for item in batch)
                idle = not batch
                if batch and len(in_flight) <= concurrency:
                    continue
            if not in_flight:
                break
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                report.add(future.result())
            idle = False  # what waited behind a settled message (same ordering key) may be due now
    return report


#: Sends several messages at once (one call for all, where the receiver takes batches); returns, for each
#: message in order, what `Sender` would have: True (settled by the sender), None (the loop records the
#: delivery), or the exception it would have raised.
BatchSender = Callable[[list[OutboxItem]], list[bool | BaseException | None]]


def deliver_batches(
    db: Database,
    channel: str,
    send_batch: BatchSender,
    *,
    group_of: Callable[[OutboxItem], object],
    group_size: int = 20,
    limit: int = 100,
    lease_seconds: float = 300.0,
    policy: RetryPolicy | None = None,
    clock: Callable[[], datetime] = utcnow,
    rand: Callable[[], float] = random.random,
    concurrency: int = 1,
) -> DeliveryReport:
    """`deliver`, with the due messages grouped (``group_of``: messages of one group may travel together,
    e.g. those to one partner) into batches of up to ``group_size`` that ``send_batch`` sends at once;
    ``concurrency`` batches in flight. Each round claims what that many batches hold, sends them, and
    records every message's outcome as `deliver` does."""
    if concurrency < 1 or group_size < 1:
        raise ValueError("concurrency and group_size are at least 1")
    policy = policy or RetryPolicy()

    def settle(group: list[OutboxItem]) -> DeliveryReport:
        report = DeliveryReport()
        live = [item for item in group if clock() < item.lease_until]
        report.lease_lost += len(group) - len(live)
        if not live:
            return report
        try:
            results = send_batch(live)
        except Exception as exc:
            results = [exc] * len(live)
        for item, result in zip(live, results, strict=True):
            report.add(_record(db, channel, item, result, policy=policy, clock=clock, rand=rand))
        return report

    report = DeliveryReport()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"outbox-{channel}") as pool:
        while report.claimed < limit:
            items = claim(
                db,
                channel,
                limit=min(group_size * concurrency, limit - report.claimed),
                lease_seconds=lease_seconds,
                policy=policy,
                now=clock(),
            )
            if not items:
                break
            report.claimed += len(items)
            groups: dict[object, list[OutboxItem]] = {}
            for item in items:
                groups.setdefault(group_of(item), []).append(item)
            batches = [
                members[i : i + group_size]
                for members in groups.values()
                for i in range(0, len(members), group_size)
            ]
            for done in pool.map(settle, batches) if concurrency > 1 else map(settle, batches):
                report.add(done)
    return report


def _send_one(
    db: Database,
    channel: str,
    send: Sender,
    item: OutboxItem,
    *,
    policy: RetryPolicy,
    clock: Callable[[], datetime],
    rand: Callable[[], float],
) -> DeliveryReport:
    """Send one claimed message and record the outcome (the report counts it as sent, retrying, dead or
    lease lost; ``claimed`` is the caller's to count)."""
    report = DeliveryReport()
    if clock() >= item.lease_until:  # too late: another deliverer may have it already
        report.lease_lost += 1
        return report
    try:
        result: bool | BaseException | None = send(item)
    except Exception as exc:
        result = exc
    return _record(db, channel, item, result, policy=policy, clock=clock, rand=rand)


def _record(
    db: Database,
    channel: str,
    item: OutboxItem,
    result: bool | BaseException | None,
    *,
    policy: RetryPolicy,
    clock: Callable[[], datetime],
    rand: Callable[[], float],
) -> DeliveryReport:
    """Record what sending `item` came to: ``result`` is what the sender returned, or what it raised."""
    report = DeliveryReport()
    if isinstance(result, LeaseLost):
        report.lease_lost += 1
        return report
    if isinstance(result, BaseException):
        exc = result
        retryable = not isinstance(exc, DeliveryFailed) or exc.retryable
        retry_after = exc.retry_after_seconds if isinstance(exc, DeliveryFailed) else None
        error = f"{type(exc).__name__}: {exc}"
        log.warning("outbox %s message %s attempt %s failed: %s", channel, item.id, item.attempts, error)
        report.errors.append(f"{item.id}: {error}")
        status = mark_failed(
            db,
            item,
            error,
            retryable=retryable,
            retry_after_seconds=retry_after,
            policy=policy,
            rand=rand(),
            now=clock(),
        )
        if status is OutboxStatus.DEAD:
            report.dead += 1
        elif status is OutboxStatus.PENDING:
            report.retrying += 1
        else:
            report.lease_lost += 1
    elif result is True or mark_sent(db, item, now=clock()):
        report.sent += 1
    else:
        report.lease_lost += 1
    return report


def run_worker(
    db: Database,
    channel: str,
    send: Sender,
    *,
    stop: threading.Event,
    poll_seconds: float = 5.0,
    once: Callable[[], DeliveryReport] | None = None,
    **deliver_options: Any,
) -> DeliveryReport:
    """Deliver until ``stop`` is set, waiting ``poll_seconds`` whenever nothing was due; ``once``: one
    pass of another kind (e.g. `deliver_batches`) in place of ``deliver`` with ``deliver_options``."""
    total = DeliveryReport()
    while not stop.is_set():
        report = once() if once is not None else deliver(db, channel, send, **deliver_options)
        total.add(report)
        if report.claimed == 0:
            stop.wait(poll_seconds)
    return total
