"""Admin and outbound endpoints of opportunity transfer: partner CRM connections (admins), and per
opportunity the eligible partners, transfer status, transfer, send update and receive update (the brand
owner's channel staff and admins; 202: the call itself goes through the outbox)."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import if_match, json_response
from common.openapi import view_operation_id
from common.principal import CHANNEL_ROLES, INTERNAL_ROLES, Role
from common.settings import Settings
from directory.schemas import IdPath
from transfer import connection_service, service
from transfer import schemas as s

api = APIBlueprint(
    "transfer",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
connections = Tag(name="partner CRM connections", description="How partners' CRM systems are reached")
transfers = Tag(name="opportunity transfer", description="Transfer, send update, receive update, status")
TRANSFERRERS = CHANNEL_ROLES | {Role.ADMIN}


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _settings() -> Settings:
    settings: Settings = current_app.extensions["prm.settings"]
    return settings


def _connection(out: s.ConnectionOut, status: int = 200) -> Response:
    return json_response(out, status, etag=(out.id, out.version))


@api.post("/partner-crm-connections", tags=[connections], responses={201: s.ConnectionOut})
@allow(Role.ADMIN)
def create_partner_crm_connection(body: s.ConnectionIn) -> Response:
    """Connect a partner organization's CRM; secrets are stored encrypted and never returned."""
    out = connection_service.create_connection(_db(), _settings(), current_principal(), body)
    return _connection(out, 201)


@api.get("/partner-crm-connections", tags=[connections], responses={200: s.ConnectionList})
@allow(Role.ADMIN, Role.INTEGRATION)
def list_partner_crm_connections() -> Response:
    return json_response(connection_service.list_connections(_db()))


@api.get("/partner-crm-connections/<int:id>", tags=[connections], responses={200: s.ConnectionOut})
@allow(Role.ADMIN, Role.INTEGRATION)
def get_partner_crm_connection(path: IdPath) -> Response:
    return _connection(connection_service.get_connection(_db(), path.id))


@api.patch("/partner-crm-connections/<int:id>", tags=[connections], responses={200: s.ConnectionOut})
@allow(Role.ADMIN)
def update_partner_crm_connection(path: IdPath, body: s.ConnectionPatch) -> Response:
    out = connection_service.update_connection(
        _db(), _settings(), current_principal(), path.id, if_match(), body
    )
    return _connection(out)


@api.get(
    "/opportunities/<int:id>/transfer-partners", tags=[transfers], responses={200: s.EligiblePartnerList}
)
@allow(INTERNAL_ROLES)
def list_transfer_partners(path: IdPath) -> Response:
    """Partners set up for transfer, each with the opportunity's transfer status there (if any)."""
    return json_response(service.eligible_partners(_db(), current_principal(), path.id))


@api.get("/opportunities/<int:id>/transfers", tags=[transfers], responses={200: s.TransferList})
@allow(INTERNAL_ROLES)
def list_opportunity_transfers(path: IdPath) -> Response:
    """Transfer status per partner, with the correlation keys (our id <-> their id)."""
    return json_response(service.list_transfers(_db(), current_principal(), path.id))


@api.post("/opportunities/<int:id>/transfers", tags=[transfers], responses={202: s.TransferOut})
@allow(TRANSFERRERS)
def transfer_opportunity(path: IdPath, body: s.TransferIn) -> Response:
    """Transfer (create) the opportunity and its children in the partner's CRM."""
    return json_response(service.transfer(_db(), current_principal(), path.id, body), 202)


@api.post("/opportunities/<int:id>/transfers/send-update", tags=[transfers], responses={202: s.TransferOut})
@allow(TRANSFERRERS)
def send_opportunity_update(path: IdPath, body: s.PartnerIn) -> Response:
    """Push the opportunity's current state to a partner it was transferred to or from."""
    return json_response(service.send_update(_db(), current_principal(), path.id, body), 202)


@api.post(
    "/opportunities/<int:id>/transfers/receive-update", tags=[transfers], responses={202: s.TransferOut}
)
@allow(TRANSFERRERS)
def receive_opportunity_update(path: IdPath, body: s.PartnerIn) -> Response:
    """Query the partner's CRM and apply what changed (status, revenue, new activities...)."""
    return json_response(service.receive_update(_db(), current_principal(), path.id, body), 202)
