"""The territory pages a person opens in a browser (signed in, or with a Bearer key): the list of
territory models and each model's tree. Not part of the JSON API, so not in the OpenAPI document.

Internal roles only, as on the API; a partner's session gets 403 like its key.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request
from flask_wtf.csrf import generate_csrf

from common.database import Database
from common.errors import FieldProblem, ValidationFailed
from common.pages import nonce, page_response
from common.principal import INTERNAL_ROLES
from directory.pages import page_principal, signed_in_user
from territory import export, service
from territory import schemas as s
from territory.api import render_tree

pages = Blueprint("territory_pages", __name__, template_folder="templates")

#: The models listed on one page of ``/territory-models.html`` (the rest by id, or through the API).
MODELS_LISTED = 500


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


@pages.get("/territory-models.html")
def territory_models_page() -> Response:
    """The territory models, each linking to its tree (where a person lands after signing in)."""
    principal = page_principal(INTERNAL_ROLES)
    listed = service.list_models(_db(), principal, s.ModelListQuery(limit=MODELS_LISTED))
    user = signed_in_user()
    html = render_template(
        "territory_models.html",
        models=listed.items,
        more=listed.next_cursor is not None,
        nonce=nonce(),
        user=user,
        csrf_token=generate_csrf() if user is not None else None,
    )
    return page_response(html)


@pages.get("/territory-models/<int:model_id>/tree.html")
def territory_tree_page(model_id: int) -> Response:
    """The tree as a collapsible HTML page (as ``/v1/...tree?format=html``), ``?root=KEY&depth=N``."""
    principal = page_principal(INTERNAL_ROLES)
    depth = request.args.get("depth", "")
    if depth and not (depth.isascii() and depth.isdigit() and int(depth) <= 100):
        raise ValidationFailed("Invalid query", [FieldProblem("/depth", "a whole number from 0 to 100")])
    part = export.View(request.args.get("root") or None, int(depth) if depth else None)
    view = service.model_tree(_db(), principal, model_id)
    return render_tree(view, s.TreeFormat.HTML, part, signed_in_user())
