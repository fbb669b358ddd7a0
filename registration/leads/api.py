"""REST endpoints for leads and their registration: create (idempotent), read, list, update, submit,
approver preview, notes, history. Views parse, call one service function, serialise.

Every authenticated role may call them; what a caller sees is decided by the services: partners their
own organization's leads (another organization's answers 404 like a missing one), internal users all.
"""

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
from registration.leads import people_schemas, people_service, service, submission_service
from registration.leads import schemas as s

api = APIBlueprint(
    "registration",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
leads = Tag(name="leads", description="Partner leads and their registration: create, edit, submit, history")


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _lead(out: s.LeadOut, status: int = 200) -> Response:
    return json_response(out, status, etag=(out.id, out.version))


@api.post("/leads", tags=[leads], responses={201: s.LeadOut})
@allow(ANY_ROLE)
def create_lead(header: s.IdempotencyHeader, body: s.LeadCreate) -> Response:
    out, replayed = service.create_lead(_db(), current_principal(), body, header.idempotency_key)
    resp = _lead(out, 201)
    resp.headers["Location"] = f"/v1/leads/{out.id}"
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@api.get("/leads", tags=[leads], responses={200: Page[s.LeadOut]})
@allow(ANY_ROLE)
def list_leads(query: s.LeadListQuery) -> Response:
    return json_response(service.list_leads(_db(), current_principal(), query))


@api.get("/leads/<int:id>", tags=[leads], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def get_lead(path: s.IdPath) -> Response:
    return _lead(service.get_lead(_db(), current_principal(), path.id))


@api.patch("/leads/<int:id>", tags=[leads], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def update_lead(path: s.IdPath, body: s.LeadUpdate) -> Response:
    return _lead(service.update_lead(_db(), current_principal(), path.id, if_match(), body))


@api.post("/leads/<int:id>/submit", tags=[leads], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def submit_lead(path: s.IdPath) -> Response:
    return _lead(submission_service.submit_lead(_db(), current_principal(), path.id, if_match()))


@api.get("/leads/<int:id>/approver-preview", tags=[leads], responses={200: s.ApproverPreviewOut})
@allow(ANY_ROLE)
def preview_lead_approvers(path: s.IdPath) -> Response:
    return json_response(submission_service.preview_approvers(_db(), current_principal(), path.id))


@api.get("/leads/<int:id>/history", tags=[leads], responses={200: s.HistoryOut})
@allow(ANY_ROLE)
def list_lead_history(path: s.IdPath) -> Response:
    return json_response(service.lead_history(_db(), current_principal(), path.id))


@api.post("/leads/<int:id>/notes", tags=[leads], responses={201: s.NoteOut})
@allow(ANY_ROLE)
def add_lead_note(path: s.IdPath, body: s.NoteIn) -> Response:
    out = service.add_note(_db(), current_principal(), path.id, body)
    resp = json_response(out, 201)
    resp.headers["Location"] = f"/v1/leads/{path.id}/notes"
    return resp


@api.get("/leads/<int:id>/notes", tags=[leads], responses={200: s.NoteList})
@allow(ANY_ROLE)
def list_lead_notes(path: s.IdPath) -> Response:
    return json_response(service.list_notes(_db(), current_principal(), path.id))


@api.get("/leads/<int:id>/people", tags=[leads], responses={200: people_schemas.LeadPeople})
@allow(ANY_ROLE)
def list_lead_people(path: s.IdPath) -> Response:
    """Names and e-mail addresses of the people on the lead: the channel account manager and other
    approvers, the sales team, the owner (partners: the brand owner's people and their own)."""
    return json_response(people_service.lead_people(_db(), current_principal(), path.id))
