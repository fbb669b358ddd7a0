"""Accepting a lead inside the caller's transaction: the explicit accept and the implicit one that every
action on an unaccepted lead performs (update, submit, notes call ``ensure_accepted``). Applies the pure
plan of ``registration.acceptance.acceptance`` to the owner, primary partner, sales team and territory team, ends
the offers once a partner takes the lead, and writes one audit row.

Also the offers' visibility questions the lead services ask (``offered_to``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.errors import NotFound
from common.principal import Principal
from directory.enums import OrganizationKind
from directory.models import Organization, User
from registration.acceptance import acceptance as a
from registration.acceptance.models import LeadOffer
from registration.leads.errors import ReadOnly
from registration.leads.lifecycle import editable
from registration.leads.models import Lead, SalesTeamMember
from registration.notifications import service as notifications_service
from registration.notifications.notifications import NotificationEvent
from territory.models import Territory


def offered_to(lead_id: Any, organization_id: int | ColumnElement[int]) -> Any:
    """SQL condition: the lead is offered to the organization (usable in ``where`` or evaluated; the
    organization an id or a bound parameter)."""
    return exists().where(LeadOffer.lead_id == lead_id, LeadOffer.organization_id == organization_id)


def is_offered(session: Session, lead_id: int, organization_id: int) -> bool:
    return bool(session.scalar(select(offered_to(lead_id, organization_id))))


def refuse_unless_editable(lead: Lead, what: str) -> None:
    """Accepting and offering follow the status table: only an editable registration (draft, rejected,
    withdrawn) changes hands; a waiting or decided one is read-only except notes."""
    if not editable(lead.status):
        raise ReadOnly(
            f"A registration in status {lead.status!r} is read-only (only notes may be added); "
            f"the lead cannot be {what} until it is editable again (rejected or withdrawn)",
            current_status=lead.status,
        )


def _members(session: Session, lead: Lead) -> list[tuple[SalesTeamMember, a.Member]]:
    ids = {m.user_id for m in lead.sales_team}
    users = {
        user_id: (org_id, kind == OrganizationKind.PARTNER)
        for user_id, org_id, kind in session.execute(
            select(User.id, User.organization_id, Organization.kind)
            .join(Organization, Organization.id == User.organization_id)
            .where(User.id.in_(ids))
        )
    }
    return [(m, a.Member(m.user_id, m.role, *users.get(m.user_id, (None, False)))) for m in lead.sales_team]


def _territories(session: Session, lead: Lead) -> list[tuple[Any, a.Territory]]:
    """Each territory-team row with the partner organization its territory is bound to."""
    rows = []
    for t in lead.territory_team:
        partner_key = session.scalar(
            select(Territory.partner_key).where(
                Territory.model_id == t.territory_model_id, Territory.key == t.territory_key
            )
        )
        partner_id = (
            session.scalar(select(Organization.id).where(Organization.key == partner_key))
            if partner_key
            else None
        )
        rows.append((t, a.Territory(t.territory_key, t.territory_model_id, partner_id)))
    return rows


def _actor(session: Session, principal: Principal) -> a.Actor:
    kind = session.scalar(select(Organization.kind).where(Organization.id == principal.organization_id))
    partner = not principal.internal and kind == OrganizationKind.PARTNER
    return a.Actor(principal.user_id, principal.organization_id, partner)


def accept(session: Session, lead: Lead, principal: Principal, via: str) -> a.AcceptancePlan:
    """Accept the lead as ``principal``; raises ``AlreadyAccepted`` if it is accepted, ``ReadOnly`` if
    its registration's status allows no change (a waiting registration keeps its owner and partner).
    ``via`` names the action that accepted it (``accept``, ``update``, ``submit``, ``note``)."""
    members = _members(session, lead)
    territories = _territories(session, lead)
    plan = a.plan_acceptance(
        accepted=lead.accepted,
        owner_user_id=lead.owner_user_id,
        members=[m for _, m in members],
        territories=[t for _, t in territories],
        actor=_actor(session, principal),
    )
    refuse_unless_editable(lead, "accepted")
    before = {
        "accepted": lead.accepted,
        "owner_user_id": lead.owner_user_id,
        "primary_partner_id": lead.primary_partner_id,
        "organization_id": lead.organization_id,
    }
    for row, member in members:
        if member in plan.removed_members:
            lead.sales_team.remove(row)
        elif member in plan.former_owners:
            row.role = a.TEAM_MEMBER
    for row, territory in territories:
        if territory in plan.removed_territories:
            lead.territory_team.remove(row)
    session.flush()  # the former owner's row changes role before the new owner's row is added
    if not any(m.user_id == plan.owner_user_id and m.role == a.LEAD_OWNER for m in lead.sales_team):
        lead.sales_team.append(
            SalesTeamMember(user_id=plan.owner_user_id, role=a.LEAD_OWNER, source="accepted")
        )
    lead.accepted = True
    lead.owner_user_id = plan.owner_user_id
    if plan.primary_partner_id is not None:
        lead.primary_partner_id = plan.primary_partner_id
        lead.organization_id = plan.primary_partner_id
        if lead.partner_type is None:  # as when a partner creates the lead: its own partner type
            partner_type = session.scalar(
                select(Organization.partner_type).where(Organization.id == plan.primary_partner_id)
            )
            lead.partner_type = str(partner_type) if partner_type is not None else None
        # the lead is this partner's now: the other partners it was offered to no longer see it
        session.execute(delete(LeadOffer).where(LeadOffer.lead_id == lead.id))
    lead.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        principal,
        "lead",
        lead.id,
        "accepted",
        before=before,
        after={
            "accepted": True,
            "owner_user_id": lead.owner_user_id,
            "primary_partner_id": lead.primary_partner_id,
            "organization_id": lead.organization_id,
        },
        details={
            "via": via,
            "previous_owner_id": plan.previous_owner_id,
            "removed_members": [{"user_id": m.user_id, "role": m.role} for m in plan.removed_members],
            "removed_territories": [t.key for t in plan.removed_territories],
        },
    )
    notifications_service.notify(session, lead, NotificationEvent.ACCEPTED, principal, occurrence="accepted")
    return plan


def ensure_accepted(session: Session, lead: Lead, principal: Principal, via: str) -> bool:
    """Any action on an unaccepted lead accepts it (returns whether this one did).

    Except the owner's own: an internal user preparing the lead it offers to partners keeps it open for
    them (it already owns the lead, so accepting would change nothing but close the offer). And except
    while the registration is not editable (submitted and waiting, decided): the only action then is a
    note, and a note does not hand the registration to another owner or partner.
    """
    if lead.accepted or lead.owner_user_id == principal.user_id:
        return False
    session.refresh(lead, with_for_update=True)  # two first actions at once accept it once
    if not lead.accepted and not editable(lead.status):
        return False  # a waiting registration changes no hands: its note is only a note
    if lead.accepted:
        # Another partner may have taken it meanwhile: then it is no longer this partner's to touch.
        if not (
            principal.internal
            or lead.organization_id == principal.organization_id
            or is_offered(session, lead.id, principal.organization_id)
        ):
            raise NotFound(f"lead {lead.id} not found")
        return False
    accept(session, lead, principal, via)
    return True


@contextmanager
def accepted_for_now(session: Session, lead: Lead, principal: Principal) -> Iterator[None]:
    """Inside the block the lead looks as the action's implicit acceptance will leave it (for deciding
    on its facts before the deciding transaction); nothing of it is kept."""
    savepoint = session.begin_nested()
    try:
        ensure_accepted(session, lead, principal, "preview")
        yield
    finally:
        savepoint.rollback()
