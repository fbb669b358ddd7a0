"""REST endpoints of opportunities: list, read (partners: their organization's only), close, change a
revenue line, edit the opportunity's fields and add, change or delete its contacts, notes and activities.
Every change names the opportunity's ETag (If-Match) and answers with the opportunity."""

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
from registration.opportunities import edit_service
from registration.opportunities import schemas as o
from registration.opportunities import service as opportunity_service
from registration.opportunities.service import OpportunityChanged, no_hook

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


def _opportunity(out: o.OpportunityOut, status: int = 200) -> Response:
    return json_response(out, status, etag=(out.id, out.version))


def _on_changed() -> OpportunityChanged:
    """The layers above registration's hook (the app sets transfer's: automatic updates)."""
    hook: OpportunityChanged = current_app.extensions.get("prm.on_opportunity_changed", no_hook)
    return hook


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
        opportunity_service.close_opportunity(
            _db(), current_principal(), path.id, if_match(), body, _on_changed()
        )
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
            _db(), current_principal(), path.id, path.line_id, if_match(), body, _on_changed()
        )
    )


@api.patch("/opportunities/<int:id>", tags=[opportunities], responses={200: o.OpportunityOut})
@allow(ANY_ROLE)
def update_opportunity(path: IdPath, body: o.OpportunityPatch) -> Response:
    """Change the opportunity's name, stage, expected close date or description.

    If-Match names the opportunity's ETag and the answer is the opportunity at its new version, as for
    every change of it and of its contacts, notes and activities. The partner's team may as it may close
    (not after the registration expired, not under a referral). A transferred opportunity's update is
    queued when its connection or the registration's policy sends updates automatically."""
    return _opportunity(
        edit_service.update_opportunity(_db(), current_principal(), path.id, if_match(), body, _on_changed())
    )


@api.post("/opportunities/<int:id>/contacts", tags=[opportunities], responses={201: o.OpportunityOut})
@allow(ANY_ROLE)
def add_opportunity_contact(path: IdPath, body: o.ContactIn) -> Response:
    """Add a contact (``primary: true`` makes it the one primary contact)."""
    out = edit_service.add_contact(_db(), current_principal(), path.id, if_match(), body, _on_changed())
    return _opportunity(out, 201)


@api.patch(
    "/opportunities/<int:id>/contacts/<int:contact_id>",
    tags=[opportunities],
    responses={200: o.OpportunityOut},
)
@allow(ANY_ROLE)
def update_opportunity_contact(path: o.ContactPath, body: o.ContactPatch) -> Response:
    """Change a contact; ``null`` clears a field (a contact keeps a name or an e-mail address)."""
    return _opportunity(
        edit_service.update_contact(
            _db(), current_principal(), path.id, path.contact_id, if_match(), body, _on_changed()
        )
    )


@api.delete(
    "/opportunities/<int:id>/contacts/<int:contact_id>",
    tags=[opportunities],
    responses={200: o.OpportunityOut},
)
@allow(ANY_ROLE)
def delete_opportunity_contact(path: o.ContactPath) -> Response:
    """Delete a contact."""
    return _opportunity(
        edit_service.delete_contact(
            _db(), current_principal(), path.id, path.contact_id, if_match(), _on_changed()
        )
    )


@api.post("/opportunities/<int:id>/notes", tags=[opportunities], responses={201: o.OpportunityOut})
@allow(ANY_ROLE)
def add_opportunity_note(path: IdPath, body: o.NoteIn) -> Response:
    """Add a note (written by the caller, now)."""
    out = edit_service.add_note(_db(), current_principal(), path.id, if_match(), body, _on_changed())
    return _opportunity(out, 201)


@api.patch(
    "/opportunities/<int:id>/notes/<int:note_id>", tags=[opportunities], responses={200: o.OpportunityOut}
)
@allow(ANY_ROLE)
def update_opportunity_note(path: o.NotePath, body: o.NotePatch) -> Response:
    """Change a note's text."""
    return _opportunity(
        edit_service.update_note(
            _db(), current_principal(), path.id, path.note_id, if_match(), body, _on_changed()
        )
    )


@api.delete(
    "/opportunities/<int:id>/notes/<int:note_id>", tags=[opportunities], responses={200: o.OpportunityOut}
)
@allow(ANY_ROLE)
def delete_opportunity_note(path: o.NotePath) -> Response:
    """Delete a note."""
    return _opportunity(
        edit_service.delete_note(_db(), current_principal(), path.id, path.note_id, if_match(), _on_changed())
    )


@api.post("/opportunities/<int:id>/activities", tags=[opportunities], responses={201: o.OpportunityOut})
@allow(ANY_ROLE)
def add_opportunity_activity(path: IdPath, body: o.ActivityIn) -> Response:
    """Add an activity (a call, a meeting, a task with a due date)."""
    out = edit_service.add_activity(_db(), current_principal(), path.id, if_match(), body, _on_changed())
    return _opportunity(out, 201)


@api.patch(
    "/opportunities/<int:id>/activities/<int:activity_id>",
    tags=[opportunities],
    responses={200: o.OpportunityOut},
)
@allow(ANY_ROLE)
def update_opportunity_activity(path: o.ActivityPath, body: o.ActivityPatch) -> Response:
    """Change an activity: its kind, subject, due date, or mark it done."""
    return _opportunity(
        edit_service.update_activity(
            _db(), current_principal(), path.id, path.activity_id, if_match(), body, _on_changed()
        )
    )


@api.delete(
    "/opportunities/<int:id>/activities/<int:activity_id>",
    tags=[opportunities],
    responses={200: o.OpportunityOut},
)
@allow(ANY_ROLE)
def delete_opportunity_activity(path: o.ActivityPath) -> Response:
    """Delete an activity."""
    return _opportunity(
        edit_service.delete_activity(
            _db(), current_principal(), path.id, path.activity_id, if_match(), _on_changed()
        )
    )
