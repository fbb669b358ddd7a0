"""Shared fixtures: a fresh, migrated database per test on SQLite and (where reachable) PostgreSQL,
the app on top of it, and a small world of organizations and users with API keys for every role.

PostgreSQL: ``PRM_TEST_POSTGRES_URL`` (default: the local service). If it is unreachable the PostgreSQL
half of the suite is skipped, unless ``PRM_REQUIRE_POSTGRES=1`` (set by CI), which turns that into an error.
Redis (the Celery broker): ``PRM_TEST_REDIS_URL`` (default: database 15 of the local service), the same
way with ``PRM_REQUIRE_REDIS=1``; each test gets its own queue, so parallel runs never take each
other's tasks.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from common import migrate
from common.database import Base
from common.settings import Settings
from tests.support import World, build_world

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_ADMIN_URL = os.environ.get("PRM_TEST_POSTGRES_URL", DEFAULT_PG)
REQUIRE_PG = os.environ.get("PRM_REQUIRE_POSTGRES") == "1"
REDIS_URL = os.environ.get("PRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_REDIS = os.environ.get("PRM_REQUIRE_REDIS") == "1"


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "no PostgreSQL here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


_PG_PROBLEM = _pg_reachable()


class _PostgresTemplate:
    """One migrated database for this test process; each test starts from emptied tables."""

    def __init__(self) -> None:
        name = f"prm_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.name = name
        self.url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(self.url)
        self.engine = create_engine(self.url)
        migrate.import_all_models()
        self.tables = [t.name for t in Base.metadata.sorted_tables]

    def reset(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(self.tables)} RESTART IDENTITY CASCADE"))

    def drop(self) -> None:
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[_PostgresTemplate]:
    if _PG_PROBLEM:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (PRM_REQUIRE_POSTGRES=1) but unreachable: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL not reachable: {_PG_PROBLEM}")
    template = _PostgresTemplate()
    yield template
    template.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database for one test, on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "prm.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    pg: _PostgresTemplate = request.getfixturevalue("postgres_template")
    pg.reset()
    return pg.url


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, log_json=False)


@pytest.fixture
def app(settings: Settings):
    from server import create_app

    application = create_app(settings, TESTING=True)
    yield application
    application.extensions["prm.db"].dispose()


@pytest.fixture
def db(app):
    return app.extensions["prm.db"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def world(db) -> World:
    return build_world(db)


def _redis_problem() -> str | None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        return None
    except Exception as exc:  # any failure means "no Redis here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the Celery tests use as broker and result backend (fails instead of skipping when
    ``PRM_REQUIRE_REDIS=1``)."""
    problem = _redis_problem()
    if problem:
        if REQUIRE_REDIS:
            pytest.fail(f"Redis required (PRM_REQUIRE_REDIS=1) but unreachable at {REDIS_URL}: {problem}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {problem}")
    return REDIS_URL


@pytest.fixture
def celery_queue(redis_url: str) -> Iterator[str]:
    """A queue of this test's own on the test Redis; emptied afterwards."""
    import redis

    queue = f"prm-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield queue
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(queue, f"{queue}:unacked", f"{queue}:unacked_index", f"{queue}:unacked_mutex")
    finally:
        client.close()
