"""Registration numbers straight from the counter row under load: 2,000 numbers taken by 32 threads,
10% of the transactions rolled back, 0 duplicates among the committed ones (RELIABILITY.md,
"Concurrency and integrity"). On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

from registration.leads.submission import registration_number
from registration.leads.submission_service import next_registration_value

THREADS = 32
NUMBERS = 2000


class Rollback(Exception):
    pass


def test_2000_numbers_from_32_threads_with_rollbacks_are_unique(db):
    committed: list[int] = []
    rolled_back: list[int] = []
    lock = threading.Lock()
    rng = random.Random(4)
    doomed = set(rng.sample(range(NUMBERS), NUMBERS // 10))

    def take(i: int) -> None:
        try:
            with db.transaction() as session:
                value = next_registration_value(session)
                if i in doomed:
                    with lock:
                        rolled_back.append(value)
                    raise Rollback
        except Rollback:
            return
        with lock:
            committed.append(value)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(take, range(NUMBERS)))
    assert len(committed) == NUMBERS - len(doomed)
    assert len(set(committed)) == len(committed), "a number was handed out twice"
    # a rolled-back value may be taken again (it was never used); committed ones never
    with db.transaction() as session:
        later = next_registration_value(session)
    assert later > max(committed)
    assert registration_number(later).startswith("REG-")
