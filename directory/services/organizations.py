"""Organizations (the brand owner and its partners) and their partner-program memberships."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.clock import utcnow
from common.database import Database
from common.errors import Conflict, FieldProblem, ValidationFailed
from common.pagination import Page
from common.principal import Principal
from directory import schemas as s
from directory.enums import OrganizationKind
from directory.models import Organization, PartnerProgram, ProgramMembership
from directory.services.records import Entity, page, require_admin


def organization_out(org: Organization) -> s.OrganizationOut:
    return s.OrganizationOut(
        id=org.id,
        key=org.key,
        name=org.name,
        kind=org.kind,
        partner_type=org.partner_type,
        can_register_leads=org.can_register_leads,
        country=org.country,
        programs=[
            s.MembershipOut(program=m.program.key, tier=m.tier, valid_from=m.valid_from, valid_to=m.valid_to)
            for m in org.memberships
        ],
        active=org.active,
        version=org.version,
        created_at=org.created_at,
        updated_at=org.updated_at,
    )


def _out(session: Session, org: Organization) -> s.OrganizationOut:
    return organization_out(org)


def _visible(principal: Principal, org: Organization) -> bool:
    return principal.can_see_organization(org.id)


ORGANIZATIONS = Entity(Organization, "organization", "organization", _out, _visible)


def _wanted_programs(
    session: Session, items: Sequence[s.MembershipIn]
) -> list[tuple[PartnerProgram, s.MembershipIn]]:
    """The programs a membership list names, each with its terms; 422 for unknown or repeated ones."""
    keys = [m.program for m in items]
    programs = {p.key: p for p in session.scalars(select(PartnerProgram).where(PartnerProgram.key.in_(keys)))}
    problems = [
        FieldProblem(f"/programs/{i}/program", f"unknown program {m.program!r}")
        for i, m in enumerate(items)
        if m.program not in programs
    ]
    problems += [
        FieldProblem(f"/programs/{i}/program", f"program {m.program!r} listed twice")
        for i, m in enumerate(items)
        if m.program in keys[:i]
    ]
    if problems:
        raise ValidationFailed("Invalid program memberships", problems)
    return [(programs[m.program], m) for m in items]


def _set_memberships(org: Organization, wanted: Sequence[tuple[PartnerProgram, s.MembershipIn]]) -> None:
    """Make ``wanted`` the organization's memberships: a program it already has keeps its row (with the
    new terms), so sending the same list again, or changing only a tier, never adds a second row for the
    same program (the table holds one per organization and program)."""
    terms = {program.id: m for program, m in wanted}
    kept = [m for m in org.memberships if m.program_id in terms]
    for membership in kept:
        m = terms[membership.program_id]
        membership.tier, membership.valid_from, membership.valid_to = m.tier, m.valid_from, m.valid_to
    held = {m.program_id for m in kept}
    added = [
        ProgramMembership(program=program, tier=m.tier, valid_from=m.valid_from, valid_to=m.valid_to)
        for program, m in wanted
        if program.id not in held
    ]
    org.memberships = kept + added


def create_organization(db: Database, principal: Principal, data: s.OrganizationCreate) -> s.OrganizationOut:
    with db.transaction() as session:
        if session.scalar(select(Organization.id).where(Organization.key == data.key)):
            raise Conflict(f"organization {data.key!r} already exists")
        if data.kind == OrganizationKind.BRAND_OWNER and session.scalar(
            select(Organization.id).where(Organization.kind == OrganizationKind.BRAND_OWNER)
        ):
            raise Conflict("there is already a brand owner organization")
        org = Organization(**data.model_dump(exclude={"programs"}))
        _set_memberships(org, _wanted_programs(session, data.programs))
        return ORGANIZATIONS.create(session, principal, org, f"organization {data.key!r}")


def get_organization(db: Database, principal: Principal, org_id: int) -> s.OrganizationOut:
    with db.transaction() as session:
        return organization_out(ORGANIZATIONS.get(session, principal, org_id))


def list_organizations(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.OrganizationOut]:
    with db.transaction() as session:
        stmt = select(Organization)
        if not principal.internal:
            stmt = stmt.where(Organization.id == principal.organization_id)
        rows, cursor = page(session, stmt, Organization, query)
        return Page[s.OrganizationOut](items=[organization_out(r) for r in rows], next_cursor=cursor)


def update_organization(
    db: Database, principal: Principal, org_id: int, if_match: str | None, data: s.OrganizationUpdate
) -> s.OrganizationOut:
    with db.transaction() as session:
        org = ORGANIZATIONS.get_for_update(
            session, principal, org_id, if_match, may_change=lambda _: require_admin(principal)
        )
        changes = data.model_dump(exclude_unset=True, exclude={"programs"})
        if org.kind == OrganizationKind.BRAND_OWNER and (
            changes.get("partner_type") or data.programs or changes.get("active") is False
        ):
            raise ValidationFailed("The brand owner has no partner type or programs and stays active")
        if data.programs is None:
            return ORGANIZATIONS.update(session, principal, org, changes)
        wanted = _wanted_programs(session, data.programs)
        # Membership rows alone would not bump the organization's version.
        changes["updated_at"] = utcnow()
        return ORGANIZATIONS.update(
            session, principal, org, changes, apply=lambda o: _set_memberships(o, wanted)
        )
