"""REST endpoints for decisions: what-if (nothing stored), decide and store, read, why-not, preview."""

from __future__ import annotations

import orjson
from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import json_response
from common.openapi import view_operation_id
from common.principal import INTERNAL_ROLES, Role
from rules import decision_schemas as s
from rules import decision_service as service

api = APIBlueprint(
    "decisions",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
tag = Tag(name="decisions", description="Assignment decisions with their traces: what-if, why-not, preview")


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


@api.post("/what-if", tags=[tag], responses={200: s.DecisionOut})
@allow(INTERNAL_ROLES)
def what_if(query: s.DetailQuery, body: s.WhatIfRequest) -> Response:
    """Decide without storing anything; the trace is bounded unless ``?detail=full``."""
    out = service.what_if(_db(), current_principal(), body, query.detail)
    # plain values written by orjson in one pass (a full trace explains hundreds of territories)
    return Response(orjson.dumps(out), mimetype="application/json")


@api.post("/decisions", tags=[tag], responses={201: s.DecisionOut})
@allow(Role.ADMIN, Role.INTEGRATION)
def create_decision(body: s.DecideRequest) -> Response:
    out = service.create_decision(_db(), current_principal(), body)
    resp = json_response(out, 201)
    resp.headers["Location"] = f"/v1/decisions/{out.id}"
    return resp


@api.get("/decisions/<int:id>", tags=[tag], responses={200: s.DecisionOut})
@allow(INTERNAL_ROLES)
def get_decision(path: s.DecisionIdPath, query: s.DetailQuery) -> Response:
    """A stored decision; ``?detail=full`` explains every losing territory again from its stored facts
    and territory model."""
    return json_response(service.get_decision(_db(), current_principal(), path.id, query.detail))


@api.get("/decisions/<int:id>/why-not", tags=[tag], responses={200: s.WhyNotOut})
@allow(INTERNAL_ROLES)
def why_not(path: s.DecisionIdPath, query: s.WhyNotQuery) -> Response:
    """Why a territory or a user did not get the lead, answered from the stored facts and model."""
    return json_response(service.why_not(_db(), current_principal(), path.id, query))


@api.post("/territory-models/<int:id>/preview", tags=[tag], responses={200: s.PreviewOut})
@allow(Role.ADMIN)
def preview_territory_model(path: s.ModelIdPath, body: s.PreviewRequest) -> Response:
    return json_response(service.preview(_db(), current_principal(), path.id, body))
