"""REST endpoints for ruleset versions: upload, validate, list, read, activate, roll back, run tests.

Admins change; internal roles read; partners are refused. Views parse, call one service function,
serialise.
"""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import if_match, json_response
from common.openapi import view_operation_id
from common.principal import INTERNAL_ROLES, Role
from rules import schemas as s
from rules import service

api = APIBlueprint(
    "rulesets",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)

rulesets = Tag(
    name="rulesets",
    description="Policy rules files as immutable versions: draft -> active -> archived, one active per kind",
)
ADMIN = [Role.ADMIN]
#: app.config key: seconds the durable_rules smoke evaluation of a new version may take.
VERIFY_TIMEOUT_CONFIG = "PRM_RULES_VERIFY_TIMEOUT"


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _timeout() -> float:
    return float(current_app.config.get(VERIFY_TIMEOUT_CONFIG, service.VERIFY_TIMEOUT_S))


def _with_etag(out: s.RulesetOut, status: int = 200) -> Response:
    return json_response(out, status, etag=(out.id, out.version))


@api.post("/rulesets", tags=[rulesets], responses={201: s.RulesetOut, 200: s.RulesetOut})
@allow(ADMIN)
def upload_ruleset(body: s.RulesetUpload) -> Response:
    """Store a rules file as a draft version (200 with the stored one if the same content exists)."""
    out, created = service.upload_ruleset(_db(), current_principal(), body, verify_timeout_s=_timeout())
    resp = _with_etag(out, 201 if created else 200)
    resp.headers["Location"] = f"/v1/rulesets/{out.id}"
    return resp


@api.post("/rulesets/validate", tags=[rulesets], responses={200: s.ValidationReport})
@allow(ADMIN)
def validate_ruleset(body: s.RulesetUpload) -> Response:
    """Check a rules file as an upload would, storing nothing (422 lists every error)."""
    return json_response(service.validate_ruleset(_db(), body, verify_timeout_s=_timeout()))


@api.get("/rulesets", tags=[rulesets], responses={200: s.RulesetPage})
@allow(INTERNAL_ROLES)
def list_rulesets(query: s.RulesetListQuery) -> Response:
    """Stored versions, oldest first."""
    return json_response(service.list_rulesets(_db(), current_principal(), query))


@api.get("/rulesets/<int:id>", tags=[rulesets], responses={200: s.RulesetOut})
@allow(INTERNAL_ROLES)
def get_ruleset(path: s.IdPath) -> Response:
    """One version: source, AST, status."""
    return _with_etag(service.get_ruleset(_db(), current_principal(), path.id))


@api.post("/rulesets/<int:id>/activate", tags=[rulesets], responses={200: s.RulesetOut})
@allow(ADMIN)
def activate_ruleset(path: s.IdPath) -> Response:
    """Make this version the active one of its kind (If-Match required); the previous one is archived."""
    return _with_etag(service.activate_ruleset(_db(), current_principal(), path.id, if_match()))


@api.post("/rulesets/rollback", tags=[rulesets], responses={200: s.RulesetOut})
@allow(ADMIN)
def rollback_ruleset(body: s.RulesetRollback) -> Response:
    """Re-activate an archived version of a kind (default: the one active before the current one)."""
    out = service.rollback_ruleset(_db(), current_principal(), body.kind, body.target_id)
    return _with_etag(out)


@api.post("/rulesets/<int:id>/test", tags=[rulesets], responses={200: s.TestReportOut})
@allow(ADMIN)
def test_ruleset(path: s.IdPath, body: s.RulesetTestsRun) -> Response:
    """Run a tests file's given/expect cases against this version; pass/fail per case."""
    return json_response(service.run_ruleset_tests(_db(), current_principal(), path.id, body))
