"""Who is told what about a registration (pure): event -> recipients -> subject and body.

The policy's ``notify`` entries name roles and users per event. A role is resolved on the lead itself:
``submitter``; ``lead_owner`` and ``partner_owner`` (the lead's owner); ``partner_admin`` (the partner
organization's admins); any other role (``channel_account_manager``, ``sales_rep``...) is whoever holds it
on the lead's sales team, among the approvers of its decision, or among the managers of its territories.
Users are named by key. When the policy names nobody for an event, or what it names resolves to nobody,
``DEFAULT_AUDIENCE`` applies: whoever hears what the lead's team hears, the channel sales managers and
directors of its territories (up the hierarchy) hear too. The person who caused the event is not told.

>>> alice = Person(1, "alice", "alice@p.example", "Alice")
>>> cam = Person(2, "cam", "cam@b.example", "Cam")
>>> audience = Audience(owner=alice, submitter=alice, approvers=(Member(cam, "channel_account_manager"),))
>>> [p.key for p in recipients(NotificationEvent.SUBMITTED, audience, (), actor_user_id=1)]
['cam']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class NotificationEvent(StrEnum):
    """What happened; the values are the policy's event names (plus ``expiring``, a reminder)."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    INFO_REQUESTED = "info_requested"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    TRANSFERRED = "transferred"
    INFO_SUBMITTED = "info_submitted"
    WITHDRAWN = "withdrawn"
    EXTENDED = "extended"
    EXTENSION_REQUESTED = "extension_requested"
    EXTENSION_REJECTED = "extension_rejected"


# Groups of the default audience (not policy roles).
APPROVERS, SALES_TEAM, SUBMITTER, OWNER = "@approvers", "@sales_team", "@submitter", "@owner"
MANAGERS = "@territory_managers"
_TEAM = (SALES_TEAM, MANAGERS)  # the source document: the team and its managers are told

#: Who hears about an event when the policy names nobody.
DEFAULT_AUDIENCE: Mapping[NotificationEvent, tuple[str, ...]] = {
    NotificationEvent.SUBMITTED: (APPROVERS, *_TEAM),
    NotificationEvent.APPROVED: (SUBMITTER, OWNER, *_TEAM),
    NotificationEvent.REJECTED: (SUBMITTER, OWNER, *_TEAM),
    NotificationEvent.INFO_REQUESTED: (SUBMITTER,),
    NotificationEvent.INFO_SUBMITTED: (APPROVERS,),
    NotificationEvent.WITHDRAWN: (APPROVERS, *_TEAM),
    NotificationEvent.EXPIRING: (OWNER, *_TEAM),
    NotificationEvent.EXPIRED: (OWNER, *_TEAM),
    NotificationEvent.EXTENDED: (SUBMITTER, OWNER, *_TEAM),
    NotificationEvent.EXTENSION_REQUESTED: (APPROVERS,),
    NotificationEvent.EXTENSION_REJECTED: (SUBMITTER, OWNER, SALES_TEAM),
    NotificationEvent.ACCEPTED: (OWNER, *_TEAM),
    NotificationEvent.TRANSFERRED: (OWNER, *_TEAM),
}

OWNER_ROLES = frozenset({"lead_owner", "partner_owner"})


@dataclass(frozen=True)
class Person:
    user_id: int
    key: str
    email: str
    name: str


@dataclass(frozen=True)
class Member:
    """A person holding a role on the lead (sales team, approvers, the partner organization)."""

    person: Person
    role: str


@dataclass(frozen=True)
class NotifyEntry:
    """One policy ``notify`` entry: on ``event``, tell these roles and users."""

    event: str
    roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Audience:
    """Everyone who could be told about one lead."""

    owner: Person | None = None
    submitter: Person | None = None
    sales_team: tuple[Member, ...] = ()
    approvers: tuple[Member, ...] = ()
    organization: tuple[Member, ...] = ()  # the partner organization's users with their directory roles
    managers: tuple[Member, ...] = ()  # channel sales managers and directors of the lead's territories
    named: Mapping[str, Person] = field(default_factory=dict)  # users the policy names, by key


def _group(name: str, audience: Audience) -> list[Person]:
    if name == APPROVERS:
        return [m.person for m in audience.approvers]
    if name == SALES_TEAM:
        return [m.person for m in audience.sales_team]
    if name == MANAGERS:
        return [m.person for m in audience.managers]
    if name == SUBMITTER:
        return [audience.submitter] if audience.submitter else []
    if name == OWNER:
        return [audience.owner] if audience.owner else []
    raise ValueError(f"unknown audience group {name!r}")


def _role(role: str, audience: Audience) -> list[Person]:
    if role == "submitter":
        return [audience.submitter] if audience.submitter else []
    if role in OWNER_ROLES:
        return [audience.owner] if audience.owner else []
    holders = [*audience.sales_team, *audience.approvers, *audience.managers]
    if role == "partner_admin":
        holders += list(audience.organization)
    return [m.person for m in holders if m.role == role]


def _distinct(people: Iterable[Person], actor_user_id: int | None) -> list[Person]:
    seen: dict[int, Person] = {}
    for person in people:
        if person.user_id != actor_user_id and person.user_id not in seen:
            seen[person.user_id] = person
    return list(seen.values())


def recipients(
    event: NotificationEvent,
    audience: Audience,
    policy: Sequence[NotifyEntry],
    *,
    actor_user_id: int | None = None,
) -> list[Person]:
    """The people to tell about ``event``, each once, in a stable order, without the actor."""
    entries = [e for e in policy if e.event == event.value]
    if entries and all(not e.roles and not e.users for e in entries):
        return []  # the policy says: nobody
    named: list[Person] = []
    for entry in entries:
        for role in entry.roles:
            named += _role(role, audience)
        named += [audience.named[u] for u in entry.users if u in audience.named]
    chosen = _distinct(named, actor_user_id)
    if chosen:
        return chosen
    people = [p for group in DEFAULT_AUDIENCE[event] for p in _group(group, audience)]
    return _distinct(people, actor_user_id)


# --- the message --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadSummary:
    """What a notification says about the lead."""

    id: int
    name: str
    status: str
    registration_number: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Mail:
    to: str
    to_name: str
    subject: str
    body: str

    def to_json(self) -> dict[str, Any]:
        return {"to": self.to, "to_name": self.to_name, "subject": self.subject, "body": self.body}


_SUBJECTS: Mapping[NotificationEvent, str] = {
    NotificationEvent.SUBMITTED: "Registration {ref} submitted for approval: {name}",
    NotificationEvent.APPROVED: "Registration {ref} approved: {name}",
    NotificationEvent.REJECTED: "Registration {ref} rejected: {name}",
    NotificationEvent.INFO_REQUESTED: "Information requested for registration {ref}: {name}",
    NotificationEvent.EXPIRING: "Registration {ref} expires on {expires}: {name}",
    NotificationEvent.EXPIRED: "Registration {ref} expired: {name}",
    NotificationEvent.ACCEPTED: "Lead {ref} accepted: {name}",
    NotificationEvent.TRANSFERRED: "Registration {ref} transferred: {name}",
    NotificationEvent.INFO_SUBMITTED: "Information submitted for registration {ref}: {name}",
    NotificationEvent.WITHDRAWN: "Registration {ref} withdrawn: {name}",
    NotificationEvent.EXTENDED: "Registration {ref} extended to {expires}: {name}",
    NotificationEvent.EXTENSION_REQUESTED: "Extension requested for registration {ref}: {name}",
    NotificationEvent.EXTENSION_REJECTED: "Extension refused for registration {ref}: {name}",
}

_OPENINGS: Mapping[NotificationEvent, str] = {
    NotificationEvent.SUBMITTED: "{actor} submitted the registration for approval.",
    NotificationEvent.APPROVED: "{actor} approved the registration. It is protected until {expires}.",
    NotificationEvent.REJECTED: "{actor} rejected the registration. It can be edited and submitted again.",
    NotificationEvent.INFO_REQUESTED: "{actor} needs more information before deciding on the registration.",
    NotificationEvent.EXPIRING: "The registration expires on {expires} ({days} day(s) from now).",
    NotificationEvent.EXPIRED: "The registration expired on {expires}.",
    NotificationEvent.ACCEPTED: "{actor} accepted the lead.",
    NotificationEvent.TRANSFERRED: "The registration's opportunity was transferred to the partner's CRM.",
    NotificationEvent.INFO_SUBMITTED: "{actor} answered the approvers' question; the approval resumes.",
    NotificationEvent.WITHDRAWN: "{actor} withdrew the registration before a decision.",
    NotificationEvent.EXTENDED: "{actor} extended the registration's protection until {expires}.",
    NotificationEvent.EXTENSION_REQUESTED: "{actor} asks for the registration's protection to be extended.",
    NotificationEvent.EXTENSION_REJECTED: "{actor} refused to extend the registration's protection.",
}

# Context keys a caller may pass, and how the body labels them.
_CONTEXT_LABELS = {
    "comment": "Comment",
    "question": "Question",
    "answer": "Answer",
    "reason": "Reason",
    "requested_until": "Requested until",
    "partner": "Partner",
}


def compose(
    event: NotificationEvent,
    lead: LeadSummary,
    recipient: Person,
    *,
    actor_name: str | None,
    now: datetime,
    context: Mapping[str, Any] | None = None,
) -> Mail:
    """The e-mail telling ``recipient`` about ``event`` (plain text)."""
    context = context or {}
    expires = lead.expires_at.date().isoformat() if lead.expires_at else "(no date)"
    days = max(0, (lead.expires_at - now).days) if lead.expires_at else 0
    values = {
        "ref": lead.registration_number or f"#{lead.id}",
        "name": lead.name,
        "actor": actor_name or "The system",
        "expires": expires,
        "days": days,
    }
    lines = [f"Hello {recipient.name},", "", _OPENINGS[event].format(**values), ""]
    lines += [f"{label}: {context[key]}" for key, label in _CONTEXT_LABELS.items() if context.get(key)]
    if any(context.get(key) for key in _CONTEXT_LABELS):
        lines.append("")
    lines += [
        f"Lead: {lead.name} (id {lead.id})",
        f"Registration number: {lead.registration_number or '-'}",
        f"Status: {lead.status}",
    ]
    if lead.expires_at:
        lines.append(f"Expires: {expires}")
    lines += ["", "-- ", "Partner relationship management (automatic message; replies are not read)"]
    # A subject is one header line: no line breaks from user-entered names.
    subject = " ".join(_SUBJECTS[event].format(**values).split())
    return Mail(recipient.email, recipient.name, subject, "\n".join(lines) + "\n")
