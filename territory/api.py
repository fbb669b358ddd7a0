"""REST endpoints for territory models: create or clone, list, read, edit planning models, import CSV,
activate, and hierarchy views (JSON, Mermaid, DOT, text, HTML). Views parse, call one service function,
serialise.

Admins change; every internal role reads; partners get 403. Changes inside a model send the model's ETag
in ``If-Match`` (the model is the unit of concurrency).
"""

from __future__ import annotations

from flask import Response, current_app, request
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from flask_wtf.csrf import generate_csrf
from pydantic import ValidationError

from common.auth import allow, current_principal
from common.database import Database
from common.errors import NotFound
from common.http import if_match, json_response, validation_error_response
from common.openapi import IMPORT_OPERATIONS, MULTIPART, RAW_BODIES, RAW_BODY_SCHEMAS, view_operation_id
from common.pages import nonce, page_response
from common.principal import INTERNAL_ROLES, Role
from common.textfile import uploaded_texts
from territory import csv_import, dimension_service, export, import_service, service, territory_service
from territory import schemas as s
from territory.errors import did_you_mean, hint

api = APIBlueprint(
    "territory",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)

models = Tag(name="territory models", description="Territory models: planning, active, archived; activation")
territories = Tag(name="territories", description="Territories of a planning model: tree, coverage, team")
dimensions = Tag(
    name="territory dimensions",
    description="A model's dimensions (built-in and declared) and the members its admins import",
)

ADMIN = [Role.ADMIN]
TEXT_TYPES = {
    s.TreeFormat.MERMAID: "text/plain",
    s.TreeFormat.DOT: "text/vnd.graphviz",
    s.TreeFormat.TEXT: "text/plain",
    s.TreeFormat.HTML: "text/html",
}


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _changed(out: s.TerritoryChanged, model_id: int, status: int = 200) -> Response:
    return json_response(out, status, etag=(model_id, out.model_version))


# --- models -------------------------------------------------------------------------------------------


@api.post("/territory-models", tags=[models], responses={201: s.ModelOut})
@allow(ADMIN)
def create_territory_model(body: s.ModelCreate) -> Response:
    """Create a planning model: empty, or cloned from the active model (or any other)."""
    out = service.create_model(_db(), current_principal(), body)
    resp = json_response(out, 201, etag=(out.id, out.version))
    resp.headers["Location"] = f"/v1/territory-models/{out.id}"
    return resp


@api.get("/territory-models", tags=[models], responses={200: s.ModelPage})
@allow(INTERNAL_ROLES)
def list_territory_models(query: s.ModelListQuery) -> Response:
    return json_response(service.list_models(_db(), current_principal(), query))


@api.get("/territory-models/<int:id>", tags=[models], responses={200: s.ModelOut})
@allow(INTERNAL_ROLES)
def get_territory_model(path: s.ModelPath) -> Response:
    out = service.get_model(_db(), current_principal(), path.id)
    return json_response(out, etag=(out.id, out.version))


@api.post("/territory-models/<int:id>/activate", tags=[models], responses={200: s.ModelOut})
@allow(ADMIN)
def activate_territory_model(path: s.ModelPath) -> Response:
    """Activate a planning model; the active one is archived in the same transaction."""
    out = service.activate_model(_db(), current_principal(), path.id, if_match())
    return json_response(out, etag=(out.id, out.version))


@api.post("/territory-models/<int:id>/import", tags=[models], responses={200: s.ModelImportReport})
@allow(ADMIN)
def import_territory_model(path: s.ModelPath, body: s.ModelImport) -> Response:
    """Replace a planning model's content with three CSV files (as strings); all rows or none."""
    files = csv_import.ModelFiles(body.territories, body.coverage, body.members)
    out = import_service.import_model(_db(), current_principal(), path.id, if_match(), files)
    return json_response(out, etag=(out.model_id, out.model_version))


@api.post("/territory-models/<int:id>/import/upload", tags=[models], responses={200: s.ModelImportReport})
@allow(ADMIN)
def upload_territory_model(path: s.ModelPath) -> Response:
    """Replace a planning model's content with the three CSV files as a multipart form: ``territories``
    (required), ``coverage`` and ``members``, each as written; problems name the files as uploaded
    (``file:row:column``). All rows or none, as ``POST .../import``."""
    texts = uploaded_texts(request.files, ["territories"], ["coverage", "members"])
    try:
        body = s.ModelImport.model_validate({part: text for part, (text, _) in texts.items()})
    except ValidationError as exc:
        return validation_error_response(exc)
    t, c, m = (texts[p][1] if p in texts else f"{p}.csv" for p in ("territories", "coverage", "members"))
    files = csv_import.ModelFiles(body.territories, body.coverage, body.members, (t, c, m))
    out = import_service.import_model(_db(), current_principal(), path.id, if_match(), files)
    return json_response(out, etag=(out.model_id, out.model_version))


_CSV_FILE = {"type": "string", "contentMediaType": "text/csv", "description": "a CSV file (UTF-8)"}
RAW_BODY_SCHEMAS["upload_territory_model"] = {
    "type": "object",
    "required": ["territories"],
    "properties": {
        "territories": {**_CSV_FILE, "description": "key,parent_key,name,type[,partner]"},
        "coverage": {**_CSV_FILE, "description": "territory_key,dimension,member,mode"},
        "members": {**_CSV_FILE, "description": "territory_key,user,role"},
    },
}


@api.get("/territory-models/<int:id>/tree", tags=[models], responses={200: s.TreeOut})
@allow(INTERNAL_ROLES)
def get_territory_tree(path: s.ModelPath, query: s.TreeQuery) -> Response:
    """The hierarchy as JSON, or as Mermaid / DOT / text / HTML with ``?format=``."""
    view = service.model_tree(_db(), current_principal(), path.id)
    return render_tree(view, query.format, export.View(query.root, query.depth))


def render_tree(
    view: service.TreeView, fmt: s.TreeFormat, part: export.View = export.View(), user: str | None = None
) -> Response:
    """The tree in ``fmt``; the HTML page names the signed-in ``user`` and offers sign-out."""
    snap, counts = view.snapshot, view.lead_counts
    if part.root is not None and (snap is None or part.root not in snap):
        suggestions = hint(did_you_mean(part.root, snap.keys())) if snap is not None else ""
        raise NotFound(f"no territory {part.root!r} in territory model {view.model.id}{suggestions}")
    if fmt == s.TreeFormat.JSON:
        body = {"model": view.model.model_dump(mode="json"), "root": export.tree_json(snap, counts, part)}
        return json_response(body, etag=(view.model.id, view.model.version))
    if fmt == s.TreeFormat.MERMAID:
        text = export.to_mermaid(snap, counts, part)
    elif fmt == s.TreeFormat.DOT:
        text = export.to_dot(snap, counts, part)
    elif fmt == s.TreeFormat.TEXT:
        text = export.to_text(snap, counts, part)
    else:
        return page_response(tree_page(view, part, user))
    resp = Response(text, mimetype=TEXT_TYPES[fmt])
    resp.headers["Content-Security-Policy"] = "default-src 'none'"
    return resp


def tree_page(view: service.TreeView, part: export.View, user: str | None = None) -> str:
    """The HTML tree under this response's CSP nonce; with the signed-in ``user``, a sign-out button."""
    return export.to_html(
        view.snapshot,
        view.lead_counts,
        model_id=view.model.id,
        model_name=view.model.name,
        model_status=view.model.status.value,
        model_version=view.model.version,
        view=part,
        nonce=nonce(),
        user=user,
        csrf_token=generate_csrf() if user is not None else None,
    )


# --- territories --------------------------------------------------------------------------------------


@api.get("/territory-models/<int:id>/territories", tags=[territories], responses={200: s.TerritoryPage})
@allow(INTERNAL_ROLES)
def list_territories(path: s.ModelPath, query: s.TerritoryListQuery) -> Response:
    return json_response(territory_service.list_territories(_db(), current_principal(), path.id, query))


@api.post("/territory-models/<int:id>/territories", tags=[territories], responses={201: s.TerritoryChanged})
@allow(ADMIN)
def create_territory(path: s.ModelPath, body: s.TerritoryCreate) -> Response:
    out = territory_service.create_territory(_db(), current_principal(), path.id, if_match(), body)
    resp = _changed(out, path.id, 201)
    resp.headers["Location"] = f"/v1/territory-models/{path.id}/territories/{body.key}"
    return resp


@api.get("/territory-models/<int:id>/territories/<key>", tags=[territories], responses={200: s.TerritoryOut})
@allow(INTERNAL_ROLES)
def get_territory(path: s.TerritoryPath) -> Response:
    """One territory; its ETag is the model's (send it with changes)."""
    out, version = territory_service.get_territory(_db(), current_principal(), path.id, path.key)
    return json_response(out, etag=(path.id, version))


@api.patch(
    "/territory-models/<int:id>/territories/<key>", tags=[territories], responses={200: s.TerritoryChanged}
)
@allow(ADMIN)
def update_territory(path: s.TerritoryPath, body: s.TerritoryUpdate) -> Response:
    out = territory_service.update_territory(_db(), current_principal(), path.id, path.key, if_match(), body)
    return _changed(out, path.id)


@api.delete(
    "/territory-models/<int:id>/territories/<key>", tags=[territories], responses={200: s.TerritoryChanged}
)
@allow(ADMIN)
def delete_territory(path: s.TerritoryPath) -> Response:
    """Delete a leaf territory (one with children is refused with 422)."""
    out = territory_service.delete_territory(_db(), current_principal(), path.id, path.key, if_match())
    return _changed(out, path.id)


@api.put(
    "/territory-models/<int:id>/territories/<key>/coverage",
    tags=[territories],
    responses={200: s.TerritoryChanged},
)
@allow(ADMIN)
def set_territory_coverage(path: s.TerritoryPath, body: s.CoverageSet) -> Response:
    """Replace the territory's coverage (include / exclude per dimension)."""
    out = territory_service.set_coverage(_db(), current_principal(), path.id, path.key, if_match(), body)
    return _changed(out, path.id)


@api.put(
    "/territory-models/<int:id>/territories/<key>/team",
    tags=[territories],
    responses={200: s.TerritoryChanged},
)
@allow(ADMIN)
def set_territory_team(path: s.TerritoryPath, body: s.TeamSet) -> Response:
    """Replace the territory's team (users and their roles on it)."""
    out = territory_service.set_team(_db(), current_principal(), path.id, path.key, if_match(), body)
    return _changed(out, path.id)


# --- dimensions ---------------------------------------------------------------------------------------


@api.get("/territory-models/<int:id>/dimensions", tags=[dimensions], responses={200: s.DimensionList})
@allow(INTERNAL_ROLES)
def list_territory_dimensions(path: s.ModelPath) -> Response:
    """The model's dimensions: built-in (customer, program, product, geography, partner), then declared."""
    out = dimension_service.list_dimensions(_db(), current_principal(), path.id)
    return json_response(out, etag=(path.id, out.model_version))


@api.post("/territory-models/<int:id>/dimensions", tags=[dimensions], responses={201: s.DimensionChanged})
@allow(ADMIN)
def declare_territory_dimension(path: s.ModelPath, body: s.DimensionCreate) -> Response:
    """Declare a dimension on a planning model: its name, the lead fact feeding it; then import its
    members and cover it like any other (coverage, rules files' ``dimensions``)."""
    out = dimension_service.declare_dimension(_db(), current_principal(), path.id, if_match(), body)
    resp = json_response(out, 201, etag=(path.id, out.model_version))
    resp.headers["Location"] = f"/v1/territory-models/{path.id}/dimensions/{body.name}/members"
    return resp


@api.get(
    "/territory-models/<int:id>/dimensions/<key>/members", tags=[dimensions], responses={200: s.MemberPage}
)
@allow(INTERNAL_ROLES)
def list_dimension_members(path: s.DimensionPath, query: s.MemberQuery) -> Response:
    """A dimension's members on the model (geography: every ISO 3166-1 country and ISO 3166-2
    subdivision, the regions, and what the model's admins imported)."""
    return json_response(dimension_service.list_members(_db(), current_principal(), path.id, path.key, query))


@api.post(
    "/territory-models/<int:id>/dimensions/<key>/members/import",
    tags=[dimensions],
    responses={200: s.MembersImportReport},
)
@allow(ADMIN)
def import_dimension_members(path: s.DimensionPath, body: s.MembersImport) -> Response:
    """Replace the members imported for a dimension of a planning model (CSV ``key,parent,name``; every
    problem reported as file:row:column, nothing written unless all is well)."""
    out = dimension_service.import_members(_db(), current_principal(), path.id, path.key, if_match(), body)
    return json_response(out, etag=(out.model_id, out.model_version))


@api.post(
    "/territory-models/<int:id>/dimensions/<key>/members/import/upload",
    tags=[dimensions],
    responses={200: s.MembersImportReport},
)
@allow(ADMIN)
def upload_dimension_members(path: s.DimensionPath) -> Response:
    """Replace the members imported for a dimension of a planning model with the CSV file part
    ``members`` of a multipart form (``key,parent,name``; problems name the file as uploaded)."""
    text, filename = uploaded_texts(request.files, ["members"])["members"]
    try:
        body = s.MembersImport.model_validate({"members": text, "filename": filename})
    except ValidationError as exc:
        return validation_error_response(exc)
    out = dimension_service.import_members(_db(), current_principal(), path.id, path.key, if_match(), body)
    return json_response(out, etag=(out.model_id, out.model_version))


RAW_BODY_SCHEMAS["upload_dimension_members"] = {
    "type": "object",
    "required": ["members"],
    "properties": {"members": {**_CSV_FILE, "description": "key,parent,name"}},
}


IMPORT_OPERATIONS.update(
    {
        "import_territory_model",
        "import_dimension_members",
        "upload_territory_model",
        "upload_dimension_members",
    }
)
RAW_BODIES.update({"upload_territory_model": MULTIPART, "upload_dimension_members": MULTIPART})
