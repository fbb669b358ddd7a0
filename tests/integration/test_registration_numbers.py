"""Registration numbers straight from their source under load (PostgreSQL's sequence, SQLite's counter
row): 2,000 numbers taken by 32 threads, 10% of the transactions rolled back, 0 duplicates among the
committed ones (RELIABILITY.md, "Concurrency and integrity"), on SQLite and PostgreSQL; and migration
0027 moving PostgreSQL's series from the counter row to the sequence and back, numbers continuing."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic import command
from sqlalchemy import text

from common import migrate
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


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_0027_continues_the_counter_rows_numbers_in_the_sequence_and_back(db, db_url: str):
    config = migrate.alembic_config(db_url)
    db.engine.dispose()
    command.downgrade(config, "0026")
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM registration_counters"))
        conn.execute(text("INSERT INTO registration_counters (name, last_value) VALUES ('registration', 41)"))
    db.engine.dispose()
    command.upgrade(config, "0027")
    with db.transaction() as session:
        assert [next_registration_value(session) for _ in range(3)] == [42, 43, 44]
    db.engine.dispose()
    command.downgrade(config, "0026")
    with db.engine.connect() as conn:
        assert conn.scalar(text("SELECT last_value FROM registration_counters")) == 44
        assert conn.scalar(text("SELECT count(*) FROM pg_class WHERE relname = 'registration_numbers'")) == 0
    db.engine.dispose()
    migrate.upgrade(db_url)
    with db.transaction() as session:
        assert next_registration_value(session) == 45
