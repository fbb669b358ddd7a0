"""Lead acceptance and offers as services (each owns one transaction): accept a lead, offer an
unaccepted lead to partner organizations, read its offers."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import FieldProblem, ValidationFailed
from common.principal import Principal
from directory.enums import OrganizationKind
from directory.models import Organization
from registration.acceptance import schemas as acs
from registration.acceptance.acceptance import AlreadyAccepted
from registration.acceptance.models import LeadOffer
from registration.acceptance.team_service import accept, refuse_unless_editable
from registration.leads import schemas as s
from registration.leads.service import lead_out, locked_lead, visible_lead


def accept_lead(db: Database, principal: Principal, lead_id: int, if_match: str | None) -> s.LeadOut:
    """Accept an unaccepted lead: the caller becomes owner (a partner's organization primary partner,
    other partners' resources and territories leave); an accepted lead answers 409."""
    with db.transaction() as session:
        lead, children = locked_lead(session, principal, lead_id)
        check_if_match(if_match, lead.id, lead.version)
        accept(session, lead, principal, "accept")
        return lead_out(session, lead, children=children)  # as stored after accept's flush


def _offered(session: Session, lead_id: int) -> list[int]:
    return list(
        session.scalars(
            select(LeadOffer.organization_id)
            .where(LeadOffer.lead_id == lead_id)
            .order_by(LeadOffer.organization_id)
        )
    )


def _offers_out(
    principal: Principal, lead_id: int, accepted: bool, organization_ids: list[int]
) -> acs.OffersOut:
    visible = [o for o in organization_ids if principal.can_see_organization(o)]
    return acs.OffersOut(lead_id=lead_id, accepted=accepted, organization_ids=visible)


def lead_offers(db: Database, principal: Principal, lead_id: int) -> tuple[acs.OffersOut, int]:
    """The partner organizations the lead is offered to (a partner sees only its own); with the lead's
    version."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        return _offers_out(principal, lead.id, lead.accepted, _offered(session, lead.id)), lead.version


def offer_lead(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: acs.OfferIn
) -> tuple[acs.OffersOut, int]:
    """Offer an unaccepted lead to partner organizations (replacing the earlier offers). Offering is not
    an action that accepts the lead: it hands the lead to the partners who may accept it."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id, for_update=True)
        check_if_match(if_match, lead.id, lead.version)
        if lead.accepted:
            raise AlreadyAccepted("The lead is accepted; only an unaccepted lead can be offered to partners")
        refuse_unless_editable(lead, "offered to partners")
        wanted = list(dict.fromkeys(data.organization_ids))
        partners = set(
            session.scalars(
                select(Organization.id).where(
                    Organization.id.in_(wanted),
                    Organization.kind == OrganizationKind.PARTNER,
                    Organization.active.is_(True),
                )
            )
        )
        problems = [
            FieldProblem(f"/organization_ids/{i}", f"no active partner organization {org_id}")
            for i, org_id in enumerate(data.organization_ids)
            if org_id not in partners
        ]
        if problems:
            raise ValidationFailed("A lead is offered to partner organizations only", problems)
        before = _offered(session, lead.id)
        session.execute(delete(LeadOffer).where(LeadOffer.lead_id == lead.id))
        now = utcnow()
        session.add_all(
            LeadOffer(lead_id=lead.id, organization_id=o, offered_by=principal.user_id, created_at=now)
            for o in wanted
        )
        lead.updated_at = now  # a new version: the offers are part of what the lead's ETag covers
        session.flush()
        after = _offered(session, lead.id)
        audit.record(
            session,
            principal,
            "lead",
            lead.id,
            "offered",
            before={"offered_to": before},
            after={"offered_to": after},
            now=now,
        )
        return _offers_out(principal, lead.id, lead.accepted, after), lead.version
