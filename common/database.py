"""Engine, declarative base and the transaction helper shared by every package.

SQLite is the embedded default, PostgreSQL the production database; the same code runs on both.
On SQLite every transaction starts with ``BEGIN IMMEDIATE``: SQLAlchemy drops ``FOR UPDATE`` there, so
taking the write lock up front is what serialises read-modify-write sequences (RELIABILITY.md).

``Database.read()`` is the unit of work of what only reads (a what-if, an API key's check): no
transaction is begun, so each statement reads the database as it is when it runs, as PostgreSQL's
READ COMMITTED gives every statement of a transaction anyway. On SQLite that takes no write lock (readers
never queue behind each other or a writer) and costs no ``BEGIN``; on PostgreSQL the connection runs
in autocommit (no ``BEGIN`` and ``COMMIT`` round trips). Flushing from it raises.
"""

from __future__ import annotations

import json
import time
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Select,
    Table,
    any_,
    create_engine,
    event,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


#: Table options of records whose ids are never handed out again once the record was deleted: SQLite
#: gives the highest rowid again without AUTOINCREMENT (PostgreSQL sequences never do). Transfer pairs
#: child records with a partner's by id and remembers deleted ones, so a new record must not take a
#: deleted one's id.
NEVER_REUSED_IDS: dict[str, Any] = {"sqlite_autoincrement": True}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use common.clock.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        # a PostgreSQL session of `make_engine` is in UTC, where psycopg reads a timestamp as aware in
        # UTC already: nothing to do per value (a page of 20 leads read 80 of them through this method)
        if getattr(dialect, _SESSIONS_IN_UTC, False):
            return None
        return super().result_processor(dialect, coltype)


#: Set on the dialect of an engine whose PostgreSQL sessions `make_engine` set to UTC.
_SESSIONS_IN_UTC = "prm_sessions_in_utc"


def among(session: Session | Connection, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column`` is one of ``ids``, as one bound value whatever their number (SQLite caps a statement's
    parameters, and PostgreSQL's driver parses a statement with as many placeholders as ids each
    time)."""
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        return cast(ColumnElement[bool], column == any_(literal(list(ids), ARRAY(Integer))))
    values = func.json_each(json.dumps(list(ids))).table_valued("value")
    return cast(ColumnElement[bool], column.in_(select(values.c.value)))


#: The execution option that marks a connection of ``Database.read()`` (SQLite: no ``BEGIN``).
READ_ONLY_OPTION = "prm_read_only"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def json_dumps(value: Any) -> str:
    """JSON columns' text, written by orjson (batch work stores a million plan items); what orjson
    refuses (an integer past 64 bits, a key that is no text) the standard library writes."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    """JSON columns read back, by orjson, else the standard library (numbers past 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def copy_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` (mappings with the same keys: columns of ``table``) in the session's transaction,
    by ``COPY ... FROM STDIN`` on PostgreSQL (no statement per row: a plan's ten thousand items in half
    the time and a third of the CPU of an ``executemany``), by the table's INSERT elsewhere. JSON
    columns take the values as they are. No conflict is skipped: a row breaking a constraint fails the
    transaction, so callers write only rows they know to be new."""
    if not rows:
        return
    columns = list(rows[0])
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), list(rows))
        return
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(
                [json_dumps(row[c]) if c in json_columns and row[c] is not None else row[c] for c in columns]
            )


#: (statement id, dialect, driver) -> (the statement, its SQL, its bound values, their order if positional)
_driver_sql: dict[tuple[int, str, str], tuple[Any, str, dict[str, Any], tuple[str, ...] | None]] = {}


def driver_rows(
    connection: Connection, statement: ClauseElement, params: Mapping[str, Any] | None = None
) -> Sequence[Sequence[Any]]:
    """The rows of a statement built once, run as its SQL for the connection's database (compiled on
    first use per database), without SQLAlchemy's per-execution work: no cache key of the statement,
    no type processing of values bound (``params`` and the statement's own, given as the driver takes
    them) or read (as the driver reads them: on SQLite a time is text); on PostgreSQL by psycopg itself
    (`_psycopg_rows`). The execution events still fire, so statements are counted as any other. For
    hot statements of plain values (rows read by position or column name, as SQLAlchemy's)."""
    key = (id(statement), connection.dialect.name, connection.dialect.driver)
    found = _driver_sql.get(key)
    if found is None or found[0] is not statement:
        compiled = cast(SQLCompiler, statement.compile(dialect=connection.dialect))
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = _driver_sql[key] = (statement, compiled.string, compiled.params, positions)
    _, sql, values, positions = found
    if params:
        values = {**values, **params}
    # always parameters, if none (a dict or a tuple, as the driver's style asks): the driver then reads
    # the SQL as compiled for parameters (PostgreSQL's drivers: a % written %%)
    bound: Any = tuple(values[name] for name in positions) if positions is not None else dict(values)
    if connection.dialect.driver == "psycopg":
        return _psycopg_rows(connection, sql, bound)
    return connection.exec_driver_sql(sql, bound).all()


def _psycopg_rows(connection: Connection, sql: str, bound: Any) -> list[Any]:
    """The rows of ``sql`` read by psycopg on the connection's own DBAPI connection, in its transaction,
    without SQLAlchemy's execution context and result object: two thirds of the CPU of a one-statement
    read (130 -> 84 us; the what-if's only statement, several of a submit's). What SQLAlchemy's execution does
    around the driver is kept: the transaction begun as its autobegin would, the execution events fired
    (statement counters see the statement), a driver error raised as SQLAlchemy raises it, and a
    connection found lost invalidated, so that the pool replaces it."""
    if not connection.in_transaction():
        connection.begin()  # (what executing would do; on an autocommit connection, nothing is sent)
    dialect = connection.dialect
    dbapi_connection = connection.connection.driver_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor(row_factory=namedtuple_row)  # (by position or name, as a Row)
    try:
        connection.dispatch.before_cursor_execute(connection, cursor, sql, bound, None, False)
        cursor.execute(sql, bound)
        rows: list[Any] = cursor.fetchall()
        connection.dispatch.after_cursor_execute(connection, cursor, sql, bound, None, False)
        return rows
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, bound, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        ) from exc
    finally:
        cursor.close()


def plain_rows(
    connection: Connection, statement: Select[Any], params: Mapping[str, Any] | None = None
) -> Sequence[Sequence[Any]]:
    """The rows of a hot read of plain values: by `driver_rows` on PostgreSQL, by SQLAlchemy's execution
    elsewhere (SQLite's driver would take a bound date as it is, not as its column stores it: text)."""
    if connection.dialect.name == "postgresql":
        return driver_rows(connection, statement, params)
    return connection.execute(statement, dict(params or {})).all()


def expunge_except(session: Session, keep: Container[int]) -> None:
    """Drop from ``session`` every object but those whose ``id()`` is in ``keep``: what one item of a
    batch read and wrote (flushed), so that the next item's queries do not check every object of the
    earlier ones for changes (quadratic in the batch), while what the whole batch shares stays."""
    for obj in list(session.identity_map.values()):
        if id(obj) not in keep:
            session.expunge(obj)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine configured for our two databases."""
    kwargs = {"json_serializer": json_dumps, "json_deserializer": json_loads, **kwargs}
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, emit BEGIN (the documented recipe), so it can be IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if not conn.get_execution_options().get(READ_ONLY_OPTION, False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # Database.read() begins nothing

        return engine
    # No JIT: our queries are short, and where PostgreSQL guesses one costly (a batch's scan of a million
    # leads) compiling it took longer than running it (1.3 s of a 2.4 s query, measured).
    # Sessions in UTC: psycopg then reads every timestamp as aware in UTC (`UtcDateTime`).
    connect_args = {"options": "-c jit=off -c TimeZone=UTC", **kwargs.pop("connect_args", {})}
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if "TimeZone=UTC" in str(connect_args.get("options", "")):
        setattr(engine.dialect, _SESSIONS_IN_UTC, True)
    _ping_idle_connections(engine)
    return engine


#: A pooled PostgreSQL connection that sat unused longer than this is pinged before it is handed out.
PING_IDLE_SECONDS = 2.0
_IDLE_SINCE = "prm_idle_since"


def _ping_idle_connections(engine: Engine) -> None:
    """``pool_pre_ping`` for connections that sat idle: a stale connection (the database restarted, a
    firewall dropped it) is replaced before a request uses it, so it costs no failed request
    (RELIABILITY.md). A connection back from a request moments ago answered then; pinging it too cost
    a round trip per unit of work (``pool_pre_ping``: about a tenth of a what-if's server CPU). A restart
    takes longer than ``PING_IDLE_SECONDS``, so every connection that lived through one is pinged, and
    the first failure on a connection in use discards the whole pool (SQLAlchemy's disconnect handling).
    """

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since <= PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # the pool discards this connection and checks out another (a new one if need be)
            raise DisconnectionError(f"stale pooled connection: {type(exc).__name__}") from exc


class ReadOnlySession(Session):
    """The session ``Database.read()`` hands out: it never writes (a flush raises)."""

    def flush(self, objects: Any = None) -> None:
        if self.new or self.dirty or self.deleted:
            raise RuntimeError("a read-only unit of work may not write (use Database.transaction())")


class Database:
    """An engine plus a session factory; ``transaction()`` is the unit of work services use, ``read()``
    the one of what only reads."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # the same pool: on PostgreSQL a connection is switched to autocommit while it reads and back
        # when it returns to the pool; on SQLite the begin hook begins nothing
        options = (
            {READ_ONLY_OPTION: True}
            if is_sqlite(url)
            else {READ_ONLY_OPTION: True, "isolation_level": "AUTOCOMMIT"}
        )
        self._reader_engine = self.engine.execution_options(**options)
        self._readers = sessionmaker(self._reader_engine, class_=ReadOnlySession, expire_on_commit=False)
        self.is_postgresql = self.engine.dialect.name == "postgresql"
        self._statements_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Open a session, commit when the block ends, roll back if it raises."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Open a session that only reads, each statement on its own (no transaction begun: no write
        lock on SQLite, no round trips to begin and end one on PostgreSQL). Writing raises."""
        with self._readers() as session, session.begin():
            yield session

    @contextmanager
    def read_rows(self) -> Iterator[Connection]:
        """A Core connection that only reads, each statement on its own as in ``read()``, without a
        session: for reads of plain rows on hot paths (a session and its transaction cost about 50 us
        of CPU a request on PostgreSQL, a connection 18). The caller only reads; nothing checks it."""
        with self._reader_engine.connect() as connection:
            yield connection

    @contextmanager
    def statements(self) -> Iterator[Connection]:
        """PostgreSQL: a Core connection on which every statement commits on its own (autocommit), for
        a unit of work whose reads only check what it may do and whose writes are one statement (a WITH
        of INSERTs, all or nothing): no session and no ``BEGIN`` and ``COMMIT`` round trips (a sixth of
        the CPU of a create). Under READ COMMITTED it is the transaction's behaviour: each of its
        statements read what was committed when it ran. Not on SQLite, whose writers queue on
        ``BEGIN IMMEDIATE`` (use ``transaction()``)."""
        if not self.is_postgresql:
            raise RuntimeError("Database.statements() is for PostgreSQL; use transaction()")
        with self._statements_engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
