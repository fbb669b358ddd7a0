"""The partner-facing endpoints (``/v1/partner-crm/{connection_key}/...``): no API key; the caller is the
connection in the path, proven by the request's Standard Webhooks signature (checked before the body is
read into anything; every signature failure is a 401 problem)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import BaseModel, Field
from werkzeug.routing import BaseConverter

from common.auth import public
from common.database import Database
from common.http import json_response
from common.openapi import DOCUMENTED_BODIES, view_operation_id
from common.settings import Settings
from directory.schemas import Input
from transfer import batch_service, inbound_service
from transfer.canonical import document_schemas
from transfer.schemas import RemoteType

api = APIBlueprint("partner_crm_inbound", __name__, url_prefix="/v1", operation_id_callback=view_operation_id)


class RemoteIdConverter(BaseConverter):
    """A partner's opportunity id in a path: any segment but ``update``, which names the update
    operation (POST), so that a GET of ``.../opportunities/update`` is a 405, not a query of id "update"."""

    regex = r"(?!update$)[^/]+"


def _add_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["remote_id"] = RemoteIdConverter


api.record_once(_add_converter)  # before the routes below are added
inbound = Tag(
    name="partner CRM protocol",
    description="Signed calls from partners' CRM systems (Standard Webhooks headers, HMAC-SHA256)",
)


class ConnectionPath(Input):
    # Any text: an unknown key answers 401 like a bad signature, so a prober learns nothing.
    connection_key: str = Field(min_length=1, max_length=200)


class QueryPath(ConnectionPath):
    remote_id: str = Field(min_length=1, max_length=200, json_schema_extra={"not": {"const": "update"}})


class TransferReply(BaseModel):
    id: str
    type: RemoteType = Field(description="what `id` names here: a lead or an opportunity")
    correlations: dict[str, dict[str, str]]


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _settings() -> Settings:
    settings: Settings = current_app.extensions["prm.settings"]
    return settings


@api.post(
    "/partner-crm/<connection_key>/opportunities",
    tags=[inbound],
    responses={201: TransferReply, 200: TransferReply},
)
@public
def receive_partner_transfer(path: ConnectionPath) -> Response:
    """Create (transfer): the partner's opportunity becomes a lead or opportunity here; idempotent."""
    reply = inbound_service.create(
        _db(), _settings(), path.connection_key, dict(request.headers), request.get_data()
    )
    return json_response(reply.body, reply.status)


@api.post(
    "/partner-crm/<connection_key>/opportunities/update", tags=[inbound], responses={200: TransferReply}
)
@public
def receive_partner_update(path: ConnectionPath) -> Response:
    """Update: changes to an opportunity transferred before, in either direction."""
    reply = inbound_service.update(
        _db(), _settings(), path.connection_key, dict(request.headers), request.get_data()
    )
    return json_response(reply.body, reply.status)


@api.get(
    "/partner-crm/<connection_key>/opportunities/<remote_id:remote_id>",
    tags=[inbound],
    responses={
        200: {"description": "the opportunity in the partner's model"},
        405: {"description": "`update` is not an id: it names the update operation (POST)"},
    },
)
@public
def answer_partner_query(path: QueryPath) -> Response:
    """Query: an opportunity transferred before, in the partner's model, by the partner's id."""
    reply = inbound_service.query(
        _db(), _settings(), path.connection_key, dict(request.headers), request.get_data(), path.remote_id
    )
    return json_response(reply.body, reply.status)


@api.post("/partner-crm/<connection_key>/leads/update", tags=[inbound], responses={200: TransferReply})
@public
def receive_partner_lead_update(path: ConnectionPath) -> Response:
    """Update from the partner's lead: changes to our opportunity that the partner keeps as its lead
    (the document's ``id`` is the lead's); otherwise as ``opportunities/update``."""
    reply = inbound_service.update(
        _db(), _settings(), path.connection_key, dict(request.headers), request.get_data(), from_lead=True
    )
    return json_response(reply.body, reply.status)


@api.get(
    "/partner-crm/<connection_key>/leads/<remote_id:remote_id>",
    tags=[inbound],
    responses={
        200: {"description": "the opportunity in the partner's model"},
        405: {"description": "`update` is not an id: it names the update operation (POST)"},
    },
)
@public
def answer_partner_lead_query(path: QueryPath) -> Response:
    """Query from the partner's lead: our opportunity that the partner keeps as its lead `remote_id`, in
    the partner's model."""
    reply = inbound_service.query(
        _db(),
        _settings(),
        path.connection_key,
        dict(request.headers),
        request.get_data(),
        path.remote_id,
        from_lead=True,
    )
    return json_response(reply.body, reply.status)


class BatchItemAnswer(BaseModel):
    status: int = Field(description="the HTTP status the single call would have answered")
    body: dict[str, Any] = Field(description="its answer (a TransferReply, a document, or a problem)")


class BatchReply(BaseModel):
    items: list[BatchItemAnswer] = Field(description="one answer per item, in the items' order")


@api.post("/partner-crm/<connection_key>/batch", tags=[inbound], responses={200: BatchReply})
@public
def receive_partner_batch(path: ConnectionPath) -> Response:
    """Batch: up to 100 signed creates, updates and queries in one call and one transaction, each item
    signed on its own (replay protection and idempotency per item) and answered on its own."""
    reply = batch_service.batch(
        _db(), _settings(), path.connection_key, dict(request.headers), request.get_data()
    )
    return json_response(reply.body, reply.status)


_DOCUMENT = ("application/json", {"$ref": "#/components/schemas/CanonicalOpportunity"}, document_schemas())
DOCUMENTED_BODIES.update(
    {
        "receive_partner_transfer": _DOCUMENT,
        "receive_partner_update": _DOCUMENT,
        "receive_partner_lead_update": _DOCUMENT,
        "receive_partner_batch": ("application/json", batch_service.BATCH_SCHEMA, document_schemas()),
    }
)
