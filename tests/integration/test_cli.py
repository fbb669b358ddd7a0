"""The real ``prm`` console script, as an operator runs it: migrate, seed the demo data (twice, changing
nothing the second time), create the first admin whose key then works, revoke it, and get one readable
line for a mistake."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from common.database import Base
from common.migrate import head_revision, import_all_models
from common.settings import Settings
from directory.services import users

PRM = Path(sys.executable).parent / "prm"


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.sqlite3'}"


def prm(database: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRM_", "FLASK_"))}
    env.update(PRM_DATABASE_URL=database, PRM_LOG_FORMAT="text")
    return subprocess.run(
        [str(PRM), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def counts(database: str) -> dict[str, int]:
    import_all_models()
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            names = set(engine.dialect.get_table_names(conn))
            return {
                t.name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
                for t in Base.metadata.sorted_tables
                if t.name in names
            }
    finally:
        engine.dispose()


@pytest.fixture
def migrated(database: str, tmp_path: Path) -> str:
    out = ok(prm(database, tmp_path, "db", "upgrade"))
    assert f"database at {head_revision()}" in out
    return database


@pytest.fixture
def app_on(migrated: str) -> Iterator[object]:
    from server import create_app

    app = create_app(Settings(database_url=migrated, log_json=False), TESTING=True)
    yield app
    app.extensions["prm.db"].dispose()


def test_the_console_script_is_installed():
    assert PRM.exists(), f"{PRM} missing: install the project (make install)"


def test_db_upgrade_brings_an_empty_file_to_head_and_is_repeatable(database, tmp_path):
    ok(prm(database, tmp_path, "db", "upgrade"))
    assert ok(prm(database, tmp_path, "db", "current")).strip() == head_revision()
    ok(prm(database, tmp_path, "db", "upgrade"))
    assert ok(prm(database, tmp_path, "db", "current")).strip() == head_revision()


def test_demo_seed_twice_changes_nothing_the_second_time(migrated, tmp_path):
    keys = tmp_path / "keys.txt"
    out = ok(prm(migrated, tmp_path, "demo", "seed", "--keys-file", str(keys)))
    assert "demo data ready" in out
    first = counts(migrated)
    assert first["customers"] > 100 and first["products"] > 10 and first["users"] > 10
    first_keys = keys.read_text()
    ok(prm(migrated, tmp_path, "demo", "seed", "--keys-file", str(keys)))
    assert counts(migrated) == first
    assert keys.read_text() == first_keys, "working demo keys are kept, not re-minted"
    assert oct(keys.stat().st_mode & 0o777) == "0o600"


def test_demo_keys_work_against_the_app(migrated, tmp_path, app_on):
    keys = tmp_path / "keys.txt"
    ok(prm(migrated, tmp_path, "demo", "seed", "--keys-file", str(keys)))
    by_user = dict(line.split(" ", 1) for line in keys.read_text().splitlines())
    client = app_on.test_client()
    resp = client.get("/v1/customers", headers={"Authorization": f"Bearer {by_user['admin']}"})
    assert resp.status_code == 200 and resp.get_json()["items"]
    resp = client.get("/v1/organizations", headers={"Authorization": f"Bearer {by_user['northwind-user']}"})
    assert [o["key"] for o in resp.get_json()["items"]] == ["northwind"]


def test_an_admin_created_on_the_command_line_can_use_the_api_until_revoked(
    migrated, tmp_path, app_on, monkeypatch
):
    # A revocation written by another process (the CLI) is honoured once the service's cached verification
    # of the key runs out; shortened here so the test does not wait the production five seconds.
    monkeypatch.setattr(users, "KEY_CACHE_SECONDS", 0.5)
    out = ok(
        prm(
            migrated,
            tmp_path,
            "admin",
            "create",
            "--email",
            "root@acme.example",
            "--name",
            "Root",
            "--key",
            "root",
        )
    )
    key = out.strip().splitlines()[-1]
    assert key.startswith("prm_")
    client = app_on.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    resp = client.get("/v1/users", headers=auth)
    assert resp.status_code == 200
    assert [u["key"] for u in resp.get_json()["items"]] == ["root"]
    created = client.post("/v1/programs", json={"key": "resell", "name": "Resell"}, headers=auth)
    assert created.status_code == 201

    public_id = key.split("_")[1]
    assert f"revoked {public_id}" in ok(prm(migrated, tmp_path, "keys", "revoke", public_id))
    deadline = time.monotonic() + 10 * users.KEY_CACHE_SECONDS
    while (resp := client.get("/v1/users", headers=auth)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"

    # Revoking again is a readable refusal, not a traceback.
    again = prm(migrated, tmp_path, "keys", "revoke", public_id)
    assert again.returncode != 0
    assert again.stderr.strip().splitlines() == [f"Error: API key {public_id!r} is already revoked"]


def test_a_second_admin_with_the_same_key_is_refused_in_one_line(migrated, tmp_path):
    args = ("admin", "create", "--email", "root@acme.example", "--name", "Root", "--key", "root")
    ok(prm(migrated, tmp_path, *args))
    result = prm(migrated, tmp_path, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "root" in lines[0]
    assert counts(migrated)["users"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "revoke", "nosuchkey"),
        ("keys", "mint", "nobody"),
    ],
)
def test_a_bad_argument_exits_non_zero_with_one_readable_line(migrated, tmp_path, args):
    result = prm(migrated, tmp_path, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and args[-1] in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("import", "customers", "/no/such/file.csv"),
        ("admin", "create", "--email", "x@example.com"),
        ("keys", "revoke"),
        ("db", "sideways"),
    ],
)
def test_a_usage_mistake_names_the_problem_in_one_error_line(migrated, tmp_path, args):
    result = prm(migrated, tmp_path, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr


def test_a_bad_csv_on_the_command_line_prints_one_line_per_problem_and_stores_nothing(migrated, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("key,name,country\nA,Alpha,USA\nB,,US\nA,Again,US\n", encoding="utf-8")
    result = prm(migrated, tmp_path, "import", "customers", str(bad))
    assert result.returncode != 0
    problem_lines = [line for line in result.stderr.splitlines() if line.startswith(f"{bad}:")]
    assert [line.split(": ", 1)[0] for line in problem_lines] == [f"{bad}:2:3", f"{bad}:3:2"]
    assert "Traceback" not in result.stderr
    assert counts(migrated)["customers"] == 0


def test_the_database_url_comes_from_the_environment(migrated, tmp_path):
    engine = create_engine(migrated)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
    finally:
        engine.dispose()
    assert not (tmp_path / "var" / "prm.sqlite3").exists(), "the default database was used instead"
