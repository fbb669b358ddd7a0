"""Registration expiry over the database: the people who answer for a registration (its approvers, the
channel staff of its territories and their managers, admins) change an approved registration's expiry
date or give an expired one a later date, which approves it again; the sweep moves approved
registrations past their date to ``expired``, chunk by chunk on the batch runner (``common.batch``;
idempotent: a second run at the same time changes nothing); and the list of registrations expiring soon.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from common import audit
from common.batch import (
    Backend,
    Chunk,
    IdPage,
    database_for,
    default_chunk_size,
    keyset_chunks,
    sweep_backend,
)
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import Conflict, FieldProblem, Forbidden, ValidationFailed
from common.pagination import Page, decode_cursor, encode_cursor
from common.principal import Principal, Role
from registration.approval import staff_service
from registration.expiry import schemas as ex
from registration.leads import schemas as s
from registration.leads.lifecycle import Event, RegistrationStatus
from registration.leads.models import Lead
from registration.leads.service import lead_out, visible_lead
from registration.leads.transition_service import apply_transition
from registration.notifications import service as notifications_service
from registration.notifications.notifications import NotificationEvent
from registration.opportunities.models import Opportunity, OpportunityActivity


class ExpiryNotChangeable(Conflict):
    code, title = "expiry-not-changeable", "Expiry cannot be changed"


class NotAnswerable(Forbidden):
    code, title = "not-responsible", "Not responsible for this registration"


#: Statuses whose expiry may change: approved, and expired (a later date protects the deal again).
PROTECTED = frozenset({RegistrationStatus.APPROVED.value, RegistrationStatus.EXPIRED.value})


def _opportunity(session: Session, lead: Lead) -> Opportunity | None:
    return session.scalar(select(Opportunity).where(Opportunity.lead_id == lead.id))


def check_answers_for(session: Session, principal: Principal, lead: Lead) -> None:
    """403 unless the caller is an admin, an approver of the registration, or channel staff of its
    territories (or above them)."""
    if not staff_service.answers_for(session, principal, lead):
        raise NotAnswerable(
            "Only the registration's approvers, the channel staff of its territories (and their managers "
            "up the territory hierarchy) or an admin may change its protection"
        )


def check_protectable(lead: Lead) -> None:
    """409 unless the registration is approved or expired."""
    if lead.status not in PROTECTED:
        raise ExpiryNotChangeable(
            f"Only an approved or expired registration's expiry can be changed; this one is {lead.status!r}",
            current_status=lead.status,
        )


def move_expiry(
    session: Session,
    principal: Principal,
    lead: Lead,
    new_expiry: datetime,
    *,
    now: datetime,
    pointer: str = "/expires_at",
    details: dict[str, Any] | None = None,
) -> None:
    """Give an approved or expired registration a new expiry, in the caller's transaction.

    An expired registration given a date in the future is approved again (one ``reinstated`` history
    row); the opportunity carries the new date; a later date than before tells the lead's people
    (``extended`` mail). Refuses (422) a date before the approval, and a date already past for an
    expired registration."""
    check_protectable(lead)
    opp = _opportunity(session, lead)
    approved_at = opp.created_at if opp else None
    if approved_at is not None and new_expiry <= approved_at:
        raise ValidationFailed(
            "The expiry must be after the approval",
            [FieldProblem(pointer, f"must be later than the approval at {approved_at.isoformat()}")],
        )
    expired = lead.status == RegistrationStatus.EXPIRED
    if expired and new_expiry <= now:
        raise ValidationFailed(
            "An expired registration needs an expiry in the future to protect the deal again",
            [FieldProblem(pointer, f"must be later than now ({now.isoformat()})")],
        )
    before = lead.expires_at
    lead.expires_at, lead.updated_at = new_expiry, now
    change = {"from": before.isoformat() if before else None, "to": new_expiry.isoformat()}
    if opp is not None:
        opp.registration_expires_at, opp.updated_at = new_expiry, now
        opp.activities.append(
            OpportunityActivity(
                kind="registration_reinstated" if expired else "registration_expiry_changed",
                subject=f"Registration expiry changed to {new_expiry.isoformat()}",
                actor_user_id=principal.user_id,
                occurred_at=now,
                details=change,
            )
        )
    session.flush()
    audit.record(
        session,
        principal,
        "lead",
        lead.id,
        "expiry_changed",
        before={"expires_at": change["from"]},
        after={"expires_at": change["to"]},
        details=details,
        now=now,
    )
    if expired:
        apply_transition(
            session, principal, lead, Event.EXTEND, now=now, details={**change, **(details or {})}
        )
    if before is None or new_expiry > before:
        notifications_service.notify(
            session, lead, NotificationEvent.EXTENDED, principal, now=now, occurrence=f"until:{change['to']}"
        )


def set_expiry(
    db: Database, principal: Principal, lead_id: int, if_match: str | None, data: ex.ExpiryIn
) -> s.LeadOut:
    """Change an approved registration's expiry, or reinstate an expired one with a later date (its
    approvers, the channel staff of its territories and their managers, and admins)."""
    if not principal.internal:
        raise Forbidden("Only the brand owner's channel staff or an admin may change a registration's expiry")
    now = utcnow()
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id, for_update=True)
        check_answers_for(session, principal, lead)
        check_if_match(if_match, lead.id, lead.version)
        move_expiry(session, principal, lead, data.expires_at, now=now)
        session.flush()
        return lead_out(session, lead)  # as stored after the flush


#: The chunk task of the sweep (``common.batch``): one transaction per chunk of due registrations.
EXPIRE_TASK = "registration.expiry.service:expire_chunk"
#: Registration numbers a sweep's result lists at most (the count is always complete).
LISTED = 1000


def actor_params(actor: Principal | None) -> dict[str, str]:
    """The sweep's caller, as ``Chunk.params`` (a worker process rebuilds it with ``actor_of``)."""
    if actor is None:
        return {}
    return {
        "actor_user_id": str(actor.user_id),
        "actor_organization_id": str(actor.organization_id),
        "actor_roles": ",".join(sorted(r.value for r in actor.roles)),
        "actor_internal": "1" if actor.internal else "",
    }


def actor_of(params: Mapping[str, str]) -> Principal | None:
    if not params.get("actor_user_id"):
        return None
    return Principal(
        user_id=int(params["actor_user_id"]),
        organization_id=int(params["actor_organization_id"]),
        roles=frozenset(Role(r) for r in params.get("actor_roles", "").split(",") if r),
        internal=bool(params.get("actor_internal")),
    )


def _due_ids(now: datetime) -> IdPage:
    def page(session: Session, after: int, limit: int) -> list[int]:
        return list(
            session.scalars(
                select(Lead.id)
                .where(
                    Lead.id > after,
                    Lead.status == RegistrationStatus.APPROVED.value,
                    Lead.expires_at <= now,
                )
                .order_by(Lead.id)
                .limit(limit)
            )
        )

    return page


def expire_chunk(database_url: str, chunk: Chunk) -> dict[str, int]:
    """Expire the due registrations with ids in the chunk's range, in one transaction.

    Each lead is locked and checked again before it moves, so a racing expiry change, a second sweep or
    the same chunk run twice cannot expire it twice: one outcome, one history row."""
    db = database_for(database_url)
    now = datetime.fromisoformat(chunk.params["now"])
    actor = actor_of(chunk.params)
    expired = 0
    with db.transaction() as session:
        leads = session.scalars(
            select(Lead)
            .where(
                Lead.id >= chunk.first_id,
                Lead.id <= chunk.last_id,
                Lead.status == RegistrationStatus.APPROVED.value,
                Lead.expires_at <= now,
            )
            .order_by(Lead.id)
            .with_for_update()
        ).all()
        opportunities = {
            opp.lead_id: opp
            for opp in session.scalars(
                select(Opportunity).where(Opportunity.lead_id.in_([x.id for x in leads]))
            )
        }
        for lead in leads:
            assert lead.expires_at is not None
            apply_transition(
                session,
                actor,
                lead,
                Event.EXPIRE,
                now=now,
                details={"expires_at": lead.expires_at.isoformat(), "swept_at": now.isoformat()},
            )
            opp = opportunities.get(lead.id)
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
            expired += 1
    return {"expired": expired}


def expire_registrations(
    db: Database,
    actor: Principal | None,
    now: datetime | None = None,
    *,
    chunk_size: int | None = None,
    backend: Backend | None = None,
) -> ex.ExpirySweepOut:
    """Move every approved registration whose expiry is at or before ``now`` to ``expired``.

    The due registrations are streamed by id in keyset pages and expired in chunks (``common.batch``;
    ``PRM_BATCH_CHUNK_SIZE``), one transaction per chunk: a sweep over a million registrations neither
    holds one long transaction nor loads them all, and a sweep that failed part-way keeps the chunks it
    finished; running it again completes it (each registration expires once).
    """
    now = now or utcnow()
    expired, numbers = 0, list[str]()

    def done(chunk: Chunk, counts: Mapping[str, int]) -> None:
        nonlocal expired
        expired += int(counts.get("expired", 0))
        if counts.get("expired") and len(numbers) < LISTED:
            with db.transaction() as session:  # the ones this sweep expired (as of its own time)
                numbers.extend(
                    session.scalars(
                        select(func.coalesce(Lead.registration_number, "lead " + cast(Lead.id, String)))
                        .where(
                            Lead.id >= chunk.first_id,
                            Lead.id <= chunk.last_id,
                            Lead.status == RegistrationStatus.EXPIRED.value,
                            Lead.updated_at == now,
                        )
                        .order_by(Lead.id)
                        .limit(LISTED - len(numbers))
                    )
                )

    chunks = keyset_chunks(
        db,
        _due_ids(now),
        run_id=0,
        phase="expire",
        size=chunk_size or default_chunk_size(),
        params={"now": now.isoformat(), **actor_params(actor)},
    )
    sweep_backend(backend).run(EXPIRE_TASK, db.url, chunks, done=done, stop=lambda: False)
    with db.transaction() as session:
        stmt = (
            select(Lead.status, func.count())
            .where(Lead.status.in_([RegistrationStatus.APPROVED.value, RegistrationStatus.EXPIRED.value]))
            .group_by(Lead.status)
        )
        counts: dict[str, int] = {status: n for status, n in session.execute(stmt)}
    return ex.ExpirySweepOut(
        checked_at=now,
        expired=expired,
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
