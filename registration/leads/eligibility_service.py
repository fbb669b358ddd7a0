"""Whether the partner's agreement and program membership allow its registration, read inside the
caller's transaction: checked when the registration is submitted and again when it is approved (either
may have ended while the registration waited), and shown in the approver preview."""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from directory.models import Organization, PartnerProgram, ProgramMembership
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


def registration_blockers(session: Session, lead: Lead, today: date) -> list[str]:
    """Why the partner's agreement or membership does not allow this registration (empty: it does)."""
    if lead.primary_partner_id is None:
        return ["the lead has no primary partner to register for"]
    partner = session.get(Organization, lead.primary_partner_id)
    if partner is None:
        return ["the lead's primary partner does not exist"]
    blockers = []
    if not partner.can_register_leads or not partner.active:
        blockers.append(f"the partner agreement of {partner.key} does not allow registering leads")
    if lead.program_id is None:
        blockers.append("the lead names no partner program")
        return blockers
    program = session.get(PartnerProgram, lead.program_id)
    if program is None or not program.allows_registration or not program.active:
        blockers.append(
            f"program {program.key if program else lead.program_id} does not accept registrations"
        )
    elif program_membership(session, partner.id, program.id, today) is None:
        blockers.append(
            f"{partner.key} has no membership in program {program.key} valid on {today.isoformat()}"
        )
    return blockers
