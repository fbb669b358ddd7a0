"""Schemathesis against our own OpenAPI document, in-process, once per role (RELIABILITY.md, "Bad input").

Pass = no 5xx; every status is documented; every response matches its documented media type and schema
(errors: problem+json with ``type``, ``title``, ``status``). SQLite only: this is about the HTTP surface.
Generation is derandomized so a failure reproduces; raise ``FUZZ_EXAMPLES`` locally to dig deeper.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from common.errors import PROBLEM_MEDIA_TYPE
from common.settings import Settings
from server import create_app
from tests.support import World, build_world

#: admin reaches every operation's logic, so it gets the most examples; for the other roles most
#: operations stop at the role check, which needs fewer examples to cover.
ADMIN_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
ROLE_EXAMPLES = max(1, ADMIN_EXAMPLES // 3)
OTHER_ROLES = ["partner_admin_a", "partner_user_a", "cam_1", "integration", "anonymous"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class FuzzEnv:
    app: Any
    client: FlaskClient
    world: World


@pytest.fixture(scope="module")
def fuzz_env(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEnv]:
    target = tmp_path_factory.mktemp("fuzz") / "prm.sqlite3"
    shutil.copyfile(sqlite_template, target)
    app = create_app(Settings(database_url=f"sqlite:///{target}", log_json=False), TESTING=True)
    world = build_world(app.extensions["prm.db"])
    client = app.test_client()
    admin = world["admin"].headers
    # a little of everything, so generated ids sometimes hit real records
    for body in (
        {"key": "acme", "name": "Acme", "country": "US"},
        {"key": "acme-eu", "name": "Acme EU", "country": "DE", "parent_key": "acme"},
    ):
        assert client.post("/v1/customers", json=body, headers=admin).status_code == 201
    for body in (
        {"key": "suite", "name": "Suite", "level": "group"},
        {"key": "suite-pro", "name": "Pro", "level": "item", "parent_key": "suite"},
    ):
        assert client.post("/v1/products", json=body, headers=admin).status_code == 201
    yield FuzzEnv(app, client, world)
    app.extensions["prm.db"].dispose()


def _load_schema(coverage_phase: bool = True) -> Any:
    """Load the document from an app with no database (serving it touches none); the test sends every
    request to the app of ``fuzz_env`` instead (``app=``)."""
    app = create_app(Settings(database_url="sqlite://", log_json=False))
    try:
        loaded = schemathesis.openapi.from_wsgi("/docs/openapi.json", app)
        loaded.config.phases.coverage.enabled = coverage_phase
        return loaded
    finally:
        app.extensions["prm.db"].dispose()


#: admin: every phase, including "coverage" (boundary values, nulls, each documented enum value...)
schema = _load_schema()
#: the other roles: explicit examples and random fuzzing only (coverage costs ~1 s per operation)
light_schema = _load_schema(coverage_phase=False)
assert light_schema.config is not schema.config


def _current_etag(env: FuzzEnv, case: Any, headers: dict[str, str]) -> str | None:
    """For a change of an existing record, its ETag now, so the fuzzer gets past If-Match to the logic."""
    if case.method.upper() == "GET" or "{id}" not in case.path:
        return None
    record = "/".join(case.formatted_path.split("/")[:4])  # /v1/<collection>/<id>
    resp = env.client.get(record, headers=env.world["admin"].headers)
    return resp.headers.get("ETag") if resp.status_code == 200 else None


def _call(env: FuzzEnv, case: Any, role: str) -> None:
    headers = dict(env.world[role].headers)
    etag = _current_etag(env, case, headers)
    if etag:
        headers["If-Match"] = etag
    response = case.call_and_validate(headers=headers, checks=CHECKS, app=env.app)
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(PROBLEM_MEDIA_TYPE), response.text
        problem = response.json()
        assert problem["status"] == response.status_code
        assert problem["type"] and problem["title"]


_BASE = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@settings(_BASE, max_examples=ADMIN_EXAMPLES)
def test_api_conforms_to_its_openapi_as_admin(case: Any, fuzz_env: FuzzEnv) -> None:
    _call(fuzz_env, case, "admin")


@light_schema.parametrize()
@pytest.mark.parametrize("role", OTHER_ROLES)
@settings(_BASE, max_examples=ROLE_EXAMPLES)
def test_api_conforms_to_its_openapi_as(case: Any, role: str, fuzz_env: FuzzEnv) -> None:
    _call(fuzz_env, case, role)
