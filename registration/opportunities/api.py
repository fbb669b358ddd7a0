"""REST endpoints of opportunities: list, read (partners: their organization's only), close, and change a
revenue line."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import if_match, json_response
from common.openapi import view_operation_id
from common.pagination import Page
from common.principal import ANY_ROLE
from registration.leads.schemas import IdPath
from registration.opportunities import schemas as o
from registration.opportunities import service as opportunity_service

api = APIBlueprint(
    "opportunities",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
opportunities = Tag(name="opportunities", description="Opportunities converted from approved registrations")


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _opportunity(out: o.OpportunityOut) -> Response:
    return json_response(out, etag=(out.id, out.version))


@api.get("/opportunities", tags=[opportunities], responses={200: Page[o.OpportunityOut]})
@allow(ANY_ROLE)
def list_opportunities(query: o.OpportunityListQuery) -> Response:
    return json_response(opportunity_service.list_opportunities(_db(), current_principal(), query))


@api.get("/opportunities/<int:id>", tags=[opportunities], responses={200: o.OpportunityOut})
@allow(ANY_ROLE)
def get_opportunity(path: IdPath) -> Response:
    return _opportunity(opportunity_service.get_opportunity(_db(), current_principal(), path.id))


@api.post("/opportunities/<int:id>/close", tags=[opportunities], responses={200: o.OpportunityOut})
@allow(ANY_ROLE)
def close_opportunity(path: IdPath, body: o.CloseIn) -> Response:
    """Close as won or lost; the partner's team may not once the registration expired."""
    return _opportunity(
        opportunity_service.close_opportunity(_db(), current_principal(), path.id, if_match(), body)
    )


@api.patch(
    "/opportunities/<int:id>/revenue-lines/<int:line_id>",
    tags=[opportunities],
    responses={200: o.OpportunityOut},
)
@allow(ANY_ROLE)
def update_opportunity_revenue_line(path: o.RevenueLinePath, body: o.RevenueLineUpdate) -> Response:
    """Change one revenue line's amount or currency; If-Match names the opportunity's ETag and the answer is
    the opportunity. The partner's team may as it may close (not after the registration expired)."""
    return _opportunity(
        opportunity_service.update_revenue_line(
            _db(), current_principal(), path.id, path.line_id, if_match(), body
        )
    )
