"""Registration notifications queued in the transaction of the change that causes them.

Call ``notify(session, lead, event, actor, **context)`` inside the service's transaction, after the
transition is flushed; one e-mail per recipient lands in the outbox's ``email`` channel and commits (or
rolls back) with the change. ``prm notifications deliver`` sends them, so a mail server that is down
delays mail and never a registration. Recipients come from the policy stored with the lead's decision
(registration/notifications/notifications.py says how they are resolved).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, lazyload

from common import delivery, outbox
from common.batch import (
    Backend,
    Chunk,
    database_for,
    default_chunk_size,
    keyset_chunks,
    sweep_backend,
)
from common.clock import utcnow
from common.database import Database
from common.mail import CHANNEL
from common.principal import Principal
from directory.models import User
from registration.approval.staff_service import (
    MANAGER_ROLES,
    StaffUser,
    channel_roles_and_users,
    channel_roles_on,
    staff_of,
    territory_channel_roles,
)
from registration.leads.lifecycle import RegistrationStatus
from registration.leads.models import Lead
from registration.notifications.notifications import (
    Audience,
    LeadSummary,
    Member,
    NotificationEvent,
    NotifyEntry,
    Person,
    compose,
    recipients,
)
from rules.models import StoredDecision

EXPIRY_REMINDER_DAYS = 7


@dataclass(frozen=True)
class People:
    """Users read ahead for `notify` by the action that queues it, with the users it needed itself:
    everyone ``keys`` and ``ids`` name, whatever their state (the audience keeps the active ones), and
    the channel roles on the lead's territories as the action leaves them. `notify` reads again what
    its audience names beyond them."""

    keys: frozenset[str]
    ids: frozenset[int]
    users: Sequence[StaffUser]  # directory users or plain rows of them
    channel_roles: list[tuple[str, str, str]]

    def covers(self, ids: set[int], keys: set[str]) -> bool:
        """Whether every user ``ids`` and ``keys`` name was asked for (or found by the other)."""
        return ids <= self.ids | {u.id for u in self.users} and keys <= self.keys | {
            u.key for u in self.users
        }


def read_people(
    session: Session,
    lead: Lead,
    *,
    territories: Sequence[tuple[int | None, str]],
    keys: Iterable[str],
    ids: Iterable[int],
) -> People:
    """The channel roles on ``territories`` (the lead's team as the action will leave it: (territory
    model id, key)) and, by one statement, every user they, ``keys`` and ``ids`` name, with the lead's
    sales team, owner and submitter; for the action's own use and then `notify`'s. Territories of one
    model given by its id (a submission's) are walked by that same statement."""
    named_ids = (
        frozenset(ids)
        | {m.user_id for m in lead.sales_team}
        | {i for i in (lead.owner_user_id, lead.submitted_by) if i is not None}
    )
    named_keys = frozenset(keys)
    together = channel_roles_and_users(session, territories, named_keys, named_ids)
    if together is not None:  # one statement
        roles, found = together
        return People(named_keys | {k for k, _, _ in roles}, named_ids, found, roles)
    channel_roles = channel_roles_on(session, territories)
    wanted_keys = named_keys | {k for k, _, _ in channel_roles}
    wanted_ids = named_ids
    users = (
        session.scalars(
            select(User)
            .where(or_(User.id.in_(wanted_ids), User.key.in_(wanted_keys)))
            .options(lazyload(User.organization))
        ).all()
        if wanted_ids or wanted_keys
        else []
    )
    return People(wanted_keys, wanted_ids, users, channel_roles)


def _person(user: StaffUser) -> Person:
    return Person(user.id, user.key, user.email, user.name)


def _users(
    session: Session, ids: Iterable[int], keys: Iterable[str]
) -> tuple[dict[int, User], dict[str, User]]:
    ids, keys = set(ids), set(keys)
    if not ids and not keys:
        return {}, {}
    found = session.scalars(
        select(User).where(User.active.is_(True), or_(User.id.in_(ids), User.key.in_(keys)))
    ).all()
    return {u.id: u for u in found}, {u.key: u for u in found}


def _decision_parts(session: Session, lead: Lead) -> tuple[list[tuple[str, str]], list[NotifyEntry]]:
    """The approvers (user key, role) and the policy's notify entries of the lead's latest decision."""
    if lead.decision_id is None:
        return [], []
    decision = session.get(StoredDecision, lead.decision_id)
    if decision is None:
        return [], []
    approvers = [
        (a["user"], a["role"])
        for step in decision.result.get("approval_steps", [])
        for a in step.get("approvers", [])
    ]
    entries = [
        NotifyEntry(n["event"], tuple(n.get("roles", ())), tuple(n.get("users", ())))
        for n in decision.result.get("policy", {}).get("notify", [])
    ]
    return approvers, entries


def audience_of(session: Session, lead: Lead) -> tuple[Audience, list[NotifyEntry]]:
    """Everyone who could be told about ``lead``, and what its policy says about whom to tell."""
    audience, entries, _ = _audience(session, lead, None)
    return audience, entries


def _audience(
    session: Session, lead: Lead, actor_id: int | None, people: People | None = None
) -> tuple[Audience, list[NotifyEntry], StaffUser | None]:
    """`audience_of`, and the acting user (read with the audience, or found among ``people``)."""
    approvers, entries = _decision_parts(session, lead)
    named_keys = {u for e in entries for u in e.users}
    ids = {m.user_id for m in lead.sales_team} | {
        i for i in (lead.owner_user_id, lead.submitted_by, actor_id) if i is not None
    }
    channel_roles = people.channel_roles if people is not None else territory_channel_roles(session, lead)
    staff_keys = {k for k, _, _ in channel_roles}
    keys = {k for k, _ in approvers} | named_keys | staff_keys
    by_id: Mapping[int, StaffUser]
    by_key: Mapping[str, StaffUser]
    if people is not None and people.covers(ids, keys):
        active = [u for u in people.users if u.active]
        by_id, by_key = {u.id: u for u in active}, {u.key: u for u in active}
    else:  # every user the audience names, in one statement
        by_id, by_key = _users(session, ids, keys)
    organization: tuple[Member, ...] = ()
    if lead.organization_id is not None and any("partner_admin" in e.roles for e in entries):
        members = session.scalars(
            select(User).where(User.organization_id == lead.organization_id, User.active.is_(True))
        )
        organization = tuple(Member(_person(u), role) for u in members for role in u.roles)

    def person(user_id: int | None) -> Person | None:
        user = by_id.get(user_id) if user_id is not None else None
        return _person(user) if user else None

    managers = tuple(
        Member(_person(staff.user), staff.role)
        for staff in staff_of(channel_roles, {k: by_key[k] for k in staff_keys if k in by_key})
        if staff.role in MANAGER_ROLES
    )
    audience = Audience(
        owner=person(lead.owner_user_id),
        submitter=person(lead.submitted_by),
        sales_team=tuple(
            Member(_person(by_id[m.user_id]), m.role) for m in lead.sales_team if m.user_id in by_id
        ),
        approvers=tuple(Member(_person(by_key[k]), role) for k, role in approvers if k in by_key),
        organization=organization,
        managers=managers,
        named={k: _person(by_key[k]) for k in named_keys if k in by_key},
    )
    actor: StaffUser | None = by_id.get(actor_id) if actor_id is not None else None
    if actor is None and actor_id is not None:  # not an active user: still named as the actor
        actor = session.get(User, actor_id)
    return audience, entries, actor


def notify(
    session: Session,
    lead: Lead,
    event: NotificationEvent | str,
    actor: Principal | None,
    *,
    now: datetime | None = None,
    occurrence: str | None = None,
    people: People | None = None,
    **context: Any,
) -> list[int]:
    """Queue the e-mails telling the right people about ``event`` on ``lead``; returns the outbox ids.

    ``context`` adds lines to the body: ``comment`` (reject), ``question`` (request for information),
    ``reason``, ``partner``. ``occurrence`` tells repeated events apart in the dedupe key (default: the
    lead's version, which every transition bumps), so calling twice for one transition queues once.
    ``people``: the users and channel roles the action already read (`read_people`).
    """
    event = NotificationEvent(event)
    now = now or utcnow()
    actor_id = actor.user_id if actor else None
    audience, entries, actor_user = _audience(session, lead, actor_id, people)
    told = recipients(event, audience, entries, actor_user_id=actor_id)
    summary = LeadSummary(lead.id, lead.name, lead.status, lead.registration_number, lead.expires_at)
    occurrence = occurrence or f"v{lead.version}"
    messages = []
    for person in told:
        mail = compose(
            event,
            summary,
            person,
            actor_name=actor_user.name if actor_user else None,
            now=now,
            context=context,
        )
        payload = {**mail.to_json(), "lead_id": lead.id, "event": event.value, "user_id": person.user_id}
        messages.append((f"lead:{lead.id}:{event.value}:{occurrence}:user:{person.user_id}", payload))
    return outbox.enqueue_each(session, CHANNEL, f"lead.{event.value}", messages, now=now)


#: The chunk task of the reminders (``common.batch``): one transaction per chunk of registrations.
REMIND_TASK = "registration.notifications.service:remind_chunk"


def _expiring(now: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        Lead.status == RegistrationStatus.APPROVED.value,
        Lead.expires_at > now,
        Lead.expires_at <= until,
    ]


def remind_chunk(database_url: str, chunk: Chunk) -> dict[str, int]:
    """Queue the reminders of the registrations of one chunk that expire in the window, in one
    transaction (idempotent: the outbox's key is per registration, expiry date and person)."""
    db = database_for(database_url)
    now = datetime.fromisoformat(chunk.params["now"])
    until = datetime.fromisoformat(chunk.params["until"])
    queued = 0
    with db.transaction() as session:
        stmt = (
            select(Lead)
            .where(Lead.id >= chunk.first_id, Lead.id <= chunk.last_id, *_expiring(now, until))
            .order_by(Lead.id)
        )
        for lead in session.scalars(stmt):
            assert lead.expires_at is not None
            occurrence = f"until:{lead.expires_at.isoformat()}"
            queued += len(
                notify(session, lead, NotificationEvent.EXPIRING, None, now=now, occurrence=occurrence)
            )
    return {"queued": queued}


def queue_expiry_reminders(
    db: Database,
    *,
    within_days: int = EXPIRY_REMINDER_DAYS,
    now: datetime | None = None,
    chunk_size: int | None = None,
    backend: Backend | None = None,
) -> int:
    """Queue an ``expiring`` reminder for each approved registration expiring within ``within_days``.

    Idempotent: one reminder per registration and expiry date (a new date, e.g. extended by a CAM,
    gets its own reminder when it comes near). The registrations are streamed by id in keyset pages and
    handled in chunks on the batch runner, one transaction each (like the expiry sweep). Returns how
    many e-mails were queued.
    """
    now = now or utcnow()
    until = now + timedelta(days=within_days)
    queued = 0

    def next_ids(session: Session, after: int, limit: int) -> list[int]:
        return list(
            session.scalars(
                select(Lead.id).where(Lead.id > after, *_expiring(now, until)).order_by(Lead.id).limit(limit)
            )
        )

    def done(_chunk: Chunk, counts: Mapping[str, int]) -> None:
        nonlocal queued
        queued += int(counts.get("queued", 0))

    chunks = keyset_chunks(
        db,
        next_ids,
        run_id=0,
        phase="remind",
        size=chunk_size or default_chunk_size(),
        params={"now": now.isoformat(), "until": until.isoformat()},
    )
    sweep_backend(backend).run(REMIND_TASK, db.url, chunks, done=done, stop=lambda: False)
    return queued


def deliver_mail(db: Database, send: delivery.Sender, **options: Any) -> delivery.DeliveryReport:
    """Send queued notification e-mails (see ``common.delivery.deliver`` for the options)."""
    return delivery.deliver(db, CHANNEL, send, **options)
