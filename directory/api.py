"""REST endpoints for reference data: organizations, partner programs, users and API keys, customers,
products (with CSV import). Views parse, call one service function, serialise."""

from __future__ import annotations

from flask import Response, current_app, request
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import BaseModel

from common.auth import allow, current_principal
from common.database import Database
from common.http import if_match, json_response
from common.openapi import IMPORT_OPERATIONS, RAW_BODIES, view_operation_id
from common.pagination import Page
from common.principal import ANY_ROLE, PARTNER_ROLES, Role
from directory import importer
from directory import schemas as s
from directory.services import customers, organizations, products, programs, users

api = APIBlueprint(
    "directory",
    __name__,
    url_prefix="/v1",
    abp_security=[{"bearer": []}],
    operation_id_callback=view_operation_id,
)

orgs_tag = Tag(name="organizations", description="Brand owner and partner organizations, program memberships")
programs_tag = Tag(name="programs", description="Partner programs")
users_tag = Tag(name="users", description="Users (resources), their roles and API keys")
customers_tag = Tag(name="customers", description="Customers (sales accounts) and their account hierarchy")
products_tag = Tag(name="products", description="The product catalog hierarchy")

ADMIN = [Role.ADMIN]
PARTNER_MANAGERS = [Role.ADMIN, Role.PARTNER_ADMIN]


def _db() -> Database:
    db: Database = current_app.extensions["prm.db"]
    return db


def _created(out: BaseModel, entity_id: int, version: int, location: str) -> Response:
    resp = json_response(out, 201, etag=(entity_id, version))
    resp.headers["Location"] = location
    return resp


# --- organizations ------------------------------------------------------------------------------------


@api.post("/organizations", tags=[orgs_tag], responses={201: s.OrganizationOut})
@allow(ADMIN)
def create_organization(body: s.OrganizationCreate) -> Response:
    out = organizations.create_organization(_db(), current_principal(), body)
    return _created(out, out.id, out.version, f"/v1/organizations/{out.id}")


@api.get("/organizations", tags=[orgs_tag], responses={200: Page[s.OrganizationOut]})
@allow(ANY_ROLE)
def list_organizations(query: s.ListQuery) -> Response:
    return json_response(organizations.list_organizations(_db(), current_principal(), query))


@api.get("/organizations/<int:id>", tags=[orgs_tag], responses={200: s.OrganizationOut})
@allow(ANY_ROLE)
def get_organization(path: s.IdPath) -> Response:
    out = organizations.get_organization(_db(), current_principal(), path.id)
    return json_response(out, etag=(out.id, out.version))


@api.patch("/organizations/<int:id>", tags=[orgs_tag], responses={200: s.OrganizationOut})
@allow(ADMIN)
def update_organization(path: s.IdPath, body: s.OrganizationUpdate) -> Response:
    out = organizations.update_organization(_db(), current_principal(), path.id, if_match(), body)
    return json_response(out, etag=(out.id, out.version))


# --- partner programs ---------------------------------------------------------------------------------


@api.post("/programs", tags=[programs_tag], responses={201: s.ProgramOut})
@allow(ADMIN)
def create_program(body: s.ProgramCreate) -> Response:
    out = programs.create_program(_db(), current_principal(), body)
    return _created(out, out.id, out.version, f"/v1/programs/{out.id}")


@api.get("/programs", tags=[programs_tag], responses={200: Page[s.ProgramOut]})
@allow(ANY_ROLE)
def list_programs(query: s.ListQuery) -> Response:
    return json_response(programs.list_programs(_db(), current_principal(), query))


@api.get("/programs/<int:id>", tags=[programs_tag], responses={200: s.ProgramOut})
@allow(ANY_ROLE)
def get_program(path: s.IdPath) -> Response:
    out = programs.get_program(_db(), current_principal(), path.id)
    return json_response(out, etag=(out.id, out.version))


@api.patch("/programs/<int:id>", tags=[programs_tag], responses={200: s.ProgramOut})
@allow(ADMIN)
def update_program(path: s.IdPath, body: s.ProgramUpdate) -> Response:
    out = programs.update_program(_db(), current_principal(), path.id, if_match(), body)
    return json_response(out, etag=(out.id, out.version))


# --- users and API keys -------------------------------------------------------------------------------


@api.post("/users", tags=[users_tag], responses={201: s.UserOut})
@allow(PARTNER_MANAGERS)
def create_user(body: s.UserCreate) -> Response:
    out = users.create_user(_db(), current_principal(), body)
    return _created(out, out.id, out.version, f"/v1/users/{out.id}")


@api.get("/users", tags=[users_tag], responses={200: Page[s.UserOut]})
@allow(ANY_ROLE)
def list_users(query: s.ListQuery) -> Response:
    return json_response(users.list_users(_db(), current_principal(), query))


@api.get("/users/<int:id>", tags=[users_tag], responses={200: s.UserOut})
@allow(ANY_ROLE)
def get_user(path: s.IdPath) -> Response:
    out = users.get_user(_db(), current_principal(), path.id)
    return json_response(out, etag=(out.id, out.version))


@api.patch("/users/<int:id>", tags=[users_tag], responses={200: s.UserOut})
@allow(PARTNER_MANAGERS)
def update_user(path: s.IdPath, body: s.UserUpdate) -> Response:
    out = users.update_user(_db(), current_principal(), path.id, if_match(), body)
    return json_response(out, etag=(out.id, out.version))


@api.post("/users/<int:id>/api-keys", tags=[users_tag], responses={201: s.ApiKeyCreated})
@allow(ANY_ROLE)
def create_api_key(path: s.IdPath, body: s.ApiKeyCreate) -> Response:
    out = users.create_api_key(_db(), current_principal(), path.id, body)
    return _created(out, out.id, out.version, f"/v1/users/{path.id}/api-keys")


@api.get("/users/<int:id>/api-keys", tags=[users_tag], responses={200: s.ApiKeyList})
@allow(ANY_ROLE)
def list_api_keys(path: s.IdPath) -> Response:
    return json_response(s.ApiKeyList(items=users.list_api_keys(_db(), current_principal(), path.id)))


@api.delete("/api-keys/<int:id>", tags=[users_tag], responses={200: s.ApiKeyOut})
@allow(ANY_ROLE)
def revoke_api_key(path: s.IdPath) -> Response:
    out = users.revoke_api_key(_db(), current_principal(), path.id, if_match())
    return json_response(out, etag=(out.id, out.version))


# --- customers ----------------------------------------------------------------------------------------


@api.post("/customers", tags=[customers_tag], responses={201: s.CustomerOut})
@allow(ADMIN)
def create_customer(body: s.CustomerCreate) -> Response:
    out = customers.create_customer(_db(), current_principal(), body)
    return _created(out, out.id, out.version, f"/v1/customers/{out.id}")


@api.get("/customers", tags=[customers_tag], responses={200: Page[s.CustomerOut]})
@allow(ANY_ROLE)
def list_customers(query: s.CustomerQuery) -> Response:
    """Find customers by name, key or web domain (partners: the customer master's active customers and
    their own organization's proposals)."""
    return json_response(customers.list_customers(_db(), current_principal(), query))


@api.post("/customers/proposals", tags=[customers_tag], responses={201: s.CustomerOut})
@allow(PARTNER_ROLES)
def propose_customer(body: s.CustomerProposal) -> Response:
    """Propose a customer the partner did not find (its organization may name it on leads at once; an
    admin takes it into the customer master with ``PATCH {"proposed": false}``)."""
    out = customers.propose_customer(_db(), current_principal(), body)
    return _created(out, out.id, out.version, f"/v1/customers/{out.id}")


@api.get("/customers/<int:id>", tags=[customers_tag], responses={200: s.CustomerOut})
@allow(ANY_ROLE)
def get_customer(path: s.IdPath) -> Response:
    out = customers.get_customer(_db(), current_principal(), path.id)
    return json_response(out, etag=(out.id, out.version))


@api.patch("/customers/<int:id>", tags=[customers_tag], responses={200: s.CustomerOut})
@allow(ADMIN)
def update_customer(path: s.IdPath, body: s.CustomerUpdate) -> Response:
    out = customers.update_customer(_db(), current_principal(), path.id, if_match(), body)
    return json_response(out, etag=(out.id, out.version))


@api.post("/customers/import", tags=[customers_tag], responses={200: s.ImportReport})
@allow(ADMIN)
def import_customers(query: s.ImportQuery) -> Response:
    text = request.get_data(as_text=True)
    return json_response(importer.import_customers(_db(), current_principal(), query.filename, text))


# --- products -----------------------------------------------------------------------------------------


@api.post("/products", tags=[products_tag], responses={201: s.ProductOut})
@allow(ADMIN)
def create_product(body: s.ProductCreate) -> Response:
    out = products.create_product(_db(), current_principal(), body)
    return _created(out, out.id, out.version, f"/v1/products/{out.id}")


@api.get("/products", tags=[products_tag], responses={200: Page[s.ProductOut]})
@allow(ANY_ROLE)
def list_products(query: s.ListQuery) -> Response:
    return json_response(products.list_products(_db(), current_principal(), query))


@api.get("/products/<int:id>", tags=[products_tag], responses={200: s.ProductOut})
@allow(ANY_ROLE)
def get_product(path: s.IdPath) -> Response:
    out = products.get_product(_db(), current_principal(), path.id)
    return json_response(out, etag=(out.id, out.version))


@api.patch("/products/<int:id>", tags=[products_tag], responses={200: s.ProductOut})
@allow(ADMIN)
def update_product(path: s.IdPath, body: s.ProductUpdate) -> Response:
    out = products.update_product(_db(), current_principal(), path.id, if_match(), body)
    return json_response(out, etag=(out.id, out.version))


@api.post("/products/import", tags=[products_tag], responses={200: s.ImportReport})
@allow(ADMIN)
def import_products(query: s.ImportQuery) -> Response:
    text = request.get_data(as_text=True)
    return json_response(importer.import_products(_db(), current_principal(), query.filename, text))


RAW_BODIES.update({"import_customers": "text/csv", "import_products": "text/csv"})
IMPORT_OPERATIONS.update({"import_customers", "import_products"})
