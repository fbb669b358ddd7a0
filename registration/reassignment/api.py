"""REST endpoints of batch reassignment (plan, review, apply, cancel, revert; admins plan and apply,
internal users review) and of assignment locks on leads and opportunities (CAMs and admins). Views
parse, call one service function, serialise."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from common.auth import allow, current_principal
from common.batch import Backend, InlineBackend, backend_named
from common.database import Database
from common.http import if_match, json_response
from common.openapi import view_operation_id
from common.pagination import Page
from common.principal import INTERNAL_ROLES, Role
from registration.leads.schemas import IdPath
from registration.reassignment import lock_service, service
from registration.reassignment import schemas as s
from territory.schemas import TerritoryPath

api = APIBlueprint(
    "reassignment",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)
runs = Tag(name="reassignment", description="Batch reassignment runs: plan, review, apply, cancel, revert")
locks = Tag(
    name="assignment locks",
    description="Leads, opportunities and territories (frozen) batch reassignment leaves alone",
)


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _started(run: s.RunSummary, waited: bool, done_status: int) -> Response:
    """The run: ``done_status`` when the request did the work, else 202 (still planning or applying)
    with the run's status URL in ``Location``."""
    resp = json_response(run, status=done_status if waited else 202)
    if not waited or done_status == 201:
        resp.headers["Location"] = f"/v1/reassignment-runs/{run.id}"
    return resp


def _backend() -> tuple[Backend, bool]:
    """The batch backend, and whether the request waits for the work (only inline does)."""
    backend = backend_named()
    return backend, backend.name == InlineBackend.name


@api.post("/reassignment-runs", tags=[runs], responses={201: s.RunSummary, 202: s.RunSummary, 503: None})
@allow(Role.ADMIN)
def create_reassignment_run(body: s.RunCreate) -> Response:
    """Plan a run: evaluate the leads in scope against the model and rules given; nothing else changes.

    201 with the plan when the batch backend is ``inline``; otherwise the chunks are started on the
    local pool or the Celery workers and the answer is 202 with the run, still ``planning``, and its
    status URL in ``Location`` (poll it until ``planned``)."""
    backend, wait = _backend()
    run = service.create_run(_db(), current_principal(), body, backend=backend, wait=wait)
    return _started(run, wait, 201)


@api.get("/reassignment-runs", tags=[runs], responses={200: Page[s.RunOut]})
@allow(INTERNAL_ROLES)
def list_reassignment_runs(query: s.RunListQuery) -> Response:
    return json_response(service.list_runs(_db(), current_principal(), query))


@api.get("/reassignment-runs/<int:id>", tags=[runs], responses={200: s.RunSummary})
@allow(INTERNAL_ROLES)
def get_reassignment_run(path: s.RunPath) -> Response:
    """Status, counts, progress, and moved leads per territory and per CAM (before -> after)."""
    return json_response(service.get_run(_db(), current_principal(), path.id))


@api.get("/reassignment-runs/<int:id>/items", tags=[runs], responses={200: Page[s.ItemOut]})
@allow(INTERNAL_ROLES)
def list_reassignment_run_items(path: s.RunPath, query: s.ItemQuery) -> Response:
    """The leads the plan moves or keeps, with before, after and why (cursor pages, filters)."""
    return json_response(service.list_items(_db(), current_principal(), path.id, query))


@api.post(
    "/reassignment-runs/<int:id>/apply",
    tags=[runs],
    responses={200: s.RunSummary, 202: s.RunSummary, 503: None},
)
@allow(Role.ADMIN)
def apply_reassignment_run(path: s.RunPath) -> Response:
    """Apply exactly the stored plan (a lead changed since the plan is skipped with the reason).

    200 with the applied run when the batch backend is ``inline``; otherwise 202 with the run, still
    ``applying``, and its status URL in ``Location`` (poll it until ``applied``)."""
    backend, wait = _backend()
    run = service.apply_run(_db(), current_principal(), path.id, backend=backend, wait=wait)
    return _started(run, wait, 200)


@api.post("/reassignment-runs/<int:id>/cancel", tags=[runs], responses={200: s.RunSummary})
@allow(Role.ADMIN)
def cancel_reassignment_run(path: s.RunPath) -> Response:
    """Cancel a planned run, or stop an applying one after its running chunks."""
    return json_response(service.cancel_run(_db(), current_principal(), path.id))


@api.post(
    "/reassignment-runs/<int:id>/revert",
    tags=[runs],
    responses={201: s.RunSummary, 202: s.RunSummary, 503: None},
)
@allow(Role.ADMIN)
def revert_reassignment_run(path: s.RunPath) -> Response:
    """Plan the inverse of an applied run (a new run; apply it like any other). 201 when the batch
    backend is ``inline``, else 202 while the new run is planning (``Location``: its status URL)."""
    backend, wait = _backend()
    run = service.revert_run(_db(), current_principal(), path.id, backend=backend, wait=wait)
    return _started(run, wait, 201)


# --- locks ------------------------------------------------------------------------------------------------


def _lock(subject: str, id_: int, data: s.LockIn | None, *, delete: bool = False) -> Response:
    if delete or data is not None:
        out, etag = lock_service.set_lock(_db(), current_principal(), subject, id_, if_match(), data)
    else:
        out, etag = lock_service.get_lock(_db(), current_principal(), subject, id_)
    return json_response(out, etag=etag)


@api.get("/leads/<int:id>/assignment-lock", tags=[locks], responses={200: s.LockOut})
@allow(INTERNAL_ROLES)
def get_lead_assignment_lock(path: IdPath) -> Response:
    return _lock("lead", path.id, None)


@api.put("/leads/<int:id>/assignment-lock", tags=[locks], responses={200: s.LockOut})
@allow(Role.CHANNEL_ACCOUNT_MANAGER, Role.ADMIN)
def lock_lead_assignment(path: IdPath, body: s.LockIn) -> Response:
    """Keep the lead out of batch reassignment (If-Match: the lead's ETag)."""
    return _lock("lead", path.id, body)


@api.delete("/leads/<int:id>/assignment-lock", tags=[locks], responses={200: s.LockOut})
@allow(Role.CHANNEL_ACCOUNT_MANAGER, Role.ADMIN)
def unlock_lead_assignment(path: IdPath) -> Response:
    """Lift the lead's lock (If-Match: the lead's ETag)."""
    return _lock("lead", path.id, None, delete=True)


@api.get("/opportunities/<int:id>/assignment-lock", tags=[locks], responses={200: s.LockOut})
@allow(INTERNAL_ROLES)
def get_opportunity_assignment_lock(path: IdPath) -> Response:
    return _lock("opportunity", path.id, None)


@api.put("/opportunities/<int:id>/assignment-lock", tags=[locks], responses={200: s.LockOut})
@allow(Role.CHANNEL_ACCOUNT_MANAGER, Role.ADMIN)
def lock_opportunity_assignment(path: IdPath, body: s.LockIn) -> Response:
    """Keep the opportunity's owner and its registration out of batch reassignment (If-Match: the
    opportunity's ETag)."""
    return _lock("opportunity", path.id, body)


@api.delete("/opportunities/<int:id>/assignment-lock", tags=[locks], responses={200: s.LockOut})
@allow(Role.CHANNEL_ACCOUNT_MANAGER, Role.ADMIN)
def unlock_opportunity_assignment(path: IdPath) -> Response:
    """Lift the opportunity's lock (If-Match: the opportunity's ETag)."""
    return _lock("opportunity", path.id, None, delete=True)


# --- territory freezes ------------------------------------------------------------------------------------


def _freeze(path: TerritoryPath, data: s.LockIn | None, *, delete: bool = False) -> Response:
    if delete or data is not None:
        out, etag = lock_service.set_freeze(_db(), current_principal(), path.id, path.key, if_match(), data)
    else:
        out, etag = lock_service.get_freeze(_db(), current_principal(), path.id, path.key)
    return json_response(out, etag=etag)


@api.get("/territory-models/<int:id>/territories/<key>/freeze", tags=[locks], responses={200: s.FreezeOut})
@allow(INTERNAL_ROLES)
def get_territory_freeze(path: TerritoryPath) -> Response:
    """Whether batch reassignment leaves the territory's leads alone; the ETag is the model's."""
    return _freeze(path, None)


@api.put("/territory-models/<int:id>/territories/<key>/freeze", tags=[locks], responses={200: s.FreezeOut})
@allow(Role.CHANNEL_ACCOUNT_MANAGER, Role.ADMIN)
def freeze_territory(path: TerritoryPath, body: s.LockIn) -> Response:
    """Freeze the territory in this model: plans keep every lead in it (or below it), or that would move
    into it, where it is, with the reason (If-Match: the model's ETag)."""
    return _freeze(path, body)


@api.delete("/territory-models/<int:id>/territories/<key>/freeze", tags=[locks], responses={200: s.FreezeOut})
@allow(Role.CHANNEL_ACCOUNT_MANAGER, Role.ADMIN)
def thaw_territory(path: TerritoryPath) -> Response:
    """Lift the territory's freeze (If-Match: the model's ETag)."""
    return _freeze(path, None, delete=True)
