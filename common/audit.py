"""The append-only audit log: every status change, assignment, decision, transfer and admin change.

Rows are written in the same transaction as the change they record; the database refuses UPDATE and
DELETE on the table (triggers created by the migration), so history cannot be rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Table, Text, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.dml import Insert

from common.clock import utcnow
from common.database import Base, UtcDateTime
from common.principal import Principal


class AuditEvent(Base):
    # Also (migration 0011, an expression index): unique (entity_type, entity_id, the details'
    # reassignment_run_id) where action is "reassigned": one history row per record and run.
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_entity", "entity_type", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_organization_id: Mapped[int | None] = mapped_column(Integer)
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(60))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def record(
    session: Session,
    actor: Principal | None,
    entity_type: str,
    entity_id: int,
    action: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Add one audit row to the session (it commits with the change it records); inside `batched`, to
    the rows the batch writes at its end."""
    row = {
        "occurred_at": now or utcnow(),
        "actor_user_id": actor.user_id if actor else None,
        "actor_organization_id": actor.organization_id if actor else None,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "action": action,
        "before": before,
        "after": after,
        "reason": reason,
        "details": details,
    }
    pending: list[dict[str, Any]] | None = session.info.get(_BATCH)
    if pending is not None:
        pending.append(row)
    else:
        session.add(AuditEvent(**row))


_BATCH = "prm.audit.batch"


@contextmanager
def batched(session: Session) -> Iterator[None]:
    """The audit rows recorded inside the block are written together, in the order recorded, by one
    statement when the block ends (a request that records several rows pays one round trip, and none
    at each flush in between); an error leaves them unwritten with the rest of its transaction.

    Open it inside the transaction (``with db.transaction() as session, audit.batched(session):``), so
    the rows are written before the commit. A batch opened inside another joins it. A statement that
    can carry them writes the rows recorded so far earlier (`take_batched`: PostgreSQL's outbox INSERT).
    """
    if _BATCH in session.info:
        yield
        return
    pending: list[dict[str, Any]] = []
    session.info[_BATCH] = pending
    try:
        yield
    finally:
        del session.info[_BATCH]
    if pending:
        session.execute(_insert(), pending)


def take_batched(session: Session) -> list[dict[str, Any]]:
    """The rows recorded in the open batch and not written yet, handed to the caller to write them in a
    statement of its own (in the order recorded), and no longer the batch's; none outside a batch, or
    inside a savepoint (`undone_on_error` may drop rows there)."""
    pending: list[dict[str, Any]] | None = session.info.get(_BATCH)
    if not pending or session.in_nested_transaction():
        return []
    rows = pending[:]
    pending.clear()
    return rows


@contextmanager
def undone_on_error(session: Session) -> Iterator[None]:
    """Inside `batched`: a block that may fail alone (in a savepoint of its own, the others kept) has
    the rows it recorded dropped if it raises, as its savepoint's changes are."""
    pending: list[dict[str, Any]] | None = session.info.get(_BATCH)
    mark = len(pending) if pending is not None else 0
    try:
        yield
    except BaseException:
        if pending is not None:
            del pending[mark:]
        raise


@cache
def _insert() -> Insert:
    """The INSERT of `batched` (of the table: the ORM's bulk insert cost twice the statement), built
    once."""
    return insert(cast(Table, AuditEvent.__table__))


def history(session: Session, entity_type: str, entity_id: int) -> list[AuditEvent]:
    """Every audit row of one record, oldest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == entity_id)
        .order_by(AuditEvent.id)
    )
    return list(session.scalars(stmt))
