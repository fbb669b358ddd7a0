"""REST endpoints of the duplicate check: a registration's likely duplicates, and the reviewers' search
by customer, contact and product. Views parse, call one service function, serialise.

A lead's duplicates: whoever may see the lead (partners their own organization's, answering 404 for
another's); a partner's result lists only its own organization's records, never another partner's.
The search: internal users only.
"""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import json_response
from common.openapi import view_operation_id
from common.principal import ANY_ROLE, INTERNAL_ROLES
from directory.schemas import IdPath
from registration.duplicates import schemas as ds
from registration.duplicates import service as duplicates_service

api = APIBlueprint(
    "duplicates",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
duplicates = Tag(
    name="duplicates",
    description="Open registrations and opportunities that look like the same deal, with score and evidence",
)


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


@api.get("/leads/<int:id>/duplicates", tags=[duplicates], responses={200: ds.DuplicatesOut})
@allow(ANY_ROLE)
def list_lead_duplicates(path: IdPath, query: ds.DuplicatesQuery) -> Response:
    return json_response(duplicates_service.lead_duplicates(_db(), current_principal(), path.id, query.limit))


@api.get("/duplicates/search", tags=[duplicates], responses={200: ds.DuplicatesOut})
@allow(INTERNAL_ROLES)
def search_duplicates(query: ds.DuplicateSearchQuery) -> Response:
    return json_response(duplicates_service.search_duplicates(_db(), current_principal(), query))
