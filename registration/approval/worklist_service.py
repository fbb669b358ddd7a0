"""The approver's worklist: registrations waiting in an open approval round whose current step names
the caller as an approver; filtered by status, territory and age, oldest or newest first, paginated.

Rounds are numbered in the order they start, so the round id is the submission order: sorting and the
cursor both use it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, select

from common.clock import utcnow
from common.database import Database
from common.pagination import Page, decode_cursor, encode_cursor
from common.principal import Principal
from registration.approval import schemas as a
from registration.approval.approval import RoundStatus
from registration.approval.models import ApprovalRound, ApprovalStep, ApprovalStepApprover
from registration.leads.lifecycle import RegistrationStatus
from registration.leads.models import Lead, LeadTerritory

WAITING = (RegistrationStatus.PENDING_APPROVAL.value, RegistrationStatus.INFO_REQUESTED.value)


def _query(principal: Principal, query: a.WorklistQuery) -> Select[ApprovalRound, ApprovalStep, Lead]:
    now = utcnow()
    stmt = (
        select(ApprovalRound, ApprovalStep, Lead)
        .join(ApprovalStep, ApprovalStep.id == ApprovalRound.current_step_id)
        .join(ApprovalStepApprover, ApprovalStepApprover.step_id == ApprovalStep.id)
        .join(Lead, Lead.id == ApprovalRound.lead_id)
        .where(
            ApprovalRound.status == RoundStatus.OPEN.value,
            ApprovalStepApprover.user_id == principal.user_id,
            Lead.status.in_([query.status.value] if query.status else WAITING),
        )
    )
    if query.territory is not None:
        stmt = stmt.where(
            select(LeadTerritory.id)
            .where(LeadTerritory.lead_id == Lead.id, LeadTerritory.territory_key == query.territory)
            .exists()
        )
    if query.min_age_days is not None:
        stmt = stmt.where(ApprovalRound.started_at <= now - timedelta(days=query.min_age_days))
    return stmt


def worklist(db: Database, principal: Principal, query: a.WorklistQuery) -> Page[a.WorklistItem]:
    """The caller's waiting registrations (as an approver of their current step)."""
    after = decode_cursor(query.cursor)
    newest = query.sort is a.WorklistSort.NEWEST
    now = utcnow()
    with db.transaction() as session:
        stmt = _query(principal, query)
        if after:
            stmt = stmt.where(ApprovalRound.id < after if newest else ApprovalRound.id > after)
        order = ApprovalRound.id.desc() if newest else ApprovalRound.id.asc()
        rows = list(session.execute(stmt.order_by(order).limit(query.limit + 1)))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = [_item(rnd, step, lead, now) for rnd, step, lead in rows]
        return Page[a.WorklistItem](
            items=items, next_cursor=encode_cursor(rows[-1][0].id) if more and rows else None
        )


def _item(rnd: ApprovalRound, step: ApprovalStep, lead: Lead, now: datetime) -> a.WorklistItem:
    started = rnd.started_at
    age = (now - started).days
    return a.WorklistItem(
        lead_id=lead.id,
        registration_number=lead.registration_number,
        name=lead.name,
        status=RegistrationStatus(lead.status),
        organization_id=lead.organization_id,
        customer_id=lead.customer_id,
        deal_size=float(lead.deal_size) if lead.deal_size is not None else None,
        currency=lead.currency,
        territories=[t.territory_key for t in lead.territory_team],
        round_id=rnd.id,
        round_number=rnd.number,
        step=step.name,
        step_position=step.position,
        submitted_at=started,
        age_days=age,
        version=lead.version,
    )
