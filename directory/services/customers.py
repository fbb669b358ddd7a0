"""Customers (sales accounts) and their account hierarchy; only the brand owner's people see them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.database import Database
from common.errors import Conflict, FieldProblem, ValidationFailed
from common.pagination import Page
from common.principal import Principal
from directory import schemas as s
from directory.models import Customer
from directory.services.hierarchy import id_for_key, keys_by_id, parent_key, would_cycle
from directory.services.records import Entity, page


def customer_out(c: Customer, parent_key: str | None) -> s.CustomerOut:
    return s.CustomerOut(
        id=c.id,
        key=c.key,
        name=c.name,
        parent_key=parent_key,
        country=c.country,
        region=c.region,
        industry=c.industry,
        size=c.size,
        active=c.active,
        version=c.version,
    )


def _out(session: Session, c: Customer) -> s.CustomerOut:
    return customer_out(c, parent_key(session, Customer, c))


def _visible(principal: Principal, c: Customer) -> bool:
    return principal.internal


CUSTOMERS = Entity(Customer, "customer", "customer", _out, _visible)


def create_customer(db: Database, principal: Principal, data: s.CustomerCreate) -> s.CustomerOut:
    with db.transaction() as session:
        if session.scalar(select(Customer.id).where(Customer.key == data.key)):
            raise Conflict(f"customer {data.key!r} already exists")
        parent_id = id_for_key(session, Customer, data.parent_key, "/parent_key")
        customer = Customer(**data.model_dump(exclude={"parent_key"}), parent_id=parent_id)
        return CUSTOMERS.create(session, principal, customer, f"customer {data.key!r}")


def get_customer(db: Database, principal: Principal, customer_id: int) -> s.CustomerOut:
    with db.transaction() as session:
        return _out(session, CUSTOMERS.get(session, principal, customer_id))


def list_customers(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.CustomerOut]:
    with db.transaction() as session:
        stmt = select(Customer)
        if not principal.internal:
            stmt = stmt.where(func.false())
        rows, cursor = page(session, stmt, Customer, query)
        parents = keys_by_id(session, Customer, {r.parent_id for r in rows if r.parent_id})
        items = [customer_out(r, parents.get(r.parent_id or 0)) for r in rows]
        return Page[s.CustomerOut](items=items, next_cursor=cursor)


def update_customer(
    db: Database, principal: Principal, customer_id: int, if_match: str | None, data: s.CustomerUpdate
) -> s.CustomerOut:
    with db.transaction() as session:
        c = CUSTOMERS.get_for_update(session, principal, customer_id, if_match)
        changes = data.model_dump(exclude_unset=True, exclude={"parent_key"})
        if "parent_key" in data.model_fields_set:
            parent_id = id_for_key(session, Customer, data.parent_key, "/parent_key")
            if would_cycle(session, Customer, c.id, parent_id):
                raise ValidationFailed(
                    "Cycle",
                    [FieldProblem("/parent_key", "this parent would make the account its own ancestor")],
                )
            changes["parent_id"] = parent_id
        return CUSTOMERS.update(session, principal, c, changes)
