"""Registration expiry over the database: a channel account manager (or an admin) changes an approved
registration's expiry date; the sweep moves approved registrations past their date to ``expired``
(idempotent: a second run at the same time changes nothing); and the list of registrations expiring soon.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import Conflict, FieldProblem, Forbidden, ValidationFailed
from common.pagination import Page, decode_cursor, encode_cursor
from common.principal import Principal, Role
from registration.expiry import schemas as ex
from registration.leads import schemas as s
from registration.leads.lifecycle import Event, RegistrationStatus
from registration.leads.models import Lead
from registration.leads.service import lead_out, visible_lead
from registration.leads.transition_service import apply_transition
from registration.opportunities.models import Opportunity, OpportunityActivity

#: Registrations expired per transaction by the sweep (keeps locks short on a large backlog).
SWEEP_CHUNK = 200


class ExpiryNotChangeable(Conflict):
    code, title = "expiry-not-changeable", "Expiry cannot be changed"


def _opportunity(session: Session, lead: Lead) -> Opportunity | None:
    return session.scalar(select(Opportunity).where(Opportunity.lead_id == lead.id))


def set_expiry(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: ex.ExpiryIn
) -> s.LeadOut:
    """Change an approved registration's expiry date (channel account managers and admins only)."""
    if not principal.has(Role.CHANNEL_ACCOUNT_MANAGER, Role.ADMIN):
        raise Forbidden("Only a channel account manager or an admin may change a registration's expiry")
    now = utcnow()
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id, for_update=True)
        check_if_match(if_match, lead.id, lead.version)
        if lead.status != RegistrationStatus.APPROVED:
            raise ExpiryNotChangeable(
                f"Only an approved registration's expiry can be changed; this one is {lead.status!r}",
                current_status=lead.status,
            )
        opp = _opportunity(session, lead)
        approved_at = opp.created_at if opp else None
        if approved_at is not None and data.expires_at <= approved_at:
            raise ValidationFailed(
                "The expiry must be after the approval",
                [
                    FieldProblem(
                        "/expires_at", f"must be later than the approval at {approved_at.isoformat()}"
                    )
                ],
            )
        before = lead.expires_at
        lead.expires_at, lead.updated_at = data.expires_at, now
        if opp is not None:
            opp.registration_expires_at, opp.updated_at = data.expires_at, now
            opp.activities.append(
                OpportunityActivity(
                    kind="registration_expiry_changed",
                    subject=f"Registration expiry changed to {data.expires_at.isoformat()}",
                    actor_user_id=principal.user_id,
                    occurred_at=now,
                    details={
                        "from": before.isoformat() if before else None,
                        "to": data.expires_at.isoformat(),
                    },
                )
            )
        session.flush()
        audit.record(
            session,
            principal,
            "lead",
            lead.id,
            "expiry_changed",
            before={"expires_at": before.isoformat() if before else None},
            after={"expires_at": data.expires_at.isoformat()},
            now=now,
        )
        session.refresh(lead)
        return lead_out(session, lead)


def _due(session: Session, now: datetime, limit: int) -> list[int]:
    return list(
        session.scalars(
            select(Lead.id)
            .where(Lead.status == RegistrationStatus.APPROVED.value, Lead.expires_at <= now)
            .order_by(Lead.id)
            .limit(limit)
        )
    )


def expire_registrations(
    db: Database, actor: Principal | None, now: datetime | None = None
) -> ex.ExpirySweepOut:
    """Move every approved registration whose expiry is at or before ``now`` to ``expired``.

    Each lead is locked and checked again before it moves, so a racing expiry change or a second sweep
    cannot expire it twice: one outcome, one history row.
    """
    now = now or utcnow()
    numbers: list[str] = []
    while True:
        with db.transaction() as session:
            ids = _due(session, now, SWEEP_CHUNK)
            for lead_id in ids:
                lead = session.scalar(select(Lead).where(Lead.id == lead_id).with_for_update())
                if lead is None or lead.status != RegistrationStatus.APPROVED or lead.expires_at is None:
                    continue
                if lead.expires_at > now:
                    continue
                apply_transition(
                    session,
                    actor,
                    lead,
                    Event.EXPIRE,
                    now=now,
                    details={"expires_at": lead.expires_at.isoformat(), "swept_at": now.isoformat()},
                )
                opp = _opportunity(session, lead)
                if opp is not None:
                    opp.activities.append(
                        OpportunityActivity(
                            kind="registration_expired",
                            subject=f"Registration {lead.registration_number} expired",
                            actor_user_id=actor.user_id if actor else None,
                            occurred_at=now,
                            details={"expires_at": lead.expires_at.isoformat()},
                        )
                    )
                numbers.append(lead.registration_number or f"lead {lead.id}")
        if len(ids) < SWEEP_CHUNK:
            break
    with db.transaction() as session:
        stmt = (
            select(Lead.status, func.count())
            .where(Lead.status.in_([RegistrationStatus.APPROVED.value, RegistrationStatus.EXPIRED.value]))
            .group_by(Lead.status)
        )
        counts: dict[str, int] = {status: n for status, n in session.execute(stmt)}
    return ex.ExpirySweepOut(
        checked_at=now,
        expired=len(numbers),
        registration_numbers=numbers,
        expired_total=counts.get(RegistrationStatus.EXPIRED.value, 0),
        approved_remaining=counts.get(RegistrationStatus.APPROVED.value, 0),
    )


def expiring(db: Database, principal: Principal, query: ex.ExpiringQuery) -> Page[ex.ExpiringItem]:
    """Approved registrations expiring between now and ``within_days`` from now (partners: their own)."""
    now = utcnow()
    until = now + timedelta(days=query.within_days)
    after = decode_cursor(query.cursor)
    with db.transaction() as session:
        stmt = (
            select(Lead, Opportunity.id)
            .outerjoin(Opportunity, Opportunity.lead_id == Lead.id)
            .where(
                Lead.id > after,
                Lead.status == RegistrationStatus.APPROVED.value,
                Lead.expires_at > now,
                Lead.expires_at <= until,
            )
        )
        if not principal.internal:
            stmt = stmt.where(Lead.organization_id == principal.organization_id)
        rows = list(session.execute(stmt.order_by(Lead.id).limit(query.limit + 1)))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = []
        for lead, opp_id in rows:
            assert lead.expires_at is not None
            items.append(
                ex.ExpiringItem(
                    lead_id=lead.id,
                    registration_number=lead.registration_number,
                    name=lead.name,
                    organization_id=lead.organization_id,
                    expires_at=lead.expires_at,
                    days_left=(lead.expires_at - now).days,
                    opportunity_id=opp_id,
                )
            )
        return Page[ex.ExpiringItem](
            items=items, next_cursor=encode_cursor(rows[-1][0].id) if more and rows else None
        )
