"""Customers (sales accounts) and their account hierarchy.

The brand owner's people see every customer. A partner looks up the active customers of the customer
master (by name, key or web domain) and the ones its own organization proposed; another partner's
proposal answers like a missing customer (it would tell who is working on which deal). Partners propose
new customers; an admin takes a proposal into the master (``proposed: false``), which every partner then
sees.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from common.database import Database
from common.errors import Conflict, FieldProblem, Forbidden, ValidationFailed
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
        subdivision=c.subdivision,
        postal_code=c.postal_code,
        region=c.region,
        industry=c.industry,
        size=c.size,
        domain=c.domain,
        proposed=c.proposed_by_organization_id is not None,
        proposed_by_organization_id=c.proposed_by_organization_id,
        active=c.active,
        version=c.version,
    )


def _out(session: Session, c: Customer) -> s.CustomerOut:
    return customer_out(c, parent_key(session, Customer, c))


class Visibility(Protocol):
    """What `customer_visible` looks at: a customer, or a row of those columns."""

    @property
    def active(self) -> bool: ...

    @property
    def proposed_by_organization_id(self) -> int | None: ...


def customer_visible(principal: Principal, c: Visibility) -> bool:
    """Whether the caller may see (and name on a lead) the customer."""
    if principal.internal:
        return True
    return c.active and c.proposed_by_organization_id in (None, principal.organization_id)


def _visible_to(principal: Principal) -> ColumnElement[bool]:
    """``customer_visible`` as a SQL condition."""
    return and_(
        Customer.active.is_(True),
        or_(
            Customer.proposed_by_organization_id.is_(None),
            Customer.proposed_by_organization_id == principal.organization_id,
        ),
    )


def _matches(q: str) -> ColumnElement[bool]:
    return or_(
        Customer.name.icontains(q, autoescape=True),
        Customer.key.icontains(q, autoescape=True),
        Customer.domain.icontains(q, autoescape=True),
    )


CUSTOMERS = Entity(Customer, "customer", "customer", _out, customer_visible)


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


def list_customers(db: Database, principal: Principal, query: s.CustomerQuery) -> Page[s.CustomerOut]:
    """Customers in id order; ``q`` searches names, keys and web domains (partners: what they may see)."""
    with db.transaction() as session:
        stmt = select(Customer)
        if not principal.internal:
            stmt = stmt.where(_visible_to(principal))
        if query.q:
            stmt = stmt.where(_matches(query.q))
        rows, cursor = page(session, stmt, Customer, query.model_copy(update={"q": None}))
        parents = keys_by_id(session, Customer, {r.parent_id for r in rows if r.parent_id})
        items = [customer_out(r, parents.get(r.parent_id or 0)) for r in rows]
        return Page[s.CustomerOut](items=items, next_cursor=cursor)


def update_customer(
    db: Database, principal: Principal, customer_id: int, if_match: str | None, data: s.CustomerUpdate
) -> s.CustomerOut:
    with db.transaction() as session:
        c = CUSTOMERS.get_for_update(session, principal, customer_id, if_match)
        changes = data.model_dump(exclude_unset=True, exclude={"parent_key", "proposed"})
        if data.proposed is False:  # taken into the customer master: every partner sees it now
            changes["proposed_by_organization_id"] = None
        if "parent_key" in data.model_fields_set:
            parent_id = id_for_key(session, Customer, data.parent_key, "/parent_key")
            if would_cycle(session, Customer, c.id, parent_id):
                raise ValidationFailed(
                    "Cycle",
                    [FieldProblem("/parent_key", "this parent would make the account its own ancestor")],
                )
            changes["parent_id"] = parent_id
        country, subdivision = changes.get("country", c.country), changes.get("subdivision", c.subdivision)
        if subdivision is not None and not subdivision.startswith(f"{country}-"):
            raise ValidationFailed(
                "Subdivision outside the country",
                [FieldProblem("/subdivision", f"subdivision {subdivision!r} is not in country {country!r}")],
            )
        return CUSTOMERS.update(session, principal, c, changes)


class NotAPartner(Forbidden):
    code, title = "not-a-partner", "Only partners propose customers"


def propose_customer(db: Database, principal: Principal, data: s.CustomerProposal) -> s.CustomerOut:
    """A partner proposes a customer it did not find: visible to its organization and the brand owner
    (usable on its leads at once) until an admin takes it into the customer master. The key is made
    here (``P-`` and random hex): a key the partner chose could collide with, and so reveal, a customer
    it may not see. A web domain already on a customer the partner sees answers 409 naming that one."""
    if principal.internal:
        raise NotAPartner("The brand owner's people create customers directly (POST /v1/customers)")
    with db.transaction() as session:
        if data.domain is not None:
            known = session.scalar(
                select(Customer)
                .where(_visible_to(principal), Customer.domain == data.domain)
                .order_by(Customer.id)
                .limit(1)
            )
            if known is not None:
                raise Conflict(
                    f"customer {known.key!r} ({known.name}) already has the domain {data.domain!r}; "
                    "name it on the lead instead",
                    customer_id=known.id,
                )
        customer = Customer(
            key=f"P-{secrets.token_hex(6).upper()}",
            **data.model_dump(),
            proposed_by_organization_id=principal.organization_id,
            proposed_by=principal.user_id,
        )
        return CUSTOMERS.create(session, principal, customer, "customer")
