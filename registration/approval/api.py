"""REST endpoints of the approval workflow: approve, reject, request and submit information, withdraw
(each POST names the lead's ETag in If-Match and answers the lead), the lead's approval rounds and tasks,
the expiry change, the expiry sweep for schedulers, the registrations expiring soon, and the approver's
worklist. Views parse, call one service function, serialise."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.database import Database
from common.http import if_match, json_response
from common.openapi import view_operation_id
from common.pagination import Page
from common.principal import ANY_ROLE, CHANNEL_ROLES, INTERNAL_ROLES, Role
from registration.approval import rounds_service, worklist_service
from registration.approval import schemas as a
from registration.approval import service as approval_service
from registration.expiry import schemas as ex
from registration.expiry import service as expiry_service
from registration.leads import schemas as s

api = APIBlueprint(
    "approvals",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
approvals = Tag(name="approvals", description="Approval rounds, decisions, information requests, expiry")


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _lead(out: s.LeadOut) -> Response:
    return json_response(out, etag=(out.id, out.version))


@api.post("/leads/<int:id>/approve", tags=[approvals], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def approve_lead(path: s.IdPath, body: a.ApproveIn) -> Response:
    """Approve the current step; the last step's approval converts the lead into an opportunity."""
    return _lead(
        approval_service.approve(
            _db(),
            current_principal(),
            path.id,
            if_match(),
            body,
            on_opportunity_created=current_app.extensions["prm.on_opportunity_created"],
        )
    )


@api.post("/leads/<int:id>/reject", tags=[approvals], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def reject_lead(path: s.IdPath, body: a.RejectIn) -> Response:
    """Reject the registration (comment required); it becomes editable and may be submitted again."""
    return _lead(approval_service.reject(_db(), current_principal(), path.id, if_match(), body))


@api.post("/leads/<int:id>/request-info", tags=[approvals], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def request_lead_info(path: s.IdPath, body: a.RequestInfoIn) -> Response:
    """Ask the submitter for information (creates a task for the submitter)."""
    return _lead(approval_service.request_info(_db(), current_principal(), path.id, if_match(), body))


@api.post("/leads/<int:id>/submit-info", tags=[approvals], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def submit_lead_info(path: s.IdPath, body: a.SubmitInfoIn) -> Response:
    """Answer the approvers' question (a note); the same approvers resume."""
    return _lead(approval_service.submit_info(_db(), current_principal(), path.id, if_match(), body))


@api.post("/leads/<int:id>/withdraw", tags=[approvals], responses={200: s.LeadOut})
@allow(ANY_ROLE)
def withdraw_lead(path: s.IdPath, body: a.WithdrawIn) -> Response:
    """Recall the registration before a decision."""
    return _lead(approval_service.withdraw(_db(), current_principal(), path.id, if_match(), body))


@api.get("/leads/<int:id>/approval-rounds", tags=[approvals], responses={200: a.RoundList})
@allow(ANY_ROLE)
def list_lead_approval_rounds(path: s.IdPath) -> Response:
    return json_response(rounds_service.list_rounds(_db(), current_principal(), path.id))


@api.get("/leads/<int:id>/tasks", tags=[approvals], responses={200: a.TaskList})
@allow(ANY_ROLE)
def list_lead_tasks(path: s.IdPath) -> Response:
    return json_response(rounds_service.list_tasks(_db(), current_principal(), path.id))


@api.patch("/leads/<int:id>/expiry", tags=[approvals], responses={200: s.LeadOut})
@allow(CHANNEL_ROLES, Role.ADMIN)
def change_lead_expiry(path: s.IdPath, body: ex.ExpiryIn) -> Response:
    """Change an approved registration's expiry, or give an expired one a later date (approved again).

    Its approvers, the channel staff of its territories (and their managers up the hierarchy) and
    admins only."""
    return _lead(expiry_service.set_expiry(_db(), current_principal(), path.id, if_match(), body))


@api.get("/worklist", tags=[approvals], responses={200: Page[a.WorklistItem]})
@allow(INTERNAL_ROLES)
def get_worklist(query: a.WorklistQuery) -> Response:
    """Registrations waiting for the caller as an approver of their current step."""
    return json_response(worklist_service.worklist(_db(), current_principal(), query))


@api.post("/registrations/expire", tags=[approvals], responses={200: ex.ExpirySweepOut})
@allow(Role.ADMIN, Role.INTEGRATION)
def expire_registrations(body: ex.ExpirySweepIn) -> Response:
    """Expire approved registrations past their date, as of now or ``as_of`` (idempotent; for schedulers)."""
    return json_response(expiry_service.expire_registrations(_db(), current_principal(), body.as_of))


@api.get("/registrations/expiring", tags=[approvals], responses={200: Page[ex.ExpiringItem]})
@allow(ANY_ROLE)
def list_expiring_registrations(query: ex.ExpiringQuery) -> Response:
    """Approved registrations expiring within ``within_days`` (partners: their organization's)."""
    return json_response(expiry_service.expiring(_db(), current_principal(), query))
