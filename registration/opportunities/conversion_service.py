"""Converting an approved registration into its opportunity over the database: customer, revenue lines,
contacts, notes and activities carried over (each carried-over contact, note and activity names the lead's
record it came from), owner and sales team; the opportunity's number; the hook an
approval calls once the opportunity exists."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from common import audit
from common.principal import Principal
from directory.models import User
from registration.approval.approval import PROVIDE_INFORMATION
from registration.approval.models import LeadTask
from registration.leads.models import Lead, LeadActivity, LeadContact, LeadNote
from registration.opportunities.models import (
    Opportunity,
    OpportunityActivity,
    OpportunityContact,
    OpportunityNote,
    OpportunityRevenueLine,
    OpportunitySalesTeamMember,
)
from registration.opportunities.opportunity import (
    OWNER_ROLE,
    OpportunityStatus,
    partner_team_role,
    revenue_lines,
)
from rules.models import StoredDecision


def decision_policy(session: Session, lead: Lead) -> dict[str, Any] | None:
    """The policy part of the decision that routed the lead's latest submission."""
    decision = session.get(StoredDecision, lead.decision_id) if lead.decision_id else None
    policy = decision.result.get("policy") if decision else None
    return policy if isinstance(policy, dict) else None


def opportunity_number(registration_number: str | None, lead_id: int) -> str:
    """``OPP-000123`` for registration ``REG-000123`` (one opportunity per registration)."""
    if registration_number and "-" in registration_number:
        return "OPP-" + registration_number.split("-", 1)[1]
    return f"OPP-L{lead_id}"


def _sales_team(session: Session, lead: Lead, owner_user_id: int) -> list[OpportunitySalesTeamMember]:
    """The owner, the brand's resources of the lead, and the partner's resources in the role its
    registration type gives them."""
    members = [(m.user_id, m.role) for m in lead.sales_team]
    if lead.owner_user_id is not None:
        members.append((lead.owner_user_id, "lead_owner"))
    user_ids = {uid for uid, _ in members}
    orgs = {
        uid: org
        for uid, org in session.execute(select(User.id, User.organization_id).where(User.id.in_(user_ids)))
    }
    team = [OpportunitySalesTeamMember(user_id=owner_user_id, role=OWNER_ROLE, source="approval")]
    seen = {(owner_user_id, OWNER_ROLE)}
    partner_role = partner_team_role(lead.registration_type)
    for uid, role in members:
        partner = lead.organization_id is not None and orgs.get(uid) == lead.organization_id
        key = (uid, partner_role if partner else role)
        if key in seen:
            continue
        seen.add(key)
        team.append(OpportunitySalesTeamMember(user_id=uid, role=key[1], source="registration"))
    return team


class OpportunityCreated(Protocol):
    """What the layers above registration do when an approval creates an opportunity, in the approval's
    transaction (the app passes transfer's: queue the transfer to the partner's CRM); registration calls
    it and never imports them."""

    def __call__(
        self,
        session: Session,
        actor: Principal | None,
        opp: Opportunity,
        policy: dict[str, Any] | None,
        *,
        now: datetime,
    ) -> object: ...


def _closed_status(lead: Lead) -> str | None:
    """``won`` or ``lost`` when the lead carries a closed deal (kept from a transfer), else None."""
    closed = (OpportunityStatus.WON.value, OpportunityStatus.LOST.value)
    return lead.deal_status if lead.deal_status in closed else None


def convert_lead(
    session: Session, actor: Principal, lead: Lead, owner_user_id: int, *, now: datetime
) -> Opportunity:
    """Create the opportunity an approved registration converts into (in the caller's transaction)."""
    closed = _closed_status(lead)
    opp = Opportunity(
        number=opportunity_number(lead.registration_number, lead.id),
        lead_id=lead.id,
        registration_number=lead.registration_number,
        registration_type=lead.registration_type,
        registration_expires_at=lead.expires_at,
        organization_id=lead.organization_id,
        customer_id=lead.customer_id,
        program_id=lead.program_id,
        name=lead.name,
        description=lead.description,
        # a lead kept from a transfer carries the deal's stage and open/won/lost: the opportunity goes on
        stage=lead.stage,
        status=closed or OpportunityStatus.OPEN.value,
        closed_at=now if closed else None,
        owner_user_id=owner_user_id,
        amount=lead.deal_size,
        currency=lead.currency,
        expected_close_date=lead.expected_close_date,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    opp.revenue_lines = [
        OpportunityRevenueLine(
            product_id=line.product_id, is_primary=line.primary, amount=line.amount, currency=line.currency
        )
        for line in revenue_lines(
            [(p.product_id, p.is_primary) for p in lead.products],
            lead.deal_size,
            lead.currency,
            {p.product_id: (p.amount, p.currency) for p in lead.products},
        )
    ]
    contacts = list(
        session.scalars(select(LeadContact).where(LeadContact.lead_id == lead.id).order_by(LeadContact.id))
    )
    if contacts:  # a lead with contacts of its own (kept from a transfer): every one goes over
        opp.contacts = [
            OpportunityContact(
                name=c.name,
                email=c.email,
                phone=c.phone,
                role=c.role,
                is_primary=c.is_primary,
                lead_contact_id=c.id,
            )
            for c in contacts
        ]
    elif lead.contact_name or lead.contact_email or lead.contact_phone:
        opp.contacts = [
            OpportunityContact(
                name=lead.contact_name, email=lead.contact_email, phone=lead.contact_phone, is_primary=True
            )
        ]
    notes = session.scalars(select(LeadNote).where(LeadNote.lead_id == lead.id).order_by(LeadNote.id))
    opp.notes = [
        OpportunityNote(
            lead_note_id=n.id, author_user_id=n.author_user_id, text=n.text, written_at=n.created_at
        )
        for n in notes
    ]
    tasks = session.scalars(
        select(LeadTask)
        .where(LeadTask.lead_id == lead.id, LeadTask.kind == PROVIDE_INFORMATION)
        .order_by(LeadTask.id)
    )
    activities = [
        OpportunityActivity(
            kind=a.kind,
            subject=a.subject,
            actor_user_id=a.actor_user_id,
            occurred_at=a.occurred_at,
            details=a.details,
            lead_activity_id=a.id,
        )
        for a in session.scalars(
            select(LeadActivity).where(LeadActivity.lead_id == lead.id).order_by(LeadActivity.id)
        )
    ]
    activities += [
        OpportunityActivity(
            kind="information_requested",
            subject=f"Information requested: {t.question[:250]}",
            actor_user_id=t.requested_by,
            occurred_at=t.created_at,
            details={
                "task_id": t.id,
                "status": t.status,
                "answered_at": t.answered_at.isoformat() if t.answered_at else None,
            },
        )
        for t in tasks
    ]
    activities.append(
        OpportunityActivity(
            kind="registration_approved",
            subject=f"Registration {lead.registration_number} approved and converted",
            actor_user_id=actor.user_id,
            occurred_at=now,
            details={"lead_id": lead.id, "registration_number": lead.registration_number},
        )
    )
    opp.activities = activities
    opp.sales_team = _sales_team(session, lead, owner_user_id)
    session.add(opp)
    session.flush()
    audit.record(
        session,
        actor,
        "opportunity",
        opp.id,
        "created",
        after={"status": opp.status, "owner_user_id": owner_user_id},
        details={"lead_id": lead.id, "registration_number": lead.registration_number, "number": opp.number},
        now=now,
    )
    audit.record(
        session,
        actor,
        "lead",
        lead.id,
        "opportunity_created",
        details={"opportunity_id": opp.id, "number": opp.number, "owner_user_id": owner_user_id},
        now=now,
    )
    return opp
