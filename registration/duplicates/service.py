"""The duplicate check against the database: a registration's likely duplicates among other open
registrations and opportunities, a reviewers' search by customer, contact and product, and the policy
option that refuses a submit while an approved registration protects the same customer and product.

The database narrows the candidates (same account hierarchy, same product group, the contact); the pure
scorer (``registration.duplicates.duplicates``) decides what matches, with a score and its evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from common.database import Database
from common.errors import Conflict, FieldProblem, ValidationFailed
from common.principal import Principal
from directory.models import Customer, Product
from registration.duplicates import duplicates as d
from registration.duplicates import schemas as ds
from registration.leads.lifecycle import RegistrationStatus
from registration.leads.models import Lead, LeadProduct
from registration.leads.service import visible_lead
from registration.opportunities.models import Opportunity, OpportunityContact, OpportunityRevenueLine
from rules.outcome import PolicyDecision

#: Registrations that still claim their deal (drafts claim nothing yet; rejected, withdrawn and expired
#: ones no longer do).
OPEN_STATUSES = (
    RegistrationStatus.SUBMITTED.value,
    RegistrationStatus.PENDING_APPROVAL.value,
    RegistrationStatus.INFO_REQUESTED.value,
    RegistrationStatus.APPROVED.value,
)
#: Opportunities still being worked (a won or lost deal no longer competes with a registration).
OPEN_OPPORTUNITY_STATUSES = ("open",)
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


# --- registrations and opportunities as deals ---------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What a stored record says, by id, before the hierarchies are looked up."""

    customer_id: int | None
    product_ids: tuple[int, ...]  # the primary first; empty when no product is primary
    contact_name: str | None
    contact_email: str | None
    partner_id: int | None


def _primary_first(rows: Sequence[Any]) -> tuple[int, ...]:
    """Product ids of lead products or revenue lines, the primary first (none without a primary)."""
    if not any(r.is_primary for r in rows):
        return ()
    return tuple(r.product_id for r in sorted(rows, key=lambda r: (not r.is_primary, r.id)))


def _lead_facts(lead: Lead) -> _Facts:
    return _Facts(
        lead.customer_id,
        _primary_first(lead.products),
        lead.contact_name,
        lead.contact_email,
        lead.primary_partner_id,
    )


def _opportunity_facts(opportunity: Opportunity) -> _Facts:
    contacts = sorted(opportunity.contacts, key=lambda c: (not c.is_primary, c.id))
    contact = contacts[0] if contacts else None
    return _Facts(
        opportunity.customer_id,
        _primary_first(opportunity.revenue_lines),
        contact.name if contact else None,
        contact.email if contact else None,
        opportunity.organization_id,
    )


def _deals(session: Session, facts: Sequence[_Facts]) -> list[d.Deal]:
    customers = lineages(session, Customer, {f.customer_id for f in facts if f.customer_id is not None})
    products = lineages(session, Product, {p for f in facts for p in f.product_ids})
    return [
        d.Deal(
            customer=(
                d.Account(f.customer_id, customers[f.customer_id])
                if f.customer_id is not None and f.customer_id in customers
                else None
            ),
            products=tuple(d.Item(p, products[p]) for p in f.product_ids if p in products),
            contact_name=f.contact_name,
            contact_email=f.contact_email,
            partner_id=f.partner_id,
        )
        for f in facts
    ]


def _candidates(
    session: Session, principal: Principal, registrations: Select[Any], opportunities: Select[Any]
) -> list[d.Candidate]:
    """Open registrations and open opportunities the statements select (partners: their own only).

    A registration converted into a listed opportunity is represented by the opportunity alone.
    """
    opps: list[Opportunity] = list(
        session.scalars(
            _visible_to(principal, opportunities, Opportunity.organization_id)
            .where(Opportunity.status.in_(OPEN_OPPORTUNITY_STATUSES))
            .order_by(Opportunity.id)
        )
    )
    converted = {o.lead_id for o in opps}
    leads: list[Lead] = [
        lead
        for lead in session.scalars(
            _visible_to(principal, registrations, Lead.organization_id)
            .where(Lead.status.in_(OPEN_STATUSES))
            .order_by(Lead.id)
        )
        if lead.id not in converted
    ]
    deals = _deals(session, [_lead_facts(x) for x in leads] + [_opportunity_facts(o) for o in opps])
    found = [
        d.Candidate(
            kind=ds.DuplicateKind.REGISTRATION.value,
            id=lead.id,
            number=lead.registration_number,
            status=lead.status,
            organization_id=lead.organization_id,
            deal=deal,
            name=lead.name,
        )
        for lead, deal in zip(leads, deals, strict=False)
    ]
    found += [
        d.Candidate(
            kind=ds.DuplicateKind.OPPORTUNITY.value,
            id=o.id,
            number=o.number,
            status=o.status,
            organization_id=o.organization_id,
            deal=deal,
            name=o.name,
        )
        for o, deal in zip(opps, deals[len(leads) :], strict=True)
    ]
    return found


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
        [mine] = _deals(session, [_lead_facts(lead)])
        if mine.customer is None or mine.primary_product is None or lead.customer_id is None:
            return ds.DuplicatesOut(lead_id=lead.id, rule=DEFAULT_RULE, items=[])
        accounts = hierarchy_ids(session, Customer, lead.customer_id)
        candidates = _candidates(
            session,
            principal,
            select(Lead).where(Lead.id != lead.id, Lead.customer_id.in_(accounts)),
            select(Opportunity).where(Opportunity.lead_id != lead.id, Opportunity.customer_id.in_(accounts)),
        )
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
        leads, opps = select(Lead), select(Opportunity)
        if query.customer_id is not None:
            customer = lineages(session, Customer, [query.customer_id])[query.customer_id]
            search = d.Search(d.Account(query.customer_id, customer), search.contact, search.product)
            accounts = hierarchy_ids(session, Customer, query.customer_id)
            leads = leads.where(Lead.customer_id.in_(accounts))
            opps = opps.where(Opportunity.customer_id.in_(accounts))
        if query.product_id is not None:
            product = lineages(session, Product, [query.product_id])[query.product_id]
            search = d.Search(search.customer, search.contact, d.Item(query.product_id, product))
            group = hierarchy_ids(session, Product, query.product_id)
            leads = leads.where(
                exists().where(LeadProduct.lead_id == Lead.id, LeadProduct.product_id.in_(group))
            )
            opps = opps.where(
                exists().where(
                    OpportunityRevenueLine.opportunity_id == Opportunity.id,
                    OpportunityRevenueLine.product_id.in_(group),
                )
            )
        if query.contact:
            wanted = query.contact.casefold()
            leads = leads.where(
                or_(
                    func.lower(Lead.contact_email) == wanted,
                    func.lower(Lead.contact_name).contains(wanted, autoescape=True),
                )
            )
            opps = opps.where(
                exists().where(
                    OpportunityContact.opportunity_id == Opportunity.id,
                    or_(
                        func.lower(OpportunityContact.email) == wanted,
                        func.lower(OpportunityContact.name).contains(wanted, autoescape=True),
                    ),
                )
            )
        candidates = _candidates(session, principal, leads, opps)
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
    # One check per customer at a time (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises), so
    # that two transactions calling this before approving two overlapping registrations cannot both pass.
    session.execute(select(Customer.id).where(Customer.id == lead.customer_id).with_for_update())
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
