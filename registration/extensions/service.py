"""Extension requests over the database: the partner whose registration it is asks for a later expiry
(approved or expired registrations, one open request at a time, no more than the policy's
``max_extensions`` granted); the people who answer for the registration (its approvers, the channel staff
of its territories and their managers, admins) grant it, which moves the expiry (and approves an expired
registration again), or refuse it with a comment. Each function owns one transaction; the approvers are
told of a request, the partner's people of the answer.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.errors import NotFound
from common.principal import Principal
from registration.expiry.service import check_answers_for, check_protectable, move_expiry
from registration.extensions import schemas as x
from registration.extensions.extension import (
    ExtensionDecided,
    ExtensionPending,
    ExtensionStatus,
    NotThePartner,
    check_limit,
    check_requested_date,
    remaining,
)
from registration.extensions.models import RegistrationExtension
from registration.leads import schemas as s
from registration.leads.models import Lead
from registration.leads.service import lead_out, visible_lead
from registration.notifications import service as notifications_service
from registration.notifications.notifications import NotificationEvent
from registration.opportunities.conversion_service import decision_policy


def _max_extensions(session: Session, lead: Lead) -> int | None:
    policy = decision_policy(session, lead) or {}
    value = policy.get("max_extensions")
    return value if isinstance(value, int) else None


def _granted(session: Session, lead: Lead) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RegistrationExtension)
            .where(
                RegistrationExtension.lead_id == lead.id,
                RegistrationExtension.status == ExtensionStatus.GRANTED.value,
            )
        )
        or 0
    )


def extension_out(row: RegistrationExtension) -> x.ExtensionOut:
    return x.ExtensionOut(
        id=row.id,
        lead_id=row.lead_id,
        status=ExtensionStatus(row.status),
        requested_by=row.requested_by,
        requested_expires_at=row.requested_expires_at,
        reason=row.reason,
        previous_expires_at=row.previous_expires_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
        created_at=row.created_at,
    )


def request_extension(
    db: Database, principal: Principal, lead_id: int, data: x.ExtensionRequestIn
) -> x.ExtensionOut:
    """The partner asks for the registration's protection to last until ``data.expires_at``."""
    now = utcnow()
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id, for_update=True)
        own = not principal.internal and principal.organization_id == lead.organization_id
        if not (own or principal.is_admin):
            raise NotThePartner(
                "Only the partner whose registration it is (or an admin) requests an extension; the "
                "brand owner's channel staff change the expiry directly (PATCH /v1/leads/{id}/expiry)"
            )
        check_protectable(lead)
        check_limit(lead.registration_number, _granted(session, lead), _max_extensions(session, lead))
        check_requested_date(data.expires_at, lead.expires_at, now)
        open_request = session.scalar(
            select(RegistrationExtension.id).where(
                RegistrationExtension.lead_id == lead.id,
                RegistrationExtension.status == ExtensionStatus.PENDING.value,
            )
        )
        if open_request is not None:
            raise ExtensionPending(
                f"Extension request {open_request} of this registration waits for a decision",
                extension_request_id=open_request,
            )
        row = RegistrationExtension(
            lead_id=lead.id,
            status=ExtensionStatus.PENDING.value,
            requested_by=principal.user_id,
            requested_expires_at=data.expires_at,
            reason=data.reason,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # a racing request of the same registration won
            raise ExtensionPending("Another extension request of this registration was just made") from None
        audit.record(
            session,
            principal,
            "lead",
            lead.id,
            "extension_requested",
            reason=data.reason,
            details={"extension_request_id": row.id, "expires_at": data.expires_at.isoformat()},
            now=now,
        )
        notifications_service.notify(
            session,
            lead,
            NotificationEvent.EXTENSION_REQUESTED,
            principal,
            now=now,
            occurrence=f"request:{row.id}",
            reason=data.reason,
            requested_until=data.expires_at.date().isoformat(),
        )
        return extension_out(row)


def list_extensions(db: Database, principal: Principal, lead_id: int) -> x.ExtensionList:
    """The registration's extension requests, oldest first, with the policy's limit."""
    with db.transaction() as session:
        lead = visible_lead(session, principal, lead_id)
        rows = session.scalars(
            select(RegistrationExtension)
            .where(RegistrationExtension.lead_id == lead.id)
            .order_by(RegistrationExtension.id)
        )
        granted, maximum = _granted(session, lead), _max_extensions(session, lead)
        return x.ExtensionList(
            items=[extension_out(r) for r in rows],
            granted=granted,
            max_extensions=maximum,
            remaining=remaining(granted, maximum),
        )


def _pending(
    session: Session, principal: Principal, lead_id: int, request_id: int, if_match: str | None
) -> tuple[Lead, RegistrationExtension]:
    lead = visible_lead(session, principal, lead_id, for_update=True)
    row = session.scalar(
        select(RegistrationExtension).where(
            RegistrationExtension.id == request_id, RegistrationExtension.lead_id == lead.id
        )
    )
    if row is None:
        raise NotFound(f"extension request {request_id} not found on lead {lead_id}")
    check_answers_for(session, principal, lead)
    check_if_match(if_match, lead.id, lead.version)
    if row.status != ExtensionStatus.PENDING:
        raise ExtensionDecided(
            f"Extension request {row.id} was already {row.status}", current_status=row.status
        )
    return lead, row


def grant_extension(
    db: Database,
    principal: Principal,
    lead_id: int,
    request_id: int,
    if_match: str | None,
    data: x.ExtensionGrantIn,
) -> s.LeadOut:
    """Grant the request: the registration is protected until the date asked for (or the one given)."""
    now = utcnow()
    with db.transaction() as session:
        lead, row = _pending(session, principal, lead_id, request_id, if_match)
        check_protectable(lead)
        check_limit(lead.registration_number, _granted(session, lead), _max_extensions(session, lead))
        until = data.expires_at or row.requested_expires_at
        row.previous_expires_at = lead.expires_at
        move_expiry(
            session,
            principal,
            lead,
            until,
            now=now,
            details={"extension_request_id": row.id, "comment": data.comment},
        )
        row.status, row.decided_by, row.decided_at = ExtensionStatus.GRANTED.value, principal.user_id, now
        row.comment, row.updated_at = data.comment, now
        session.flush()
        return lead_out(session, lead)  # as stored after the flush


def reject_extension(
    db: Database,
    principal: Principal,
    lead_id: int,
    request_id: int,
    if_match: str | None,
    data: x.ExtensionRejectIn,
) -> s.LeadOut:
    """Refuse the request (the comment is required and reaches the partner); the expiry stays."""
    now = utcnow()
    with db.transaction() as session:
        lead, row = _pending(session, principal, lead_id, request_id, if_match)
        row.status, row.decided_by, row.decided_at = ExtensionStatus.REJECTED.value, principal.user_id, now
        row.comment, row.updated_at = data.comment, now
        session.flush()
        audit.record(
            session,
            principal,
            "lead",
            lead.id,
            "extension_rejected",
            reason=data.comment,
            details={"extension_request_id": row.id},
            now=now,
        )
        notifications_service.notify(
            session,
            lead,
            NotificationEvent.EXTENSION_REJECTED,
            principal,
            now=now,
            occurrence=f"request:{row.id}",
            comment=data.comment,
        )
        return lead_out(session, lead)
