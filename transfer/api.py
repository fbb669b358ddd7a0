"""Admin and outbound endpoints of opportunity transfer: partner CRM connections (admins), and per
opportunity the eligible partners, transfer status, transfer, send update and receive update (the brand
owner's channel staff and admins; 202: the call itself goes through the outbox)."""

from __future__ import annotations

from flask import Response, current_app, request
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import Field, ValidationError

from common.auth import allow, current_principal
from common.database import Database
from common.errors import FieldProblem, ValidationFailed
from common.fields import YAML_MEDIA_TYPE
from common.http import if_match, json_response, validation_error_response
from common.jsonbody import parse_strict
from common.openapi import MULTIPART, RAW_BODIES, RAW_BODY_SCHEMAS, view_operation_id
from common.principal import CHANNEL_ROLES, INTERNAL_ROLES, Role
from common.settings import Settings
from directory.schemas import IdPath, Input
from transfer import connection_service, lead_service, service
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


class ProfileQuery(Input):
    filename: str = Field(
        "profile.yaml", min_length=1, max_length=200, description="names the file in error positions"
    )


def _yaml_body() -> str:
    return request.get_data(as_text=True)  # the media type and UTF-8 were checked before the view


@api.put("/partner-crm-connections/<int:id>/profile", tags=[connections], responses={200: s.ConnectionOut})
@allow(Role.ADMIN)
def put_partner_crm_connection_profile(path: IdPath, query: ProfileQuery) -> Response:
    """Replace the mapping profile (the partner's model) with the YAML file in the body
    (``Content-Type: application/yaml``); its errors come back as ``filename:line:column``."""
    return _put_profile(path.id, "profile", query.filename)


@api.put(
    "/partner-crm-connections/<int:id>/inbound-profile", tags=[connections], responses={200: s.ConnectionOut}
)
@allow(Role.ADMIN)
def put_partner_crm_connection_inbound_profile(path: IdPath, query: ProfileQuery) -> Response:
    """Replace the inbound profile (the model the partner speaks to us in) with the YAML file in the body."""
    return _put_profile(path.id, "inbound_profile", query.filename)


def _put_profile(connection_id: int, field: str, filename: str) -> Response:
    try:
        patch = s.ConnectionPatch.model_validate({field: _yaml_body()})
    except ValidationError as exc:
        return validation_error_response(exc)
    out = connection_service.update_connection(
        _db(), _settings(), current_principal(), connection_id, if_match(), patch, filenames={field: filename}
    )
    return _connection(out)


@api.post("/partner-crm-connections/upload", tags=[connections], responses={201: s.ConnectionOut})
@allow(Role.ADMIN)
def upload_partner_crm_connection() -> Response:
    """Connect a partner's CRM from a multipart form: ``connection``, the connection as JSON without its
    profiles, and the files ``profile`` (required) and ``inbound_profile`` (optional), YAML as written;
    profile errors come back as ``filename:line:column``."""
    problems = []
    try:
        fields = parse_strict(request.form.get("connection") or "", _settings().max_json_depth)
    except ValidationFailed as exc:
        raise ValidationFailed(
            "the connection part is not JSON", [FieldProblem("/connection", exc.detail or "not JSON")]
        ) from None
    if not isinstance(fields, dict):
        problems.append(FieldProblem("/connection", "expected a JSON object"))
        fields = {}
    filenames: dict[str, str] = {}
    for name in ("profile", "inbound_profile"):
        if name in fields:
            problems.append(FieldProblem(f"/connection/{name}", "send the profile as a file part"))
        upload = request.files.get(name)
        if upload is None:
            if name == "profile":
                problems.append(FieldProblem(f"/{name}", "a YAML file is required"))
            continue
        try:
            fields[name] = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            problems.append(FieldProblem(f"/{name}", "the file is not UTF-8"))
            continue
        filenames[name] = (upload.filename or f"{name}.yaml")[:200]
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the upload", problems)
    try:
        data = s.ConnectionIn.model_validate(fields)
    except ValidationError as exc:
        return validation_error_response(exc)
    out = connection_service.create_connection(
        _db(), _settings(), current_principal(), data, filenames=filenames
    )
    return _connection(out, 201)


RAW_BODY_SCHEMAS["upload_partner_crm_connection"] = {
    "type": "object",
    "required": ["connection", "profile"],
    "properties": {
        "connection": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "the connection as in POST /v1/partner-crm-connections, without its profiles",
        },
        "profile": {"type": "string", "contentMediaType": YAML_MEDIA_TYPE, "description": "a YAML file"},
        "inbound_profile": {
            "type": "string",
            "contentMediaType": YAML_MEDIA_TYPE,
            "description": "a YAML file",
        },
    },
}
RAW_BODIES.update(
    {
        "put_partner_crm_connection_profile": YAML_MEDIA_TYPE,
        "put_partner_crm_connection_inbound_profile": YAML_MEDIA_TYPE,
        "upload_partner_crm_connection": MULTIPART,
    }
)


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


@api.get("/leads/<int:id>/transfers", tags=[transfers], responses={200: s.TransferList})
@allow(INTERNAL_ROLES)
def list_lead_transfers(path: IdPath) -> Response:
    """Transfer status of a lead kept from a partner's transfer, with the correlation keys."""
    return json_response(lead_service.list_lead_transfers(_db(), current_principal(), path.id))


@api.post("/leads/<int:id>/transfers/send-update", tags=[transfers], responses={202: s.TransferOut})
@allow(TRANSFERRERS)
def send_lead_update(path: IdPath, body: s.PartnerIn) -> Response:
    """Push the lead's current state (fields, the deal's stage and status, children) to the partner whose
    transfer it was kept from; once the lead converted, the opportunity's."""
    return json_response(lead_service.send_lead_update(_db(), current_principal(), path.id, body), 202)


@api.post("/leads/<int:id>/transfers/receive-update", tags=[transfers], responses={202: s.TransferOut})
@allow(TRANSFERRERS)
def receive_lead_update(path: IdPath, body: s.PartnerIn) -> Response:
    """Query the partner's CRM for the opportunity the lead was kept from and apply what changed."""
    return json_response(lead_service.receive_lead_update(_db(), current_principal(), path.id, body), 202)
