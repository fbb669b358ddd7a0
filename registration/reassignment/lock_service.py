"""Assignment locks: a lead or opportunity that batch reassignment must leave where it is.

Placing or lifting a lock is a change of the record: it names the record's ETag in ``If-Match``, bumps
its version (so a plan made before it skips the lead as changed) and writes one history row.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common import audit
from common.clock import utcnow
from common.concurrency import check_if_match
from common.database import Database
from common.principal import Principal
from registration.leads.models import Lead
from registration.leads.service import visible_lead
from registration.opportunities.models import Opportunity
from registration.opportunities.service import visible_opportunity
from registration.reassignment import schemas as s
from registration.reassignment.models import AssignmentLock

SUBJECTS = ("lead", "opportunity")


def _subject(
    session: Session, principal: Principal, subject_type: str, subject_id: int, *, for_update: bool = False
) -> Lead | Opportunity:
    if subject_type == "lead":
        return visible_lead(session, principal, subject_id, for_update=for_update)
    return visible_opportunity(session, principal, subject_id, for_update=for_update)


def _lock(session: Session, subject_type: str, subject_id: int) -> AssignmentLock | None:
    return session.scalar(
        select(AssignmentLock).where(
            AssignmentLock.subject_type == subject_type, AssignmentLock.subject_id == subject_id
        )
    )


def lock_out(subject_type: str, subject_id: int, lock: AssignmentLock | None) -> s.LockOut:
    if lock is None:
        return s.LockOut(subject_type=subject_type, subject_id=subject_id, locked=False)
    return s.LockOut(
        subject_type=subject_type,
        subject_id=subject_id,
        locked=True,
        reason=lock.reason,
        locked_by=lock.locked_by,
        locked_at=lock.locked_at,
    )


def get_lock(
    db: Database, principal: Principal, subject_type: str, subject_id: int
) -> tuple[s.LockOut, tuple[int, int]]:
    """The lock (or its absence) and the record's ETag parts."""
    with db.transaction() as session:
        record = _subject(session, principal, subject_type, subject_id)
        return lock_out(subject_type, subject_id, _lock(session, subject_type, subject_id)), (
            record.id,
            record.version,
        )


def set_lock(
    db: Database,
    principal: Principal,
    subject_type: str,
    subject_id: int,
    if_match: str | None,
    data: s.LockIn | None,
) -> tuple[s.LockOut, tuple[int, int]]:
    """Place (``data``) or lift (``None``) the lock; one history row either way."""
    now = utcnow()
    with db.transaction() as session:
        record = _subject(session, principal, subject_type, subject_id, for_update=True)
        check_if_match(if_match, record.id, record.version)
        lock = _lock(session, subject_type, subject_id)
        before = {"locked": lock is not None, "reason": lock.reason if lock else None}
        if data is None:
            if lock is not None:
                session.delete(lock)
            lock = None
        elif lock is None:
            lock = AssignmentLock(
                subject_type=subject_type,
                subject_id=subject_id,
                reason=data.reason,
                locked_by=principal.user_id,
                locked_at=now,
            )
            session.add(lock)
        else:
            lock.reason, lock.locked_by, lock.locked_at = data.reason, principal.user_id, now
        record.updated_at = now  # a change of the record: its version moves
        session.flush()
        audit.record(
            session,
            principal,
            subject_type,
            record.id,
            "assignment_locked" if data is not None else "assignment_unlocked",
            before=before,
            after={"locked": lock is not None, "reason": lock.reason if lock else None},
            reason=data.reason if data is not None else None,
            now=now,
        )
        return lock_out(subject_type, subject_id, lock), (record.id, record.version)
