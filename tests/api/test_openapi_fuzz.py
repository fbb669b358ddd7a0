"""Schemathesis against our own OpenAPI document, in-process, once per role (RELIABILITY.md, "Bad input").

Pass = no 5xx; every status is documented; every response matches its documented media type and schema
(errors: problem+json with ``type``, ``title``, ``status``). Beyond schemathesis' own checks the document
must declare what the server enforces: a request the schema calls valid is never refused by request
validation (a stripped blank string, a decimal as text), a 428 comes only from an operation that
declares the If-Match header (and one sent without it answers 428), a method the document does not
list answers 405. SQLite only: this is about the HTTP surface. Generation is derandomized so a failure
reproduces; raise ``FUZZ_EXAMPLES`` locally to dig deeper.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
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


def _declares_if_match(case: Any) -> bool:
    spec = case.operation.definition.raw
    return any(
        p.get("in") == "header" and p.get("name", "").lower() == "if-match"
        for p in spec.get("parameters", [])
    )


@schemathesis.check
def schema_valid_requests_pass_request_validation(ctx: Any, response: Any, case: Any) -> bool | None:
    """What the document calls valid is never refused as invalid by the request's own validation (the
    422 the pydantic models give, "N problem(s) in the request"). Refusals about stored data are fine,
    and so are the models' own rules across fields ("Value error, ..."), which JSON Schema cannot say."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    problem = response.json()
    if not str(problem.get("detail", "")).endswith("problem(s) in the request"):
        return None
    expressible = [e for e in problem.get("errors") or [] if not e["detail"].startswith("Value error, ")]
    if expressible:
        raise AssertionError(f"schema-valid request refused by validation: {expressible}")
    return None


@schemathesis.check
def if_match_is_declared_where_it_is_required(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 428 only from an operation that declares If-Match; such an operation called without it (the
    coverage phase leaves out each required header in turn) answers 428, unless refused before that."""
    if response.status_code == 428 and not _declares_if_match(case):
        raise AssertionError("428 from an operation that does not declare the If-Match header")
    data = case.meta.phase.data if case.meta is not None else None
    if (
        isinstance(data, CoveragePhaseData)
        and data.scenario == CoverageScenario.MISSING_PARAMETER
        and (data.parameter or "").lower() == "if-match"
        and response.status_code not in {428, 401, 403, 404, 422}
    ):
        raise AssertionError(f"without If-Match: {response.status_code}, expected 428")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    unsupported_method,
    schema_valid_requests_pass_request_validation,
    if_match_is_declared_where_it_is_required,
]


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
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRM_BATCH_BACKEND", "inline")  # reassignment runs finish within their request
        yield FuzzEnv(app, client, world)
    app.extensions["prm.db"].dispose()


_ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in zip("abcde", "bcdef", strict=True)]
)
#: Mixed into every YAML field (``contentMediaType: application/yaml``): bombs, tags, deep nesting.
YAML_BOMBS = [
    _ALIAS_BOMB,
    "x: " + "[" * 400 + "]" * 400,
    '{"x": ' * 3000 + "1" + "}" * 3000,
    "x: !foo [1]",
    "x: &a [*a]",
    "a: &a {x: 1}\nb: {<<: *a}",
]
#: Mixed into every other text field of a request body: blank text (stripped, then too short unless
#: the schema says it may not be blank), a number past 32 bits, HTML.
NASTY_TEXT = [" ", "\t\n", "\u3000", "\u0085", "2147483648", "<html><body>not json</body></html>"]


def _fuzz_config(spec: dict[str, Any]) -> dict[str, Any]:
    """Bind the dictionaries above to the body fields of the document (schemathesis mixes a dictionary
    value in; in positive cases only where the field's schema accepts it)."""
    schemas = spec["components"]["schemas"]
    parameters: dict[str, Any] = {}
    for schema in schemas.values():
        for name, prop in schema.get("properties", {}).items():
            branches = prop.get("anyOf", [prop])
            if any(b.get("contentMediaType") == "application/yaml" for b in branches):
                parameters[f"body.{name}"] = {"dictionary": "yaml", "probability": 0.5}
            elif any(b.get("type") == "string" for b in branches):
                parameters.setdefault(f"body.{name}", {"dictionary": "text", "probability": 0.15})
    return {
        "dictionaries": {"yaml": {"values": YAML_BOMBS}, "text": {"values": NASTY_TEXT}},
        "parameters": parameters,
    }


def _load_schema(coverage_phase: bool = True) -> Any:
    """Load the document from an app with no database (serving it touches none); the test sends every
    request to the app of ``fuzz_env`` instead (``app=``)."""
    app = create_app(Settings(database_url="sqlite://", log_json=False))
    try:
        spec = app.test_client().get("/docs/openapi.json").get_json()
        config = schemathesis.config.SchemathesisConfig.from_dict(_fuzz_config(spec))
        loaded = schemathesis.openapi.from_wsgi("/docs/openapi.json", app, config=config)
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
    """For a change of an existing record, its ETag now, so the fuzzer gets past If-Match to the logic;
    only where the document declares If-Match (and the case sends one), as a client reading it would."""
    if "{id}" not in case.path or not _declares_if_match(case) or "If-Match" not in (case.headers or {}):
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


# --- ids, integers and cursors from outside, on both databases ------------------------------------------
#
# What the generated requests above missed (they run on SQLite, which compares any integer): an id past
# 2^31-1 reaches PostgreSQL's ``integer`` columns as a 500, and non-ASCII digits read as ids. These walk
# the URL map (HTML pages included) and the OpenAPI document, so a new route or parameter is covered.

MAX_ID = 2**31 - 1
BAD_PATH_IDS = ["2147483648", "99999999999999999999", "0", "\uff11", "\u0663", "1\u0663"]
BAD_QUERY_INTEGERS = ["2147483648", "-2147483649", "99999999999999999999", "\uff11", "\u0663"]
#: what a cursor decodes to: a forged id past the column's range, non-ASCII digits, signs, no id...
FORGED_CURSORS = [
    "id:2147483648",
    "id:99999999999999999999",
    "id:-1",
    "id:00000000000",
    "id:\uff11",
    "id:\u0663",
    "id: 1",
    "id:1_0",
    "id:+1",
    "id:",
    "ib:1",
]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def range_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEnv]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path_factory.mktemp("ranges") / "prm.sqlite3"
        shutil.copyfile(template, target)
        url = f"sqlite:///{target}"
    else:
        pg = request.getfixturevalue("postgres_template")
        pg.reset()
        url = pg.url
    app = create_app(Settings(database_url=url, log_json=False), TESTING=True)
    world = build_world(app.extensions["prm.db"])
    yield FuzzEnv(app, app.test_client(), world)
    app.extensions["prm.db"].dispose()


def _assert_problem(resp: Any, statuses: set[int], what: str) -> dict[str, Any]:
    text = resp.get_data(as_text=True)
    assert resp.status_code in statuses, f"{what}: {resp.status_code} {text[:300]}"
    assert resp.mimetype == PROBLEM_MEDIA_TYPE, f"{what}: {resp.mimetype} {text[:300]}"
    problem: dict[str, Any] = resp.get_json()
    assert problem["status"] == resp.status_code and problem["type"] and problem["title"], problem
    return problem


def _id_rules(app: Any) -> list[tuple[str, str, list[str]]]:
    """(rule, method, names of its id arguments) for every route with an ``<int:...>`` argument."""
    out = []
    for rule in app.url_map.iter_rules():
        ids = [name for name, conv in rule._converters.items() if type(conv).__name__ == "IdConverter"]
        if ids:
            out += [(rule.rule, m, ids) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


@pytest.mark.parametrize("role", ["admin", "partner_user_a", "cam_1", "anonymous"])
def test_an_id_no_record_can_have_answers_404_on_every_route(range_env: FuzzEnv, role: str) -> None:
    rules = _id_rules(range_env.app)
    assert any(r.endswith("tree.html") for r, _, _ in rules)  # the HTML pages are walked too
    headers = {**range_env.world[role].headers, "If-Match": '"1.1"'}
    for rule, method, names in rules:
        for bad in BAD_PATH_IDS:
            path = rule
            for name in names:
                path = path.replace(f"<int:{name}>", bad)
            path = re.sub(r"<[^>]+>", "x", path)  # other arguments (keys) get a plain value
            resp = range_env.client.open(path, method=method, headers=headers, json={})
            _assert_problem(resp, {404}, f"{method} {path} as {role}")


def _query_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                if param["in"] == "query" and "{" not in path:
                    yield path, method, param


@pytest.mark.parametrize("role", ["admin", "partner_user_a", "partner_admin_a", "cam_1", "integration"])
def test_integer_queries_and_forged_cursors_are_refused_on_every_list(range_env: FuzzEnv, role: str) -> None:
    spec = range_env.client.get("/docs/openapi.json").get_json()
    headers = range_env.world[role].headers
    checked = 0
    for path, method, param in _query_operations(spec):
        name, schema = param["name"], param.get("schema", {})
        types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
        if name == "cursor":
            values = [_b64(c) for c in FORGED_CURSORS]
        elif "integer" in types:
            values = BAD_QUERY_INTEGERS
        else:
            continue
        for value in values:
            url = f"{path}?{urlencode({name: value})}"
            resp = range_env.client.open(url, method=method.upper(), headers=headers)
            if resp.status_code == 403:  # the role may not call it: refused before the query is read
                _assert_problem(resp, {403}, f"{method} {url}")
                continue
            problem = _assert_problem(resp, {422}, f"{method} {url} as {role}")
            assert [e["pointer"] for e in problem["errors"]] == [f"/query/{name}"], problem
            checked += 1
    assert checked, "no list with a cursor or integer query was reached"


def _integer_schemas(
    schema: Any, where: str, components: dict[str, Any], seen: frozenset[str]
) -> Iterator[Any]:
    """(where, schema) of every integer a request schema holds, following references."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _integer_schemas(components[name], f"{where} ({name})", components, seen | {name})
        return
    type_ = schema.get("type")
    if type_ == "integer" or (isinstance(type_, list) and "integer" in type_):
        yield where, schema
    for key, value in schema.items():
        if key == "properties":
            for prop, sub in value.items():
                yield from _integer_schemas(sub, f"{where}/{prop}", components, seen)
        elif key in ("items", "additionalProperties", "not"):
            yield from _integer_schemas(value, f"{where}/{key}", components, seen)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for sub in value:
                yield from _integer_schemas(sub, where, components, seen)


def test_every_integer_a_request_carries_is_bounded_and_every_id_fits_its_column() -> None:
    """An integer without bounds in a parameter or request body reaches SQL unchecked; an id's bounds
    are the ``integer`` column's (1 to 2^31-1)."""
    spec = _load_schema(coverage_phase=False).raw_schema
    components = spec.get("components", {}).get("schemas", {})
    problems, seen = [], 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            sources = [
                (f"{method.upper()} {path} {p['in']} {p['name']}", p.get("schema", {}), p["name"])
                for p in op.get("parameters", [])
            ]
            sources += [
                (f"{method.upper()} {path} body", c.get("schema", {}), "")
                for c in op.get("requestBody", {}).get("content", {}).values()
            ]
            for where, schema, _ in sources:
                for place, integer in _integer_schemas(schema, where, components, frozenset()):
                    seen += 1
                    low = integer.get("minimum", integer.get("exclusiveMinimum"))
                    high = integer.get("maximum", integer.get("exclusiveMaximum"))
                    if low is None or high is None:
                        problems.append(f"{place}: integer without bounds {integer}")
                    elif re.search(r"(^|[/ _])(id|ids|[a-z]+_ids?)(/items)?$", place) and not (
                        low >= 1 and high <= MAX_ID
                    ):
                        problems.append(f"{place}: an id bounded [{low}, {high}], not [1, {MAX_ID}]")
    assert seen > 50, seen
    assert not problems, "\n".join(problems)
