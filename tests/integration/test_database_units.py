"""The units of work: ``Database.read()`` only reads (no transaction: no write lock on SQLite, no round
trips to begin and end one on PostgreSQL; a write refused) and leaves the pooled connection as a transaction needs it; a pooled
PostgreSQL connection is pinged before use only after sitting idle, and a stale one costs no request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, create_engine, event, literal, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from common import database
from common.database import Database
from directory.enums import ProductLevel
from directory.models import Product


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ON_POSTGRES = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def _is_sqlite(db: Database) -> bool:
    return db.engine.dialect.name == "sqlite"


def test_a_read_only_unit_of_work_refuses_to_write(db):
    with pytest.raises(RuntimeError, match="read-only"), db.read() as session:
        session.add(Product(key="ro-1", name="Read only", level=ProductLevel.GROUP))
        session.flush()
    with db.read() as session:
        assert session.scalar(select(Product.id).where(Product.key == "ro-1")) is None


def test_reading_takes_no_write_lock_and_writing_still_does(db):
    with statements(db) as seen, db.read() as session:
        session.execute(text("SELECT 1"))
    # no transaction: SQLite takes no write lock, PostgreSQL runs in autocommit
    assert [s for s in seen if s.startswith("BEGIN")] == []
    with statements(db) as seen, db.transaction() as session:
        session.execute(text("SELECT 1"))
    if _is_sqlite(db):
        assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]


@ON_SQLITE  # PostgreSQL readers never wait for writers
def test_a_reader_does_not_wait_for_a_writer_on_sqlite(db):
    with db.transaction() as writer:
        writer.add(Product(key="w-1", name="Being written", level=ProductLevel.GROUP))
        writer.flush()  # the write lock is held until the block ends
        with db.read() as reader:  # another connection: would wait for the lock under BEGIN IMMEDIATE
            assert reader.scalar(select(Product.id).where(Product.key == "w-1")) is None


def test_a_connection_that_served_a_read_is_transactional_again(db):
    """The pool hands the same connection to a transaction next: its writes still roll back together."""
    with db.read() as session:
        session.execute(text("SELECT 1"))
    with pytest.raises(ZeroDivisionError), db.transaction() as session:
        session.add(Product(key="tx-1", name="Rolled back", level=ProductLevel.GROUP))
        session.flush()
        if not _is_sqlite(db):
            assert session.connection().connection.dbapi_connection.autocommit is False
        raise ZeroDivisionError
    with db.read() as session:
        assert session.scalar(select(Product.id).where(Product.key == "tx-1")) is None


def _count_pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = db.engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        pings.append(1)
        return bool(real(dbapi_conn))

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return pings


@ON_POSTGRES  # SQLite connections are files, never stale
def test_a_connection_used_moments_ago_is_not_pinged_an_idle_one_is(db, monkeypatch):
    db.engine.dispose()
    pings = _count_pings(db, monkeypatch)
    monkeypatch.setattr(database, "PING_IDLE_SECONDS", 3600.0)
    for _ in range(3):
        with db.read() as session:
            session.execute(text("SELECT 1"))
    assert pings == []
    monkeypatch.setattr(database, "PING_IDLE_SECONDS", 0.0)
    with db.read() as session:
        session.execute(text("SELECT 1"))
    assert pings == [1]


def _terminate_backend(db: Database, pid: int) -> None:
    """End the server process of connection ``pid`` from another connection, as a restart would."""
    admin = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()


@ON_POSTGRES  # SQLite connections are files, never stale
def test_a_stale_idle_connection_costs_no_failed_request(db, monkeypatch):
    with db.read() as session:
        session.execute(text("SELECT 1"))
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    _terminate_backend(db, pid)  # the server ends the pooled connection while it sits idle (a restart)
    monkeypatch.setattr(database, "PING_IDLE_SECONDS", 0.0)
    with db.read() as session:
        assert session.scalar(text("SELECT 1")) == 1
        assert session.scalar(text("SELECT pg_backend_pid()")) != pid


def test_a_statement_run_as_its_driver_sql_reads_what_it_would_and_is_counted(db):
    """``driver_rows``: a statement built once, with a bound value and a text containing ``%`` (written
    ``%%`` for PostgreSQL's drivers), reads the rows ``execute`` reads, values as the driver gives them;
    each run is one statement as the execution events see it, the SQL compiled once per database."""
    with db.transaction() as session:
        session.add_all(Product(key=f"drv-{i}", name=f"{i}% off", level=ProductLevel.GROUP) for i in range(3))
    stmt = (
        select(Product.key, Product.name, literal("100%"))
        .where(Product.key.like(bindparam("prefix")), Product.name.like("%off"))
        .order_by(Product.key)
    )
    with db.read_rows() as connection:
        want = [tuple(r) for r in connection.execute(stmt, {"prefix": "drv-%"})]
        with statements(db) as seen:
            first = database.driver_rows(connection, stmt, {"prefix": "drv-%"})
            again = database.driver_rows(connection, stmt, {"prefix": "drv-1"})
    assert [tuple(r) for r in first] == want == [(f"drv-{i}", f"{i}% off", "100%") for i in range(3)]
    assert [tuple(r) for r in again] == [("drv-1", "1% off", "100%")]
    assert len(seen) == 2 and seen[0] == seen[1]


def test_driver_rows_read_in_the_callers_transaction(db):
    """``driver_rows`` inside a transaction sees the transaction's own uncommitted writes, and they stay
    its own: rolled back with it."""
    stmt = select(Product.key).where(Product.key == bindparam("key"))
    with pytest.raises(ZeroDivisionError), db.transaction() as session:
        session.add(Product(key="drv-tx", name="Uncommitted", level=ProductLevel.GROUP))
        session.flush()
        assert [tuple(r) for r in database.driver_rows(session.connection(), stmt, {"key": "drv-tx"})] == [
            ("drv-tx",)
        ]
        raise ZeroDivisionError
    with db.read_rows() as connection:
        assert list(database.driver_rows(connection, stmt, {"key": "drv-tx"})) == []


@ON_POSTGRES  # (psycopg's own read: SQLite runs SQLAlchemy's execution)
def test_driver_rows_on_a_lost_connection_fail_as_sqlalchemy_does_and_the_pool_replaces_it(db, monkeypatch):
    """The server ends the connection a read is on (a restart): the read fails with SQLAlchemy's own
    error, marked as a lost connection, and the pool hands out a new connection next, not the dead one;
    a driver error on a live connection (bad SQL) is SQLAlchemy's error too and leaves it in use."""
    monkeypatch.setattr(database, "PING_IDLE_SECONDS", 3600.0)  # (no ping before use to hide the loss)
    stmt = select(literal(1))
    with db.read_rows() as connection:
        pid = connection.scalar(text("SELECT pg_backend_pid()"))
        _terminate_backend(db, pid)
        with pytest.raises(OperationalError) as lost:
            database.driver_rows(connection, stmt)
        assert lost.value.connection_invalidated
    with db.read_rows() as connection:
        assert [tuple(r) for r in database.driver_rows(connection, stmt)] == [(1,)]
        assert connection.scalar(text("SELECT pg_backend_pid()")) != pid
        with pytest.raises(ProgrammingError) as bad:
            database.driver_rows(connection, select(text("no_such_column")))
        assert not bad.value.connection_invalidated
        assert [tuple(r) for r in database.driver_rows(connection, stmt)] == [(1,)]


def test_a_timestamp_reads_back_aware_in_utc_whatever_the_servers_zone(db):
    """Timestamps are written in UTC and read back aware in UTC: on PostgreSQL the session is set to UTC
    (psycopg then reads them so, and nothing converts them again), whatever zone the server or the
    database defaults to; an engine set otherwise still converts each one."""
    written = datetime(2027, 1, 15, 9, 30, tzinfo=timezone(timedelta(hours=9)))
    with db.transaction() as session:
        session.add(Product(key="tz-1", name="Zoned", level=ProductLevel.GROUP, updated_at=written))
        if not _is_sqlite(db):  # new sessions of this database default to Tokyo's time
            session.execute(text(f"ALTER DATABASE \"{db.engine.url.database}\" SET TimeZone = 'Asia/Tokyo'"))
    db.engine.dispose()
    engines = [db.engine]
    if not _is_sqlite(db):  # an engine whose sessions keep the database's zone
        engines.append(
            database.make_engine(db.engine.url.render_as_string(False), connect_args={"options": ""})
        )
    for engine in engines:
        with engine.connect() as conn:
            read = conn.execute(select(Product.updated_at).where(Product.key == "tz-1")).scalar_one()
        assert read == written and read.tzinfo is UTC, (engine.url, read)
    engines[-1].dispose()
