"""The outbox on both databases: written with the change, claimed under a lease, retried with backoff,
dead-lettered after N attempts and retried by an admin; concurrent deliverers never send a message twice."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from common import audit
from common import outbox as ob
from common.clock import utcnow
from common.database import Database
from common.delivery import DeliveryFailed, DeliveryReport, deliver
from common.outbox import OutboxItem, OutboxMessage, OutboxStatus
from common.retry import RetryPolicy

CHANNEL = "test"


@pytest.fixture
def database(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


def _enqueue(database, n, *, channel=CHANNEL, prefix="m"):
    with database.transaction() as session:
        return [ob.enqueue(session, channel, "t", f"{prefix}{i}", {"i": i}) for i in range(n)]


def _message(database: Database, message_id: int) -> OutboxMessage:
    with database.transaction() as session:
        message = session.get_one(OutboxMessage, message_id)
        return message


class Recorder:
    def __init__(self, fail_times=0, error: Exception | None = None):
        self.sent: list[OutboxItem] = []
        self.fail_times = fail_times
        self.error = error or ConnectionError("refused")
        self.lock = threading.Lock()

    def __call__(self, item: OutboxItem) -> None:
        with self.lock:
            if self.fail_times:
                self.fail_times -= 1
                raise self.error
            self.sent.append(item)


def test_a_message_exists_only_if_the_transaction_that_wrote_it_commits(database):
    with pytest.raises(RuntimeError), database.transaction() as session:
        ob.enqueue(session, CHANNEL, "t", "k1", {"a": 1})
        raise RuntimeError("the change failed after the outbox insert")
    assert ob.list_messages(database) == []
    [message_id] = _enqueue(database, 1)
    assert [m.id for m in ob.list_messages(database)] == [message_id]


def test_the_same_key_twice_keeps_one_message_per_channel(database):
    with database.transaction() as session:
        first = ob.enqueue(session, CHANNEL, "t", "same", {"n": 1})
        again = ob.enqueue(session, CHANNEL, "t", "same", {"n": 2})
        other_channel = ob.enqueue(session, "other", "t", "same", {"n": 3})
    assert first is not None and again is None and other_channel is not None
    assert _message(database, first).payload == {"n": 1}


def test_many_messages_at_once_keep_one_per_key_and_count_only_the_new(database):
    with database.transaction() as session:
        ob.enqueue(session, CHANNEL, "t", "k1", {"n": 1})
    many = [(f"k{i}", {"n": i * 10}) for i in range(1, 1501)]  # past SQLite's parameter cap in one go
    with database.transaction() as session:
        assert ob.enqueue_many(session, CHANNEL, "t", many) == 1499
        assert ob.enqueue_many(session, CHANNEL, "t", many[:3]) == 0
    with database.transaction() as session:
        rows = dict(session.execute(select(OutboxMessage.dedupe_key, OutboxMessage.payload)).all())
    assert len(rows) == 1500
    assert (rows["k1"], rows["k2"], rows["k1500"]) == ({"n": 1}, {"n": 20}, {"n": 15000})
    with pytest.raises(ValueError, match="outbox key"), database.transaction() as session:
        ob.enqueue_many(session, CHANNEL, "t", [("", {})])


def test_deliver_sends_each_due_message_once_and_marks_it_sent(database):
    ids = _enqueue(database, 5)
    later = utcnow() + timedelta(hours=1)
    with database.transaction() as session:
        ob.enqueue(session, CHANNEL, "t", "later", {}, not_before=later)
    sender = Recorder()
    report = deliver(database, CHANNEL, sender, batch_size=2)
    assert (report.claimed, report.sent) == (5, 5)
    assert [i.id for i in sender.sent] == ids
    assert [i.dedupe_key for i in sender.sent] == [f"m{i}" for i in range(5)]
    assert all(_message(database, i).status == "sent" for i in ids)
    assert deliver(database, CHANNEL, sender).claimed == 0  # nothing due: sent, or not yet


def test_deliver_stops_at_its_limit(database):
    _enqueue(database, 7)
    assert deliver(database, CHANNEL, Recorder(), limit=3, batch_size=2).sent == 3
    assert ob.counts(database)[(CHANNEL, "pending")] == 4


def test_a_failed_attempt_waits_a_jittered_backoff_before_the_next(database):
    [message_id] = _enqueue(database, 1)
    policy = RetryPolicy(base_seconds=60, cap_seconds=600, max_attempts=5)
    t0 = utcnow()
    report = deliver(database, CHANNEL, Recorder(fail_times=1), policy=policy, clock=lambda: t0)
    assert (report.retrying, report.sent) == (1, 0)
    message = _message(database, message_id)
    assert message.status == "pending" and message.attempts == 1
    assert message.last_error == "ConnectionError: refused"
    assert t0 <= message.next_attempt_at < t0 + timedelta(seconds=60)
    # second failure: the window doubles
    t1 = message.next_attempt_at
    deliver(database, CHANNEL, Recorder(fail_times=1), policy=policy, clock=lambda: t1)
    message = _message(database, message_id)
    assert message.attempts == 2 and t1 <= message.next_attempt_at < t1 + timedelta(seconds=120)
    assert deliver(database, CHANNEL, Recorder(), policy=policy, clock=lambda: t1).claimed == 0


def test_retry_after_from_the_sender_is_honoured(database):
    [message_id] = _enqueue(database, 1)
    t0 = utcnow()
    sender = Recorder(fail_times=1, error=DeliveryFailed("429", retry_after_seconds=900))
    deliver(database, CHANNEL, sender, policy=RetryPolicy(base_seconds=1), clock=lambda: t0, rand=lambda: 0)
    assert _message(database, message_id).next_attempt_at == t0 + timedelta(seconds=900)


def test_dead_after_max_attempts_then_an_admin_retry_delivers_it(database):
    [message_id] = _enqueue(database, 1)
    policy = RetryPolicy(base_seconds=1, cap_seconds=1, max_attempts=3)
    now = utcnow()
    sender = Recorder(fail_times=3)
    for attempt in range(1, 4):
        at = now + timedelta(seconds=2 * attempt)
        deliver(database, CHANNEL, sender, policy=policy, clock=lambda at=at: at)  # type: ignore[misc]
    message = _message(database, message_id)
    assert message.status == "dead" and message.attempts == 3
    assert message.last_error == "ConnectionError: refused [failed 3 times (max_attempts=3)]"
    assert (
        deliver(database, CHANNEL, sender, policy=policy, clock=lambda: now + timedelta(days=1)).claimed == 0
    )

    assert ob.retry_dead(database, None, ids=[message_id]) == [message_id]
    assert ob.retry_dead(database, None, ids=[message_id]) == []  # no longer dead
    with database.transaction() as session:
        [event] = audit.history(session, "outbox_message", message_id)
        assert (event.action, event.before, event.after) == (
            "retried",
            {"status": "dead", "attempts": 3},
            {"status": "pending", "attempts": 0},
        )
    report = deliver(database, CHANNEL, sender, policy=policy)
    assert report.sent == 1 and _message(database, message_id).status == "sent"


def test_a_permanent_failure_is_dead_at_once(database):
    [message_id] = _enqueue(database, 1)
    sender = Recorder(fail_times=1, error=DeliveryFailed("550 no such mailbox", retryable=False))
    assert deliver(database, CHANNEL, sender).dead == 1
    message = _message(database, message_id)
    assert (message.status, message.attempts) == ("dead", 1)
    assert message.last_error == "DeliveryFailed: 550 no such mailbox [permanent failure]"


def test_retry_of_every_dead_message_of_a_channel(database):
    _enqueue(database, 2)
    _enqueue(database, 1, channel="other")
    never = Recorder(fail_times=99, error=DeliveryFailed("no", retryable=False))
    deliver(database, CHANNEL, never)
    deliver(database, "other", never)
    assert len(ob.retry_dead(database, None, channel=CHANNEL)) == 2
    assert ob.counts(database) == {(CHANNEL, "pending"): 2, ("other", "dead"): 1}


def test_an_expired_lease_makes_the_message_claimable_again(database):
    [message_id] = _enqueue(database, 1)
    t0 = utcnow()
    [crashed] = ob.claim(database, CHANNEL, limit=10, lease_seconds=60, now=t0)  # deliverer then dies
    assert _message(database, message_id).status == "sending"
    assert ob.claim(database, CHANNEL, limit=10, lease_seconds=60, now=t0 + timedelta(seconds=59)) == []
    [again] = ob.claim(database, CHANNEL, limit=10, lease_seconds=60, now=t0 + timedelta(seconds=60))
    assert again.id == message_id and again.attempts == 2 and again.lease_token != crashed.lease_token
    # the first deliverer wakes up: it cannot settle a message it no longer holds
    assert ob.mark_sent(database, crashed) is False
    assert ob.mark_failed(database, crashed, "late") is None
    assert ob.mark_sent(database, again) is True
    assert _message(database, message_id).status == "sent"


def test_a_message_that_kills_its_deliverer_every_time_ends_dead(database):
    [message_id] = _enqueue(database, 1)
    policy = RetryPolicy(max_attempts=2)
    t = utcnow()
    for _ in range(2):
        assert len(ob.claim(database, CHANNEL, limit=1, lease_seconds=10, policy=policy, now=t)) == 1
        t += timedelta(seconds=11)
    assert ob.claim(database, CHANNEL, limit=1, lease_seconds=10, policy=policy, now=t) == []
    message = _message(database, message_id)
    assert message.status == "dead" and "lease expired" in (message.last_error or "")


def test_a_deliverer_skips_messages_whose_lease_ran_out_while_it_was_busy(database):
    _enqueue(database, 2)
    t0 = utcnow()
    ticks = iter([t0, t0, t0 + timedelta(seconds=5), t0 + timedelta(seconds=500)])

    def clock():
        return next(ticks, t0 + timedelta(seconds=1000))

    sender = Recorder()
    report = deliver(database, CHANNEL, sender, batch_size=2, lease_seconds=300, clock=clock, limit=2)
    assert (report.sent, report.lease_lost) == (1, 1)
    assert len(sender.sent) == 1


@pytest.mark.parametrize("deliverers", [4])
def test_concurrent_deliverers_never_send_a_message_twice(db_url, deliverers):
    setup = Database(db_url)
    _enqueue(setup, 300)
    sender = Recorder()
    barrier = threading.Barrier(deliverers)
    reports: list[DeliveryReport] = []
    failures: list[BaseException] = []

    def work():
        database = Database(db_url)
        try:
            barrier.wait()
            reports.append(deliver(database, CHANNEL, sender, limit=1000, batch_size=7))
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=work) for _ in range(deliverers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    ids = [i.id for i in sender.sent]
    assert len(ids) == 300 and len(set(ids)) == 300
    assert sum(r.claimed for r in reports) == 300
    with setup.transaction() as session:
        assert session.scalar(select(func.count()).where(OutboxMessage.status == "sent")) == 300
        assert session.scalar(select(func.max(OutboxMessage.attempts))) == 1
    setup.dispose()


def test_enqueue_refuses_an_empty_or_overlong_key(database):
    with database.transaction() as session:
        for key in ("", "k" * 256):
            with pytest.raises(ValueError):
                ob.enqueue(session, CHANNEL, "t", key, {})


def test_status_values_are_the_stored_words():
    assert [s.value for s in OutboxStatus] == ["pending", "sending", "sent", "dead"]


# --- concurrency and per-key order --------------------------------------------------------------------


class OrderRecorder:
    """Sends slowly, fails every message's first attempt when asked, and records what was in flight."""

    def __init__(self, *, fail_first: set[int] | None = None, delay: float = 0.01) -> None:
        self.sent: list[OutboxItem] = []
        self.fail_first = set(fail_first or ())
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.most_in_flight = 0
        self.overlaps: list[str] = []  # ordering keys seen twice in flight at once

    def __call__(self, item: OutboxItem) -> None:
        key = str(item.payload.get("order"))
        with self.lock:
            if self.in_flight.get(key):
                self.overlaps.append(key)
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.most_in_flight = max(self.most_in_flight, sum(self.in_flight.values()))
        try:
            time.sleep(self.delay)
            with self.lock:
                if item.payload["seq"] in self.fail_first:
                    self.fail_first.discard(item.payload["seq"])
                    raise ConnectionError("refused")
                self.sent.append(item)
        finally:
            with self.lock:
                self.in_flight[key] -= 1


def _enqueue_ordered(database, records: int, per_record: int) -> None:
    with database.transaction() as session:
        seq = 0
        for round_ in range(per_record):
            for r in range(records):
                ob.enqueue(
                    session,
                    CHANNEL,
                    "t",
                    f"r{r}:{round_}",
                    {"order": r, "round": round_, "seq": seq},
                    ordering_key=f"record:{r}",
                )
                seq += 1


def _deliver_all(database, sender, **options) -> DeliveryReport:
    total = DeliveryReport()
    policy = RetryPolicy(base_seconds=0.01, cap_seconds=0.05, max_attempts=10)
    for _ in range(200):
        report = deliver(database, CHANNEL, sender, policy=policy, **options)
        total.add(report)
        with database.transaction() as session:
            left = session.scalar(select(func.count()).where(OutboxMessage.status != "sent"))
        if not left:
            return total
        time.sleep(0.02)
    raise AssertionError("messages left undelivered")


def test_concurrent_delivery_keeps_each_keys_order_through_retries(db_url):
    """Several messages in flight, but never two of one ordering key, and a failed one is not overtaken
    by a later one of its key while it waits out its backoff."""
    database = Database(db_url)
    try:
        _enqueue_ordered(database, records=12, per_record=5)
        # the first round of half the records fails once: without the order, round 1 would overtake it
        sender = OrderRecorder(fail_first={r for r in range(0, 12, 2)})
        report = _deliver_all(database, sender, limit=1000, batch_size=8, concurrency=6)
        assert report.sent == 60 and report.retrying == 6
        assert sender.overlaps == []
        assert sender.most_in_flight > 1, "several messages were in flight at once"
        for r in range(12):
            rounds = [i.payload["round"] for i in sender.sent if i.payload["order"] == r]
            assert rounds == [0, 1, 2, 3, 4], (r, rounds)
    finally:
        database.dispose()


def test_messages_without_an_ordering_key_are_not_held_back(database):
    _enqueue(database, 3)
    with database.transaction() as session:
        ob.enqueue(session, CHANNEL, "t", "k-a", {"i": 9}, ordering_key="a")
        ob.enqueue(session, CHANNEL, "t", "k-b", {"i": 10}, ordering_key="a")
    items = ob.claim(database, CHANNEL, limit=10, lease_seconds=60)
    assert sorted(i.payload["i"] for i in items) == [0, 1, 2, 9]  # the second "a" waits for the first
    assert ob.claim(database, CHANNEL, limit=10, lease_seconds=60) == []
    [first_a] = [i for i in items if i.payload["i"] == 9]
    ob.mark_failed(database, first_a, "boom", retryable=False)  # dead: it no longer holds the key
    [second_a] = ob.claim(database, CHANNEL, limit=10, lease_seconds=60)
    assert second_a.payload["i"] == 10


def test_expedite_makes_a_prefixs_waiting_retries_due_now(database):
    with database.transaction() as session:
        for i, key in enumerate(["connection:1:transfer:1", "connection:1:transfer:2", "connection:10:t:3"]):
            ob.enqueue(session, CHANNEL, "t", f"x{i}", {"i": i}, ordering_key=key)
    items = ob.claim(database, CHANNEL, limit=10, lease_seconds=60)
    policy = RetryPolicy(base_seconds=3600, cap_seconds=3600)
    for item in items:
        ob.mark_failed(database, item, "down", policy=policy, rand=0.99)
    assert ob.claim(database, CHANNEL, limit=10, lease_seconds=60) == []
    assert ob.expedite(database, CHANNEL, "connection:1:") == 2  # not connection 10's
    assert sorted(i.payload["i"] for i in ob.claim(database, CHANNEL, limit=10, lease_seconds=60)) == [0, 1]
