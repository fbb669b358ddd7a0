"""Opportunities over the database: reading them (partners: their organization's only; another
organization's answers 404 like a missing one), closing them (the partner's team not after the
registration expired) and changing their revenue lines. An approved registration becomes one in
``conversion_service``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import NotFound
from common.pagination import Page, decode_cursor, encode_cursor
from common.principal import Principal
from registration.leads.models import Lead
from registration.opportunities import schemas as o
from registration.opportunities.models import Opportunity, OpportunityActivity, OpportunityRevenueLine
from registration.opportunities.opportunity import (
    OpportunityClosed,
    OpportunityStatus,
    check_partner_may_close,
)


class OpportunityChanged(Protocol):
    """What the layers above registration do after an opportunity changed through this API, in the
    change's transaction (the app passes transfer's: queue the update to the partner's CRM when the
    connection or the registration's policy sends updates automatically). ``change`` names the audit
    action. Registration calls it and never imports them."""

    def __call__(
        self, session: Session, actor: Principal | None, opp: Opportunity, *, now: datetime, change: str
    ) -> object: ...


def no_hook(
    session: Session, actor: Principal | None, opp: Opportunity, *, now: datetime, change: str
) -> object:
    """The hook when no layer above listens (commands and tests that build no app)."""
    return None


# --- reading ------------------------------------------------------------------------------------------


def opportunity_out(session: Session, opp: Opportunity) -> o.OpportunityOut:
    lead = session.get(Lead, opp.lead_id)
    assert lead is not None
    return o.OpportunityOut(
        id=opp.id,
        number=opp.number,
        name=opp.name,
        description=opp.description,
        stage=opp.stage,
        status=OpportunityStatus(opp.status),
        organization_id=opp.organization_id,
        customer_id=opp.customer_id,
        program_id=opp.program_id,
        owner_user_id=opp.owner_user_id,
        amount=opp.amount,
        currency=opp.currency,
        expected_close_date=opp.expected_close_date,
        registration=o.RegistrationLink(
            lead_id=opp.lead_id,
            registration_number=opp.registration_number,
            registration_type=opp.registration_type,
            status=lead.status,
            expires_at=opp.registration_expires_at,
        ),
        revenue_lines=[
            o.RevenueLineOut(
                id=r.id, product_id=r.product_id, primary=r.is_primary, amount=r.amount, currency=r.currency
            )
            for r in opp.revenue_lines
        ],
        contacts=[
            o.ContactOut(
                id=c.id, name=c.name, email=c.email, phone=c.phone, role=c.role, primary=c.is_primary
            )
            for c in opp.contacts
        ],
        notes=[
            o.OpportunityNoteOut(
                id=n.id,
                lead_note_id=n.lead_note_id,
                author_user_id=n.author_user_id,
                text=n.text,
                written_at=n.written_at,
            )
            for n in opp.notes
        ],
        activities=[
            o.ActivityOut(
                id=x.id,
                kind=x.kind,
                subject=x.subject,
                actor_user_id=x.actor_user_id,
                occurred_at=x.occurred_at,
                due_date=(x.details or {}).get("due_date"),
                done=(x.details or {}).get("done"),
                details=x.details,
            )
            for x in opp.activities
        ],
        sales_team=[
            o.OpportunityTeamMemberOut(user_id=m.user_id, role=m.role, source=m.source)
            for m in opp.sales_team
        ],
        closed_at=opp.closed_at,
        closed_by=opp.closed_by,
        close_comment=opp.close_comment,
        created_at=opp.created_at,
        updated_at=opp.updated_at,
        version=opp.version,
    )


def visible_opportunity(
    session: Session, principal: Principal, opportunity_id: int, *, for_update: bool = False
) -> Opportunity:
    stmt = select(Opportunity).where(Opportunity.id == opportunity_id)
    if for_update:
        stmt = stmt.with_for_update()
    opp = session.scalar(stmt)
    if opp is None or not (principal.internal or opp.organization_id == principal.organization_id):
        raise NotFound(f"opportunity {opportunity_id} not found")
    return opp


def get_opportunity(db: Database, principal: Principal, opportunity_id: int) -> o.OpportunityOut:
    with db.transaction() as session:
        return opportunity_out(session, visible_opportunity(session, principal, opportunity_id))


def list_opportunities(
    db: Database, principal: Principal, query: o.OpportunityListQuery
) -> Page[o.OpportunityOut]:
    after = decode_cursor(query.cursor)
    with db.transaction() as session:
        stmt: Select[Opportunity] = select(Opportunity).where(Opportunity.id > after)
        if not principal.internal:
            stmt = stmt.where(Opportunity.organization_id == principal.organization_id)
        if query.status is not None:
            stmt = stmt.where(Opportunity.status == query.status.value)
        if query.lead_id is not None:
            stmt = stmt.where(Opportunity.lead_id == query.lead_id)
        rows = list(session.scalars(stmt.order_by(Opportunity.id).limit(query.limit + 1)))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return Page[o.OpportunityOut](
            items=[opportunity_out(session, r) for r in rows],
            next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
        )


# --- closing ------------------------------------------------------------------------------------------


def close_opportunity(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    if_match: str | None,
    data: o.CloseIn,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    """Close as won or lost. The partner's team may do so only while the registration protects the deal
    (not after its expiry) and when its registration type lets it sell (not a referral)."""
    now = utcnow()
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id, for_update=True)
        check_if_match(if_match, opp.id, opp.version)
        if opp.status != OpportunityStatus.OPEN:
            raise OpportunityClosed(
                f"Opportunity {opp.number} is already closed ({opp.status})", current_status=opp.status
            )
        if not principal.internal:
            lead = session.get(Lead, opp.lead_id)
            assert lead is not None
            check_partner_may_close(
                opp.registration_type,
                opp.registration_number,
                lead.status,
                opp.registration_expires_at,
                now,
                lead_id=lead.id,
            )
        previous = opp.status
        opp.status, opp.closed_at, opp.closed_by = data.status.value, now, principal.user_id
        opp.close_comment, opp.updated_at = data.comment, now
        opp.activities.append(
            OpportunityActivity(
                kind=f"closed_{data.status.value}",
                subject=f"Closed as {data.status.value}",
                actor_user_id=principal.user_id,
                occurred_at=now,
                details={"comment": data.comment},
            )
        )
        session.flush()
        audit.record(
            session,
            principal,
            "opportunity",
            opp.id,
            "closed",
            before={"status": previous},
            after={"status": opp.status},
            reason=data.comment,
            now=now,
        )
        on_changed(session, principal, opp, now=now, change="closed")
        session.refresh(opp)
        return opportunity_out(session, opp)


# --- revenue lines ------------------------------------------------------------------------------------


def _line_state(line: OpportunityRevenueLine) -> dict[str, Any]:
    """What the audit row keeps of a line: the amount as stored (two decimals), as a string."""
    return {"amount": None if line.amount is None else f"{line.amount:.2f}", "currency": line.currency}


def update_revenue_line(
    db: Database,
    principal: Principal,
    opportunity_id: int,
    line_id: int,
    if_match: str | None,
    data: o.RevenueLineUpdate,
    on_changed: OpportunityChanged = no_hook,
) -> o.OpportunityOut:
    """Change one revenue line's amount and/or currency against the opportunity's ETag (the line is part
    of the opportunity: its version moves). Who may: as for closing, so the partner's team not after the
    registration expired nor under a referral. A closed opportunity's lines may still be corrected. The
    next send-update carries the change (it sends the opportunity as stored); `on_changed` queues it at
    once where updates go out automatically."""
    now = utcnow()
    with db.transaction() as session:
        opp = visible_opportunity(session, principal, opportunity_id, for_update=True)
        check_if_match(if_match, opp.id, opp.version)
        line = next((r for r in opp.revenue_lines if r.id == line_id), None)
        if line is None:
            raise NotFound(f"revenue line {line_id} not found on opportunity {opportunity_id}")
        if not principal.internal:
            lead = session.get(Lead, opp.lead_id)
            assert lead is not None
            check_partner_may_close(
                opp.registration_type,
                opp.registration_number,
                lead.status,
                opp.registration_expires_at,
                now,
                lead_id=lead.id,
                action="change the opportunity's revenue lines",
            )
        before = _line_state(line)
        changes = data.model_dump(include=data.model_fields_set)
        for field, value in changes.items():
            setattr(line, field, value)
        line.updated_at = opp.updated_at = now  # the opportunity row changes too: its version moves
        session.flush()
        audit.record(
            session,
            principal,
            "opportunity",
            opp.id,
            "revenue_line_updated",
            before=before,
            after=_line_state(line),
            details={"revenue_line_id": line.id, "product_id": line.product_id, "version": opp.version},
            now=now,
        )
        on_changed(session, principal, opp, now=now, change="revenue_line_updated")
        session.refresh(opp)
        return opportunity_out(session, opp)
