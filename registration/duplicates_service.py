"""The duplicate check against the database: a registration's likely duplicates among other open
registrations and opportunities, a reviewers' search by customer, contact and product, and the policy
option that refuses a submit while an approved registration protects the same customer and product.

The database narrows the candidates (same account hierarchy, same product group, the contact); the pure
scorer (``registration.duplicates``) decides what matches, with a score and its evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from common.database import Database
from common.errors import Conflict, FieldProblem, ValidationFailed
from common.principal import Principal
from directory.models import Customer, Product
from registration import duplicates as d
from registration import duplicates_schemas as ds
from registration.lifecycle import RegistrationStatus
from registration.models import Lead, LeadProduct
from registration.service import visible_lead
from rules.outcome import PolicyDecision

#: Registrations that still claim their deal (drafts claim nothing yet; rejected, withdrawn and expired
#: ones no longer do).
OPEN_STATUSES = (
    RegistrationStatus.SUBMITTED.value,
    RegistrationStatus.PENDING_APPROVAL.value,
    RegistrationStatus.INFO_REQUESTED.value,
    RegistrationStatus.APPROVED.value,
)
DEFAULT_RULE = "same sales account (account hierarchy included) and same primary product or product group"
SEARCH_RULE = "every criterion given: customer (account hierarchy included), contact, product (its group)"


class OverlappingRegistration(Conflict):
    """An approved, unexpired registration already protects the same customer and product."""

    code, title = "registration-overlaps", "Registration overlaps an approved one"


# --- hierarchies --------------------------------------------------------------------------------------

Tree = type[Customer] | type[Product]


def lineages(session: Session, model: Tree, ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Each record's keys from the top of its hierarchy down to itself (one query per level)."""
    wanted = set(ids)
    rows: dict[int, tuple[str, int | None]] = {}
    todo = set(wanted)
    while todo:
        found = session.execute(select(model.id, model.key, model.parent_id).where(model.id.in_(todo))).all()
        for id_, key, parent in found:
            rows[id_] = (key, parent)
        todo = {parent for _, _, parent in found if parent is not None and parent not in rows}

    def lineage(start: int) -> tuple[str, ...]:
        keys: list[str] = []
        seen: set[int] = set()
        current: int | None = start
        while current is not None and current in rows and current not in seen:
            seen.add(current)
            key, current = rows[current]
            keys.append(key)
        return tuple(reversed(keys))

    return {i: lineage(i) for i in wanted if i in rows}


def _top(session: Session, model: Tree, record_id: int) -> int:
    """The id at the top of the record's hierarchy."""
    seen: set[int] = set()
    current = record_id
    while current not in seen:
        seen.add(current)
        parent = session.scalar(select(model.parent_id).where(model.id == current))
        if parent is None:
            break
        current = parent
    return current


def hierarchy_ids(session: Session, model: Tree, record_id: int) -> set[int]:
    """Every record of the hierarchy ``record_id`` belongs to (from its top down)."""
    found = {_top(session, model, record_id)}
    frontier = set(found)
    while frontier:
        children = set(session.scalars(select(model.id).where(model.parent_id.in_(frontier))))
        frontier = children - found
        found |= frontier
    return found


# --- leads as deals -----------------------------------------------------------------------------------


def _product_ids(lead: Lead) -> list[int]:
    """The lead's products, the primary first."""
    return [p.product_id for p in sorted(lead.products, key=lambda p: (not p.is_primary, p.id))]


def _deals(session: Session, leads: Sequence[Lead]) -> dict[int, d.Deal]:
    customers = lineages(session, Customer, {x.customer_id for x in leads if x.customer_id is not None})
    products = lineages(session, Product, {p for x in leads for p in _product_ids(x)})
    deals = {}
    for lead in leads:
        primary_first = _product_ids(lead)
        if primary_first and not any(p.is_primary for p in lead.products):
            primary_first = []  # without a primary product there is no "primary product" to compare
        deals[lead.id] = d.Deal(
            customer=(
                d.Account(lead.customer_id, customers[lead.customer_id])
                if lead.customer_id in customers and lead.customer_id is not None
                else None
            ),
            products=tuple(d.Item(p, products[p]) for p in primary_first if p in products),
            contact_name=lead.contact_name,
            contact_email=lead.contact_email,
            partner_id=lead.primary_partner_id,
        )
    return deals


def _registration_candidates(session: Session, stmt: Select[Any]) -> list[d.Candidate]:
    leads: list[Lead] = list(session.scalars(stmt.where(Lead.status.in_(OPEN_STATUSES)).order_by(Lead.id)))
    deals = _deals(session, leads)
    return [
        d.Candidate(
            kind=ds.DuplicateKind.REGISTRATION.value,
            id=lead.id,
            number=lead.registration_number,
            status=lead.status,
            organization_id=lead.organization_id,
            deal=deals[lead.id],
            name=lead.name,
        )
        for lead in leads
    ]


def _visible_to(principal: Principal, stmt: Select[Any], organization_column: Any) -> Select[Any]:
    """Partners see only their own organization's records among the matches."""
    if principal.internal:
        return stmt
    return stmt.where(organization_column == principal.organization_id)


def _out(matches: Sequence[d.Match], limit: int) -> list[ds.DuplicateOut]:
    return [
        ds.DuplicateOut(
            kind=ds.DuplicateKind(m.candidate.kind),
            id=m.candidate.id,
            number=m.candidate.number,
            name=m.candidate.name,
            status=m.candidate.status,
            organization_id=m.candidate.organization_id,
            customer_id=m.candidate.deal.customer.id if m.candidate.deal.customer else None,
            primary_product_id=(
                m.candidate.deal.primary_product.id if m.candidate.deal.primary_product else None
            ),
            score=m.score,
            evidence=list(m.evidence),
        )
        for m in matches[:limit]
    ]


# --- the registration's duplicates --------------------------------------------------------------------


def lead_duplicates(db: Database, principal: Principal, lead_id: int, limit: int = 50) -> ds.DuplicatesOut:
    """Open registrations and opportunities that look like the same deal as the lead, strongest first."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        mine = _deals(session, [lead])[lead.id]
        if mine.customer is None or mine.primary_product is None or lead.customer_id is None:
            return ds.DuplicatesOut(lead_id=lead.id, rule=DEFAULT_RULE, items=[])
        accounts = hierarchy_ids(session, Customer, lead.customer_id)
        stmt = select(Lead).where(Lead.id != lead.id, Lead.customer_id.in_(accounts))
        candidates = _registration_candidates(session, _visible_to(principal, stmt, Lead.organization_id))
        return ds.DuplicatesOut(
            lead_id=lead.id, rule=DEFAULT_RULE, items=_out(d.find_duplicates(mine, candidates), limit)
        )


def search_duplicates(db: Database, principal: Principal, query: ds.DuplicateSearchQuery) -> ds.DuplicatesOut:
    """Open registrations and opportunities matching every given criterion, strongest first."""
    if query.customer_id is None and query.product_id is None and not query.contact:
        raise ValidationFailed(
            "Search by at least one of customer, contact and product",
            [FieldProblem("/query", "give customer_id, contact or product_id")],
        )
    with db.transaction() as session:
        problems = []
        if query.customer_id is not None and session.get(Customer, query.customer_id) is None:
            problems.append(FieldProblem("/query/customer_id", f"no customer {query.customer_id}"))
        if query.product_id is not None and session.get(Product, query.product_id) is None:
            problems.append(FieldProblem("/query/product_id", f"no product {query.product_id}"))
        if problems:
            raise ValidationFailed("The search names records that do not exist", problems)
        search = d.Search(contact=query.contact)
        stmt = select(Lead)
        if query.customer_id is not None:
            customer = lineages(session, Customer, [query.customer_id])[query.customer_id]
            search = d.Search(d.Account(query.customer_id, customer), search.contact, search.product)
            stmt = stmt.where(Lead.customer_id.in_(hierarchy_ids(session, Customer, query.customer_id)))
        if query.product_id is not None:
            product = lineages(session, Product, [query.product_id])[query.product_id]
            search = d.Search(search.customer, search.contact, d.Item(query.product_id, product))
            group = hierarchy_ids(session, Product, query.product_id)
            stmt = stmt.where(
                exists().where(LeadProduct.lead_id == Lead.id, LeadProduct.product_id.in_(group))
            )
        if query.contact:
            wanted = query.contact.casefold()
            stmt = stmt.where(
                or_(
                    func.lower(Lead.contact_email) == wanted,
                    func.lower(Lead.contact_name).contains(wanted, autoescape=True),
                )
            )
        candidates = _registration_candidates(session, _visible_to(principal, stmt, Lead.organization_id))
        return ds.DuplicatesOut(
            lead_id=None, rule=SEARCH_RULE, items=_out(d.search_duplicates(search, candidates), query.limit)
        )


# --- the policy option: no second registration of a protected deal ------------------------------------


def refuse_overlapping_registration(
    session: Session, lead: Lead, policy: PolicyDecision, now: datetime
) -> None:
    """When the policy blocks overlapping registrations, refuse (409) to submit a lead whose customer and
    primary product an approved, unexpired registration already protects. The problem names that
    registration's number, not its partner."""
    if not policy.block_overlapping_registrations or lead.customer_id is None:
        return
    product_id = next((p.product_id for p in lead.products if p.is_primary), None)
    if product_id is None:
        return
    primary = and_(LeadProduct.lead_id == Lead.id, LeadProduct.is_primary.is_(True))
    blocking = session.scalar(
        select(Lead)
        .join(LeadProduct, primary)
        .where(
            Lead.id != lead.id,
            Lead.status == RegistrationStatus.APPROVED.value,
            Lead.customer_id == lead.customer_id,
            LeadProduct.product_id == product_id,
            or_(Lead.expires_at.is_(None), Lead.expires_at > now),
        )
        .order_by(Lead.id)
        .limit(1)
    )
    if blocking is None:
        return
    until = f" until {blocking.expires_at.date().isoformat()}" if blocking.expires_at else ""
    raise OverlappingRegistration(
        f"Registration {blocking.registration_number} already protects this customer and primary product"
        f"{until}; the policy allows no overlapping registration",
        blocking_registration_number=blocking.registration_number,
        blocking_expires_at=blocking.expires_at.isoformat() if blocking.expires_at else None,
    )
