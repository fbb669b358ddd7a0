"""Whether the partner's agreement and program membership allow its registration, read inside the
caller's transaction: checked when the registration is submitted and again when it is approved (either
may have ended while the registration waited), and shown in the approver preview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Date, Integer, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from common.database import plain_rows
from directory.models import Customer, Organization, PartnerProgram, Product, ProgramMembership
from registration.leads.models import Lead


def program_membership(
    session: Session, partner_id: int, program_id: int, today: date
) -> ProgramMembership | None:
    """The partner's membership in the program valid on ``today``, if any."""
    return session.scalar(
        select(ProgramMembership).where(
            ProgramMembership.organization_id == partner_id,
            ProgramMembership.program_id == program_id,
            ProgramMembership.valid_from <= today,
            or_(ProgramMembership.valid_to.is_(None), ProgramMembership.valid_to >= today),
        )
    )


class Partner(NamedTuple):
    """The lead's partner organization, as far as eligibility looks at it."""

    id: int
    key: str
    can_register_leads: bool
    active: bool


class Program(NamedTuple):
    """The lead's partner program, as far as eligibility looks at it."""

    id: int
    key: str
    allows_registration: bool
    active: bool


class Membership(NamedTuple):
    """The partner's membership in the program valid on the day."""

    id: int
    tier: str


@dataclass(frozen=True)
class Eligibility:
    """What the partner's agreement and membership say about a registration, and what it was read from
    (plain rows of the columns it looks at; submitting decides on their keys and the membership's
    tier)."""

    blockers: list[str]  # why the registration is not allowed (empty: it is)
    partner: Partner | None
    program: Program | None
    membership: Membership | None  # the partner's membership in the program valid on the day
    #: the keys of the lead's customer and primary product, when asked for (``with_keys``) and read by
    #: the same statement (None: not read; a lead naming no partner or program reads them apart)
    keys: tuple[str | None, str | None] | None = None

    @property
    def program_keys(self) -> dict[int, str]:
        """Program id -> key of the program read (for the lead's answer, which names it)."""
        return {self.program.id: self.program.key} if self.program is not None else {}


def eligibility(session: Session, lead: Lead, today: date, *, with_keys: bool = False) -> Eligibility:
    """Whether the partner's agreement and program membership allow this registration on ``today``
    (``with_keys``: with the keys of the lead's customer and primary product, read by the same
    statement, which submitting decides on)."""
    partner, program, membership, keys = _partner_program_membership(session, lead, today, with_keys)
    blockers: list[str] = []
    if lead.primary_partner_id is None:
        blockers.append("the lead has no primary partner to register for")
    elif partner is None:
        blockers.append("the lead's primary partner does not exist")
    else:
        if not partner.can_register_leads or not partner.active:
            blockers.append(f"the partner agreement of {partner.key} does not allow registering leads")
        if lead.program_id is None:
            blockers.append("the lead names no partner program")
        elif program is None or not program.allows_registration or not program.active:
            blockers.append(
                f"program {program.key if program else lead.program_id} does not accept registrations"
            )
        elif membership is None:
            blockers.append(
                f"{partner.key} has no membership in program {program.key} valid on {today.isoformat()}"
            )
    return Eligibility(blockers, partner, program, membership, keys)


@cache
def _statement(with_keys: bool) -> Select[*tuple[Any, ...]]:
    """The one statement of `_partner_program_membership`, built once (``partner_id``, ``program_id``,
    ``today``, and with the keys ``customer_id`` and ``product_id``, are its parameters): the columns
    eligibility looks at as one plain row (three ORM objects cost near half of it)."""
    today = bindparam("today", type_=Date())
    valid = and_(
        ProgramMembership.organization_id == Organization.id,
        ProgramMembership.program_id == PartnerProgram.id,
        ProgramMembership.valid_from <= today,
        or_(ProgramMembership.valid_to.is_(None), ProgramMembership.valid_to >= today),
    )
    stmt = (
        select(
            Organization.id,
            Organization.key,
            Organization.can_register_leads,
            Organization.active,
            PartnerProgram.id,
            PartnerProgram.key,
            PartnerProgram.allows_registration,
            PartnerProgram.active,
            ProgramMembership.id,
            ProgramMembership.tier,
        )
        .select_from(Organization)
        .join(PartnerProgram, PartnerProgram.id == bindparam("program_id", type_=Integer()))
        .outerjoin(ProgramMembership, valid)
        .where(Organization.id == bindparam("partner_id", type_=Integer()))
    )
    if with_keys:
        customer_id, product_id = (
            bindparam("customer_id", type_=Integer()),
            bindparam("product_id", type_=Integer()),
        )
        customer = select(Customer.key).where(Customer.id == customer_id).scalar_subquery()
        product = select(Product.key).where(Product.id == product_id).scalar_subquery()
        return stmt.add_columns(customer, product)
    return stmt


def _partner_program_membership(
    session: Session, lead: Lead, today: date, with_keys: bool
) -> tuple[Partner | None, Program | None, Membership | None, tuple[str | None, str | None] | None]:
    """The lead's partner, its program and the partner's membership in it valid on ``today`` (and the
    customer's and primary product's keys): one statement when the lead names both partner and program
    (the usual case), else what it names read on its own (and no keys)."""
    row = None
    if lead.primary_partner_id is not None and lead.program_id is not None:
        product_id = next((p.product_id for p in lead.products if p.is_primary), None) if with_keys else None
        params = {
            "partner_id": lead.primary_partner_id,
            "program_id": lead.program_id,
            "today": today,
            "customer_id": lead.customer_id,
            "product_id": product_id,
        }
        # plain values on the session's connection (on PostgreSQL as the driver reads them: no
        # per-execution work of SQLAlchemy, a third of its CPU); what the session holds goes first, as
        # its execute would flush it
        session.flush()
        rows = plain_rows(session.connection(), _statement(with_keys), params)
        row = rows[0] if rows else None
    if row is not None:
        c: tuple[Any, ...] = tuple(row)
        membership = Membership(c[8], c[9]) if c[8] is not None else None
        keys = (c[10], c[11]) if with_keys else None
        return (
            Partner(c[0], c[1], bool(c[2]), bool(c[3])),
            Program(c[4], c[5], bool(c[6]), bool(c[7])),
            membership,
            keys,
        )
    org = session.get(Organization, lead.primary_partner_id) if lead.primary_partner_id else None
    prog = session.get(PartnerProgram, lead.program_id) if lead.program_id else None
    found = program_membership(session, org.id, prog.id, today) if org and prog else None
    return (
        Partner(org.id, org.key, org.can_register_leads, org.active) if org else None,
        Program(prog.id, prog.key, prog.allows_registration, prog.active) if prog else None,
        Membership(found.id, found.tier) if found else None,
        None,
    )


def registration_blockers(session: Session, lead: Lead, today: date) -> list[str]:
    """Why the partner's agreement or membership does not allow this registration (empty: it does)."""
    return eligibility(session, lead, today).blockers
