"""Who is on a lead, by name and e-mail ("who is my channel account manager?"): its owner, submitter
and creator, its sales team, the approvers of its rounds, and the owner and team of its opportunity.

A partner sees the brand owner's people and its own organization's among them, never another
organization's users; internal users see everyone on the lead.
"""

from __future__ import annotations

from sqlalchemy import select

from common.database import Database
from common.principal import Principal
from directory.enums import OrganizationKind
from directory.models import Organization, User
from registration.approval.models import ApprovalRound, ApprovalStep, ApprovalStepApprover
from registration.leads import people_schemas as p
from registration.leads.service import visible_lead
from registration.opportunities.models import Opportunity


def lead_people(db: Database, principal: Principal, lead_id: int) -> p.LeadPeople:
    """The people on the lead the caller may know of, each once with every role they hold on it."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        roles: dict[int, list[str]] = {}

        def add(user_id: int | None, role: str) -> None:
            if user_id is not None and role not in roles.setdefault(user_id, []):
                roles[user_id].append(role)

        add(lead.owner_user_id, "owner")
        add(lead.submitted_by, "submitter")
        add(lead.created_by, "creator")
        for member in lead.sales_team:
            add(member.user_id, member.role)
        approvers = session.scalars(
            select(ApprovalStepApprover.user_id)
            .join(ApprovalStep, ApprovalStep.id == ApprovalStepApprover.step_id)
            .join(ApprovalRound, ApprovalRound.id == ApprovalStep.round_id)
            .where(ApprovalRound.lead_id == lead.id)
            .order_by(ApprovalStepApprover.id)
        )
        for user_id in approvers:
            add(user_id, "approver")
        opportunity = session.scalar(select(Opportunity).where(Opportunity.lead_id == lead.id))
        if opportunity is not None:
            add(opportunity.owner_user_id, "opportunity_owner")
            for o_member in opportunity.sales_team:
                add(o_member.user_id, f"opportunity_{o_member.role}")
        rows = session.execute(
            select(User, Organization.kind)
            .join(Organization, Organization.id == User.organization_id)
            .where(User.id.in_(roles))
            .order_by(User.id)
        ).all()
        items = []
        for user, kind in rows:
            internal = kind == OrganizationKind.BRAND_OWNER
            if principal.internal or internal or user.organization_id == principal.organization_id:
                items.append(
                    p.LeadPersonOut(
                        user_id=user.id,
                        name=user.name,
                        email=user.email,
                        internal=internal,
                        roles=roles[user.id],
                    )
                )
        return p.LeadPeople(lead_id=lead.id, items=items)
