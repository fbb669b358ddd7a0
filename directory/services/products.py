"""The product catalog hierarchy (groups, subgroups, items; where each may sit is ``directory.catalog``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.database import Database
from common.errors import Conflict, FieldProblem, ValidationFailed
from common.pagination import Page
from common.principal import Principal
from directory import schemas as s
from directory.catalog import check_product_parent
from directory.enums import ProductLevel
from directory.models import Product
from directory.services.hierarchy import id_for_key, keys_by_id, parent_key
from directory.services.records import Entity, page


def product_out(p: Product, parent_key: str | None) -> s.ProductOut:
    return s.ProductOut(
        id=p.id,
        key=p.key,
        name=p.name,
        level=p.level,
        parent_key=parent_key,
        active=p.active,
        version=p.version,
    )


def _out(session: Session, p: Product) -> s.ProductOut:
    return product_out(p, parent_key(session, Product, p))


PRODUCTS = Entity(Product, "product", "product", _out)


def _parent_id(session: Session, level: ProductLevel, key: str | None) -> int | None:
    """The id of the parent named by ``key``, refused when the catalog puts ``level`` elsewhere."""
    parent_id = id_for_key(session, Product, key, "/parent_key")
    parent = session.get(Product, parent_id) if parent_id else None
    problem = check_product_parent(level, parent.level if parent else None)
    if problem:
        raise ValidationFailed("Invalid catalog position", [FieldProblem("/parent_key", problem)])
    return parent_id


def create_product(db: Database, principal: Principal, data: s.ProductCreate) -> s.ProductOut:
    with db.transaction() as session:
        if session.scalar(select(Product.id).where(Product.key == data.key)):
            raise Conflict(f"product {data.key!r} already exists")
        parent_id = _parent_id(session, data.level, data.parent_key)
        product = Product(**data.model_dump(exclude={"parent_key"}), parent_id=parent_id)
        return PRODUCTS.create(session, principal, product, f"product {data.key!r}")


def get_product(db: Database, principal: Principal, product_id: int) -> s.ProductOut:
    with db.transaction() as session:
        return _out(session, PRODUCTS.get(session, principal, product_id))


def list_products(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.ProductOut]:
    with db.transaction() as session:
        rows, cursor = page(session, select(Product), Product, query)
        parents = keys_by_id(session, Product, {r.parent_id for r in rows if r.parent_id})
        return Page[s.ProductOut](
            items=[product_out(r, parents.get(r.parent_id or 0)) for r in rows], next_cursor=cursor
        )


def update_product(
    db: Database, principal: Principal, product_id: int, if_match: str | None, data: s.ProductUpdate
) -> s.ProductOut:
    with db.transaction() as session:
        p = PRODUCTS.get_for_update(session, principal, product_id, if_match)
        changes = data.model_dump(exclude_unset=True, exclude={"parent_key"})
        if "parent_key" in data.model_fields_set:
            changes["parent_id"] = _parent_id(session, p.level, data.parent_key)
        return PRODUCTS.update(session, principal, p, changes)
