"""The transactional outbox: messages to other systems (e-mail, partner CRMs), written in the transaction
of the change that causes them and delivered later by a deliverer with retries.

- ``enqueue`` adds a message in the caller's session, so it exists exactly when the change commits. The
  ``(channel, dedupe_key)`` pair is unique: enqueueing the same key twice keeps the first message.
- ``claim`` hands a batch of due messages to one deliverer under a lease. Messages that share an
  ``ordering_key`` (e.g. the calls about one transferred record) go out one at a time in the order they
  were queued: one is claimable only when no older one with its key is pending or being sent, so neither
  a retry's backoff nor several deliverers can reorder them. A dead message no longer holds the others. PostgreSQL skips rows another
  deliverer holds (``FOR UPDATE SKIP LOCKED``); SQLite ignores that clause, but every transaction there
  starts with ``BEGIN IMMEDIATE`` (common.database), which serialises whole claims. A message whose lease
  ran out (its deliverer died) is due again; each claim counts an attempt, so a message that kills its
  deliverer every time still ends dead.
- ``mark_sent`` / ``mark_failed`` check the lease token, so a deliverer that lost its lease cannot
  overwrite the outcome of the one that took the message over.
- ``common.delivery`` runs claim -> send -> mark over this table for any sender callable.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Table,
    Text,
    TextClause,
    UniqueConstraint,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from common import audit
from common.clock import utcnow
from common.database import Base, Database, UtcDateTime
from common.principal import Principal
from common.retry import GiveUp, RetryPolicy

MAX_KEY_LENGTH = 255
MAX_ERROR_LENGTH = 2000


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("channel", "dedupe_key"),
        Index("ix_outbox_messages_due", "channel", "status", "next_attempt_at"),
        Index("ix_outbox_messages_ordering", "channel", "ordering_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str] = mapped_column(String(80))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    # Messages with the same key are delivered one at a time, oldest first (None: no order kept).
    ordering_key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    # Delivery attempts started (a claim counts one, whether or not the deliverer lived to report it).
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_token: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


@dataclass(frozen=True)
class OutboxItem:
    """A claimed message as the sender sees it (detached from any session)."""

    id: int
    channel: str
    topic: str
    dedupe_key: str
    payload: dict[str, Any]
    attempts: int
    lease_token: str
    lease_until: datetime


# --- writing ------------------------------------------------------------------------------------------


def enqueue(
    session: Session,
    channel: str,
    topic: str,
    key: str,
    payload: dict[str, Any],
    *,
    now: datetime | None = None,
    not_before: datetime | None = None,
    ordering_key: str | None = None,
) -> int | None:
    """Add a message in the caller's transaction; returns its id, or None if ``key`` was already queued.

    ``key`` is the dedupe (idempotency) key, unique per channel: the receiver sees it on every attempt.
    ``ordering_key``: messages that share it are delivered one at a time in the order they were queued.
    """
    if ordering_key is not None and not 1 <= len(ordering_key) <= MAX_KEY_LENGTH:
        raise ValueError(f"an ordering key has 1 to {MAX_KEY_LENGTH} characters")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"an outbox key has 1 to {MAX_KEY_LENGTH} characters")
    now = now or utcnow()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(OutboxMessage)
        .values(
            channel=channel,
            topic=topic,
            dedupe_key=key,
            ordering_key=ordering_key,
            payload=payload,
            status=OutboxStatus.PENDING.value,
            attempts=0,
            next_attempt_at=not_before or now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["channel", "dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return session.execute(stmt).scalar()


def enqueue_many(
    session: Session,
    channel: str,
    topic: str,
    messages: Sequence[tuple[str, dict[str, Any]]],
    *,
    now: datetime | None = None,
) -> int:
    """Add ``(key, payload)`` messages of one topic in the caller's transaction, in a few statements
    whatever their number (as ``enqueue`` each: a key already queued is left alone); how many were
    added."""
    return len(enqueue_each(session, channel, topic, messages, now=now))


@cache
def _insert_each_sqlite() -> Any:
    """The INSERT of `enqueue_each` on SQLite (of the table: no ORM bulk insert), a row of parameters
    per message, built once (PostgreSQL: `_insert_with_audit_pg`)."""
    table = cast(Table, OutboxMessage.__table__)
    return (
        sqlite.insert(table)
        .on_conflict_do_nothing(index_elements=["channel", "dedupe_key"])
        .returning(table.c.id)
    )


@cache
def _insert_with_audit_pg() -> TextClause:
    """PostgreSQL: the INSERT of `enqueue_each` (messages of one channel and topic, a JSON array of
    ``n``, ``dedupe_key``, ``payload``) with the audit rows recorded before it if any (`audit.take_batched`,
    a JSON array of their columns and ``n``) written by the same statement, built once. JSON is read as
    ``json`` (its text kept as written); a row's None stays JSON null, as the columns' type writes it."""
    audit_columns = (
        "occurred_at timestamptz, actor_user_id integer, actor_organization_id integer, "
        "entity_type varchar, entity_id integer, action varchar, before json, after json, "
        "reason text, details json"
    )
    return text(
        f"""
        WITH recorded AS (
            INSERT INTO audit_events (occurred_at, actor_user_id, actor_organization_id, entity_type,
                                      entity_id, action, before, after, reason, details)
            SELECT a.occurred_at, a.actor_user_id, a.actor_organization_id, a.entity_type, a.entity_id,
                   a.action, coalesce(a.before, 'null'), coalesce(a.after, 'null'), a.reason,
                   coalesce(a.details, 'null')
            FROM json_to_recordset(:audit) AS a(n integer, {audit_columns})
            ORDER BY a.n
        )
        INSERT INTO outbox_messages (channel, topic, dedupe_key, ordering_key, payload, status, attempts,
                                     next_attempt_at, created_at, updated_at)
        SELECT :channel, :topic, m.dedupe_key, NULL, coalesce(m.payload, 'null'), :status, 0, :now, :now,
               :now
        FROM json_to_recordset(:messages) AS m(n integer, dedupe_key varchar, payload json)
        ORDER BY m.n
        ON CONFLICT (channel, dedupe_key) DO NOTHING
        RETURNING id
        """
    ).bindparams(
        bindparam("channel", type_=String()),
        bindparam("topic", type_=String()),
        bindparam("status", type_=String()),
        bindparam("now", type_=UtcDateTime()),
        bindparam("messages", type_=JSON()),
        bindparam("audit", type_=JSON()),
    )


def enqueue_each(
    session: Session,
    channel: str,
    topic: str,
    messages: Sequence[tuple[str, dict[str, Any]]],
    *,
    now: datetime | None = None,
) -> list[int]:
    """``enqueue_many``, returning the ids of the messages added (ascending)."""
    if not messages:
        return []
    if any(not key or len(key) > MAX_KEY_LENGTH for key, _ in messages):
        raise ValueError(f"an outbox key has 1 to {MAX_KEY_LENGTH} characters")
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # one statement, two JSON parameters, whatever the number of messages (and with them the audit
        # rows recorded before, if any): a row of parameters per message made a query of 10 per row,
        # which the driver took a quarter of a second to convert for 2,600 digests
        recorded = audit.take_batched(session)
        params = {
            "channel": channel,
            "topic": topic,
            "status": OutboxStatus.PENDING.value,
            "now": now,
            "messages": [
                {"n": n, "dedupe_key": key, "payload": payload} for n, (key, payload) in enumerate(messages)
            ],
            "audit": [
                {**row, "n": n, "occurred_at": row["occurred_at"].isoformat()}
                for n, row in enumerate(recorded)
            ],
        }
        return sorted(session.execute(_insert_with_audit_pg(), params).scalars().all())
    stmt = _insert_each_sqlite()
    rows = [
        {
            "channel": channel,
            "topic": topic,
            "dedupe_key": key,
            "ordering_key": None,
            "payload": payload,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for key, payload in messages
    ]
    return sorted(session.execute(stmt, rows).scalars().all())


# --- claiming and settling ----------------------------------------------------------------------------


def _due(channel: str, now: datetime) -> Any:
    pending = and_(OutboxMessage.status == OutboxStatus.PENDING.value, OutboxMessage.next_attempt_at <= now)
    abandoned = and_(OutboxMessage.status == OutboxStatus.SENDING.value, OutboxMessage.lease_until <= now)
    return and_(OutboxMessage.channel == channel, or_(pending, abandoned))


#: Another message of the table, in the ordering check (made once: an alias costs a millisecond to make).
_OLDER = aliased(OutboxMessage, name="older")


def _first_of_its_order(channel: str) -> Any:
    """No older message with the same ordering key is still to be delivered (pending or sending)."""
    older = _OLDER
    return or_(
        OutboxMessage.ordering_key.is_(None),
        ~exists().where(
            older.channel == channel,
            older.ordering_key == OutboxMessage.ordering_key,
            older.id < OutboxMessage.id,
            older.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENDING.value]),
        ),
    )


def claim(
    db: Database,
    channel: str,
    *,
    limit: int,
    lease_seconds: float,
    policy: RetryPolicy | None = None,
    now: datetime | None = None,
) -> list[OutboxItem]:
    """Lease up to ``limit`` due messages of ``channel`` to the caller, oldest due first.

    An abandoned message (lease expired) that has used all its attempts goes dead instead of out again.
    """
    policy = policy or RetryPolicy()
    now = now or utcnow()
    token = secrets.token_hex(16)
    lease_until = now + timedelta(seconds=lease_seconds)
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.status == OutboxStatus.SENDING.value,
                OutboxMessage.lease_until <= now,
                OutboxMessage.attempts >= policy.max_attempts,
            )
            .values(
                status=OutboxStatus.DEAD.value,
                lease_until=None,
                lease_token=None,
                last_error="the deliverer stopped during the last attempt (lease expired)",
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        ids = list(
            session.scalars(
                select(OutboxMessage.id)
                .where(_due(channel, now), _first_of_its_order(channel))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        rows = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), _due(channel, now))
            .values(
                status=OutboxStatus.SENDING.value,
                attempts=OutboxMessage.attempts + 1,
                lease_until=lease_until,
                lease_token=token,
                updated_at=now,
            )
            .returning(
                OutboxMessage.id,
                OutboxMessage.channel,
                OutboxMessage.topic,
                OutboxMessage.dedupe_key,
                OutboxMessage.payload,
                OutboxMessage.attempts,
            )
            .execution_options(synchronize_session=False)
        ).all()
    items = [
        OutboxItem(
            id=row.id,
            channel=row.channel,
            topic=row.topic,
            dedupe_key=row.dedupe_key,
            payload=row.payload,
            attempts=row.attempts,
            lease_token=token,
            lease_until=lease_until,
        )
        for row in rows
    ]
    return sorted(items, key=lambda i: ids.index(i.id))


def _leased(item: OutboxItem) -> Any:
    return and_(
        OutboxMessage.id == item.id,
        OutboxMessage.status == OutboxStatus.SENDING.value,
        OutboxMessage.lease_token == item.lease_token,
    )


def mark_sent(db: Database, item: OutboxItem, *, now: datetime | None = None) -> bool:
    """Record a delivery; False if the lease was lost (another deliverer owns the message now)."""
    with db.transaction() as session:
        return mark_sent_in(session, item, now=now)


def _sent(now: datetime) -> dict[str, Any]:
    """What marking a message sent writes."""
    return {
        "status": OutboxStatus.SENT.value,
        "sent_at": now,
        "lease_until": None,
        "lease_token": None,
        "updated_at": now,
    }


def mark_sent_in(session: Session, item: OutboxItem, *, now: datetime | None = None) -> bool:
    """`mark_sent` in the caller's transaction: a sender that records what the receiver answered and
    the delivery in one commit (``common.delivery``: it then returns True); False if the lease was lost."""
    now = now or utcnow()
    result = session.execute(
        update(OutboxMessage)
        .where(_leased(item))
        .values(_sent(now))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_all_sent_in(session: Session, items: Sequence[OutboxItem], *, now: datetime | None = None) -> int:
    """`mark_sent_in` of several messages by one statement; returns how many were still leased to us (and
    are marked sent): fewer than `items` means a lease was lost, and the caller rolls back."""
    if not items:
        return 0
    now = now or utcnow()
    result = session.execute(
        update(OutboxMessage)
        .where(
            tuple_(OutboxMessage.id, OutboxMessage.lease_token).in_([(i.id, i.lease_token) for i in items]),
            OutboxMessage.status == OutboxStatus.SENDING.value,
        )
        .values(_sent(now))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def mark_failed(
    db: Database,
    item: OutboxItem,
    error: str,
    *,
    retryable: bool = True,
    retry_after_seconds: float | None = None,
    policy: RetryPolicy | None = None,
    rand: float | None = None,
    now: datetime | None = None,
) -> OutboxStatus | None:
    """Record a failed attempt: back to pending after a backoff, or dead; None if the lease was lost."""
    policy = policy or RetryPolicy()
    now = now or utcnow()
    step = policy.after_failure(
        item.attempts,
        retryable=retryable,
        rand=random.random() if rand is None else rand,
        retry_after_seconds=retry_after_seconds,
    )
    error = error[:MAX_ERROR_LENGTH]
    if isinstance(step, GiveUp):
        status = OutboxStatus.DEAD
        values: dict[str, Any] = {"last_error": f"{error} [{step.reason}]"[:MAX_ERROR_LENGTH]}
    else:
        status = OutboxStatus.PENDING
        values = {"last_error": error, "next_attempt_at": now + timedelta(seconds=step.delay_seconds)}
    with db.transaction() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(_leased(item))
            .values(status=status.value, lease_until=None, lease_token=None, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        return status if result.rowcount else None  # type: ignore[attr-defined]


def expedite(db: Database, channel: str, ordering_prefix: str, *, now: datetime | None = None) -> int:
    """Make the messages waiting out a retry's backoff due now, those whose ordering key starts with
    ``ordering_prefix`` (e.g. every call to one partner once it answers again after an outage); returns
    how many. Their order and attempt counts are kept."""
    now = now or utcnow()
    with db.transaction() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.status == OutboxStatus.PENDING.value,
                OutboxMessage.attempts > 0,
                OutboxMessage.next_attempt_at > now,
                OutboxMessage.ordering_key.startswith(ordering_prefix, autoescape=True),
            )
            .values(next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- admin --------------------------------------------------------------------------------------------


def list_messages(
    db: Database,
    *,
    channel: str | None = None,
    status: OutboxStatus | str | None = None,
    limit: int = 50,
) -> list[OutboxMessage]:
    """The newest messages, optionally of one channel and status."""
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if channel is not None:
        stmt = stmt.where(OutboxMessage.channel == channel)
    if status is not None:
        stmt = stmt.where(OutboxMessage.status == OutboxStatus(status).value)
    with db.transaction() as session:
        return list(session.scalars(stmt))


def lead_and_recipient(message: OutboxMessage) -> tuple[int | None, str | None]:
    """The lead a message is about and who receives it, from its payload (``lead_id``; ``recipient``,
    or an e-mail's ``to``), for admins reading the queue; None where a message does not say."""
    payload = message.payload if isinstance(message.payload, dict) else {}
    lead_id = payload.get("lead_id")
    recipient = payload.get("recipient") or payload.get("to")
    return (
        lead_id if isinstance(lead_id, int) and not isinstance(lead_id, bool) else None,
        str(recipient) if recipient else None,
    )


def counts(db: Database) -> dict[tuple[str, str], int]:
    """How many messages each (channel, status) has."""
    stmt = select(OutboxMessage.channel, OutboxMessage.status, func.count()).group_by(
        OutboxMessage.channel, OutboxMessage.status
    )
    with db.transaction() as session:
        return {(c, s): int(n) for c, s, n in session.execute(stmt)}


def retry_dead(
    db: Database,
    actor: Principal | None,
    *,
    ids: Sequence[int] | None = None,
    channel: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Put dead messages back in the queue with fresh attempts (all dead ones of ``channel``, or ``ids``).

    Returns the ids retried; ids that are not dead are left alone. Each retry is audited.
    """
    now = now or utcnow()
    stmt = select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.DEAD.value)
    if ids is not None:
        stmt = stmt.where(OutboxMessage.id.in_(list(ids)))
    if channel is not None:
        stmt = stmt.where(OutboxMessage.channel == channel)
    with db.transaction() as session:
        messages = list(session.scalars(stmt.order_by(OutboxMessage.id).with_for_update()))
        for message in messages:
            audit.record(
                session,
                actor,
                "outbox_message",
                message.id,
                "retried",
                before={"status": message.status, "attempts": message.attempts},
                after={"status": OutboxStatus.PENDING.value, "attempts": 0},
                details={"channel": message.channel, "last_error": message.last_error},
                now=now,
            )
            message.status = OutboxStatus.PENDING.value
            message.attempts = 0
            message.next_attempt_at = now
            message.updated_at = now
        return [m.id for m in messages]
