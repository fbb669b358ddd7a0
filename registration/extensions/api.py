"""REST endpoints of registration extension requests: the partner asks for a later expiry, the people
who answer for the registration grant or refuse it (If-Match: the lead's ETag; the reply is the lead),
everyone who sees the lead lists its requests. Views parse, call one service function, serialise."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import if_match, json_response
from common.openapi import view_operation_id
from common.principal import ANY_ROLE, CHANNEL_ROLES, PARTNER_ROLES, Role
from registration.extensions import schemas as x
from registration.extensions import service as extension_service
from registration.leads import schemas as s

api = APIBlueprint(
    "extensions",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
extensions = Tag(
    name="extensions",
    description="Extension requests of a registration's protection period (asked by the partner, "
    "granted or refused by the registration's approvers and channel staff)",
)


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _lead(out: s.LeadOut) -> Response:
    return json_response(out, etag=(out.id, out.version))


@api.post("/leads/<int:id>/extension-requests", tags=[extensions], responses={201: x.ExtensionOut})
@allow(PARTNER_ROLES, Role.ADMIN)
def request_lead_extension(path: s.IdPath, body: x.ExtensionRequestIn) -> Response:
    """Ask for the registration's protection to last longer (approved or expired registrations; one
    open request at a time; the policy's ``max_extensions`` caps how many are granted)."""
    out = extension_service.request_extension(_db(), current_principal(), path.id, body)
    resp = json_response(out, status=201)
    resp.headers["Location"] = f"/v1/leads/{path.id}/extension-requests"
    return resp


@api.get("/leads/<int:id>/extension-requests", tags=[extensions], responses={200: x.ExtensionList})
@allow(ANY_ROLE)
def list_lead_extensions(path: s.IdPath) -> Response:
    """The registration's extension requests, oldest first, and how many more may be granted."""
    return json_response(extension_service.list_extensions(_db(), current_principal(), path.id))


@api.post(
    "/leads/<int:id>/extension-requests/<int:request_id>/grant",
    tags=[extensions],
    responses={200: s.LeadOut},
)
@allow(CHANNEL_ROLES, Role.ADMIN)
def grant_lead_extension(path: x.ExtensionPath, body: x.ExtensionGrantIn) -> Response:
    """Grant the request: the expiry moves (an expired registration is approved again)."""
    return _lead(
        extension_service.grant_extension(
            _db(), current_principal(), path.id, path.request_id, if_match(), body
        )
    )


@api.post(
    "/leads/<int:id>/extension-requests/<int:request_id>/reject",
    tags=[extensions],
    responses={200: s.LeadOut},
)
@allow(CHANNEL_ROLES, Role.ADMIN)
def reject_lead_extension(path: x.ExtensionPath, body: x.ExtensionRejectIn) -> Response:
    """Refuse the request (comment required); the expiry stays."""
    return _lead(
        extension_service.reject_extension(
            _db(), current_principal(), path.id, path.request_id, if_match(), body
        )
    )
