"""REST endpoints of lead acceptance: accept a lead, offer an unaccepted lead to partners, read its
offers. Views parse, call one service function, serialise.

Accept: whoever may see the lead (partners: their organization's leads and leads offered to it;
another's answers 404). Offer: internal users. Reading offers: whoever may see the lead; a partner
sees only its own organization among them.
"""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import if_match, json_response
from common.openapi import view_operation_id
from common.principal import ANY_ROLE, INTERNAL_ROLES
from directory.schemas import IdPath
from registration.acceptance import schemas as acs
from registration.acceptance import service as acceptance_service
from registration.leads import schemas as s

api = APIBlueprint(
    "acceptance",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
leads = Tag(name="leads", description="Partner leads and their registration: create, edit, submit, history")


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


@api.post("/leads/<int:id>/accept", tags=[leads], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def accept_lead(path: IdPath) -> Response:
    out = acceptance_service.accept_lead(_db(), current_principal(), path.id, if_match())
    return json_response(out, etag=(out.id, out.version))


@api.post("/leads/<int:id>/offers", tags=[leads], responses={200: acs.OffersOut})
@allow(INTERNAL_ROLES)
def offer_lead(path: IdPath, body: acs.OfferIn) -> Response:
    out, version = acceptance_service.offer_lead(_db(), current_principal(), path.id, if_match(), body)
    return json_response(out, etag=(out.lead_id, version))


@api.get("/leads/<int:id>/offers", tags=[leads], responses={200: acs.OffersOut})
@allow(ANY_ROLE)
def list_lead_offers(path: IdPath) -> Response:
    out, version = acceptance_service.lead_offers(_db(), current_principal(), path.id)
    return json_response(out, etag=(out.lead_id, version))
